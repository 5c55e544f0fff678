"""A real ``kgrec serve --workers 2`` on a free port (Linux): each worker accepts on a listening socket of its own.

With one socket shared by the workers, the worker whose event loop wakes first accepts every connection waiting, and a
client that opens its connections at once is served by one worker. With a socket per worker (``SO_REUSEPORT``) the
kernel hashes each new connection to one of them. Checked here from ``/proc``: two sockets listen on the port, each
held by a different worker; new connections are answered by both workers; a killed worker is replaced on its own
socket (so the connections the kernel queued there are answered, not dropped) while ``/ready``, answered by the other
worker, waits for the replacement; Ctrl-C stops the parent and every worker.
"""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bench.miss_cpu import child_socket_inodes, tcp_sockets
from graph.settings import Neo4jSettings
from kgrec.supervisor import reuse_port_balances

pytestmark = pytest.mark.skipif(not reuse_port_balances(), reason="SO_REUSEPORT spreads connections on Linux only")

ROOT = Path(__file__).parents[2]
LISTEN = "0A"  # the state of a listening socket in /proc/net/tcp


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(
    neo4j_settings: Neo4jSettings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[subprocess.Popen, int]]:
    """``kgrec serve --workers 2`` (graph recall only, no model to load), ready; yields (its process, its port)."""
    port, root = _free_port(), tmp_path_factory.mktemp("serve-workers")
    env = {
        **os.environ,
        "NEO4J_URI": neo4j_settings.uri,
        "NEO4J_USER": neo4j_settings.user,
        "NEO4J_PASSWORD": neo4j_settings.password.get_secret_value(),
        "NEO4J_DATABASE": neo4j_settings.database,
        "KGREC_SERVE_MODEL": "none",
        "KGREC_ARTIFACTS_DIR": str(root / "artifacts"),
        "KGREC_CACHE_WARM_USERS": "10",
        "KGREC_IMPRESSIONS": "false",
    }
    with (root / "serve.log").open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "kgrec.cli", "serve", "--workers", "2", "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        _until(lambda: _get(port, "/ready").status_code == 200, proc, root / "serve.log")
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_each_worker_listens_on_a_socket_of_its_own(server: tuple[subprocess.Popen, int]) -> None:
    pid, port = server[0].pid, server[1]
    listeners = _listeners(pid, port)
    assert len(listeners) == 2  # one shared socket would be one inode
    assert len(set(listeners.values())) == 2  # held by two different workers


def test_new_connections_are_answered_by_both_workers(server: tuple[subprocess.Popen, int]) -> None:
    pid, port = server[0].pid, server[1]
    answered_by = {_worker_of_new_connection(pid, port) for _ in range(24)}  # all on one: a chance of 2**-23
    assert answered_by == set(_listeners(pid, port).values())


def test_a_killed_worker_is_replaced_on_its_socket_and_ready_waits_for_it(
    server: tuple[subprocess.Popen, int],
) -> None:
    pid, port = server[0].pid, server[1]
    before = _listeners(pid, port)
    killed, survivor = sorted(before.values())
    conn = _connection_to(pid, port, survivor)  # keep-alive: /ready from the worker still serving
    os.kill(killed, signal.SIGKILL)

    def reaped() -> bool:
        """Whether the supervisor has reaped the killed worker (and started its replacement); each look also asks the
        survivor for /health on ``conn``, so that the connection is never idle long enough for uvicorn to close it
        (5 s without a request)."""
        _request(conn, "/health").read()
        return not Path(f"/proc/{killed}").exists()

    _until(reaped)
    waiting = _request(conn, "/ready")
    assert waiting.status == 503 and b"1 of 2 workers warmed" in waiting.read()  # the replacement is not warm yet
    conn.close()

    def replaced() -> bool:
        now = _listeners(pid, port)
        return set(now) == set(before) and killed not in now.values() and len(set(now.values())) == 2

    _until(replaced)
    after = _listeners(pid, port)
    inode = next(i for i, worker in before.items() if worker == killed)
    assert after[inode] not in (killed, survivor)  # the killed worker's socket, now the replacement's
    _until(lambda: _get(port, "/ready").status_code == 200)
    assert {_worker_of_new_connection(pid, port) for _ in range(24)} == set(after.values())


def test_ctrl_c_stops_the_parent_and_every_worker(server: tuple[subprocess.Popen, int]) -> None:
    proc, port = server
    workers = set(_listeners(proc.pid, port).values())
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=120) == 0
    _until(lambda: not any(Path(f"/proc/{worker}").exists() for worker in workers))
    assert not _listening_inodes(port)


def _until(condition, proc: subprocess.Popen | None = None, log: Path | None = None, seconds: float = 300) -> None:  # noqa: ANN001
    """Wait for ``condition()`` (a busy machine takes long to start workers that import torch); fail after ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except (httpx.HTTPError, OSError):
            pass
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"kgrec serve exited with {proc.returncode}:\n{log.read_text() if log else ''}")
        time.sleep(0.2)
    pytest.fail(f"not within {seconds} s{':' + chr(10) + log.read_text() if log else ''}")


def _get(port: int, path: str) -> httpx.Response:
    return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=5)


def _connect(port: int) -> http.client.HTTPConnection:
    """A new connection that has been answered once (so that a worker has accepted it)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    response = _request(conn, "/health")
    assert response.status == 200
    response.read()
    return conn


def _request(conn: http.client.HTTPConnection, path: str) -> http.client.HTTPResponse:
    conn.request("GET", path)
    return conn.getresponse()


def _worker_of_new_connection(pid: int, port: int) -> int:
    conn = _connect(port)
    try:
        return _owner(pid, port, conn)
    finally:
        conn.close()


def _connection_to(pid: int, port: int, worker: int) -> http.client.HTTPConnection:
    """A new connection that ``worker`` accepted (new ones until the kernel gives one to it)."""
    for _ in range(64):
        conn = _connect(port)
        if _owner(pid, port, conn) == worker:
            return conn
        conn.close()
    pytest.fail(f"no connection of 64 reached worker {worker}")


def _owner(pid: int, port: int, conn: http.client.HTTPConnection) -> int:
    """The worker holding the server's end of ``conn``."""
    client_port = conn.sock.getsockname()[1]
    ends = {inode for local, remote, state, inode in tcp_sockets() if local == port and remote == client_port}
    return next(worker for worker, inodes in child_socket_inodes(pid).items() if inodes & ends)


def _listeners(pid: int, port: int) -> dict[int, int]:
    """Each socket listening on ``port`` (its inode) and the worker of ``pid`` that holds it."""
    listening = _listening_inodes(port)
    return {inode: worker for worker, inodes in child_socket_inodes(pid).items() for inode in inodes & listening}


def _listening_inodes(port: int) -> set[int]:
    return {inode for local, _, state, inode in tcp_sockets() if local == port and state == LISTEN}
