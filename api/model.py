"""The API's current model: loaded from the promoted artifact, swapped atomically on reload.

What can serve and how it scores is :mod:`gnn.serving`. :class:`ModelHolder` keeps the current
:class:`~gnn.serving.ServingModel`: requests take a reference once and use it to the end, a reload builds the new
model completely before swapping the reference, so no request is dropped or sees half a model.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from gnn.serving import (
    AS_FITTED,
    ScoringCandidates,
    ServingModel,
    load_serving_model,
    load_serving_version,
    pointer_stamps,
)
from schema.errors import ConfigError

log = logging.getLogger(__name__)

__all__ = ["ModelHolder", "ReloadResult", "ServingModel"]


@dataclass
class ReloadResult:
    changed: bool
    version: str | None
    kind: str | None


class ModelHolder:
    """The process's current model; thread-safe, swapped atomically.

    Besides the current model it holds the artifact versions that variants name (:mod:`api.variants`), promoted or
    not: :meth:`model_for` gives a request the model of its variant.

    Args:
        root: Artifacts root (``KGREC_ARTIFACTS_DIR``).
        kind: ``auto`` or one of :data:`gnn.serving.SERVABLE`.
        versions: Artifact versions to hold besides the current one (loaded by :meth:`reload`; a version that does
            not exist makes the first load fail with :class:`~schema.errors.ConfigError`).
        candidates: A blend's every item or candidate set (``KGREC_SCORING_CANDIDATES``,
            ``KGREC_SCORING_CANDIDATES_FROM_ITEMS``; :class:`gnn.serving.ScoringCandidates`).
    """

    def __init__(
        self,
        root: Path,
        kind: str = "auto",
        versions: Sequence[str] = (),
        candidates: ScoringCandidates = AS_FITTED,
    ) -> None:
        self.root = root
        self.kind = kind
        self.candidates = candidates
        self.versions = tuple(dict.fromkeys(versions))
        self._pinned: dict[str, ServingModel] = {}
        self._model: ServingModel | None = None
        self._stamp: tuple[float, ...] = ()
        self._lock = threading.Lock()
        #: Called with ``changed`` after every reload (the app warms its answer cache on a new model).
        self.on_change: Callable[[bool], None] | None = None

    @property
    def model(self) -> ServingModel | None:
        return self._model

    def model_for(self, version: str | None) -> ServingModel | None:
        """The model of artifact ``version`` (one of :attr:`versions`), or the current model for None."""
        if version is None:
            return self._model
        return self._pinned.get(version)

    def _load_versions(self) -> None:
        """Load the :attr:`versions` not held yet (under the lock). The first time, a version that does not exist
        or does not load raises :class:`~schema.errors.ConfigError` naming it; later, the held model keeps serving
        (a retrain's pruning may have removed its directory) and a failure is logged."""
        for version in self.versions:
            if version in self._pinned:
                continue
            try:
                model = load_serving_version(self.root, version, self.kind, self.candidates)
            except Exception as exc:  # a broken artifact: refuse to start rather than serve a variant without it
                raise ConfigError(f"model version {version!r} under {self.root} does not load: {exc}") from exc
            if model is None:
                kinds = "any model kind" if self.kind == "auto" else f"model kind {self.kind}"
                raise ConfigError(f"model version {version!r} does not exist under {self.root} (for {kinds})")
            self._pinned[version] = model
            log.info("holding model %s %s for its variants", model.kind, model.version)

    def reload(self, force: bool = True) -> ReloadResult:
        """Load the current artifact if the promotion pointers changed (or always, with ``force``).

        A model that fails to load is logged and the old one keeps serving.
        """
        with self._lock:
            stamp = pointer_stamps(self.root)
            if not force and stamp == self._stamp:
                model = self._model
                return ReloadResult(False, model.version if model else None, model.kind if model else None)
            old = self._model
            try:
                torch.set_num_threads(1)
                new = load_serving_model(self.root, self.kind, self.candidates)
            except Exception:  # a broken artifact must not take the service down
                log.exception("could not load a model from %s; keeping %s", self.root, old.version if old else None)
                return ReloadResult(False, old.version if old else None, old.kind if old else None)
            self._load_versions()
            self._stamp = stamp
            self._model = new
            changed = (old.version if old else None) != (new.version if new else None)
            if changed:
                log.info("serving model %s %s", new.kind if new else "none", new.version if new else "")
        if changed and self.on_change is not None:
            self.on_change(True)
        return ReloadResult(changed, new.version if new else None, new.kind if new else None)
