"""What the HTTP dispatch around the recommendations handler costs, per request, in the API's process.

The app of ``api.app.create_app`` is called directly as an ASGI application (no server, no socket: uvicorn's part is
not counted) with ``GET /users/{id}/recommendations?k=20&explain=true``, its recommender replaced by one whose
``serve`` returns a fixed body at once, so what is measured is only what surrounds the handler: the middlewares,
the routing and parameters, the thread hop, the response. Each variant (``lean``: the app as served, with
``api.lean``; ``fastapi``: the same app without the lean middleware, every request through FastAPI's route) answers
``--requests`` requests, ``--concurrency`` at a time, and the process CPU (``time.process_time``, every thread) per
request is printed; the variants alternate for ``--rounds`` rounds. Neo4j is not needed (the driver never connects).

    .venv/bin/python -m bench.dispatch_cost [--requests 5000 --concurrency 4 --rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from fastapi import FastAPI
from rich.console import Console
from rich.table import Table

from api.app import create_app
from api.lean import LeanRecommendations
from api.settings import ApiSettings
from graph.settings import Neo4jSettings

console = Console()
BODY = b'{"user_id":"1","items":[]}' * 40  # about an answer's size; its content does not matter here
KEY = "kgrec-dispatch-key"


class _FixedAnswer:
    """A recommender whose every answer is :data:`BODY`, at once."""

    def serve(self, user_id: str, k: int, **_options: Any) -> bytes:
        return BODY


def _app(variant: str, artifacts: Path) -> FastAPI:
    settings = ApiSettings(  # the read rate limit off, as the benchmarks serve (bench.common.serve_api)
        api_key=KEY,
        artifacts_dir=artifacts,
        cache_warm_users=0,
        serve_model="none",
        read_rate=0,
        impression_db=artifacts / "impressions.sqlite3",  # the temporary folder's, not the working directory's
    )
    app = create_app(settings, Neo4jSettings(uri="bolt://127.0.0.1:1", password="unused-password"))
    if variant == "fastapi":
        app.user_middleware = [m for m in app.user_middleware if m.cls is not LeanRecommendations]
    return app


async def _request(app: FastAPI, user: int) -> None:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": f"/users/{user}/recommendations",
        "raw_path": f"/users/{user}/recommendations".encode(),
        "query_string": b"k=20&explain=true",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), (b"x-api-key", KEY.encode())],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    if sent[0]["status"] != 200 or sent[1]["body"] != BODY:
        raise SystemExit(f"unexpected answer: {sent[0]['status']}")


async def _measure(app: FastAPI, requests: int, concurrency: int) -> float:
    """Process CPU microseconds per request over ``requests`` requests, ``concurrency`` at a time."""
    async with app.router.lifespan_context(app):
        app.state.recommender = _FixedAnswer()
        for user in range(200):  # warm-up
            await _request(app, user)
        started = time.process_time()

        async def client(offset: int) -> None:
            for n in range(offset, requests, concurrency):
                await _request(app, n % 610)

        await asyncio.gather(*(client(c) for c in range(concurrency)))
        return 1e6 * (time.process_time() - started) / requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=5000, help="requests per variant and round")
    parser.add_argument("--concurrency", type=int, default=4, help="requests in flight at once")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, the variants alternated in each")
    args = parser.parse_args()
    results: dict[str, list[float]] = {"fastapi": [], "lean": []}
    with TemporaryDirectory() as artifacts:
        for _ in range(args.rounds):
            for variant in results:
                app = _app(variant, Path(artifacts))
                results[variant].append(asyncio.run(_measure(app, args.requests, args.concurrency)))
    table = Table(title=f"dispatch CPU per request (µs), {args.requests} requests, {args.concurrency} at a time")
    for col in ("variant", "rounds", "median"):
        table.add_column(col, justify="right")
    for variant, values in results.items():
        table.add_row(variant, ", ".join(f"{v:.0f}" for v in values), f"{statistics.median(values):.0f}")
    console.print(table)


if __name__ == "__main__":
    main()
