"""Decontamination in the Beam jobs: a table feature in the features job, a filter in the selection job.

``[decontaminate]`` in a job spec::

    [decontaminate]
    index = "indexes/humaneval-champ/"     # a saved index (lmsieve decontaminate build), or
    # index = ["humaneval.parquet", "champ=champ.jsonl"]   # evaluation files, indexed in the driver
    mode = "remove"                        # or "report"
    min_overlap = 1                        # optional: min_fraction, and n / min_words / columns / bloom_fpr
                                           # when indexing files

The index is built (or loaded) once in the driver and shipped to workers as bytes inside the
feature (:class:`DecontamFeature`); each worker loads it once in ``setup``. The features job
writes ``<shard>.decontam.parquet`` (``contaminated``, ``contam_sets`` bit mask, ``contam_matches``)
like every other table feature, so a killed job resumes with it and a changed index or rule
recomputes it (both are in the fingerprint). The selection job reads it per unit: in ``remove``
mode contaminated documents leave the unit before ranking (counted apart from ``rejected``); in
``report`` mode their sets ride along and the manifest counts how many were selected.
"""
from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pyarrow as pa

from lmsieve.pipelines.features import TableFeature
from lmsieve.schemas.document import ID, TEXT
from lmsieve.schemas.errors import ConfigError

NAME = "decontam"
CONTAMINATED, SETS, MATCHES = "contaminated", "contam_sets", "contam_matches"
_KEYS = ("index", "mode", "min_overlap", "min_fraction", "n", "min_words", "columns", "bloom_fpr")


class DecontamFeature(TableFeature):
    """Per-document contamination flags against a shipped index."""

    name = NAME
    input_columns = (ID, TEXT)

    def __init__(self, index, mode: str = "remove", min_overlap: int = 1, min_fraction: float | None = None):
        from lmsieve.features.decontam.apply import Decontaminator

        Decontaminator(index, mode, min_overlap, min_fraction)  # validates the rule
        self.mode, self.min_overlap, self.min_fraction = mode, int(min_overlap), min_fraction
        self.index_bytes = index.to_bytes()
        self.index_fp, self.set_names, self.summary = index.fingerprint(), index.set_names, index.summary()
        self._index = index

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k != "_index"}

    def setup(self) -> None:
        self.index()

    def index(self):
        if getattr(self, "_index", None) is None:
            from lmsieve.features.decontam import DecontamIndex

            self._index = DecontamIndex.from_bytes(self.index_bytes)
        return self._index

    def params(self) -> dict:  # the mode is the selection job's business, not the flags'
        return {"min_overlap": self.min_overlap, "min_fraction": self.min_fraction, "index": self.index_fp}

    def content_hash(self) -> str:
        return self.index_fp

    def fields(self) -> list[pa.Field]:
        return [pa.field(CONTAMINATED, pa.bool_()), pa.field(SETS, pa.int64()), pa.field(MATCHES, pa.int32())]

    def compute(self, docs: pa.Table) -> dict[str, pa.Array]:
        from lmsieve.features.decontam import flag_texts

        f = flag_texts(self.index(), docs, min_overlap=self.min_overlap, min_fraction=self.min_fraction)
        return {CONTAMINATED: pa.array(f.flagged), SETS: pa.array(f.sets.view(np.int64)),
                MATCHES: pa.array(f.matches, pa.int32())}

    def unit_stats(self, cols: dict[str, pa.Array]) -> dict:
        return {"contaminated": int(np.asarray(cols[CONTAMINATED].fill_null(False)).sum())}


def validate_table(t: Any, src) -> dict:
    """The ``[decontaminate]`` table, checked (types, keys, mode); the index is not read here."""
    from lmsieve.features.decontam import MODES

    if not isinstance(t, dict):
        raise ConfigError(f"{src}: decontaminate: expected a table")
    bad = [k for k in t if k not in _KEYS]
    if bad:
        raise ConfigError(f"{src}: decontaminate.{bad[0]}: unknown key (known: {', '.join(_KEYS)})")
    if "index" not in t:
        raise ConfigError(f"{src}: decontaminate.index: required (a saved index or evaluation files)")
    idx = t["index"]
    if not (isinstance(idx, str) or (isinstance(idx, list) and idx and all(isinstance(x, str) for x in idx))):
        raise ConfigError(f"{src}: decontaminate.index: expected a path or a list of paths")
    if t.get("mode", "remove") not in MODES:
        raise ConfigError(f"{src}: decontaminate.mode: must be one of {', '.join(MODES)}, got {t['mode']!r}")
    for k in ("min_overlap", "n", "min_words"):
        if k in t and (not isinstance(t[k], int) or isinstance(t[k], bool) or t[k] < 1):
            raise ConfigError(f"{src}: decontaminate.{k}: expected an integer >= 1, got {t[k]!r}")
    return dict(t)


