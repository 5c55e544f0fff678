"""What the ``kgrec`` commands share: the consoles, the one-line error exit, and running a job.

The consoles are rich's: on a terminal they colour; when the output is a file or a pipe they write plain
text (no colour or cursor codes), as cron logs need.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import typer
from rich.console import Console

from kgrec.progress import phase_lines
from schema.errors import KgrecError

T = TypeVar("T")
#: Options several commands share, declared once: name → (``Annotated[type, typer.Option(...)]``, default).
OptionTable = Mapping[str, tuple[Any, Any]]

console = Console()
err = Console(stderr=True)


def fail(exc: KgrecError) -> typer.Exit:
    """Print a kgrec error as one line on stderr; the exit (code 1) for the caller to raise."""
    err.print(f"[bold red]error:[/] {exc}", soft_wrap=True, highlight=False)
    return typer.Exit(code=1)


def run_job(name: str, job: Callable[[], T]) -> T:
    """Run ``job`` with one line per phase off a terminal (:func:`kgrec.progress.phase_lines`); a kgrec error
    becomes :func:`fail`'s exit."""
    with phase_lines(name):
        try:
            return job()
        except KgrecError as exc:
            raise fail(exc) from exc


def with_options(table: OptionTable, *names: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Give a command the named options of ``table`` after its own parameters, in that order.

    Typer reads the command's signature (its own parameters, then these options as keyword-only ones); the
    function receives them in its ``**options``, and a call from Python may leave any of them out for its
    default.
    """
    shared = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=table[name][1], annotation=table[name][0])
        for name in names
    ]
    defaults = {p.name: p.default for p in shared}

    def decorate(command: Callable[..., T]) -> Callable[..., T]:
        own = [
            p
            for p in inspect.signature(command, eval_str=True).parameters.values()
            if p.kind is not inspect.Parameter.VAR_KEYWORD
        ]

        @functools.wraps(command)
        def run(*args: Any, **kwargs: Any) -> T:  # noqa: ANN401 - the command's own
            return command(*args, **{**defaults, **kwargs})

        run.__signature__ = inspect.Signature([*own, *shared])  # type: ignore[attr-defined]
        return run

    return decorate
