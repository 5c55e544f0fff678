"""Start, stop and inspect the project's own Neo4j 5.26 Community server, without Docker.

The server is an embedded Neo4j DBMS (``KgrecNeo4j.java``) with Bolt, HTTP (Neo4j Browser at ``/browser/``)
and APOC Core, run from jars that Maven copies once from Maven Central (``pom.xml``) into
``settings.jars_dir`` (:mod:`graph.neo4j_local.jars`), by the JVM command of :mod:`graph.neo4j_local.jvm`.
Needs JDK 17+ (``java`` and ``javac``) and Maven (``mvn``).

Layout of ``settings.home`` (data survives restarts)::

    data/             databases (system, neo4j)
    logs/console.log  the JVM's stdout/stderr (user log, start/stop lines)
    logs/debug.log    Neo4j's debug log (also http.log, query.log, security.log)
    logs/gc.log       the JVM's garbage collections and stop-the-world pauses, with their UTC times
    run/neo4j.pid     pid of the running JVM
    conf/neo4j.conf   optional extra settings (same keys as neo4j.conf; the launcher's own settings win)

The password of user ``neo4j`` is handed to the JVM in an environment variable (not on the command line)
and set on every start, so changing ``NEO4J_PASSWORD`` and restarting is enough.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NamedTuple

from graph.neo4j_local.jars import MAIN_CLASS, ensure_jars, file_lock, java_tools, tail
from graph.neo4j_local.jvm import java_command, parse_size, raise_nofile_limit
from graph.settings import Neo4jSettings
from schema.errors import ConfigError, DatabaseUnavailableError

logger = logging.getLogger(__name__)

READY_SENTINEL = "KGREC_NEO4J_READY"
ERROR_SENTINEL = "KGREC_NEO4J_ERROR"
PASSWORD_ENV = "KGREC_NEO4J_PASSWORD"
SERVER_DATABASE = "neo4j"  # the default database the launcher waits for; Community has just this one


_children: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class ServerStatus:
    """What is known about the local server of one home directory.

    Attributes:
        running: A JVM started by kgrec for this home is alive.
        pid: Its process id, if running.
        home: The server's home directory (absolute).
        bolt_uri: ``bolt://`` URI clients use for this server.
        browser_url: Neo4j Browser URL (``http://host:port/browser/``).
        reachable: A query over Bolt with the configured credentials succeeded.
        version: Neo4j version from ``CALL dbms.components()``, if reachable.
        edition: ``community`` (or ``enterprise``), if reachable.
        apoc_version: ``apoc.version()``, if reachable and APOC is loaded.
        already_running: Set by :func:`start` when it found the server already running.
        error: Why the server is not reachable, when it runs but a query failed.
    """

    running: bool
    pid: int | None
    home: Path
    bolt_uri: str
    browser_url: str
    reachable: bool = False
    version: str | None = None
    edition: str | None = None
    apoc_version: str | None = None
    already_running: bool = False
    error: str | None = None


# --------------------------------------------------------------------------------------------------
# Paths, addresses, sizes


def _home(settings: Neo4jSettings) -> Path:
    return settings.home.expanduser().resolve()


def _pid_file(home: Path) -> Path:
    return home / "run" / "neo4j.pid"


def _console_log(home: Path) -> Path:
    return home / "logs" / "console.log"


def _client_host(settings: Neo4jSettings) -> str:
    host = settings.listen_address.strip()
    if host in ("", "0.0.0.0", "::", "[::]"):
        return "127.0.0.1"
    if ":" in host and not host.startswith("["):
        return f"[{host}]"
    return host


def bolt_uri(settings: Neo4jSettings) -> str:
    """Return the ``bolt://`` URI of the local server described by ``settings``."""
    return f"bolt://{_client_host(settings)}:{settings.bolt_port}"


def browser_url(settings: Neo4jSettings) -> str:
    """Return the Neo4j Browser URL of the local server described by ``settings``."""
    return f"http://{_client_host(settings)}:{settings.http_port}/browser/"


# --------------------------------------------------------------------------------------------------
# Processes


def _process_alive(pid: int) -> bool:
    child = _children.get(pid)
    if child is not None:
        if child.poll() is not None:
            _children.pop(pid, None)
            return False
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def _is_our_server(pid: int, home: Path) -> bool:
    """True if ``pid`` is a live KgrecNeo4j JVM for ``home`` (guards against reused pids)."""
    if not _process_alive(pid):
        return False
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return not Path("/proc/self").exists()  # no /proc at all: trust the pid file; else it just ended
    decoded = [a.decode(errors="replace") for a in args]
    return MAIN_CLASS in decoded and str(home) in decoded


def _running_pid(home: Path) -> int | None:
    """Pid of the live server of ``home``: from the pid file, else (file lost) found in ``/proc``."""
    try:
        pid = int(_pid_file(home).read_text().strip())
    except (OSError, ValueError):
        pid = None
    if pid is not None and _is_our_server(pid, home):
        return pid
    for entry in Path("/proc").glob("[0-9]*"):
        candidate = int(entry.name)
        if candidate != pid and candidate != os.getpid() and _is_our_server(candidate, home):
            with contextlib.suppress(OSError):
                _pid_file(home).write_text(f"{candidate}\n")
            return candidate
    return None


def _port_in_use(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host.strip("[]"), port))
        except OSError:
            return True
    return False


