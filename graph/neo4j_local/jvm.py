"""The JVM that runs the local Neo4j: its command line, memory sizes and flags, and the open-files limit."""

from __future__ import annotations

import os
import re
import resource
from pathlib import Path

from graph.neo4j_local.jars import MAIN_CLASS
from graph.settings import Neo4jSettings
from schema.errors import ConfigError

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
NOFILE_WANTED = 65536

_SIZE_RE = re.compile(r"^\s*(\d+)\s*([kmg]?)i?b?\s*$", re.IGNORECASE)
_SIZE_FACTORS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def parse_size(value: str, name: str) -> int:
    """Bytes of a size like ``512m`` or ``2g`` given in setting ``name``.

    Raises:
        ConfigError: Not a size, or under 64 MiB.
    """
    match = _SIZE_RE.match(value)
    if not match:
        raise ConfigError(f"{name}={value!r} is not a size like 512m or 2g")
    size = int(match.group(1)) * _SIZE_FACTORS[match.group(2).lower()]
    if size < 64 * 1024**2:
        raise ConfigError(f"{name}={value!r} is too small for Neo4j (use at least 64m)")
    return size


def jvm_size(size: int) -> str:
    """A byte count as a JVM size in MiB (``512m``)."""
    return f"{size // 1024**2}m"


def raise_nofile_limit() -> None:
    """Raise the open-files limit toward NOFILE_WANTED (runs in the child between fork and exec: no logging)."""
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = NOFILE_WANTED if hard == resource.RLIM_INFINITY else min(NOFILE_WANTED, hard)
        if soft != resource.RLIM_INFINITY and soft < want:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    except (ValueError, OSError):
        pass


def gc_log_option(home: Path) -> str:
    """The JVM option that logs every garbage collection (its pause and the CPU its threads used) and every
    stop-the-world pause (safepoint) with its UTC time to ``home/logs/gc.log`` (four files of 10 MiB at most,
    rotated): what a slow query can be set against (bench/tail_events.py). A few lines a second under load."""
    log = home / "logs" / "gc.log"
    return f"-Xlog:gc,gc+cpu,safepoint:file={log}:utctime,uptimemillis,tags:filecount=4,filesize=10m"


def java_command(settings: Neo4jSettings, java: str, jars: Path, home: Path) -> list[str]:
    """The command line that runs the embedded server of ``home`` from ``jars`` with ``settings``' memory caps.

    The heap starts at its maximum (``-Xms`` = ``-Xmx``, as Neo4j's operations manual recommends; no pre-touch, so
    the memory is taken as the heap is first used): G1 sizes its young generation from the heap it has, and a heap
    that starts small is grown reluctantly: the benchmark server's stayed at 287-455 MiB of 1 GiB for an hour, and
    as its old generation filled, the young one shrank from 165 MiB to 27-75 MiB, so that with impressions recorded
    a young pause (a stop of every query in flight) came 12-69 times a minute (docs/benchmarks.md §5)."""
    heap = parse_size(settings.heap, "NEO4J_HEAP")
    pagecache = parse_size(settings.pagecache, "NEO4J_PAGECACHE")
    classpath = os.pathsep.join([str(jars / "launcher"), str(jars / "lib" / "*"), str(jars / "plugins" / "*")])
    return [
        java,
        f"-Xms{jvm_size(heap)}",
        f"-Xmx{jvm_size(heap)}",
        *JVM_FLAGS,
        f"-XX:ErrorFile={home / 'logs' / 'hs_err_pid%p.log'}",
        gc_log_option(home),
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
        jvm_size(pagecache),
    ]
