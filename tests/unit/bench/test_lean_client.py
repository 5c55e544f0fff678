"""The API load benchmark's lean HTTP client: statuses, body checks, and a stale keep-alive connection; the open
loop's timeline of every request, with the client's collector off while it runs."""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import Callable

from bench.api_load import LeanClient, open_loop


def _body(items: int, explained: int) -> bytes:
    return json.dumps(
        {"items": [{"item_id": str(i), "explanations": [{"text": "x"}] if i < explained else []} for i in range(items)]}
    ).encode()


async def _serve(
    bodies: list[tuple[int, bytes]], close_after_first: bool, on_request: Callable[[], None] | None = None
) -> tuple[asyncio.AbstractServer, list[int]]:
    served: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                break
            if on_request is not None:
                on_request()
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


def _pool_run(
    plan: list[tuple[int, float]], close: str, expiry: float = 4.0, max_connections: int = 2
) -> tuple[list[str], int, LeanClient]:
    """Requests on a server that answers 200s and then closes each connection (``close``: ``"after answer"``, like
    uvicorn closing an idle keep-alive connection; ``"on second request"``, the close crossing a request on the
    reused connection; ``"never"``). ``plan``: (requests sent at once, seconds to wait after them). Returns the
    outcomes, how many connections the server accepted, and the client."""
    accepted: list[int] = []

    async def main() -> tuple[list[str], LeanClient]:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            accepted.append(1)
            answered = 0
            while True:
                try:
                    await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    break
                if close == "on second request" and answered:
                    break  # closes without a byte of answer
                body = _body(4, 4)
                writer.write(f"HTTP/1.1 200 OK\r\ncontent-length: {len(body)}\r\n\r\n".encode() + body)
                await writer.drain()
                answered += 1
                if close == "after answer":
                    await asyncio.sleep(0.01)  # the client has released the connection by now
                    break
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        client = LeanClient(
            server.sockets[0].getsockname()[1],
            max_connections=max_connections,
            check_every=1,
            k=4,
            keepalive_expiry=expiry,
        )
        outcomes: list[str] = []
        for at_once, wait in plan:
            outcomes += await asyncio.gather(*(client.get("/x") for _ in range(at_once)))
            await asyncio.sleep(wait)
        await client.close()
        server.close()
        return outcomes, client

    outcomes, client = asyncio.run(main())
    return outcomes, len(accepted), client


def test_idle_connections_the_server_has_closed_are_not_reused() -> None:
    """After a burst, the idle pool holds several connections the server has closed since: none is sent on (before,
    the request and its one retry could both meet closed ones: IncompleteReadError)."""
    outcomes, accepted, client = _pool_run([(2, 0.1), (1, 0.0)], "after answer")
    assert outcomes == ["200", "200", "200"]
    assert accepted == 3 and client.expired == 2 and client.retried == 0


def test_an_idle_connection_past_the_keepalive_expiry_is_not_reused() -> None:
    outcomes, accepted, client = _pool_run([(1, 0.2), (1, 0.0), (1, 0.0)], "never", expiry=0.1)
    assert outcomes == ["200", "200", "200"]
    assert accepted == 2 and client.expired == 1  # the first went past the expiry; the second was reused at once


def test_a_close_that_crosses_the_request_is_retried_once_on_a_new_connection() -> None:
    outcomes, accepted, client = _pool_run([(1, 0.0), (1, 0.0)], "on second request", max_connections=1)
    assert outcomes == ["200", "200"]
    assert accepted == 2 and client.retried == 1


def test_the_open_loop_times_every_request_with_the_clients_collector_off_while_it_runs() -> None:
    collecting: list[bool] = []

    async def main() -> dict:
        # the server runs in the client's event loop: it sees the client's collector
        server, _ = await _serve([(200, b"{}")], False, on_request=lambda: collecting.append(gc.isenabled()))
        client = LeanClient(server.sockets[0].getsockname()[1], max_connections=4, check_every=0)
        run = await open_loop([], 100.0, 0.3, url=lambda _: "/x", client=client)
        server.close()
        return run

    assert gc.isenabled()
    run = asyncio.run(main())
    assert gc.isenabled()  # given back
    assert collecting == [False] * 30
    assert len(run["timeline"]) == 30
    assert [at for at, _ in run["timeline"]] == sorted(at for at, _ in run["timeline"])
    assert abs(run["timeline"][0][0] - run["started_at"]) < 0.001  # the first request's scheduled time
    assert run["client_gc"] == []
