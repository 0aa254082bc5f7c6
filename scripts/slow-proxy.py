#!/usr/bin/env python3
"""A TCP proxy that holds every HTTP request for --delay seconds before passing it on.

Tests put it in front of the registry to make pushes slow (a throttled registry) without
changing what is pushed: `slow-proxy.py --port 5079 --target 127.0.0.1:5077 --delay 0.4`.
"""
import argparse
import asyncio

METHODS = (b"GET ", b"HEAD ", b"POST ", b"PUT ", b"PATCH ", b"DELETE ")


async def pipe(reader, writer, delay):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            if delay and data.startswith(METHODS):
                await asyncio.sleep(delay)
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        try:
            writer.close()
        except Exception:
            pass


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--target", required=True)
    parser.add_argument("--delay", type=float, default=0.3)
    args = parser.parse_args()
    host, port = args.target.rsplit(":", 1)

    async def handle(client_reader, client_writer):
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(host, int(port))
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(pipe(client_reader, upstream_writer, args.delay), pipe(upstream_reader, client_writer, 0))

    server = await asyncio.start_server(handle, "127.0.0.1", args.port)
    print(f"slow proxy on 127.0.0.1:{args.port} -> {args.target}, {args.delay}s per request", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
