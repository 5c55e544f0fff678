"""Start, stop and inspect the project's own Neo4j 5.26 Community server, without Docker.

The server is an embedded Neo4j DBMS (``KgrecNeo4j.java``) with Bolt, HTTP (Neo4j Browser at ``/browser/``)
and APOC Core, run from jars that Maven copies once from Maven Central (``pom.xml``) into
``settings.jars_dir``. Needs JDK 17+ (``java`` and ``javac``) and Maven (``mvn``).

Layout of ``settings.home`` (data survives restarts)::

    data/             databases (system, neo4j)
    logs/console.log  the JVM's stdout/stderr (user log, start/stop lines)
    logs/debug.log    Neo4j's debug log (also http.log, query.log, security.log)
    run/neo4j.pid     pid of the running JVM
    conf/neo4j.conf   optional extra settings (same keys as neo4j.conf; the launcher's own settings win)

The password of user ``neo4j`` is handed to the JVM in an environment variable (not on the command line)
and set on every start, so changing ``NEO4J_PASSWORD`` and restarting is enough.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import logging
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NamedTuple

from graph.settings import Neo4jSettings
from schema.errors import ConfigError, DatabaseUnavailableError

logger = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).resolve().parent
POM_FILE = PACKAGE_DIR / "pom.xml"
LAUNCHER_SOURCE = PACKAGE_DIR / "KgrecNeo4j.java"
MAIN_CLASS = "KgrecNeo4j"
READY_SENTINEL = "KGREC_NEO4J_READY"
ERROR_SENTINEL = "KGREC_NEO4J_ERROR"
PASSWORD_ENV = "KGREC_NEO4J_PASSWORD"
MARKER_FILE = "kgrec-jars.json"
MIN_JAVA = 17
SERVER_DATABASE = "neo4j"  # the default database the launcher waits for; Community has just this one
INSTALL_HINT = "apt-get install openjdk-17-jdk-headless maven"

# From Neo4j 5.x's server.jvm.additional defaults, minus -XX:+AlwaysPreTouch (commits the whole heap up
# front) and -XX:+TrustFinalNonStaticFields (Neo4j's own conf warns against it in embedded mode).
JVM_FLAGS: tuple[str, ...] = (
    "-XX:+UseG1GC",
    "-XX:-OmitStackTraceInFastThrow",
    "-XX:+DisableExplicitGC",
    "-Djdk.nio.maxCachedBufferSize=1024",
    "-Dio.netty.tryReflectionSetAccessible=true",
    "-Djdk.tls.ephemeralDHKeySize=2048",
    "-Djdk.tls.rejectClientInitiatedRenegotiation=true",
    "-Dlog4j2.disable.jmx=true",
    "-Dfile.encoding=UTF-8",
    "--add-opens=java.base/java.lang=ALL-UNNAMED",
    "--add-opens=java.base/java.nio=ALL-UNNAMED",
    "--add-opens=java.base/java.io=ALL-UNNAMED",
    "--add-opens=java.base/java.util=ALL-UNNAMED",
    "--add-opens=java.base/java.util.concurrent=ALL-UNNAMED",
    "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
    "--enable-native-access=ALL-UNNAMED",
)
INITIAL_HEAP_BYTES = 256 * 1024**2
NOFILE_WANTED = 65536

_SIZE_RE = re.compile(r"^\s*(\d+)\s*([kmg]?)i?b?\s*$", re.IGNORECASE)
_SIZE_FACTORS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
_verified_jars_dirs: set[Path] = set()
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


def _jars_dir(settings: Neo4jSettings) -> Path:
    return settings.jars_dir.expanduser().resolve()


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


def _parse_size(value: str, name: str) -> int:
    match = _SIZE_RE.match(value)
    if not match:
        raise ConfigError(f"{name}={value!r} is not a size like 512m or 2g")
    size = int(match.group(1)) * _SIZE_FACTORS[match.group(2).lower()]
    if size < 64 * 1024**2:
        raise ConfigError(f"{name}={value!r} is too small for Neo4j (use at least 64m)")
    return size


def _jvm_size(size: int) -> str:
    return f"{size // 1024**2}m"


# --------------------------------------------------------------------------------------------------
# Java, Maven, jars


def _find_tool(name: str) -> str | None:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and name in ("java", "javac"):
        candidate = Path(java_home) / "bin" / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which(name)


@functools.lru_cache(maxsize=1)
def _java_tools() -> tuple[str, str]:
    """Return (java, javac) after checking that they exist and are version 17 or newer."""
    java = _find_tool("java")
    if java is None:
        raise ConfigError(f"`java` not found: the local Neo4j needs JDK {MIN_JAVA}+ ({INSTALL_HINT})")
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        raise ConfigError(f"cannot run {java} -version: {exc}") from exc
    text = out.stderr + out.stdout
    match = re.search(r'version "(\d+)(?:\.(\d+))?', text)
    if not match:
        raise ConfigError(f"cannot read the Java version from `{java} -version`: {text.strip()[:200]}")
    major = int(match.group(1))
    if major == 1 and match.group(2):  # 1.8 style
        major = int(match.group(2))
    if major < MIN_JAVA:
        raise ConfigError(f"{java} is Java {major}; the local Neo4j 5.26 needs Java {MIN_JAVA}+ ({INSTALL_HINT})")
    javac = _find_tool("javac")
    if javac is None:
        raise ConfigError(
            f"`javac` not found (only a JRE is installed?): the local Neo4j needs a JDK {MIN_JAVA}+ ({INSTALL_HINT})"
        )
    return java, javac


def _pom_versions() -> dict[str, str]:
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    props = ET.parse(POM_FILE).getroot().find("m:properties", ns)
    if props is None:
        return {}
    return {child.tag.split("}", 1)[1]: (child.text or "").strip() for child in props if "version" in child.tag}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if needed) for the duration of the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run_logged(cmd: list[str], log: Path, what: str, timeout: float) -> None:
    with open(log, "ab") as out:
        out.write(f"\n$ {' '.join(cmd)}\n".encode())
        out.flush()
        try:
            proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            raise DatabaseUnavailableError(f"{what} timed out after {timeout:.0f} s (log: {log})") from exc
    if proc.returncode != 0:
        raise DatabaseUnavailableError(
            f"{what} failed (exit code {proc.returncode}); last lines of {log}:\n{_tail(log, 25)}"
        )


def _resolve_jars(jars: Path, mvn: str) -> None:
    """Fill ``jars/lib`` and ``jars/plugins`` with Maven (into temporary dirs, then swapped in)."""
    pom = jars / "pom.xml"
    shutil.copyfile(POM_FILE, pom)
    log = jars / "mvn.log"
    log.write_bytes(b"")
    lib_tmp, plugins_tmp = jars / "lib.tmp", jars / "plugins.tmp"
    for tmp in (lib_tmp, plugins_tmp):
        shutil.rmtree(tmp, ignore_errors=True)
    base = [mvn, "-B", "-q", "-f", str(pom), "dependency:copy-dependencies"]
    # Everything but APOC (incl. APOC's own third-party deps) goes to lib/, only the APOC jars to plugins/.
    _run_logged(
        [*base, "-DexcludeGroupIds=org.neo4j.procedure", f"-DoutputDirectory={lib_tmp}"],
        log,
        "Maven (Neo4j jars)",
        timeout=1800,
    )
    _run_logged(
        [
            *base,
            "-DincludeGroupIds=org.neo4j.procedure",
            "-DexcludeTransitive=true",
            f"-DoutputDirectory={plugins_tmp}",
        ],
        log,
        "Maven (APOC jars)",
        timeout=600,
    )
    for name, tmp in (("lib", lib_tmp), ("plugins", plugins_tmp)):
        if not any(tmp.glob("*.jar")):
            raise DatabaseUnavailableError(f"Maven copied no jars into {tmp} (log: {log})")
        final = jars / name
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)


def _compile_launcher(jars: Path, javac: str) -> None:
    out_tmp = jars / "launcher.tmp"
    shutil.rmtree(out_tmp, ignore_errors=True)
    out_tmp.mkdir()
    _run_logged(
        [javac, "-encoding", "UTF-8", "-cp", str(jars / "lib" / "*"), "-d", str(out_tmp), str(LAUNCHER_SOURCE)],
        jars / "javac.log",
        f"javac {LAUNCHER_SOURCE.name}",
        timeout=300,
    )
    final = jars / "launcher"
    shutil.rmtree(final, ignore_errors=True)
    out_tmp.rename(final)


def ensure_jars(settings: Neo4jSettings) -> Path:
    """Make sure the Neo4j, APOC and Browser jars and the compiled launcher are in ``settings.jars_dir``.

    The first call downloads about 150 MB with Maven (``lib/`` and ``plugins/``) and compiles
    ``KgrecNeo4j.java`` (``launcher/``); a marker file records the pom's versions and checksum, so editing
    ``pom.xml`` (a version bump) re-resolves and editing the Java launcher recompiles. Safe to call from
    several processes at once (file lock).

    Args:
        settings: Neo4j settings; only ``jars_dir`` is used.

    Returns:
        The absolute jars directory.

    Raises:
        ConfigError: ``java``/``javac`` (17+) or ``mvn`` is missing.
        DatabaseUnavailableError: Maven or javac failed (the message has the tail of their log).
    """
    jars = _jars_dir(settings)
    if jars in _verified_jars_dirs:
        return jars
    _, javac = _java_tools()
    versions = _pom_versions()
    want = {
        "versions": versions,
        "pom_sha256": _sha256(POM_FILE),
        "launcher_sha256": _sha256(LAUNCHER_SOURCE),
    }
    jars.mkdir(parents=True, exist_ok=True)
    with _file_lock(jars / ".lock"):
        marker = jars / MARKER_FILE
        have: dict[str, object] = {}
        if marker.is_file():
            with contextlib.suppress(ValueError, OSError):
                have = json.loads(marker.read_text())
        jars_ok = (
            have.get("pom_sha256") == want["pom_sha256"]
            and any((jars / "lib").glob("*.jar"))
            and any((jars / "plugins").glob("*.jar"))
        )
        if not jars_ok:
            mvn = shutil.which("mvn")
            if mvn is None:
                raise ConfigError(f"`mvn` not found: the local Neo4j fetches its jars with Maven ({INSTALL_HINT})")
            marker.unlink(missing_ok=True)
            logger.info(
                "Resolving Neo4j jars (%s) with Maven into %s; the first time downloads ~150 MB",
                ", ".join(f"{k}={v}" for k, v in versions.items()),
                jars,
            )
            started = time.monotonic()
            _resolve_jars(jars, mvn)
            logger.info("Jars resolved in %.0f s", time.monotonic() - started)
        if (
            not jars_ok
            or have.get("launcher_sha256") != want["launcher_sha256"]
            or not (jars / "launcher" / f"{MAIN_CLASS}.class").is_file()
        ):
            logger.info("Compiling %s into %s", LAUNCHER_SOURCE.name, jars / "launcher")
            _compile_launcher(jars, javac)
        if have != want:
            marker.write_text(json.dumps(want, indent=2) + "\n")
    _verified_jars_dirs.add(jars)
    return jars


# --------------------------------------------------------------------------------------------------
# Processes


def _tail(path: Path, lines: int = 30) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 64 * 1024))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(line[:400] for line in text.splitlines()[-lines:]) or "(empty log)"


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


def _raise_nofile_limit() -> None:  # runs in the child between fork and exec: no logging here
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = NOFILE_WANTED if hard == resource.RLIM_INFINITY else min(NOFILE_WANTED, hard)
        if soft != resource.RLIM_INFINITY and soft < want:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    except (ValueError, OSError):
        pass


def _java_command(settings: Neo4jSettings, java: str, jars: Path, home: Path) -> list[str]:
    heap = _parse_size(settings.heap, "NEO4J_HEAP")
    pagecache = _parse_size(settings.pagecache, "NEO4J_PAGECACHE")
    classpath = os.pathsep.join([str(jars / "launcher"), str(jars / "lib" / "*"), str(jars / "plugins" / "*")])
    return [
        java,
        f"-Xms{_jvm_size(min(INITIAL_HEAP_BYTES, heap))}",
        f"-Xmx{_jvm_size(heap)}",
        *JVM_FLAGS,
        f"-XX:ErrorFile={home / 'logs' / 'hs_err_pid%p.log'}",
        "-cp",
        classpath,
        MAIN_CLASS,
        "--home",
        str(home),
        "--plugins",
        str(jars / "plugins"),
        "--listen",
        settings.listen_address,
        "--bolt-port",
        str(settings.bolt_port),
        "--http-port",
        str(settings.http_port),
        "--pagecache",
        _jvm_size(pagecache),
    ]


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
            text = _tail(console, 40)
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
                f"Last lines of {console}:\n{_tail(console, 30)}"
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
    _parse_size(settings.heap, "NEO4J_HEAP")
    _parse_size(settings.pagecache, "NEO4J_PAGECACHE")
    home = _home(settings)
    (home / "run").mkdir(parents=True, exist_ok=True)
    (home / "logs").mkdir(parents=True, exist_ok=True)
    with _file_lock(home / "run" / "start.lock"):
        pid = _running_pid(home)
        if pid is not None:
            logger.info("Local Neo4j for %s already runs (pid %d)", home, pid)
            _wait_ready(settings, home, pid, time.monotonic() + settings.start_timeout)
            return replace(status(settings), already_running=True)

        java, _ = _java_tools()
        jars = ensure_jars(settings)
        host = settings.listen_address
        for name, port in (("Bolt", settings.bolt_port), ("HTTP", settings.http_port)):
            if _port_in_use(host, port):
                raise DatabaseUnavailableError(
                    f"{name} port {port} on {host} is already in use by another process (not the kgrec Neo4j of "
                    f"{home}); stop it or choose another port (NEO4J_{name.upper()}_PORT). "
                    f"See who holds it: ss -ltnp 'sport = :{port}'"
                )

        cmd = _java_command(settings, java, jars, home)
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
                preexec_fn=_raise_nofile_limit,  # only setrlimit: safe between fork and exec
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
