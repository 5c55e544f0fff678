"""Shared pieces of the benchmarks: a private Neo4j server and the dataset folder."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from graph.neo4j_local import launcher
from graph.settings import Neo4jSettings

ROOT = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("KGREC_DATASETS", ROOT.parent / "shared" / "datasets"))
OUT = ROOT / "bench" / "out"


def private_server(name: str, bolt_port: int, http_port: int, **memory: str) -> Neo4jSettings:
    """A benchmark's own local Neo4j (never the developer's data): ``.kgrec/neo4j-<name>`` on the given ports.

    Args:
        name: Names the data folder and the password.
        bolt_port: Bolt port.
        http_port: HTTP (Browser) port.
        **memory: ``heap`` / ``pagecache`` overrides of the launcher's defaults.
    """
    return Neo4jSettings(
        uri=f"bolt://127.0.0.1:{bolt_port}",
        password=f"kgrec-{name}-password",
        home=ROOT / ".kgrec" / f"neo4j-{name}",
        bolt_port=bolt_port,
        http_port=http_port,
        **memory,
    )


def bench_settings() -> Neo4jSettings:
    """The API and ETL benchmarks' server: .kgrec/neo4j-bench on 27687/27474 (or KGREC_BENCH_BOLT_PORT and
    KGREC_BENCH_HTTP_PORT, so that two checkouts can run benchmarks side by side)."""
    return private_server(
        "bench",
        int(os.environ.get("KGREC_BENCH_BOLT_PORT", "27687")),
        int(os.environ.get("KGREC_BENCH_HTTP_PORT", "27474")),
    )


def impression_db(settings: Neo4jSettings) -> Path:
    """The SQLite impression file (``KGREC_IMPRESSION_DB``, the default impression store) of the APIs a benchmark
    serves against ``settings``' server: beside that server's data, ``.kgrec/neo4j-<name>-impressions.sqlite3``, so
    that a benchmark's lists stay with the graph they were served from and never reach the developer's own file."""
    return settings.home.with_name(f"{settings.home.name}-impressions.sqlite3")


def remove_impressions(settings: Neo4jSettings) -> None:
    """Delete :func:`impression_db` with its WAL and shared-memory files (a benchmark that replaces its graph: the
    lists and exposure of the graph before must not count)."""
    path = impression_db(settings)
    for suffix in ("", "-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)


def require_dataset(name: str) -> Path:
    path = DATASETS / name
    if not path.is_dir():
        raise SystemExit(f"dataset folder missing: {path} (set KGREC_DATASETS)")
    return path


def serve_api(
    settings: Neo4jSettings, port: int, env: dict[str, str], log_name: str, workers: int = 1, timeout: float = 120.0
) -> subprocess.Popen[bytes]:
    """Start ``kgrec serve`` on ``port`` against ``settings``' server and wait until /ready answers 200.

    The server runs ``python -m kgrec.cli serve`` from the repository root, so it serves this checkout's code
    whichever checkout the interpreter's environment was installed from. Its impressions go to :func:`impression_db`
    (the SQLite store's, even where the environment names another file) unless ``env`` names one. The read rate
    limit is off (``KGREC_READ_RATE=0``) unless ``env`` sets it: a benchmark's clients all come from
    one address, and it measures what the service can answer, not the limit.

    Args:
        settings: The benchmark's Neo4j.
        port: API port.
        env: Extra environment (KGREC_* settings of the API).
        log_name: File under bench/out that receives the server's output.
        workers: Uvicorn worker processes.
        timeout: Seconds to wait for readiness.

    Raises:
        SystemExit: The API exited or did not become ready in time (see the log).
    """
    full_env = {
        **os.environ,
        "KGREC_IMPRESSION_DB": str(impression_db(settings)),
        "KGREC_READ_RATE": "0",
        "NEO4J_URI": settings.uri,
        "NEO4J_PASSWORD": settings.password.get_secret_value(),
        "KGREC_HOST": "127.0.0.1",
        "KGREC_PORT": str(port),
        **env,  # may override the rate limit
    }
    log = (OUT / log_name).open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "kgrec.cli", "serve", "--workers", str(workers)],  # this checkout's code (cwd)
        cwd=ROOT,
        env=full_env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise SystemExit(f"the API exited; see {OUT / log_name}")
        time.sleep(0.5)
    proc.terminate()
    raise SystemExit(f"the API did not become ready within {timeout:.0f} s; see {OUT / log_name}")


def stop_api(api: subprocess.Popen[bytes] | None) -> None:
    """Stop an API that :func:`serve_api` started and wait for it to exit (None: none was started)."""
    if api is not None:
        api.terminate()
        api.wait(timeout=30)


def shut_down(api: subprocess.Popen[bytes] | None, settings: Neo4jSettings, keep_server: bool) -> None:
    """The end of an API benchmark: stop its API (:func:`stop_api`) and, unless ``keep_server``, its Neo4j."""
    stop_api(api)
    if not keep_server:
        launcher.stop(settings)
