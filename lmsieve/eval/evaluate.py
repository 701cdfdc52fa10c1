"""One evaluation run, end to end (``lmsieve eval`` calls it): read the pool and target, run every
method over the seeds (:func:`lmsieve.eval.harness.run_eval`), summarise, and write ``eval.md``,
``eval.json`` and the plots to ``out`` (:func:`lmsieve.eval.report.write_report`)."""
from __future__ import annotations

from dataclasses import dataclass

from lmsieve.eval.harness import run_eval, summarize
from lmsieve.eval.proxy import ProxyEval
from lmsieve.eval.report import write_report
from lmsieve.io.inputs import load_docs
from lmsieve.io.paths import check_out


@dataclass
class EvalResult:
    rows: list[dict]  # one per method: mean and std over seeds, ratios to random
    paths: dict[str, str]  # report files written
    meta: dict


def evaluate(pool, target, methods: list[str], budget_chars: int, *, out: str, seeds: int = 3,
             proxy_steps: int = 300, max_target_examples: int | None = None, decontaminate: bool = True,
             text_column=None, id_column=None, target_text_column=None, target_id_column=None,
             progress=None) -> EvalResult:
    """Compare ``methods`` on ``pool`` for ``target`` at ``budget_chars`` characters each, over
    seeds 0..``seeds``-1 (``proxy_steps`` 0: no proxy loss); the report goes to ``out``."""
    check_out(out, "dir", flag="out", example="eval.md, eval.json, plots")
    pool_t, _ = load_docs(pool, name="pool", text_column=text_column, id_column=id_column)
    target_t, _ = load_docs(target, name="target", text_column=target_text_column, id_column=target_id_column)
    proxy = ProxyEval(steps=proxy_steps, eval_every=max(1, proxy_steps // 6)) if proxy_steps > 0 else None
    seed_list = list(range(seeds))
    runs = run_eval(pool_t, target_t, methods, budget_chars, seed_list, proxy=proxy,
                    max_target_examples=max_target_examples, decontaminate=decontaminate, progress=progress)
    rows = summarize(runs)
    meta = {"pool": [str(p) for p in pool] if isinstance(pool, (list, tuple)) else str(pool),
            "target": [str(p) for p in target] if isinstance(target, (list, tuple)) else str(target),
            "methods": methods, "budget_chars": budget_chars, "seeds": seed_list, "proxy_steps": proxy_steps,
            "max_target_examples": max_target_examples, "decontaminate": decontaminate,
            "proxy_tokens": proxy.tokens if proxy else 0}
    return EvalResult(rows, write_report(out, runs, rows, meta), meta)


__all__ = ["EvalResult", "evaluate"]
