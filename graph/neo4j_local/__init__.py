"""The project's own local Neo4j 5.26 Community server (Bolt, Browser, APOC), run from Maven jars without Docker.

Use :func:`start`, :func:`stop` and :func:`status` (or ``kgrec neo4j start|stop|status``); details in
:mod:`graph.neo4j_local.launcher`.
"""

from __future__ import annotations

from graph.neo4j_local.jars import ensure_jars
from graph.neo4j_local.launcher import ServerStatus, bolt_uri, browser_url, start, status, stop

__all__ = ["ServerStatus", "bolt_uri", "browser_url", "ensure_jars", "start", "status", "stop"]
