"""bench/api_realistic.py's request mix: users drawn Zipf-like over their activity rank; the API's processes whose CPU
it counts."""

import asyncio
import ipaddress
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from api.limits import ClientIds
from bench.api_realistic import (
    KINDS,
    CpuSampler,
    client_address,
    kind_figures,
    machine_cpu,
    plot_timeline,
    process_tree,
    request_kinds,
    slowest,
    zipf_cdf,
)


def test_zipf_cdf_puts_the_most_active_users_first() -> None:
    cdf = zipf_cdf(100_000, 1.0)
    assert cdf[-1] == 1.0 and np.all(np.diff(cdf) > 0)
    draws = np.searchsorted(cdf, np.random.default_rng(0).random(20_000), side="right")
    assert (draws < 1000).mean() > 0.5  # the top 1% of users ask more than half of the time
    assert len(np.unique(draws)) > 3000  # and the tail is still asked
    flat = np.searchsorted(zipf_cdf(1000, 0.0), np.random.default_rng(0).random(20_000), side="right")
    assert abs((flat < 500).mean() - 0.5) < 0.03  # exponent 0: uniform


def test_each_read_is_classed_by_whether_the_api_should_hold_its_answer() -> None:
    """Warm users (ranks below the warm set) and users read before are held; a first read of another user, or the
    first read after a post of the user's, is to be computed; a second read after that post is held again."""
    ranks = [0, 7, 7, 3, 0, 0, 9, 9, 9, 9]
    writes = [False, False, False, True, True, False, True, False, False, False]
    assert request_kinds(ranks, writes, warm_users=5) == [
        "held", "first", "held", "post", "post", "after post", "post", "after post", "held", "held",
    ]  # fmt: skip
    figures = kind_figures([(0.0, 0.001, "held")] * 98 + [(0.5, 0.5, "first"), (0.6, 0.2, "after post")])
    assert figures["first"]["in_slowest"] == 1 and figures["held"]["in_slowest"] == 0
    assert figures["after post"]["requests"] == 1 and figures["post"]["requests"] == 0


def test_each_user_reads_as_a_client_of_its_own() -> None:
    """The realistic run's reads: an address per user through X-Forwarded-For, which uvicorn (trusting the local load
    generator as a proxy) makes the request's client, so the API's per-client budget sees one client per user; a read
    sent with the API key would be the one key's client whatever its address."""
    addresses = [client_address(rank) for rank in range(100_000)]
    assert len(set(addresses)) == 100_000 and all(
        ipaddress.ip_address(a) in ipaddress.ip_network("10.0.0.0/8") for a in addresses[:10]
    )
    seen: list[str] = []
    clients = ClientIds("the-key")

    async def app(scope, receive, send) -> None:  # noqa: ANN001
        seen.append(clients(scope))

    proxy = ProxyHeadersMiddleware(app, trusted_hosts="127.0.0.1")

    def read(headers: list[tuple[bytes, bytes]]) -> None:
        scope = {"type": "http", "client": ("127.0.0.1", 40000), "headers": headers, "scheme": "http"}
        asyncio.run(proxy(scope, None, None))

    for rank in (0, 1, 99_999):
        read([(b"x-forwarded-for", client_address(rank).encode())])
    read([(b"x-forwarded-for", client_address(5).encode()), (b"x-api-key", b"the-key")])
    read([(b"x-forwarded-for", client_address(6).encode()), (b"x-api-key", b"the-key")])
    assert seen[:3] == [f"ip:{client_address(r)}" for r in (0, 1, 99_999)]
    assert seen[3] == seen[4] and seen[3].startswith("key:")


def test_process_tree_finds_the_workers_of_a_supervisor() -> None:
    """``--api-workers N``: the supervisor's workers (and theirs) are counted, not only the process started."""
    script = "import subprocess, sys; subprocess.run([sys.executable, '-c', 'import time; time.sleep(30)'])"
    parent = subprocess.Popen([sys.executable, "-c", script])
    try:
        for _ in range(100):
            tree = process_tree(parent.pid)
            if len(tree) == 2:
                break
            time.sleep(0.05)
        assert tree[0] == parent.pid and len(tree) == 2 and os.getpid() not in tree
        assert os.getpid() in process_tree(os.getpid()) and parent.pid in process_tree(os.getpid())
    finally:
        for pid in process_tree(parent.pid)[::-1]:
            os.kill(pid, 9)
        parent.wait()


def test_the_machine_cpu_counts_this_process_busy_work() -> None:
    """The run's machine accounting: a quarter second of this process's CPU shows in the machine's busy seconds,
    and no kind of second runs backwards."""
    before = machine_cpu()
    started = time.process_time()
    while time.process_time() - started < 0.25:
        pass
    after = machine_cpu()
    assert before is not None and after is not None and set(after) == {"busy", "idle", "steal"}
    assert all(after[kind] >= before[kind] for kind in after)
    assert after["busy"] - before["busy"] >= 0.2


def test_the_cpu_sampler_gives_each_interval_to_the_process_that_used_it() -> None:
    """The run's CPU timeline: while this process spins, its intervals hold about the sampler's period of CPU each;
    once it sleeps, about none; the machine's busy column is at least this process's."""
    with CpuSampler({"me": os.getpid()}, every=0.1) as sampler:
        started = time.process_time()
        while time.process_time() - started < 0.6:
            pass
        spun = len(sampler.timeline["t"])
        time.sleep(0.5)
    timeline = sampler.timeline
    assert set(timeline) == {"t", "me", "busy", "steal"} and len(timeline["t"]) >= 8
    assert all(len(column) == len(timeline["t"]) for column in timeline.values())
    assert sum(timeline["me"][:spun]) >= 0.4
    assert sum(timeline["me"][spun + 1 :]) < 0.1
    assert sum(timeline["busy"]) >= sum(timeline["me"]) - 0.05


def test_the_slowest_requests_are_listed_by_time_with_each_second_p99() -> None:
    """The slowest 1% by when they were due, the distinct seconds they fell in, and the p99 of each second."""
    timeline = [(i / 100, 0.010, "held") for i in range(300)]
    timeline[150] = (1.5, 0.900, "first")
    timeline[151] = (1.51, 0.800, "after post")
    timeline[250] = (2.5, 0.700, "held")
    worst = slowest(timeline)
    assert worst["requests"] == [[1.5, 900.0, "first"], [1.51, 800.0, "after post"], [2.5, 700.0, "held"]]
    assert worst["seconds"] == 2
    assert worst["p99_by_second"][0] == 10.0 and worst["p99_by_second"][1] > 700 and len(worst["p99_by_second"]) == 3


def test_the_timeline_plot_draws_every_request_over_the_cores(tmp_path: Path) -> None:
    timeline = [(i / 10, 0.01 + (0.5 if 20 <= i < 25 else 0.0), KINDS[i % len(KINDS)]) for i in range(60)]
    cpu = {"t": [100.0 + i / 4 for i in range(24)], "neo4j": [0.05] * 24, "api 0": [0.1] * 24, "busy": [0.2] * 24}
    cpu["steal"] = [0.0] * 24
    path = tmp_path / "timeline.png"
    plot_timeline(timeline, cpu, 100.0, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
