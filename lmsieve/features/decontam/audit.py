"""Audit a finished selection, mixture or release for evaluation-set overlap (``lmsieve decontaminate check``)."""
from __future__ import annotations

import glob
import json
import os


def selection_files(d: str) -> list[str]:
    """The document shards of a selection (selected-*), a release (data/*) or a plain directory."""
    for pattern in ("selected-*.parquet", os.path.join("data", "*.parquet"), "mixture-*.parquet"):
        files = sorted(glob.glob(os.path.join(d, pattern)))
        if files:
            return files
    skip = ("scores.parquet", "quarantine.parquet", "contaminated.parquet")
    files = sorted(f for f in glob.glob(os.path.join(d, "*.parquet")) if os.path.basename(f) not in skip)
    if not files:
        from lmsieve.schemas.errors import InputError

        raise InputError("no selected-*.parquet, data/*.parquet or *.parquet documents found", d)
    return files


def audit(docs, decon, top: int = 10) -> dict:
    """Counts per evaluation set and the ``top`` worst offenders with their matched span."""
    import numpy as np

    from lmsieve.features.decontam import matched_spans

    f = decon.flags(docs)
    idx = decon.index
    order = np.flatnonzero(f.flagged)
    order = order[np.lexsort((order, -f.matches[order]))][:top]
    texts = docs.column("text")
    offenders = []
    for i in order.tolist():
        item = int(f.item[i])
        offenders.append({
            "id": docs.column("id")[i].as_py(), "matches": int(f.matches[i]),
            "eval_sets": [n for s, n in enumerate(idx.set_names) if (int(f.sets[i]) >> s) & 1],
            "item": str(idx.item_ids[item]) if item >= 0 else None,
            "span": matched_spans(idx, texts[i].as_py(), item) if item >= 0 else None})
    return {"documents": docs.num_rows, "contaminated": int(f.flagged.sum()),
            "by_set": f.set_counts(idx.set_names, f.flagged), "offenders": offenders,
            "eval_sets": [{k: s.get(k) for k in ("name", "items", "ngrams")} for s in idx.sets]}


def audit_dir(d: str, decon, top: int = 10, json_path: str | None = None) -> dict:
    """:func:`audit` of the documents in directory ``d`` (:func:`selection_files`); with
    ``json_path`` the report is also written there as JSON (by rename)."""
    from lmsieve.io.inputs import Paths, load_docs

    docs, _ = load_docs(Paths(selection_files(d)), name="selection", columns=["id", "text"])
    rep = audit(docs, decon, top)
    if json_path:
        tmp = f"{json_path}.tmp"
        with open(tmp, "w") as fh:
            json.dump(rep, fh, indent=2)
        os.replace(tmp, json_path)
    return rep


__all__ = ["audit", "audit_dir", "selection_files"]
