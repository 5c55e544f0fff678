"""The local Neo4j's jars: Neo4j, APOC and Browser from Maven Central, and the compiled Java launcher.

``pom.xml`` pins the versions; Maven copies the jars once into ``settings.jars_dir`` (``lib/``, ``plugins/``) and
``javac`` compiles ``KgrecNeo4j.java`` into ``launcher/``. A marker file records what was resolved, so a version bump
re-resolves and an edited launcher recompiles. Needs JDK 17+ (``java`` and ``javac``) and Maven (``mvn``).
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
import shutil
import subprocess
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

from graph.settings import Neo4jSettings
from schema.errors import ConfigError, DatabaseUnavailableError

logger = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).resolve().parent
POM_FILE = PACKAGE_DIR / "pom.xml"
LAUNCHER_SOURCE = PACKAGE_DIR / "KgrecNeo4j.java"
MAIN_CLASS = "KgrecNeo4j"
MARKER_FILE = "kgrec-jars.json"
MIN_JAVA = 17
INSTALL_HINT = "apt-get install openjdk-17-jdk-headless maven"

_verified_jars_dirs: set[Path] = set()


def jars_dir(settings: Neo4jSettings) -> Path:
    """The absolute jars directory of ``settings``."""
    return settings.jars_dir.expanduser().resolve()


def tail(path: Path, lines: int = 30) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 64 * 1024))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(line[:400] for line in text.splitlines()[-lines:]) or "(empty log)"


def find_tool(name: str) -> str | None:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and name in ("java", "javac"):
        candidate = Path(java_home) / "bin" / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which(name)


@functools.lru_cache(maxsize=1)
def java_tools() -> tuple[str, str]:
    """Return (java, javac) after checking that they exist and are version 17 or newer."""
    java = find_tool("java")
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
    javac = find_tool("javac")
    if javac is None:
        raise ConfigError(
            f"`javac` not found (only a JRE is installed?): the local Neo4j needs a JDK {MIN_JAVA}+ ({INSTALL_HINT})"
        )
    return java, javac


def pom_versions() -> dict[str, str]:
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    props = ET.parse(POM_FILE).getroot().find("m:properties", ns)
    if props is None:
        return {}
    return {child.tag.split("}", 1)[1]: (child.text or "").strip() for child in props if "version" in child.tag}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if needed) for the duration of the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def run_logged(cmd: list[str], log: Path, what: str, timeout: float) -> None:
    with open(log, "ab") as out:
        out.write(f"\n$ {' '.join(cmd)}\n".encode())
        out.flush()
        try:
            proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            raise DatabaseUnavailableError(f"{what} timed out after {timeout:.0f} s (log: {log})") from exc
    if proc.returncode != 0:
        raise DatabaseUnavailableError(
            f"{what} failed (exit code {proc.returncode}); last lines of {log}:\n{tail(log, 25)}"
        )


def resolve_jars(jars: Path, mvn: str) -> None:
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
    run_logged(
        [*base, "-DexcludeGroupIds=org.neo4j.procedure", f"-DoutputDirectory={lib_tmp}"],
        log,
        "Maven (Neo4j jars)",
        timeout=1800,
    )
    run_logged(
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


def compile_launcher(jars: Path, javac: str) -> None:
    out_tmp = jars / "launcher.tmp"
    shutil.rmtree(out_tmp, ignore_errors=True)
    out_tmp.mkdir()
    run_logged(
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
    jars = jars_dir(settings)
    if jars in _verified_jars_dirs:
        return jars
    _, javac = java_tools()
    versions = pom_versions()
    want = {
        "versions": versions,
        "pomsha256": sha256(POM_FILE),
        "launchersha256": sha256(LAUNCHER_SOURCE),
    }
    jars.mkdir(parents=True, exist_ok=True)
    with file_lock(jars / ".lock"):
        marker = jars / MARKER_FILE
        have: dict[str, object] = {}
        if marker.is_file():
            with contextlib.suppress(ValueError, OSError):
                have = json.loads(marker.read_text())
        jars_ok = (
            have.get("pomsha256") == want["pomsha256"]
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
            resolve_jars(jars, mvn)
            logger.info("Jars resolved in %.0f s", time.monotonic() - started)
        if (
            not jars_ok
            or have.get("launchersha256") != want["launchersha256"]
            or not (jars / "launcher" / f"{MAIN_CLASS}.class").is_file()
        ):
            logger.info("Compiling %s into %s", LAUNCHER_SOURCE.name, jars / "launcher")
            compile_launcher(jars, javac)
        if have != want:
            marker.write_text(json.dumps(want, indent=2) + "\n")
    _verified_jars_dirs.add(jars)
    return jars
