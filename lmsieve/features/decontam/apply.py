"""Decontamination as a step of a run: flag a table, remove or report, and account for it.

One object (:class:`Decontaminator`) carries the index and the rule and is what the API, the CLI
commands and the job specs build from ``--decontaminate INDEX_OR_FILES`` /
``--decontaminate-mode remove|report``. In ``remove`` mode (default) contaminated documents leave
the pool after scoring and before the budget is filled (fitting sees the whole pool, as in the
Beam jobs, so the API, the CLI and Beam select the same documents), and the manifest counts them under
the reason ``contaminated`` (``input = selected + rejected + quarantined + contaminated``); in
``report`` mode they stay and the manifest says how many of them were selected.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lmsieve.features.decontam import CONTAMINATED, MODES, DecontamIndex, Flags, check_rule, flag_texts, resolve_index
from lmsieve.schemas.errors import ConfigError

CONTAMINATED_FILE = "contaminated.parquet"


@dataclass
class Decontaminator:
    index: DecontamIndex
    mode: str = "remove"
    min_overlap: int = 1
    min_fraction: float | None = None
    max_matches: int | None = None  # in-process only: see flag_texts

    def __post_init__(self):
        if self.mode not in MODES:
            raise ConfigError(f"--decontaminate-mode: must be one of {', '.join(MODES)}, got {self.mode!r}")
        check_rule(self.min_overlap, self.min_fraction)

    @classmethod
    def from_spec(cls, spec, mode: str = "remove", min_overlap: int = 1, min_fraction=None, max_matches=None,
                  **build_kw):
        """``spec``: a saved index directory, evaluation files, or a :class:`DecontamIndex`; ``None``: none."""
        if spec is None or (isinstance(spec, (list, tuple)) and not spec):
            return None
        return cls(resolve_index(spec, **build_kw), mode, int(min_overlap), min_fraction, max_matches)

    def flags(self, table, progress: bool = False) -> Flags:
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(table), unit="doc", desc="decontaminating", smoothing=0.1)
        try:
            return flag_texts(self.index, table, min_overlap=self.min_overlap, min_fraction=self.min_fraction,
                              max_matches=self.max_matches, progress=bar.update if bar else None)
        finally:
            if bar is not None:
                bar.close()

    def params(self) -> dict:
        """What determines the flags (part of run keys and manifests)."""
        return {"mode": self.mode, "min_overlap": self.min_overlap, "min_fraction": self.min_fraction,
                **({"max_matches": self.max_matches} if self.max_matches is not None else {}), "index": self.index.fingerprint(), **self.index.params()}

    def screen(self, table: pa.Table, progress: bool = False) -> tuple[Flags, pa.Table]:
        """(flags of every row, with their ids kept; the contaminated rows' record)."""
        f = self.flags(table, progress)
        f.ids = table.column("id").to_pylist()
        return f, contaminated_table(table.column("id"), f, self.index)

    def drop(self, table: pa.Table, scores: np.ndarray, eligible: np.ndarray, record: pa.Table):
        """``remove`` mode: (table, scores, eligible) without the rows in ``record`` (by id); the
        hook between scoring and sampling, so fitting saw the same pool as the Beam jobs'."""
        if self.mode != "remove" or record.num_rows == 0:
            return table, scores, eligible
        keep = ~pc.is_in(table.column("id"), value_set=record.column("id")).to_numpy(zero_copy_only=False)
        return table.filter(pa.array(keep)), scores[keep], eligible[keep]

    def account(self, counts: dict, flags: Flags, selected_ids=None) -> dict:
        """Add the contamination to manifest ``counts`` (in place; returns it).

        ``remove``: ``contaminated`` documents leave ``rejected``. ``report``: nothing is removed;
        ``selected_ids`` (with the ``ids`` the flags were computed for, kept by :meth:`screen`)
        give how many selected documents are contaminated, per evaluation set."""
        names = self.index.set_names
        n = int(flags.flagged.sum())
        entry = {"mode": self.mode, "documents": n, "by_set": flags.set_counts(names, flags.flagged),
                 "rule": {"n": self.index.n, "min_words": self.index.min_words, "min_overlap": self.min_overlap,
                          "min_fraction": self.min_fraction, "bloom_fpr": self.index.bloom_fpr,
                          "max_matches": self.max_matches, "ignored_ngrams": flags.ignored},
                 "eval_sets": [{k: s.get(k) for k in ("name", "files", "items", "ngrams", "whole_items", "too_short")}
                               for s in self.index.sets], "index": self.index.fingerprint()}
        if self.mode == "remove":
            counts["contaminated"] = n
            counts["contaminated_by_set"] = entry["by_set"]
            counts["rejected"] = int(counts["rejected"]) - n
        elif selected_ids is not None and flags.ids is not None:
            sel = pc.is_in(pa.array(flags.ids, pa.string()), value_set=pa.array(list(selected_ids), pa.string()))
            sel = sel.to_numpy(zero_copy_only=False) & flags.flagged
            entry["selected"] = int(sel.sum())
            entry["selected_by_set"] = flags.set_counts(names, sel)
        counts["decontamination"] = entry
        return counts


def contaminated_table(ids, flags: Flags, index: DecontamIndex) -> pa.Table:
    """One row per flagged document: id, evaluation sets, best item, matched n-grams."""
    idx = np.flatnonzero(flags.flagged)
    names = index.set_names
    sets = [",".join(n for s, n in enumerate(names) if (int(m) >> s) & 1) for m in flags.sets[idx].tolist()]
    items = [str(index.item_ids[i]) if i >= 0 else None for i in flags.item[idx].tolist()]
    ids = ids.take(pa.array(idx)) if hasattr(ids, "take") else pa.array(np.asarray(ids, dtype=object)[idx], pa.string())
    return pa.table({"id": ids, "reason": pa.array([CONTAMINATED] * len(idx), pa.string()),
                     "eval_sets": pa.array(sets, pa.string()), "item": pa.array(items, pa.string()),
                     "matches": pa.array(flags.matches[idx], pa.int32())})


def add_cli_args(p, *, with_mode: bool = True) -> None:
    """``--decontaminate``, ``--decontaminate-mode``, ``--min-overlap`` for a command."""
    p.add_argument("--decontaminate", nargs="+", metavar="INDEX_OR_FILES",
                   help="flag documents sharing a word 13-gram (or holding a short item whole) with an evaluation "
                        "set: a saved index (`lmsieve decontaminate build`) or evaluation files "
                        "(see docs/decontamination.md)")
    if with_mode:
        p.add_argument("--decontaminate-mode", choices=MODES, default="remove",
                       help="remove (default): contaminated documents leave the pool before the budget is filled "
                            "(manifest reason 'contaminated'); report: only flag and count them")
    p.add_argument("--min-overlap", type=int, default=1, metavar="K",
                   help="with --decontaminate: shared distinct n-grams with one item that flag a document (default 1)")
    p.add_argument("--max-matches", type=int, default=None, metavar="M",
                   help="with --decontaminate: ignore n-grams found in more than M input documents (NeMo's "
                        "boilerplate rule; in-process commands only; default off)")


def from_args(args) -> Decontaminator | None:
    spec = getattr(args, "decontaminate", None)
    return Decontaminator.from_spec(spec, getattr(args, "decontaminate_mode", "remove"),
                                    getattr(args, "min_overlap", 1),
                                    max_matches=getattr(args, "max_matches", None)) if spec else None


__all__ = ["CONTAMINATED_FILE", "Decontaminator", "add_cli_args", "contaminated_table", "from_args"]
