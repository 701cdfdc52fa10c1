"""Which method when: the guide at the end of ``lmsieve select --help``.

Figures from ``benchmarks/bench_short_targets.py`` (shared pool, 20,438 documents, 9 domains;
each target's examples capped at 64; share of the target's domain in the top 2% of documents;
one core of a busy 2-core machine). Update them with the benchmark.
"""
from __future__ import annotations

import textwrap

PARAGRAPHS = [
    "Which method when (figures: share of the target's domain in the top 2% of the shared pool; "
    "docs/s on one core of a busy machine; table below; docs/short-targets.md):",
    "dsir, zipfit -- the papers' methods, paper defaults. Use them when the target looks like whole "
    "pool documents (a held-out slice of a domain, long files or pages): heldout_code_python 1.00 with "
    "DSIR. On short targets (benchmark problems, QA items) they fall to the base rate or below: DSIR's "
    "log weight sums over the whole document, ZIP-FIT's NCD favours documents of the target's length "
    "(humaneval: DSIR 0.06, random 0.08).",
    "--param unit=window (dsir, zipfit, classifier) -- score every target-sized window of a document "
    "(window=auto: the median target length; window_overlap=0.5; window_reduce=max|mean_topk) and keep "
    "the document by its best window. For short targets against long documents. DSIR needs "
    "per_ngram=true with windows (humaneval 0.80; unnormalised 0.04); it costs ~7x paper DSIR. ZIP-FIT "
    "windows cost windows x examples compressions (see the table).",
    "classifier -- fastText target-vs-pool classifier with DCLM's settings, score = P(target). The first "
    "choice for short targets on a CPU: fitted in seconds, scores as fast as DSIR (humaneval 0.96, with "
    "unit=window 0.99). Weaker than DSIR when the target is whole documents (heldout_code_python 0.75). "
    "Save with --save-fitted and reuse with --param fitted=DIR (Beam, datatrove).",
    "knn -- sentence-embedding nearest neighbours per 512-byte window (all-MiniLM-L6-v2), score = best "
    "cosine to any target example; round_robin=true spreads picks over the examples as RDS+ does. For "
    "semantic rather than lexical matches (QA, prose) and with a GPU (--param device=cuda): every window "
    "of the pool is embedded; store=DIR keeps the embeddings so other targets reuse them.",
    "betr, rds, mona, color, mates, preselect -- the representation- and loss-based papers' methods; "
    "see docs/ and benchmarks/RESULTS.md.",
]

#: Measured with benchmarks/bench_short_targets.py (pre-formatted; printed as is).
TABLE = """\
target               mode               docs    top-2% precision  base  docs/s/core
humaneval            dsir               20,438  0.06              0.11  366
humaneval            dsir unit=window   20,438  0.04              0.11  52
humaneval            + per_ngram=true   20,438  0.80              0.11  56
humaneval            classifier         20,438  0.96              0.11  384
humaneval            classifier window  20,438  0.99              0.11  82
humaneval            random             20,438  0.08              0.11  -
heldout_code_python  dsir               20,438  1.00              0.11  126
heldout_code_python  dsir window+norm   20,438  1.00              0.11  36
heldout_code_python  classifier         20,438  0.75              0.11  140
heldout_code_python  classifier window  20,438  0.74              0.11  93
heldout_code_python  random             20,438  0.08              0.11  -"""


def method_guide(width: int = 100) -> str:
    return "\n\n".join([textwrap.fill(p, width) for p in PARAGRAPHS] + [TABLE])


__all__ = ["method_guide"]
