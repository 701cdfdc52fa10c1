"""eval.md formatting (issue 15): the target as text, no "± 0.000" for one seed, loss in nats/byte."""
from __future__ import annotations

from lmsieve.eval.harness import EvalRun, summarize
from lmsieve.eval.report import markdown_table, write_report


def _runs(seeds):
    return [EvalRun(method=m, seed=s, docs=10 + s, chars=1000, precision=0.5 + 0.1 * s if m == "dsir" else 0.2,
                    kl_reduction=0.3, proxy_loss=1.5 + 0.01 * s) for m in ("dsir", "random") for s in seeds]


def test_one_seed_has_no_std_and_the_target_is_plain_text(tmp_path):
    runs = _runs([0])
    rows = summarize(runs)
    md = markdown_table(rows)
    assert "±" not in md
    assert "| dsir | 0.500 | 0.300 | 1.500 | 1.000 | 10 | 1,000 |" in md
    assert "proxy loss (nats/byte)" in md and "nats/token" not in md
    write_report(str(tmp_path), [r for r in runs], rows, {"target": ["a.parquet", "b.jsonl"], "budget_chars": 1000,
                                                          "seeds": [0]})
    text = (tmp_path / "eval.md").read_text()
    assert text.startswith("Target `a.parquet, b.jsonl`, budget 1,000 characters, 1 seed\n")
    assert "['a.parquet'" not in text


def test_several_seeds_show_mean_and_std(tmp_path):
    rows = summarize(_runs([0, 1]))
    md = markdown_table(rows)
    assert "| dsir | 0.550 ± 0.050 |" in md
    write_report(str(tmp_path), _runs([0, 1]), rows, {"target": ["t.parquet"], "budget_chars": 5, "seeds": [0, 1]})
    assert (tmp_path / "eval.md").read_text().startswith("Target `t.parquet`, budget 5 characters, 2 seeds (mean ± std over seeds)")
