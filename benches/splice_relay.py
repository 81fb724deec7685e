"""The least a second hop can cost: a blocking relay with no HTTP logic
beyond framing one answer, no credential check, no pool. It reads a request
head, sends it upstream on a fresh connection, passes the response head on
and moves the body (Content-Length bytes) upstream socket -> pipe -> client
socket with splice(2), one connection at a time. benches/large.sh runs it
beside nginx direct, HAProxy and tollgate: the bound a spliced proxy meets
on the same machine. Bench tool only; loopback only.

Usage: python3 benches/splice_relay.py LISTEN_PORT UPSTREAM_PORT
"""
import fcntl
import os
import socket
import sys

F_SETPIPE_SZ = 1031
PIPE = 1 << 20


def serve(client, upstream_port):
    request = client.recv(65536)
    if not request:  # a readiness probe
        client.close()
        return
    with client, socket.create_connection(("127.0.0.1", upstream_port)) as up:
        up.sendall(request)
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = up.recv(65536)
            if not chunk:
                return
            head += chunk
        fields, rest = head.split(b"\r\n\r\n", 1)
        length = next(int(l.split(b":", 1)[1]) for l in fields.split(b"\r\n")[1:] if l.lower().startswith(b"content-length:"))
        client.sendall(fields + b"\r\n\r\n" + rest)
        remaining = length - len(rest)
        r, w = os.pipe()
        fcntl.fcntl(w, F_SETPIPE_SZ, PIPE)
        try:
            while remaining:
                n = os.splice(up.fileno(), w, min(remaining, PIPE))
                if n == 0:
                    return
                remaining -= n
                while n:
                    n -= os.splice(r, client.fileno(), n)
        finally:
            os.close(r)
            os.close(w)


def main():
    listen_port, upstream_port = int(sys.argv[1]), int(sys.argv[2])
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", listen_port))
    listener.listen(8)
    while True:
        client, _ = listener.accept()
        serve(client, upstream_port)


if __name__ == "__main__":
    main()
