"""Typed dependencies: the recommender, the driver and the API-key checks."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security, status
from fastapi.security import APIKeyHeader
from neo4j import Driver

from api.service import Recommender
from api.settings import ApiSettings

_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="Required for writes.")


def get_settings(request: Request) -> ApiSettings:
    return request.app.state.api_settings


def get_recommender(request: Request) -> Recommender:
    return request.app.state.recommender


def get_driver(request: Request) -> Driver:
    return request.app.state.driver


def _check_key(settings: ApiSettings, given: str | None, what: str) -> None:
    if settings.api_key is None:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"{what} are disabled: the server has no KGREC_API_KEY set")
    if not given:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "missing X-API-Key header", headers={"WWW-Authenticate": "APIKey"}
        )
    if not secrets.compare_digest(given.encode(), settings.api_key.get_secret_value().encode()):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "invalid API key")


def require_write_key(
    settings: Annotated[ApiSettings, Depends(get_settings)],
    key: Annotated[str | None, Security(_api_key_header)] = None,
) -> None:
    """Writes always need the key."""
    _check_key(settings, key, "writes")


def require_read_key(
    settings: Annotated[ApiSettings, Depends(get_settings)],
    key: Annotated[str | None, Security(_api_key_header)] = None,
) -> None:
    """Reads need the key only when KGREC_READ_REQUIRES_KEY is set."""
    if settings.read_requires_key:
        _check_key(settings, key, "reads")


SettingsDep = Annotated[ApiSettings, Depends(get_settings)]
RecommenderDep = Annotated[Recommender, Depends(get_recommender)]
DriverDep = Annotated[Driver, Depends(get_driver)]
