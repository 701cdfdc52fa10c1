"""Which method when: the guide at the end of ``lmsieve select --help``.

Figures from ``benchmarks/bench_short_targets.py`` (shared pool, 20,438 documents, 9 domains;
each target's examples capped at 64; share of the target's domain in the top 2% of documents;
one core of a busy 2-core machine). Update them with the benchmark.
"""
from __future__ import annotations

import textwrap

PARAGRAPHS = [
    "Which method when (see benchmarks/RESULTS.md):",
    "dsir, zipfit -- the papers' methods (paper defaults). Use them when the target looks like whole "
    "pool documents (a held-out slice of a domain, long files or pages): on heldout_code_python / "
    "heldout_math their top 2% is 0.99-1.00 on-domain. On short targets (benchmark problems, QA items) "
    "they collapse to the base rate: DSIR's log weight sums over the whole document and ZIP-FIT's NCD "
    "favours documents of the target's length (humaneval: DSIR 0.06, base rate 0.11).",
    "--param unit=window (dsir, zipfit, classifier) -- score every target-sized window of a document "
    "(window=auto: the median target length; window_overlap=0.5; window_reduce=max|mean_topk) and keep "
    "the document by its best window. For short targets with long pool documents. DSIR needs "
    "per_ngram=true with windows (humaneval: 0.80; unnormalised 0.04). ZIP-FIT windows are exact but cost "
    "windows x examples compressions (humaneval, 64 examples: ~3 docs/s/core).",
    "classifier -- fastText target-vs-pool classifier (DCLM settings), score = P(target). The first "
    "choice for short targets: cheap to fit and to run (~1,500 docs/s/core), no GPU (humaneval: 0.98; "
    "champ: see the table). Save with --save-fitted and reuse with --param fitted=DIR (Beam, datatrove).",
    "knn -- sentence-embedding nearest neighbours per window (all-MiniLM-L6-v2), score = best cosine "
    "to any target example; round_robin=true spreads picks over the examples as RDS+ does. For "
    "semantic rather than lexical targets (QA, prose) and when a GPU is available: on this CPU it "
    "embeds ~10 documents/s/core; store=DIR keeps window embeddings so other targets reuse them.",
    "betr, rds, mona, color, mates, preselect -- the representation- and loss-based papers' methods; "
    "see docs/ and benchmarks/RESULTS.md.",
]


def method_guide(width: int = 100) -> str:
    return "\n\n".join(textwrap.fill(p, width) for p in PARAGRAPHS)


__all__ = ["method_guide"]
