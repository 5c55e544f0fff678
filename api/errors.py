"""The API's own refusals; each is a :class:`~schema.errors.KgrecError` with its HTTP status (see :mod:`api.app`)."""

from __future__ import annotations

from schema.errors import KgrecError


class UnknownEntityError(KgrecError):
    """The user or item does not exist (→ 404)."""


class UnknownSourceError(KgrecError):
    """A requested recall source does not exist (→ 422)."""


class UserExistsError(KgrecError):
    """A user to onboard exists already (→ 409)."""


class ItemExistsError(KgrecError):
    """An item to add exists already with other content (→ 409)."""


class EmptyWindowError(KgrecError):
    """A change would leave an item's availability window empty (→ 422, type ``empty_availability_window``)."""


class UnknownNamesError(KgrecError):
    """A body names genres or items that do not exist (→ 422, one entry per unknown name).

    Attributes:
        unknown: ``(field, index in that list, kind, name)`` of each unknown name, kind ``genre``, ``item`` or ``attribute``.
    """

    def __init__(self, unknown: list[tuple[str, int, str, str]]) -> None:
        self.unknown = unknown
        super().__init__("; ".join(f"unknown {kind} {name!r}" for _, _, kind, name in unknown))


class RefusedError(KgrecError):
    """A read refused before any work, to keep the service answering (→ 503 overload or 429 client over budget,
    with ``Retry-After``).

    Args:
        detail: What the client is told.
        status: 503 (the server is at its bound) or 429 (this client is over its budget).
        retry_after: Whole seconds after which a retry may succeed (at least 1).
        reason: The label under which ``kgrec_refused_requests`` counts it.
    """

    def __init__(self, detail: str, *, status: int, retry_after: int, reason: str) -> None:
        super().__init__(detail)
        self.status = status
        self.retry_after = max(1, int(retry_after))
        self.reason = reason


__all__ = [
    "EmptyWindowError",
    "ItemExistsError",
    "RefusedError",
    "UnknownEntityError",
    "UnknownNamesError",
    "UnknownSourceError",
    "UserExistsError",
]
