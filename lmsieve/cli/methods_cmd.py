"""``lmsieve methods [METHOD]``: every selection method with its paper, parameters, defaults and when
to use it (parameters are read from each selector's signature, so the list cannot go stale)."""
from __future__ import annotations

import inspect
import textwrap

#: When to reach for each method (from docs/ and the method specs); one or two lines each.
WHEN = {
    "dsir": "a fast first pass over a large pool: hashed n-gram importance weights, CPU-only, no model; "
            "good for topical or stylistic similarity to a target corpus of thousands of examples",
    "zipfit": "small targets (tens to thousands of examples) such as code or math: gzip alignment, no "
              "model, no fitting; cost grows with the target size (cap it with --max-target-examples in eval)",
    "random": "the baseline every selection should beat; a uniform sample from the stable (seed, id) hash",
    "color": "you can train (or have) a small proxy LM and want documents that help a downstream target: "
             "conditional loss reduction; slow on CPU (trains two proxies), use --save-fitted and reuse",
    "mates": "model-aware selection for an ongoing pretraining run: probes the proxy's loss change and "
             "learns a data-influence model; needs a proxy LM and some compute",
    "preselect": "you have several models of known quality: fastText classifier of documents whose loss "
                 "predicts model quality; cheap to score once fitted",
    "betr": "benchmark-targeted selection: embeds benchmark examples and a pool sample, then a fastText "
            "classifier scores the pool; needs a sentence-embedding model",
    "rds": "instruction-tuning data matched to a few task examples by LM hidden-state similarity (RDS+); "
           "global max-over-queries ranking",
    "rds-rr": "RDS+ with round-robin over the query examples: every example gets its share of the budget",
    "mona": "matching a task by monosemantic SAE features of an LM (needs a model and a sparse autoencoder)",
    "meta_rater": "combining quality signals (heuristics, DSIR, classifier scores) into one weighted rating",
    "classifier": "short benchmark targets (HumanEval-sized examples) against long documents: fastText "
                  "P(target) trained on the examples vs a pool sample (DCLM settings); with unit=window "
                  "it scores a document by its best target-sized window",
    "knn": "short targets when an embedding model is affordable: best cosine of any 512-byte window to any "
           "target example (all-MiniLM-L6-v2); round_robin=true spreads the budget over the examples",
}


#: Papers where a module's first docstring line does not cite one (as the method specs cite them).
PAPERS = {
    "zipfit": "ZIP-FIT: embedding-free data selection by compression-based alignment (Obbad et al., 2024)",
    "color": "CoLoR-Filter: conditional loss reduction filtering (Brandfonbrener et al., NeurIPS 2024)",
    "mates": "MATES: model-aware data selection with data influence models (Yu, Das, Xiong; NeurIPS 2024)",
    "preselect": "PreSelect: predictive data selection with a fastText scorer (Shum et al., 2025)",
    "random": "Random baseline: a uniform sample without replacement from the stable (seed, id) hash",
}


def add_parser(sub) -> None:
    p = sub.add_parser("methods", help="list the selection methods: paper, parameters, defaults, when to use",
                       description="Without METHOD: one entry per method. With METHOD: its parameters with "
                                   "types and defaults, and its --param notes.")
    p.add_argument("method", nargs="?", metavar="METHOD", help="show one method in detail")
    p.set_defaults(func=run)


def _paper(cls) -> str:
    doc = (inspect.getmodule(cls).__doc__ or "").strip().splitlines()
    return doc[0].rstrip(".") if doc else ""


def describe(method: str, detail: bool = False) -> str:
    from lmsieve.selectors.base import get_selector_class
    from lmsieve.selectors.params import signature_params

    cls = get_selector_class(method)
    lines = [f"{method}: {PAPERS.get(method) or _paper(cls)}"]
    wrap = lambda s, ind: textwrap.fill(s, 100, initial_indent=ind, subsequent_indent=ind)  # noqa: E731
    if method in WHEN:
        lines.append(wrap("when: " + WHEN[method], "    "))
    params = signature_params(cls)
    if detail:
        what = (cls.__doc__ or "").strip().splitlines()
        if what:
            lines.append(wrap(what[0], "    "))
        lines.append(f"    ranking default: {cls.default_ranking}; "
                     f"{'higher' if cls.higher_is_better else 'lower'} scores are better")
        lines.append("    parameters (--param KEY=VALUE, VALUE in JSON):")
        for n, p in params.items():
            ann = p.annotation if p.annotation is not inspect.Parameter.empty else ""
            ann = ann if isinstance(ann, str) else getattr(ann, "__name__", str(ann))
            default = "" if p.default is inspect.Parameter.empty else f" = {p.default!r}"
            lines.append(f"      {n}{': ' + ann if ann else ''}{default}")
    else:
        ps = ", ".join(f"{n}={p.default!r}" for n, p in params.items() if p.default is not inspect.Parameter.empty)
        lines.append(wrap("parameters: " + (ps or "none"), "    "))
    note = getattr(cls, "cli_note", "")
    if note:
        lines.append(wrap("note: " + note, "    "))
    return "\n".join(lines)


def run(args) -> int:
    from lmsieve.selectors.base import available_methods, get_selector_class

    if args.method:
        get_selector_class(args.method)  # unknown: one line listing the methods
        print(describe(args.method, detail=True))
        return 0
    print("\n\n".join(describe(m) for m in available_methods()))
    print("\n`lmsieve methods METHOD` shows one method's parameters with their types.")
    return 0