# --------------------------------------------------------------------------------------------------
# Bolt


class _ServerInfo(NamedTuple):
    version: str | None
    edition: str | None
    apoc_version: str | None


def _query_server(settings: Neo4jSettings, timeout: float = 10.0) -> _ServerInfo:
    """Run ``dbms.components()`` and ``apoc.version()`` over Bolt; raises the driver's exceptions."""
    import neo4j  # local import: the rest of this module works without the driver

    auth = (settings.user, settings.password.get_secret_value())
    with neo4j.GraphDatabase.driver(
        bolt_uri(settings), auth=auth, connection_timeout=timeout, connection_acquisition_timeout=timeout
    ) as driver:
        records, _, _ = driver.execute_query(
            "CALL dbms.components() YIELD name, versions, edition RETURN name, versions, edition",
            database_=SERVER_DATABASE,
        )
        kernel = next((r for r in records if r["name"] == "Neo4j Kernel"), records[0] if records else None)
        version = kernel["versions"][0] if kernel is not None and kernel["versions"] else None
        edition = kernel["edition"] if kernel is not None else None
        try:
            records, _, _ = driver.execute_query("RETURN apoc.version() AS v", database_=SERVER_DATABASE)
            apoc_version = records[0]["v"]
        except neo4j.exceptions.ClientError:  # APOC not loaded: unknown function
            apoc_version = None
        return _ServerInfo(version, edition, apoc_version)


def _wait_ready(settings: Neo4jSettings, home: Path, pid: int, deadline: float) -> None:
    """Wait for the ready line in console.log, then for a Bolt query with the configured credentials."""
    import neo4j

    console = _console_log(home)
    sentinel_seen = False
    last_error = "no answer yet"
    while True:
        if not _process_alive(pid):
            text = tail(console, 40)
            hint = ""
            if "Address already in use" in text or "BindException" in text:
                hint = (
                    f" A port is already in use: Bolt {settings.bolt_port} or HTTP {settings.http_port} on "
                    f"{settings.listen_address} (change NEO4J_BOLT_PORT / NEO4J_HTTP_PORT or stop the other process)."
                )
            elif "locked by another process" in text or "FileLockException" in text:
                hint = f" Another process holds the store lock of {home / 'data'}."
            else:
                reason = next((line for line in text.splitlines() if line.startswith(ERROR_SENTINEL)), "")
                hint = f" {reason.removeprefix(ERROR_SENTINEL).strip()}" if reason else ""
            raise DatabaseUnavailableError(
                f"the local Neo4j (pid {pid}) exited during start-up.{hint} Last lines of {console}:\n{text}"
            )
        if not sentinel_seen:
            with contextlib.suppress(OSError):
                sentinel_seen = READY_SENTINEL in console.read_text(errors="replace")
        if sentinel_seen:
            try:
                _query_server(settings, timeout=5.0)
                return
            except neo4j.exceptions.AuthError as exc:
                raise DatabaseUnavailableError(
                    f"the local Neo4j at {bolt_uri(settings)} rejects user {settings.user!r} with the configured "
                    f"password ({exc.message}). The server sets the password of user 'neo4j' on start: if "
                    "NEO4J_PASSWORD changed while it ran, restart it (kgrec neo4j stop; kgrec neo4j start)."
                ) from exc
            except (neo4j.exceptions.DriverError, neo4j.exceptions.Neo4jError, OSError) as exc:
                last_error = f"{type(exc).__name__}: {exc}"
        if time.monotonic() >= deadline:
            raise DatabaseUnavailableError(
                f"the local Neo4j (pid {pid}) was not ready within {settings.start_timeout:.0f} s "
                f"(last Bolt error: {last_error}); raise NEO4J_START_TIMEOUT if the machine is busy. "
                f"Last lines of {console}:\n{tail(console, 30)}"
            )
        time.sleep(0.5)


# --------------------------------------------------------------------------------------------------
# Public API


def status(settings: Neo4jSettings) -> ServerStatus:
    """Report whether the local server of ``settings.home`` runs and, if it answers, its versions.

    Args:
        settings: Neo4j settings (home, ports, credentials).

    Returns:
        The server's status; ``reachable`` is False (and ``error`` says why) if it runs but a Bolt
        query with the configured credentials failed.
    """
    home = _home(settings)
    pid = _running_pid(home)
    state = ServerStatus(
        running=pid is not None, pid=pid, home=home, bolt_uri=bolt_uri(settings), browser_url=browser_url(settings)
    )
    if pid is None:
        return state
    try:
        info = _query_server(settings, timeout=5.0)
    except Exception as exc:  # any failure means "not reachable", reported in `error`
        return replace(state, error=f"{type(exc).__name__}: {exc}")
    return replace(state, reachable=True, version=info.version, edition=info.edition, apoc_version=info.apoc_version)


