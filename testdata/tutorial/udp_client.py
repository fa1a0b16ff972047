# -*- coding: utf-8 -*-
import socket
import sys

host, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
while True:
    try:
        msg = input()
    except EOFError:
        break
    if not msg or msg == 'quit':
        break
    s.sendto(msg.encode('utf-8'), (host, port))
    data, addr = s.recvfrom(1024)
    print(data.decode('utf-8'), flush=True)
s.close()
