"""bench.miss_cpu: whether both API workers carried a run's load or one held most connections, and the exposure reads."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

from bench.miss_cpu import exposure_reads, worker_connections, worker_cpu_seconds, worker_split


def test_worker_split_gives_each_workers_share_of_the_run_largest_first() -> None:
    before = {11: 5.0, 12: 1.0, 13: 0.2}
    after = {11: 6.0, 12: 4.0, 13: 0.2, 14: 0.0}  # 13: an idle child (a helper process); 14: started during the run
    assert worker_split(before, after) == "75/25"
    assert worker_split(before, before) == "-"  # no CPU used: no split to show


def test_worker_cpu_seconds_counts_each_live_child() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        used = worker_cpu_seconds(os.getpid())
        assert child.pid in used and used[child.pid] >= 0.0
    finally:
        child.communicate(b"")
    assert child.pid not in worker_cpu_seconds(os.getpid())  # ended and reaped: no longer a worker


ACCEPT_ONE = """
import socket, sys
server = socket.create_server(("127.0.0.1", 0))
print(server.getsockname()[1], flush=True)
conn, _ = server.accept()
sys.stdin.read()
"""


def test_worker_connections_counts_the_connections_each_child_accepted() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", ACCEPT_ONE], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        port = int(child.stdout.readline())
        assert worker_connections(os.getpid(), port)[child.pid] == 0  # listening only
        with socket.create_connection(("127.0.0.1", port)):
            for _ in range(100):  # until the child has accepted
                if worker_connections(os.getpid(), port)[child.pid] == 1:
                    break
                time.sleep(0.05)
            assert worker_connections(os.getpid(), port)[child.pid] == 1
    finally:
        child.communicate("")


def testexposure_reads_are_the_runs_counts_with_the_share_not_read_from_the_file() -> None:
    before = {"exposure": {"hit": 10.0, "miss": 5.0}}
    after = {"exposure": {"hit": 40.0, "applied": 20.0, "stale": 15.0, "miss": 30.0}}
    assert exposure_reads(before, after) == "hit 30, applied 20, stale 15, miss 25 (56% without reading the rows)"
    assert exposure_reads(before, before) == "none counted"
