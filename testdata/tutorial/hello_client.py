# -*- coding: utf-8 -*-
import socket
import sys

host, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.connect((host, port))
msg = s.recv(1024)
s.close()
print(msg.decode('utf-8'))
