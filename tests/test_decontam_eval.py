"""Decontamination in `lmsieve eval` (per-method contamination share), releases (card, verify) and mix."""
from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
from conftest import pool_slice, target_set

import _decontam_reference as R
from lmsieve.cli.main import main
from lmsieve.eval.harness import run_eval, split_target, summarize
from lmsieve.eval.report import markdown_table


def _planted_pool(n_pool=800, n_plant=40):
    pool = pool_slice(n_pool).select(["id", "text", "domain"])
    target = target_set("humaneval")
    _, eval_half = split_target(target, seed=0)
    texts = pool.column("text").to_pylist()
    for j in range(n_plant):
        d = j * (n_pool // n_plant)
        item = eval_half.column("prompt")[j % eval_half.num_rows].as_py()
        texts[d] = texts[d][: len(texts[d]) // 2] + "\n" + item + "\n" + texts[d][len(texts[d]) // 2:]
    return pool.set_column(1, "text", pa.array(texts)), target, eval_half


def test_eval_reports_contamination_per_method_and_never_trains_on_it():
    pool, target, eval_half = _planted_pool()
    seen = []

    def recording_proxy(train_texts, eval_texts, seed):
        seen.append(train_texts)
        return {"loss": 0.0, "curve": []}

    runs = run_eval(pool, target, ["dsir", "random"], 600_000, [0], proxy=recording_proxy)
    by = {r.method: r for r in runs}
    assert by["dsir"].contaminated_docs >= 5  # the targeted selector goes for the planted items
    assert by["dsir"].contaminated_share > by["random"].contaminated_share
    ref = R.build({"eval": eval_half})
    for train in seen:  # after removal, no selection holds an evaluation example
        assert not any(R.flag(ref, t) for t in train)
    rows = summarize(runs)
    assert "contaminated before removal" in markdown_table(rows)
    assert {r["method"]: r["contaminated_docs"] for r in rows} == {m: r.contaminated_docs for m, r in by.items()}
    off = run_eval(pool, target, ["dsir"], 600_000, [0], decontaminate=False)
    assert off[0].contaminated_share is None


def test_release_card_states_eval_sets_and_verify_passes(tmp_path, capsys):
    pool, target, eval_half = _planted_pool(400, 20)
    pq.write_table(pool, tmp_path / "pool.parquet")
    pq.write_table(target, tmp_path / "humaneval.parquet")
    pq.write_table(target.slice(0, 40).select(["id", "text"]), tmp_path / "t.parquet")
    assert main(["select", "--method", "dsir", "--target", str(tmp_path / "t.parquet"), "--pool",
                 str(tmp_path / "pool.parquet"), "--keep", "60", "--out", str(tmp_path / "sel"), "--no-progress",
                 "--decontaminate", str(tmp_path / "humaneval.parquet")]) == 0
    assert main(["release", "--selection", str(tmp_path / "sel"), "--out", str(tmp_path / "rel"), "--name", "x"]) == 0
    card = (tmp_path / "rel" / "README.md").read_text()
    sel_counts = json.loads((tmp_path / "sel" / "manifest.json").read_text())["counts"]
    assert "## Decontamination" in card and "| humaneval | 164 |" in card
    assert f"| {sel_counts['contaminated_by_set']['humaneval']:,} |" in card
    assert main(["verify", str(tmp_path / "rel")]) == 0
    # a release decontaminated again at release time, against a selection made without it
    assert main(["select", "--method", "dsir", "--target", str(tmp_path / "t.parquet"), "--pool",
                 str(tmp_path / "pool.parquet"), "--keep", "60", "--ranking", "topk", "--out", str(tmp_path / "sel2"),
                 "--no-progress"]) == 0
    assert main(["release", "--selection", str(tmp_path / "sel2"), "--out", str(tmp_path / "rel2"), "--name", "y",
                 "--decontaminate", str(tmp_path / "humaneval.parquet")]) == 0
    m = json.loads((tmp_path / "rel2" / "manifest.json").read_text())
    removed = m["counts"]["decontamination"]["release"]["removed"]
    assert removed >= 1 and m["counts"]["released"]["documents"] == 60 - removed
    assert main(["verify", str(tmp_path / "rel2")]) == 0
    assert "At release:" in (tmp_path / "rel2" / "README.md").read_text()


def test_mix_removes_contaminated_before_sampling(tmp_path):
    from lmsieve.mixtures.mixing import mix
    from lmsieve.mixtures.spec import spec_from_dict

    pool, target, eval_half = _planted_pool(400, 20)
    spec = spec_from_dict({"weights": {"code_go": 0.5, "tech_docs": 0.5}, "budget": 200_000, "unit": "chars",
                           "component_column": "domain"})
    pq.write_table(eval_half, tmp_path / "ev.parquet")
    rows, man = mix(spec, None, pool=pool, decontaminate=str(tmp_path / "ev.parquet"))
    ref = R.build({"eval": eval_half})
    assert man["counts"]["contaminated"] >= 10
    assert not any(R.flag(ref, t) for t in rows.column("text").to_pylist())