def make_feature(t: dict) -> DecontamFeature:
    """Build (or load) the index in the driver and wrap it as the table feature."""
    from lmsieve.features.decontam import resolve_index

    build = {k: t[k] for k in ("n", "min_words", "columns") if k in t}
    if "bloom_fpr" in t:
        build["bloom_fpr"] = t["bloom_fpr"]
    return DecontamFeature(resolve_index(t["index"], **build), t.get("mode", "remove"), t.get("min_overlap", 1),
                           t.get("min_fraction"))


# -- the selection job's side ------------------------------------------------------------------------
def screen_unit(path: str, unit: int, keep_rows: np.ndarray, mode: str, n_sets: int):
    """(mask over ``keep_rows`` of the documents to keep ranking, their sets (report mode, else
    None), {"contaminated": n, "contaminated_by_set": Counter}) for one unit.

    ``keep_rows``: offsets (in the unit) of the documents still in play."""
    from lmsieve.pipelines.selection_job import read_side_unit

    t = read_side_unit(path, unit, [CONTAMINATED, SETS])
    flag = np.asarray(t.column(CONTAMINATED).fill_null(False).to_numpy(zero_copy_only=False), bool)[keep_rows]
    sets = t.column(SETS).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64).view(np.uint64)[keep_rows]
    by_set = Counter({s: int((((sets[flag] >> np.uint64(s)) & np.uint64(1)) > 0).sum()) for s in range(n_sets)})
    counts = {"contaminated": int(flag.sum()), "contaminated_by_set": by_set}
    if mode == "remove":
        return ~flag, None, counts
    return np.ones(len(flag), bool), np.where(flag, sets, np.uint64(0)), counts


def selected_counts(sets: np.ndarray | None, selected: np.ndarray, n_sets: int) -> dict:
    """Report mode: contaminated documents among the selected, per set."""
    if sets is None:
        return {}
    s = sets[selected]
    return {"contaminated_selected": int((s > 0).sum()),
            "contaminated_selected_by_set": Counter({k: int((((s >> np.uint64(k)) & np.uint64(1)) > 0).sum())
                                                     for k in range(n_sets)})}


def finish_counts(counts: dict, acc: dict, feature: DecontamFeature | None) -> dict:
    """Fold the unit counts into the manifest counts, as the in-process path does
    (:meth:`lmsieve.features.decontam.apply.Decontaminator.account`)."""
    if feature is None:
        return counts
    names = feature.set_names
    by_set = acc.get("contaminated_by_set", Counter())
    n = int(acc.get("contaminated", 0))
    entry = {"mode": feature.mode, "documents": n, "by_set": {nm: int(by_set.get(s, 0)) for s, nm in enumerate(names)},
             "rule": {"n": feature.summary["n"], "min_words": feature.summary["min_words"],
                      "min_overlap": feature.min_overlap, "min_fraction": feature.min_fraction,
                      "bloom_fpr": feature.summary["bloom_fpr"]},
             "eval_sets": [{k: s.get(k) for k in ("name", "files", "items", "ngrams", "whole_items", "too_short")}
                           for s in feature.summary["sets"]], "index": feature.index_fp}
    if feature.mode == "remove":
        counts["contaminated"] = n
        counts["contaminated_by_set"] = entry["by_set"]
        counts["rejected"] = int(counts["rejected"]) - n
    else:
        sel = acc.get("contaminated_selected_by_set", Counter())
        entry["selected"] = int(acc.get("contaminated_selected", 0))
        entry["selected_by_set"] = {nm: int(sel.get(s, 0)) for s, nm in enumerate(names)}
    counts["decontamination"] = entry
    return counts


__all__ = ["DecontamFeature", "finish_counts", "make_feature", "screen_unit", "selected_counts", "validate_table"]
