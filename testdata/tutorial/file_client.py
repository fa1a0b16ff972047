# -*- coding: utf-8 -*-
import socket
import sys

host, port, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.connect((host, port))
size = int(s.recv(1024).decode('utf-8'))
s.send('Ready to recv file'.encode('utf-8'))
received = 0
with open(out, 'wb') as f:
    while received < size:
        data = s.recv(1024)
        if not data:
            break
        f.write(data)
        received += len(data)
s.close()
print('received', received, 'of', size)
