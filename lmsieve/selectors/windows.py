"""Window mode (``unit="window"``): score a long document by its best target-sized piece.

Benchmark targets are short (a HumanEval problem is ~570 bytes) while pool documents are long
files and pages. Whole-document scores then carry a length bias: DSIR's unnormalised log weight
sums over every n-gram of the document, ZIP-FIT's NCD favours documents of the target's length.
Window mode cuts each document into overlapping, line-aligned windows about the size of the
target examples (:mod:`lmsieve.features.windows`), scores **all windows of a batch in one call of
the wrapped method's own batch scoring**, and reduces per document with numpy (``max``, or
``mean_topk``: the mean of the ``window_top_k`` best windows). The document is selected whole.

One mechanism for every method that scores a batch of texts on its own (``dsir``, ``zipfit``;
``knn`` cuts with the same functions): ``get_selector_class("dsir")(unit="window", ...)``
returns a :class:`WindowSelector` around a DSIR built from the other parameters, so the API,
the CLI (``--param unit=window``), the Beam jobs (stored score, ``fitted=DIR``) and the datatrove
steps need no code of their own. ``get_params`` (what manifests record) holds the window
settings; the resolved window size is fitted state (``window_``).

Parameters (window mode only):

* ``window``: ``"auto"`` (default) = the median UTF-8 length of the target examples, or an int
  (bytes; = characters for ASCII);
* ``window_overlap`` (0.5): fraction of a window shared with the next;
* ``window_reduce`` (``max``) / ``window_top_k`` (3, for ``mean_topk``);
* ``window_min_fraction`` (0.25): windows shorter than this fraction of ``window`` are not
  scored into the document's score; windows are only that short when the whole document is, so
  documents much shorter than the target examples are not eligible (a 40-byte document would
  otherwise win on noise, as short documents do through hash collisions in DSIR).

Choices where the issue is silent: DSIR's ``min_example_length`` (paper: 100 words) is a
whole-document rule; in window mode it defaults to 0 (windows of a short target are below 100
words) and ``window_min_fraction`` plays its role; DSIR's ``per_ngram=True`` divides a window's
log weight by its n-gram count (the normalised option). The raw distribution is still fitted on
whole pool documents. ``separate_targets`` is not supported in window mode.
"""
from __future__ import annotations

import functools
import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa

from lmsieve.features.windows import REDUCERS, auto_window, check_window_params, cut_windows, reduce_windows
from lmsieve.schemas.document import TEXT, text_array
from lmsieve.schemas.errors import ConfigError
from lmsieve.selectors.base import STATE_JSON, Selector, jsonable

WINDOW_DEFAULTS = dict(window="auto", window_overlap=0.5, window_reduce="max", window_top_k=3,
                       window_min_fraction=0.25)
#: Per-method parameter defaults that differ in window mode (see the module doc).
WINDOW_METHOD_DEFAULTS = {"dsir": {"min_example_length": 0}}


def check_unit(unit) -> None:
    if unit not in ("doc", "window"):
        raise ConfigError(f"unit: expected 'doc' (the paper's whole-document score) or 'window', got {unit!r}")


def check_window_settings(window, window_overlap, window_reduce, window_top_k, window_min_fraction) -> None:
    check_window_params(window, window_overlap)
    if window_reduce not in REDUCERS:
        raise ConfigError(f"window_reduce: expected one of {', '.join(REDUCERS)}, got {window_reduce!r}")
    if isinstance(window_top_k, bool) or not isinstance(window_top_k, int) or window_top_k < 1:
        raise ConfigError(f"window_top_k must be an int >= 1, got {window_top_k!r}")
    if not 0 <= float(window_min_fraction) <= 1:
        raise ConfigError(f"window_min_fraction must be in [0, 1], got {window_min_fraction!r}")


def target_texts(target) -> list[str]:
    """All target texts of one batch or of a list/tuple/dict of batches."""
    if isinstance(target, dict):
        target = list(target.values())
    if isinstance(target, (list, tuple)) and target and not isinstance(target[0], str):
        return [s for part in target for s in text_array(part).to_pylist()]
    return text_array(target).to_pylist()


def enable_windows(cls: type[Selector]) -> type[Selector]:
    """Let ``cls(unit="window", ...)`` build a :class:`WindowSelector` (and accept ``unit="doc"``)."""
    init = cls.__init__

    @functools.wraps(init)
    def __init__(self, *args, unit: str = "doc", **params):
        check_unit(unit)
        init(self, *args, **params)

    cls.__init__ = __init__
    cls.windowable = True
    return cls


