"""Decontamination against evaluation sets: word n-gram containment (issue 20).

Procedure after GPT-3 (Brown et al. 2020, appendix C) and NeMo Curator's task decontamination:
normalise text (:mod:`.normalise`), hash word 13-grams of evaluation items into a sorted uint64
index (:mod:`.index`; or Bloom filters), and flag documents that share n-grams with an item
(:mod:`.flag`). This package is the one implementation the API, the CLI, the Beam jobs and the
datatrove step call. See docs/decontamination.md.
"""
from __future__ import annotations

import os

from lmsieve.features.decontam.flag import Flags, check_rule, flag_texts, matched_spans
from lmsieve.features.decontam.index import (DEFAULT_COLUMNS, DEFAULT_MIN_WORDS, DEFAULT_N, INDEX_JSON,
                                             DecontamIndex)
from lmsieve.features.decontam.normalise import normalise_text, words

CONTAMINATED = "contaminated"  # the manifest reason
MODES = ("remove", "report")


def eval_set_name(spec: str) -> tuple[str, str]:
    """(set name, path) of ``NAME=PATH`` or a plain path (name: the file or directory stem)."""
    if "=" in spec and not os.path.exists(spec):
        name, path = spec.split("=", 1)
        if name and "/" not in name:
            return name, path
    base = os.path.basename(spec.rstrip("/"))
    for ext in (".parquet", ".jsonl.gz", ".jsonl", ".json", ".csv.gz", ".csv", ".tsv"):
        if base.endswith(ext):
            base = base[: -len(ext)]
            break
    return base or spec, spec


def read_eval_sets(specs, columns=None) -> tuple[dict, dict]:
    """({name: table}, {name: [files]}) read through lmsieve's document reader."""
    from lmsieve.io.inputs import Paths, load_docs
    from lmsieve.schemas.errors import ConfigError

    cols = list(columns) if columns else list(DEFAULT_COLUMNS)
    tables, files = {}, {}
    for spec in specs:
        name, path = eval_set_name(spec)
        if name in tables:
            raise ConfigError(f"--eval: two evaluation sets are named {name!r} (use NAME=PATH)")
        table, read = load_docs(Paths([path]), name=f"eval {name}", columns=cols, require_text=False)
        tables[name], files[name] = table, [f.path for f in read]
    return tables, files


def build_index(eval_files, *, n: int = DEFAULT_N, min_words: int = DEFAULT_MIN_WORDS, columns=None,
                bloom_fpr: float | None = None) -> DecontamIndex:
    """An index of evaluation sets given as paths (``[NAME=]PATH``) or ``{name: table}``."""
    if isinstance(eval_files, dict):
        tables, files = eval_files, {}
    else:
        tables, files = read_eval_sets([eval_files] if isinstance(eval_files, str) else eval_files, columns)
    return DecontamIndex.build(tables, n=n, min_words=min_words, columns=columns, bloom_fpr=bloom_fpr, files=files)


def resolve_index(spec, **build_kw) -> DecontamIndex:
    """An index from ``spec``: a :class:`DecontamIndex`, a saved index directory, or evaluation
    files (one path or a list) to index now."""
    if isinstance(spec, DecontamIndex):
        return spec
    specs = [spec] if isinstance(spec, (str, os.PathLike)) else list(spec)
    if len(specs) == 1 and os.path.isfile(os.path.join(str(specs[0]), INDEX_JSON)):
        return DecontamIndex.load(str(specs[0]))
    return build_index([str(s) for s in specs], **build_kw)


__all__ = ["CONTAMINATED", "DEFAULT_COLUMNS", "DEFAULT_MIN_WORDS", "DEFAULT_N", "MODES", "DecontamIndex", "Flags",
           "build_index", "check_rule", "eval_set_name", "flag_texts", "matched_spans", "normalise_text",
           "read_eval_sets", "resolve_index", "words"]
