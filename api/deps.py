"""Typed dependencies: the recommender, the driver, the API-key checks and the JSON-body check of writes.

They are coroutines although none of them waits for anything: FastAPI runs a plain function dependency in its
thread pool, a hop per dependency per request that costs more than the dependency itself."""

from __future__ import annotations

import json
import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security, status
from fastapi.exceptions import RequestValidationError
from fastapi.security import APIKeyHeader
from neo4j import Driver

from api.service import Recommender
from api.settings import ApiSettings
from api.writes import InteractionWriter

_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="Required for writes.")


async def get_settings(request: Request) -> ApiSettings:
    return request.app.state.api_settings


async def get_recommender(request: Request) -> Recommender:
    return request.app.state.recommender


async def get_driver(request: Request) -> Driver:
    return request.app.state.driver


async def get_interaction_writer(request: Request) -> InteractionWriter:
    return request.app.state.interaction_writer


def _check_key(settings: ApiSettings, given: str | None, what: str) -> None:
    if settings.api_key is None:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"{what} are disabled: the server has no KGREC_API_KEY set")
    if not given:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "missing X-API-Key header", headers={"WWW-Authenticate": "APIKey"}
        )
    if not secrets.compare_digest(given.encode(), settings.api_key.get_secret_value().encode()):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "invalid API key")


async def require_write_key(
    settings: Annotated[ApiSettings, Depends(get_settings)],
    key: Annotated[str | None, Security(_api_key_header)] = None,
) -> None:
    """Writes always need the key."""
    _check_key(settings, key, "writes")


async def require_read_key(
    settings: Annotated[ApiSettings, Depends(get_settings)],
    key: Annotated[str | None, Security(_api_key_header)] = None,
) -> None:
    """Reads need the key only when KGREC_READ_REQUIRES_KEY is set."""
    if settings.read_requires_key:
        _check_key(settings, key, "reads")


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


class _NonFiniteError(ValueError):
    """NaN, Infinity or -Infinity in a JSON body."""


def _no_constant(name: str) -> None:
    raise _NonFiniteError(name)


async def require_json_body(request: Request) -> None:
    """A write's body, if it has one, is strict JSON: a JSON content type (else 415) and no NaN or Infinity (else 422).

    Python's ``json`` reads ``NaN``, ``Infinity`` and ``-Infinity``, which are not JSON and which no field accepts;
    they are refused wherever they appear in the body.
    """
    body = await request.body()
    if not body:
        return
    if not _is_json(request.headers.get("content-type", "")):
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, "the body must be JSON (Content-Type: application/json)"
        )
    try:
        json.loads(body, parse_constant=_no_constant)
    except _NonFiniteError as exc:
        raise RequestValidationError(
            [{"type": "json_invalid", "loc": ("body",), "msg": f"{exc} is not a JSON number"}]
        ) from exc
    except ValueError:
        return  # malformed JSON was answered 422 by FastAPI before this check


SettingsDep = Annotated[ApiSettings, Depends(get_settings)]
RecommenderDep = Annotated[Recommender, Depends(get_recommender)]
DriverDep = Annotated[Driver, Depends(get_driver)]
InteractionWriterDep = Annotated[InteractionWriter, Depends(get_interaction_writer)]
