"""/metrics with several worker processes: each counts in PROMETHEUS_MULTIPROC_DIR, and any of them answers the sum."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from kgrec.cli_serve import _shared_metrics

ROOT = Path(__file__).parents[3]
COUNT = "from api.metrics import Metrics; Metrics().cache.labels('hit').inc({n})"
SHOW = (
    "import sys; from api.metrics import Metrics, exposition; sys.stdout.write(exposition(Metrics().registry).decode())"
)


def _python(code: str, env: dict[str, str]) -> str:
    return subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout


def test_metrics_are_summed_over_worker_processes(tmp_path: Path) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for n in (2, 3):  # two workers, each counting its own hits
        _python(COUNT.format(n=n), env)
    assert 'kgrec_response_cache_total{outcome="hit"} 5.0' in _python(SHOW, env)
    single = {k: v for k, v in env.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    assert 'kgrec_response_cache_total{outcome="hit"}' not in _python(SHOW, single)  # one process: its own only


def test_serve_gives_several_workers_a_fresh_shared_directory(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    names = ("PROMETHEUS_MULTIPROC_DIR", "KGREC_SERVE_WORKERS_DIR", "KGREC_SERVE_WORKERS")
    for name in names:
        monkeypatch.delenv(name, raising=False)
    with _shared_metrics(1):
        assert not set(names) & set(os.environ)
    with _shared_metrics(2):
        made = Path(os.environ["KGREC_SERVE_WORKERS_DIR"])
        assert Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).is_dir() and os.environ["KGREC_SERVE_WORKERS"] == "2"
    assert not made.exists() and not set(names) & set(os.environ)
    (tmp_path / "counter_123.db").write_bytes(b"old")  # a directory of the operator's own: emptied, kept
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    with _shared_metrics(4):
        assert not list(tmp_path.glob("*.db")) and os.environ["PROMETHEUS_MULTIPROC_DIR"] == str(tmp_path)
    assert tmp_path.is_dir() and os.environ["PROMETHEUS_MULTIPROC_DIR"] == str(tmp_path)


def test_serve_gives_workers_time_to_start_on_a_busy_machine(monkeypatch) -> None:  # noqa: ANN001
    """uvicorn kills a worker that does not answer its health ping within the timeout (5 s by default); a worker busy
    importing torch on a loaded machine takes longer, and was killed and restarted again and again. Where the kernel
    spreads connections over ``SO_REUSEPORT`` sockets (Linux), the workers get a socket each (kgrec.supervisor);
    elsewhere, uvicorn's one shared socket."""
    import uvicorn

    from kgrec import cli_serve, supervisor

    seen: dict = {}

    def run(app: str, **kwargs: object) -> None:
        seen.update(kwargs, multiproc=os.environ.get("PROMETHEUS_MULTIPROC_DIR"), runner="uvicorn")

    def run_workers(config: uvicorn.Config) -> None:
        seen.update(
            workers=config.workers,
            timeout_worker_healthcheck=config.timeout_worker_healthcheck,
            multiproc=os.environ.get("PROMETHEUS_MULTIPROC_DIR"),
            runner="reuse-port",
        )

    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    monkeypatch.setattr(uvicorn, "run", run)
    monkeypatch.setattr(supervisor, "run_workers", run_workers)
    for balances, runner in ((True, "reuse-port"), (False, "uvicorn")):
        monkeypatch.setattr(supervisor, "reuse_port_balances", lambda balances=balances: balances)
        seen.clear()
        cli_serve.serve(host="127.0.0.1", port=18999, workers=2)
        assert seen["workers"] == 2 and seen["timeout_worker_healthcheck"] >= 60 and seen["multiproc"]
        assert seen["runner"] == runner
    cli_serve.serve(host="127.0.0.1", port=18999, workers=1)
    assert seen["workers"] == 1 and seen["runner"] == "uvicorn"  # one process: no supervisor