def _saved_params(fitted) -> dict:
    path = Path(fitted) / STATE_JSON
    if not path.is_file():
        raise ConfigError(f"fitted={str(fitted)!r}: no {STATE_JSON} (save a fitted selector there first)")
    return json.loads(path.read_text())


class WindowSelector(Selector):
    """``inner_cls`` scored per window and reduced per document (see the module doc)."""

    def __init__(self, inner_cls: type[Selector], unit: str = "window", fitted: str | None = None, **params):
        check_unit(unit)
        if fitted is not None:  # the saved parameters rule (execution parameters excepted)
            doc = _saved_params(fitted)
            if doc["method"] != inner_cls.name or doc["params"].get("unit") != "window":
                raise ConfigError(f"fitted={fitted!r} holds no window-mode {inner_cls.name!r} selector")
            given = {k: params[k] for k in inner_cls.execution_params if k in params}
            params = {k: v for k, v in doc["params"].items() if k not in ("unit", "fitted")}
            params.update(given)
        win = {k: params.pop(k, v) for k, v in WINDOW_DEFAULTS.items()}
        check_window_settings(**win)
        if params.get("separate_targets"):
            raise ConfigError("separate_targets is not supported with unit='window'")
        for k, v in WINDOW_METHOD_DEFAULTS.get(inner_cls.name, {}).items():
            params.setdefault(k, v)
        self.inner = inner_cls(**params)
        feat = getattr(self.inner, "featurizer", None)
        if feat is not None and hasattr(feat, "chunk_docs"):  # DSIR: windows are small documents; its
            feat.chunk_docs = max(feat.chunk_docs, 8192)  # 4 MB chunk cap still bounds memory (same counts)
        self.name = inner_cls.name
        self.input_columns = (TEXT,)
        self.higher_is_better = inner_cls.higher_is_better
        self.default_ranking = self.inner.default_ranking  # DSIR per_ngram: topk
        self.execution_params = inner_cls.execution_params
        self.needs_pool_sample = fitted is None and inner_cls.needs_pool_sample
        all_params = {**self.inner.get_params(), "unit": "window", **win}
        if fitted is not None:
            all_params["fitted"] = str(fitted)
        super().__init__(**all_params)
        self._fitted_dir = fitted

    # -- fitting --------------------------------------------------------------------------------
    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "window_") and self.inner.is_fitted

    def fit(self, target, pool_sample=None) -> "WindowSelector":
        if self._fitted_dir is not None:
            other = Selector.load.__func__(type(self.inner), self._fitted_dir)
            other._load_files(self._fitted_dir)
            self.inner, self.window_ = other.inner, other.window_
            return self
        w = self._params["window"]
        self.window_ = auto_window(target_texts(target)) if w == "auto" else int(w)
        self.inner.fit(target, pool_sample)
        return self

    # -- scoring --------------------------------------------------------------------------------
    def windows(self, batch):
        self.check_fitted()
        return cut_windows(batch, self.window_, self._params["window_overlap"])

    def score_windows(self, batch):
        """(windows, per-window scores, per-window usable mask) of a batch."""
        w = self.windows(batch)
        s, e = self.inner.score_and_mask(pa.table({TEXT: w.texts}))
        s = np.asarray(s, dtype=np.float64)
        usable = np.asarray(e, dtype=bool) & (w.lengths >= self._params["window_min_fraction"] * self.window_)
        return w, s, usable

    def score_and_mask(self, batch) -> tuple[np.ndarray, np.ndarray]:
        w, s, usable = self.score_windows(batch)
        p = self._params
        return reduce_windows(s, w, p["window_reduce"], p["window_top_k"], usable)

    def fingerprint_params(self) -> dict:
        if self._fitted_dir is not None:
            from lmsieve.features.store import hash_files

            return {"fitted": hash_files(self._fitted_dir)}
        return super().fingerprint_params()

    # -- persistence ----------------------------------------------------------------------------
    def _state_json(self) -> dict:
        return {"window_": int(self.window_), "inner": jsonable(self.inner._state_json())}

    def _state_arrays(self) -> dict[str, np.ndarray]:
        return self.inner._state_arrays()

    def _set_state(self, state: dict, arrays: dict) -> None:
        self.window_ = int(state["window_"])
        self.inner._set_state(state["inner"], arrays)

    def save(self, path) -> str:
        path = Selector.save(self, path)
        save_files = getattr(self.inner, "_save_files", None)
        if save_files is not None:
            save_files(Path(path))
        return os.fspath(path)

    def _load_files(self, path) -> None:
        """The wrapped selector's files (a fastText model), from its own directory."""
        load_files = getattr(self.inner, "_load_files", None)
        if load_files is not None:
            load_files(Path(path))


__all__ = ["WINDOW_DEFAULTS", "WindowSelector", "enable_windows", "target_texts"]
