"""The driver's errors turned into kgrec's: the one place that knows what the Neo4j driver raises.

Every function of :mod:`graph` that the API calls runs its driver calls inside :func:`database_errors`, so its
callers see only :class:`~schema.errors.KgrecError`: :class:`~schema.errors.DatabaseUnavailableError` when Neo4j
cannot be reached (the API answers 503 or falls back to the model), a plain ``KgrecError`` when Neo4j refused a
statement.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from neo4j.exceptions import DriverError, Neo4jError

from schema.errors import DatabaseUnavailableError, KgrecError

#: Neo4j's codes of a refused login (wrong password, unknown user, too many failed attempts in a row).
_SECURITY = "Neo.ClientError.Security."
#: Neo4j's codes of a transaction it ended (its timeout passed, or it was terminated while waiting for a lock): the
#: statement was not refused, the server could not finish it in time, so callers treat it as Neo4j being unavailable.
_ENDED = (
    "Neo.ClientError.Transaction.TransactionTimedOut",
    "Neo.ClientError.Transaction.LockClientStopped",
    "Neo.ClientError.Transaction.Terminated",
    "Neo.TransientError.Transaction.",
)
#: What to do about a refused login.
CHECK_LOGIN = "Check NEO4J_USER and NEO4J_PASSWORD."


def reason(exc: BaseException) -> str:
    """The error's message on one line (the driver's messages span several)."""
    return " ".join(str(exc).split())


def unreachable(what: str, exc: BaseException) -> DatabaseUnavailableError:
    """The error that says Neo4j could not be reached while doing ``what``, with the cause's message."""
    return DatabaseUnavailableError(f"Neo4j is unreachable ({what}): {reason(exc)}")


@contextmanager
def database_errors(what: str, *, refused: str | None = None, gone: str | None = None) -> Iterator[None]:
    """Run driver calls, raising kgrec's errors instead of the driver's.

    Args:
        what: What the calls do, named in the message (e.g. the catalogued query's name).
        refused: Start of the message when Neo4j refuses a statement (then a :class:`KgrecError`); None: a refusal
            counts as Neo4j being unreachable.
        gone: Start of the message when Neo4j cannot be reached; None: ``"Neo4j is unreachable (<what>)"``.

    Raises:
        DatabaseUnavailableError: The driver failed (``DriverError``: no server, connection lost, no connection
            free in time; or an ``OSError``), Neo4j refused the login (wrong password: unusable as if away, the
            message says which setting to check), Neo4j refused a statement and ``refused`` is None, or Neo4j ended
            the transaction (its timeout passed, or a transient failure outlived the caller's retries).
        KgrecError: Neo4j refused a statement (``Neo4jError``) and ``refused`` is given.
    """
    try:
        yield
    except Neo4jError as exc:
        if (exc.code or "").startswith(_SECURITY):
            raise DatabaseUnavailableError(f"Neo4j rejected the login ({what}): {reason(exc)} {CHECK_LOGIN}") from exc
        if refused is not None:
            if (exc.code or "").startswith(_ENDED):  # not refused for what it asked: unavailable, as a 503 says
                raise DatabaseUnavailableError(f"{refused}: Neo4j ended the transaction: {reason(exc)}") from exc
            raise KgrecError(f"{refused}: {exc}") from exc
        raise _gone(what, gone, exc) from exc
    except (DriverError, OSError) as exc:
        raise _gone(what, gone, exc) from exc


def _gone(what: str, gone: str | None, exc: BaseException) -> DatabaseUnavailableError:
    return unreachable(what, exc) if gone is None else DatabaseUnavailableError(f"{gone}: {reason(exc)}")


__all__ = ["CHECK_LOGIN", "database_errors", "reason", "unreachable"]