def start(settings: Neo4jSettings) -> ServerStatus:
    """Start the local Neo4j server for ``settings.home`` and wait until Bolt answers.

    Idempotent: if the server of this home already runs, waits for it to be ready and returns its
    status with ``already_running=True``. The JVM runs detached (own session), so it outlives the
    calling process; its output goes to ``home/logs/console.log``.

    Args:
        settings: Neo4j settings (home, ports, listen address, heap, page cache, password, jars_dir,
            start_timeout).

    Returns:
        The status of the running, reachable server.

    Raises:
        ConfigError: Java/Maven missing or a setting is invalid.
        DatabaseUnavailableError: A port is taken by another process, the JVM exited during
            start-up, or it was not ready within ``settings.start_timeout`` (the JVM is then stopped);
            the message has the tail of the console log.
    """
    if settings.bolt_port == settings.http_port:
        raise ConfigError(f"NEO4J_BOLT_PORT and NEO4J_HTTP_PORT are both {settings.bolt_port}")
    parse_size(settings.heap, "NEO4J_HEAP")
    parse_size(settings.pagecache, "NEO4J_PAGECACHE")
    home = _home(settings)
    (home / "run").mkdir(parents=True, exist_ok=True)
    (home / "logs").mkdir(parents=True, exist_ok=True)
    with file_lock(home / "run" / "start.lock"):
        pid = _running_pid(home)
        if pid is not None:
            logger.info("Local Neo4j for %s already runs (pid %d)", home, pid)
            _wait_ready(settings, home, pid, time.monotonic() + settings.start_timeout)
            return replace(status(settings), already_running=True)

        java, _ = java_tools()
        jars = ensure_jars(settings)
        host = settings.listen_address
        for name, port in (("Bolt", settings.bolt_port), ("HTTP", settings.http_port)):
            if _port_in_use(host, port):
                raise DatabaseUnavailableError(
                    f"{name} port {port} on {host} is already in use by another process (not the kgrec Neo4j of "
                    f"{home}); stop it or choose another port (NEO4J_{name.upper()}_PORT). "
                    f"See who holds it: ss -ltnp 'sport = :{port}'"
                )

        cmd = java_command(settings, java, jars, home)
        env = dict(os.environ)
        env[PASSWORD_ENV] = settings.password.get_secret_value()
        console = _console_log(home)
        logger.info("Starting local Neo4j for %s (Bolt %s, HTTP %s)", home, bolt_uri(settings), browser_url(settings))
        started = time.monotonic()
        with open(console, "wb") as out:
            proc = subprocess.Popen(  # fixed argv, no shell
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=home,
                env=env,
                start_new_session=True,
                preexec_fn=raise_nofile_limit,  # only setrlimit: safe between fork and exec
                close_fds=True,
            )
        _children[proc.pid] = proc
        _pid_file(home).write_text(f"{proc.pid}\n")
        try:
            _wait_ready(settings, home, proc.pid, started + settings.start_timeout)
        except DatabaseUnavailableError as exc:
            was_alive = _process_alive(proc.pid)
            _terminate(proc.pid, timeout=30)
            _pid_file(home).unlink(missing_ok=True)
            if was_alive:
                raise DatabaseUnavailableError(f"{exc}\n(the half-started server was stopped)") from exc
            raise
        logger.info("Local Neo4j ready in %.1f s (pid %d)", time.monotonic() - started, proc.pid)
        return status(settings)


def _terminate(pid: int, timeout: float) -> None:
    """SIGTERM ``pid``, wait up to ``timeout`` s, then SIGKILL; returns when it is gone."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _process_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if _process_alive(pid):
        logger.warning("Neo4j (pid %d) did not stop within %.0f s, sending SIGKILL", pid, timeout)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while _process_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
    child = _children.pop(pid, None)
    if child is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=5)


def stop(settings: Neo4jSettings, timeout: float = 60) -> bool:
    """Stop the local server of ``settings.home``: SIGTERM, then SIGKILL only after ``timeout`` seconds.

    Args:
        settings: Neo4j settings; only ``home`` is used.
        timeout: Seconds to wait for a clean shutdown before killing the JVM.

    Returns:
        True if a server was running and is now stopped, False if none ran.
    """
    home = _home(settings)
    pid = _running_pid(home)
    if pid is None:
        _pid_file(home).unlink(missing_ok=True)
        return False
    logger.info("Stopping local Neo4j (pid %d)", pid)
    started = time.monotonic()
    _terminate(pid, timeout)
    _pid_file(home).unlink(missing_ok=True)
    logger.info("Local Neo4j stopped in %.1f s", time.monotonic() - started)
    return True
