"""The evaluation harness: for each method and seed, select the same character budget from the
pool and measure it (see ``metrics``), plus, when a proxy trainer is given, the held-out loss of a
tiny LM trained from scratch on the selection (same config and seed for every method).

The target is split once per seed by the stable hash of (seed, id) into a *selection half*, the
only part selectors see, and an *evaluation half*, which is only ever scored. Pool documents that
are evaluation examples (same id or identical text) are removed from the pool before any method
runs, so no method can train on what it is evaluated on. Pool documents that *contain* an
evaluation example (a shared word 13-gram, or a short example whole: :mod:`lmsieve.features.decontam`)
are removed before each method's budget is filled (``decontaminate=True``, the default), and each
run reports the share of the selection it would have made without that removal that was
contaminated: a targeted selector is expected to pick more of them than random.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lmsieve.selection.sample import run_selection
from lmsieve.selection.scoring import fit_and_score
from lmsieve.eval.metrics import domain_precision, kl_reduction, ngram_distribution
from lmsieve.sampling.hashing import stable_uniform
from lmsieve.sampling.select import Budget
from lmsieve.schemas.document import DOMAIN, ID, TEXT
from lmsieve.schemas.errors import ConfigError

#: (train_texts, eval_texts, seed) -> {"loss": float, "curve": [[tokens, loss], ...]}
ProxyFn = Callable[[list[str], list[str], int], dict]


def split_target(target: pa.Table, seed: int, eval_fraction: float = 0.5) -> tuple[pa.Table, pa.Table]:
    """(selection half, evaluation half) by the stable hash of (seed, id)."""
    u = stable_uniform(seed, target.column(ID))
    is_eval = u < eval_fraction
    if is_eval.all() or not is_eval.any():
        raise ConfigError(f"the target ({target.num_rows} examples) is too small to split")
    return target.filter(pa.array(~is_eval)), target.filter(pa.array(is_eval))


def exclude_examples(pool: pa.Table, examples: pa.Table) -> tuple[pa.Table, int]:
    """Pool without the rows whose id or exact text is one of ``examples``; and how many went."""
    planted = pc.or_(pc.is_in(pool.column(ID), value_set=examples.column(ID).combine_chunks()),
                     pc.is_in(pool.column(TEXT), value_set=examples.column(TEXT).combine_chunks()))
    n = int(pc.sum(planted).as_py() or 0)
    return pool.filter(pc.invert(planted)), n


@dataclass
class EvalRun:
    method: str
    seed: int
    docs: int
    chars: int
    precision: float | None
    kl_reduction: float
    proxy_loss: float | None = None
    curve: list = field(default_factory=list)
    contaminated_share: float | None = None  # of the selection before decontamination
    contaminated_docs: int | None = None

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def target_domain_of(target: pa.Table) -> str | None:
    if DOMAIN not in target.column_names:
        return None
    vals = set(target.column(DOMAIN).to_pylist())
    return vals.pop() if len(vals) == 1 and None not in vals else None


def run_eval(pool: pa.Table, target: pa.Table, methods: list[str], budget_chars: int, seeds: list[int],
             proxy: ProxyFn | None = None, method_params: dict[str, dict] | None = None,
             progress: Callable[[str], None] | None = None,
             max_target_examples: int | None = None, decontaminate: bool = True) -> list[EvalRun]:
    """One :class:`EvalRun` per (method, seed).

    ``max_target_examples`` caps the selection half every method sees (the same examples for all:
    the lowest stable hashes), which bounds the cost of methods linear in the target (ZIP-FIT).
    """
    from lmsieve import progress as _progress

    tdom = target_domain_of(target)
    has_domain = DOMAIN in pool.column_names
    runs = []
    bar = _progress.bar(total=len(seeds) * len(methods), desc="eval (method x seed)", unit="run")
    for seed in seeds:
        sel_half, eval_half = split_target(target, seed)
        if max_target_examples and sel_half.num_rows > max_target_examples:
            order = np.argsort(stable_uniform(seed, sel_half.column(ID)), kind="stable")
            sel_half = sel_half.take(pa.array(np.sort(order[:max_target_examples])))
        cand, _ = exclude_examples(pool, eval_half)
        chars = pc.utf8_length(cand.column(TEXT)).to_numpy(zero_copy_only=False).astype(np.int64)
        if budget_chars > chars.sum():
            raise ConfigError(f"budget of {budget_chars} characters exceeds the pool's {chars.sum()}")
        budget = Budget(length_fraction=budget_chars / float(chars.sum()))
        p_target = ngram_distribution(eval_half)
        p_pool = ngram_distribution(cand)
        flags = _contaminated(cand, eval_half) if decontaminate else None
        for method in methods:
            if progress:
                progress(f"seed {seed}: {method}")
            params = dict((method_params or {}).get(method, {}))
            name = params.pop("method", method)  # a labelled mode: {"dsir-window": {"method": "dsir", ...}}
            if name == "random":
                params.setdefault("seed", seed)
            with _progress.step(f"eval {method} seed {seed}: select", items=cand.num_rows):
                sel, s, e = fit_and_score(name, sel_half, cand, progress=None, **params)
                res = run_selection(sel, cand, budget, seed=seed, scores=s, eligible=e)
                n_contam, share = None, None
                if flags is not None:  # the audit, then the budget filled again without them
                    n_contam = int(flags[res.indices].sum())
                    share = n_contam / max(1, len(res.indices))
                    if n_contam:
                        res = run_selection(sel, cand, budget, seed=seed, scores=s, eligible=e & ~flags)
            chosen = res.selected
            texts = chosen.column(TEXT).to_pylist()
            run = EvalRun(
                method=method, seed=seed, docs=chosen.num_rows, chars=int(chars[res.indices].sum()),
                precision=domain_precision(chosen.column(DOMAIN).to_pylist(), tdom) if tdom and has_domain else None,
                kl_reduction=kl_reduction(p_target, p_pool, ngram_distribution(chosen)),
                contaminated_docs=n_contam, contaminated_share=share,
            )
            if proxy is not None:
                with _progress.step(f"eval {method} seed {seed}: proxy training", items=getattr(proxy, "tokens", None),
                                    unit="token"):
                    out = proxy(texts, eval_half.column(TEXT).to_pylist(), seed)
                run.proxy_loss, run.curve = float(out["loss"]), out.get("curve", [])
            runs.append(run)
            bar.update(1)
    bar.close()
    return runs


def _contaminated(cand: pa.Table, eval_half: pa.Table) -> np.ndarray:
    """Which candidates contain an evaluation example (its text, prompt and answer fields)."""
    from lmsieve.features.decontam import DecontamIndex, flag_texts

    return flag_texts(DecontamIndex.build({"eval": eval_half}), cand).flagged


def summarize(runs: list[EvalRun]) -> list[dict]:
    """Mean ± std per method over seeds, and the ratio of precision and proxy loss to random's."""
    methods = list(dict.fromkeys(r.method for r in runs))
    rows = []
    for m in methods:
        rs = [r for r in runs if r.method == m]
        row = {"method": m, "seeds": len(rs)}
        for k in ("precision", "kl_reduction", "proxy_loss", "docs", "chars", "contaminated_share",
                  "contaminated_docs"):
            vals = [getattr(r, k) for r in rs if getattr(r, k) is not None]
            if vals:
                row[k] = float(np.mean(vals))
                row[k + "_std"] = float(np.std(vals))
        rows.append(row)
    # Ratios only where they mean something (random's KL reduction is ~0 and may be negative).
    base = next((r for r in rows if r["method"] == "random"), None)
    for r in rows:
        for k in ("precision", "proxy_loss"):
            if base and k in r and k in base and base[k] not in (0, None):
                r[k + "_vs_random"] = r[k] / base[k]
    return rows
