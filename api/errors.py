"""The API's own refusals; each is a :class:`~schema.errors.KgrecError` with its HTTP status (see :mod:`api.app`)."""

from __future__ import annotations

from schema.errors import KgrecError


class UnknownEntityError(KgrecError):
    """The user or item does not exist (→ 404)."""


class UnknownSourceError(KgrecError):
    """A requested recall source does not exist (→ 422)."""


class UserExistsError(KgrecError):
    """A user to onboard exists already (→ 409)."""


__all__ = ["UnknownEntityError", "UnknownSourceError", "UserExistsError"]
