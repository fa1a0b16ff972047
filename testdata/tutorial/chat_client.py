# -*- coding: utf-8 -*-
import socket
import sys

host, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.connect((host, port))
while True:
    try:
        msg = input()
    except EOFError:
        break
    if not msg:
        break
    s.send(msg.encode('utf-8'))
    data = s.recv(1024)
    print(data.decode('utf-8'), flush=True)
s.close()
