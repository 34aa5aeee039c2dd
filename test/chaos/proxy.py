#!/usr/bin/env python3
"""test/chaos/proxy.py: a TCP proxy the chaos run owns. Workers connect to
the server through it; SIGUSR1 cuts every connection open at that moment
(both ends closed at once, as a broken network would). Listens on
127.0.0.1 on a free port and writes the port to the file named by argv[3].

    proxy.py SERVER_HOST SERVER_PORT PORT_FILE
"""
import asyncio
import signal
import sys

host, port, port_file = sys.argv[1], int(sys.argv[2]), sys.argv[3]
open_pairs = set()


async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def handle(client_r, client_w):
    try:
        server_r, server_w = await asyncio.open_connection(host, port)
    except OSError:
        client_w.close()
        return
    pair = (client_w, server_w)
    open_pairs.add(pair)
    try:
        await asyncio.gather(pipe(client_r, server_w), pipe(server_r, client_w))
    finally:
        open_pairs.discard(pair)


def cut():
    for pair in list(open_pairs):
        for w in pair:
            w.transport.abort()


async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    with open(port_file + ".tmp", "w") as f:
        f.write(str(server.sockets[0].getsockname()[1]))
    import os
    os.rename(port_file + ".tmp", port_file)
    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, cut)
    async with server:
        await server.serve_forever()

asyncio.run(main())
