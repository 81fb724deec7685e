#!/usr/bin/env python3
"""Opens N keep-alive connections to a server, sends one request on each,
reads its answer, then keeps every connection open and idle until stdin
closes (or a line arrives). Prints "ready <n>" once all answers are in.

Usage: idle_clients.py HOST PORT N PATH [--tls] [--h2] [--one-at-a-time]

With --tls the connections speak TLS (HTTP/1.1, or HTTP/2 with --h2: the
preface and a HEADERS frame, answer read to END_STREAM). Certificates are
not verified (loopback benchmark). With --one-at-a-time the requests go
one after the other (a proxy then needs one upstream connection, so the
figure is the client connections' alone). Loopback only.
"""
import asyncio
import ssl
import sys


def h2_request(path: str) -> bytes:
    # Client preface, an empty SETTINGS frame, and one HEADERS frame with
    # END_STREAM|END_HEADERS carrying literal (never-indexed) fields.
    def literal(name: bytes, value: bytes) -> bytes:
        return b"\x10" + bytes([len(name)]) + name + bytes([len(value)]) + value
    block = b"\x82\x87" + literal(b":path", path.encode()) + literal(b":authority", b"x")
    head = len(block).to_bytes(3, "big") + b"\x01\x05" + (1).to_bytes(4, "big")
    settings = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
    return b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + settings + head + block


async def h2_answer(reader, writer) -> None:
    """Reads frames until stream 1 ends, acking SETTINGS."""
    while True:
        header = await reader.readexactly(9)
        length = int.from_bytes(header[:3], "big")
        kind, flags = header[3], header[4]
        stream = int.from_bytes(header[5:9], "big") & 0x7FFFFFFF
        await reader.readexactly(length)
        if kind == 4 and not flags & 1:
            writer.write(b"\x00\x00\x00\x04\x01\x00\x00\x00\x00")
        if stream == 1 and kind in (0, 1) and flags & 1:
            return


async def one(host, port, path, ctx, h2, conns, sem):
    async with sem:
        reader, writer = await asyncio.open_connection(host, port, ssl=ctx)
        if h2:
            writer.write(h2_request(path))
            await writer.drain()
            await h2_answer(reader, writer)
        else:
            writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
        conns.append(writer)


async def main():
    host, port, n, path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    tls, h2 = "--tls" in sys.argv, "--h2" in sys.argv
    ctx = None
    if tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_alpn_protocols(["h2"] if h2 else ["http/1.1"])
    conns = []
    sem = asyncio.Semaphore(1 if "--one-at-a-time" in sys.argv else 200)
    await asyncio.gather(*(one(host, port, path, ctx, h2, conns, sem) for _ in range(n)))
    print(f"ready {len(conns)}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    for w in conns:
        w.close()


if __name__ == "__main__":
    asyncio.run(main())
