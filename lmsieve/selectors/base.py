"""The selector contract, shared by the API, the CLI, Beam DoFns and datatrove steps.

A selector is a small fitted object in the scikit-learn style:

* constructor arguments are its whole configuration (``get_params``);
* ``fit(target, pool_sample=None)`` learns its state, kept in trailing-underscore attributes;
* ``score(batch)`` returns a float64 numpy array aligned with the batch; ``score_and_mask`` also
  returns which documents are eligible at all (DSIR's minimum length, for example);
* ``save(dir)`` / ``load(dir)`` write and read the fitted state as JSON plus a ``.npz`` of plain
  arrays (``allow_pickle=False``): no pickled code ever.

A batch is a pyarrow Table/RecordBatch with the columns in ``input_columns`` (``text`` for
text selectors), a pandas DataFrame, or a sequence of str. Selectors never import Beam.
"""
from __future__ import annotations

import json
import os
from typing import Any, ClassVar

import numpy as np

from lmsieve.schemas.errors import ConfigError, LmsieveError

STATE_JSON = "selector.json"
STATE_ARRAYS = "arrays.npz"

_REGISTRY: dict[str, type["Selector"]] = {}


def register(cls: type["Selector"]) -> type["Selector"]:
    """Class decorator: make a selector available by its ``name`` to the API, CLI and jobs."""
    _REGISTRY[cls.name] = cls
    return cls


def get_selector_class(name: str) -> type["Selector"]:
    import lmsieve.selectors  # noqa: F401  (registers the built-in selectors)

    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown method {name!r}; available: {', '.join(sorted(_REGISTRY))}") from None


def available_methods() -> list[str]:
    import lmsieve.selectors  # noqa: F401

    return sorted(_REGISTRY)


class NotFittedError(LmsieveError, RuntimeError):
    pass


class Selector:
    """Base class; subclasses set ``name`` and implement ``fit`` and ``score_and_mask``."""

    name: ClassVar[str] = ""
    #: Columns a batch must have for ``score``.
    input_columns: ClassVar[tuple[str, ...]] = ("text",)
    #: Whether larger scores are better (the sampling primitives use it).
    higher_is_better: ClassVar[bool] = True
    #: The ranking the method's paper uses by default ("topk" or "gumbel").
    default_ranking: ClassVar[str] = "topk"
    default_temperature: ClassVar[float] = 1.0  # Gumbel temperature when none is given (MATES: 0.5)
    #: Whether ``fit`` needs a sample of the pool (DSIR's raw distribution does).
    needs_pool_sample: ClassVar[bool] = False
    #: Rows per scoring batch in :func:`lmsieve.selection.scoring.score_table` (None: its default). Slow,
    #: model-based selectors set a small one so the progress bar moves every few seconds.
    score_batch_rows: ClassVar[int | None] = None

    # -- configuration -------------------------------------------------------------------------
    #: Parameters that change how a score is computed but never its value (threads, say); kept out
    #: of fingerprints so changing them does not invalidate stored features.
    execution_params: ClassVar[tuple[str, ...]] = ()

    def get_params(self) -> dict[str, Any]:
        return dict(self._params)

    def fingerprint_params(self) -> dict[str, Any]:
        """The parameters that determine the scores (for feature fingerprints)."""
        return {k: v for k, v in self._params.items() if k not in self.execution_params}

    #: Whether ``unit="window"`` scores this method per window (:mod:`lmsieve.selectors.windows`).
    windowable: ClassVar[bool] = False

    def __new__(cls, *args: Any, **params: Any):
        if cls.windowable and (params.get("unit") == "window" or (
                params.get("fitted") is not None and _saved_unit(params["fitted"]) == "window")):
            from lmsieve.selectors.windows import WindowSelector

            return WindowSelector(cls, **params)  # not a cls instance: cls.__init__ is not called
        return super().__new__(cls)

    def __init__(self, **params: Any):
        self._params = params

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # -- fitting and scoring ---------------------------------------------------------------------
    def fit(self, target, pool_sample=None) -> "Selector":
        raise NotImplementedError

    def score_and_mask(self, batch) -> tuple[np.ndarray, np.ndarray]:
        """(scores, eligible): float64 scores and a bool mask, both aligned with the batch."""
        raise NotImplementedError

    def score(self, batch) -> np.ndarray:
        return self.score_and_mask(batch)[0]

    #: Attributes that exist once the selector is fitted (trailing underscore, sklearn style).
    fitted_attributes: ClassVar[tuple[str, ...]] = ()

    @property
    def is_fitted(self) -> bool:
        return all(hasattr(self, a) for a in self.fitted_attributes)

    def check_fitted(self) -> None:
        if not self.is_fitted:
            raise NotFittedError(f"{type(self).__name__} is not fitted: call fit() or load() first")

    # -- persistence ----------------------------------------------------------------------------
    def _state_arrays(self) -> dict[str, np.ndarray]:
        """Fitted numpy arrays to save (names are attribute names)."""
        return {}

    def _state_json(self) -> dict[str, Any]:
        """Fitted JSON-able values to save."""
        return {}

    def _set_state(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        for k, v in {**state, **arrays}.items():
            setattr(self, k, v)

    def save(self, path: str | os.PathLike) -> str:
        self.check_fitted()
        path = os.fspath(path)
        os.makedirs(path, exist_ok=True)
        from lmsieve import __version__

        doc = {
            "method": self.name,
            "lmsieve_version": __version__,
            "params": jsonable(self.get_params()),
            "state": jsonable(self._state_json()),
        }
        arrays = self._state_arrays()
        tmp = os.path.join(path, STATE_ARRAYS + ".tmp.npz")
        np.savez(tmp, **arrays)
        os.replace(tmp, os.path.join(path, STATE_ARRAYS))
        with open(os.path.join(path, STATE_JSON + ".tmp"), "w") as f:
            json.dump(doc, f, indent=2, sort_keys=True)
        os.replace(os.path.join(path, STATE_JSON + ".tmp"), os.path.join(path, STATE_JSON))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Selector":
        """Load a fitted selector saved by :meth:`save` (from this class or, on the base, any)."""
        path = os.fspath(path)
        with open(os.path.join(path, STATE_JSON)) as f:
            doc = json.load(f)
        klass = get_selector_class(doc["method"]) if cls is Selector else cls
        if cls is Selector and klass.load.__func__ is not Selector.load.__func__:
            return klass.load(path)  # its own load also reads its files (fastText models, ...)
        if klass.name != doc["method"]:
            raise ConfigError(f"{path} holds a {doc['method']!r} selector, not {klass.name!r}")
        obj = klass(**doc["params"])
        with np.load(os.path.join(path, STATE_ARRAYS), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        obj._set_state(doc["state"], arrays)
        return obj


def _saved_unit(fitted) -> str | None:
    """The ``unit`` parameter of a selector saved in ``fitted`` (None when unreadable)."""
    try:
        with open(os.path.join(os.fspath(fitted), STATE_JSON)) as f:
            return json.load(f).get("params", {}).get("unit")
    except (OSError, ValueError, AttributeError):
        return None


def jsonable(x: Any) -> Any:
    """Parameters and state as plain JSON values (numpy scalars and arrays converted)."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    return x
