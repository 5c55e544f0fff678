"""The API's own refusals; each is a :class:`~schema.errors.KgrecError` with its HTTP status (see :mod:`api.app`)."""

from __future__ import annotations

from schema.errors import KgrecError


class UnknownEntityError(KgrecError):
    """The user or item does not exist (→ 404)."""


class UnknownSourceError(KgrecError):
    """A requested recall source does not exist (→ 422)."""


class UserExistsError(KgrecError):
    """A user to onboard exists already (→ 409)."""


class UnknownNamesError(KgrecError):
    """A body names genres or items that do not exist (→ 422, one entry per unknown name).

    Attributes:
        unknown: ``(field, index in that list, kind, name)`` of each unknown name, kind ``genre`` or ``item``.
    """

    def __init__(self, unknown: list[tuple[str, int, str, str]]) -> None:
        self.unknown = unknown
        super().__init__("; ".join(f"unknown {kind} {name!r}" for _, _, kind, name in unknown))


__all__ = ["UnknownEntityError", "UnknownNamesError", "UnknownSourceError", "UserExistsError"]
