"""The API load benchmark's lean HTTP client: statuses, body checks, and a stale keep-alive connection."""

from __future__ import annotations

import asyncio
import json

from bench.api_load import LeanClient


def _body(items: int, explained: int) -> bytes:
    return json.dumps(
        {"items": [{"item_id": str(i), "explanations": [{"text": "x"}] if i < explained else []} for i in range(items)]}
    ).encode()


async def _serve(bodies: list[tuple[int, bytes]], close_after_first: bool) -> tuple[asyncio.AbstractServer, list[int]]:
    served: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                break
            status, body = bodies[min(len(served), len(bodies) - 1)]
            served.append(status)
            writer.write(f"HTTP/1.1 {status} X\r\ncontent-length: {len(body)}\r\n\r\n".encode() + body)
            await writer.drain()
            if close_after_first:  # like uvicorn closing an idle keep-alive connection
                break
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, served


def _run(bodies: list[tuple[int, bytes]], close_after_first: bool, requests: int, check_every: int = 1) -> list[str]:
    async def main() -> list[str]:
        server, _ = await _serve(bodies, close_after_first)
        port = server.sockets[0].getsockname()[1]
        client = LeanClient(port, max_connections=1, check_every=check_every, k=4)
        outcomes = []
        for _ in range(requests):
            outcomes.append(await client.get("/x"))
            await asyncio.sleep(0.01)
        await client.close()
        server.close()
        return outcomes

    return asyncio.run(main())


def test_statuses_and_body_checks() -> None:
    assert _run([(200, _body(4, 4))], False, 2) == ["200", "200"]
    assert _run([(404, b'{"detail": "no"}')], False, 1) == ["404"]
    assert _run([(200, _body(3, 3))], False, 1) == ["bad body"]  # fewer items than k
    assert _run([(200, _body(4, 2))], False, 1) == ["bad body"]  # under 80% explained


def test_a_connection_closed_by_the_server_is_retried_once_on_a_new_one() -> None:
    assert _run([(200, _body(4, 4))], True, 3) == ["200", "200", "200"]


def test_a_post_sends_its_json_body_and_is_not_checked_as_a_list() -> None:
    received: list[bytes] = []

    async def main() -> str:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            received.append(head.split(b" ")[0] + b" " + await reader.readexactly(length))
            writer.write(b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\n{}")
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        client = LeanClient(server.sockets[0].getsockname()[1], max_connections=1, check_every=1, k=4)
        outcome = await client.send("POST", "/interactions", b'{"user_id": "u1"}')
        await client.close()
        server.close()
        return outcome

    assert asyncio.run(main()) == "201"
    assert received == [b'POST {"user_id": "u1"}']
