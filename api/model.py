"""The API's current model: loaded from the promoted artifact, swapped atomically on reload.

What can serve and how it scores is :mod:`gnn.serving`. :class:`ModelHolder` keeps the current
:class:`~gnn.serving.ServingModel`: requests take a reference once and use it to the end, a reload builds the new
model completely before swapping the reference, so no request is dropped or sees half a model.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from gnn.serving import ServingModel, load_serving_model, pointer_stamps

log = logging.getLogger(__name__)

__all__ = ["ModelHolder", "ReloadResult", "ServingModel"]


@dataclass
class ReloadResult:
    changed: bool
    version: str | None
    kind: str | None


class ModelHolder:
    """The process's current model; thread-safe, swapped atomically.

    Args:
        root: Artifacts root (``KGREC_ARTIFACTS_DIR``).
        kind: ``auto`` or one of :data:`gnn.serving.SERVABLE`.
    """

    def __init__(self, root: Path, kind: str = "auto") -> None:
        self.root = root
        self.kind = kind
        self._model: ServingModel | None = None
        self._stamp: tuple[float, ...] = ()
        self._lock = threading.Lock()
        #: Called with ``changed`` after every reload (the app warms its answer cache on a new model).
        self.on_change: Callable[[bool], None] | None = None

    @property
    def model(self) -> ServingModel | None:
        return self._model

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
                new = load_serving_model(self.root, self.kind)
            except Exception:  # a broken artifact must not take the service down
                log.exception("could not load a model from %s; keeping %s", self.root, old.version if old else None)
                return ReloadResult(False, old.version if old else None, old.kind if old else None)
            self._stamp = stamp
            self._model = new
            changed = (old.version if old else None) != (new.version if new else None)
            if changed:
                log.info("serving model %s %s", new.kind if new else "none", new.version if new else "")
        if changed and self.on_change is not None:
            self.on_change(True)
        return ReloadResult(changed, new.version if new else None, new.kind if new else None)
