# -*- coding: utf-8 -*-
# The tutorial's multi-threaded client: one thread receives and prints while
# the main thread sends what is typed; it stops after sending 'exit'.
import socket
import sys
import threading
import time

host, port = sys.argv[1], int(sys.argv[2])


def recv_loop(s):
    while True:
        try:
            data = s.recv(1024)
        except OSError:
            break
        if not data:
            break
        print(data.decode('utf-8'), flush=True)


s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.connect((host, port))
t = threading.Thread(target=recv_loop, args=(s,), daemon=True)
t.start()
while True:
    msg = input()
    s.send(msg.encode('utf-8'))
    time.sleep(0.05)  # the tutorial types by hand: one message per send
    if msg == 'exit':
        break
time.sleep(0.3)
s.close()
