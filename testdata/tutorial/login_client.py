# -*- coding: utf-8 -*-
# Reads user and password pairs from stdin (the tutorial asks with input());
# prints each reply; stops at 'success'.
import socket
import sys

host, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.connect((host, port))
while True:
    try:
        user = input('user: ')
        password = input('password: ')
    except EOFError:
        break
    s.send((user + '|' + password).encode('utf-8'))
    reply = s.recv(1024).decode('utf-8')
    print(reply, flush=True)
    if reply == 'success':
        break
s.close()
