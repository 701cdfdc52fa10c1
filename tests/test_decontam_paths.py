"""Decontamination gives the same flags from the API, the CLI, the Beam jobs and datatrove, on any
sharding; the Beam features job resumes with the flag column; Beam selections never hold a flagged
document and their manifest counts add up (issue 20)."""
from __future__ import annotations

import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import pool_slice, target_set

from lmsieve.api import fit_and_score, run_selection
from lmsieve.cli.main import main
from lmsieve.features.decontam import DecontamIndex, flag_texts
from lmsieve.pipelines.decontam_step import CONTAMINATED, DecontamFeature
from lmsieve.pipelines.features import NgramFeature
from lmsieve.pipelines.features_job import run_features_job
from lmsieve.pipelines.options import make_options
from lmsieve.pipelines.selection_job import SelectionConfig, run_selection_job
from lmsieve.sampling.select import Budget

N = 480


def _opts():
    return make_options(["--runner=FnApiRunner"])


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("decontam_paths")
    pool = pool_slice(N)
    he, ch = target_set("humaneval"), target_set("champ")
    texts = pool.column("text").to_pylist()
    for j, d in enumerate(range(3, N, 31)):  # 16 planted items, alternating sets and fields
        src = (he, ch)[j % 2]
        item = src.column(("prompt", "text")[j // 2 % 2])[j].as_py()
        cut = len(texts[d]) // 3
        texts[d] = texts[d][:cut] + "\n\n" + item.upper().replace(",", " ,") + "\n" + texts[d][cut:]
    pool = pool.set_column(pool.column_names.index("text"), "text", pa.array(texts))
    pq.write_table(he, root / "humaneval.parquet")
    pq.write_table(ch, root / "champ.parquet")
    pq.write_table(he.slice(100, 40).select(["id", "text"]), root / "target.parquet")
    idx = DecontamIndex.build({"humaneval": he, "champ": ch})
    idx.save(str(root / "idx"))
    api = flag_texts(idx, pool)
    flagged = set(np.asarray(pool.column("id").to_pylist(), dtype=object)[api.flagged].tolist())
    assert len(flagged) >= 16
    return root, pool, idx, flagged


def _shards(pool, d, rows, rg):
    d.mkdir(parents=True, exist_ok=True)
    for i, s in enumerate(range(0, pool.num_rows, rows)):
        pq.write_table(pool.slice(s, rows), d / f"shard-{i}.parquet", row_group_size=rg)
    return str(d)


def _side_flags(feat_dir) -> set:
    ids = set()
    for f in sorted(os.listdir(feat_dir)):
        if f.endswith(".decontam.parquet"):
            t = pq.read_table(os.path.join(feat_dir, f))
            ids |= {i for i, c in zip(t.column("id").to_pylist(), t.column(CONTAMINATED).to_pylist()) if c}
    return ids


def test_beam_features_flags_equal_api_on_two_shardings_and_resume(data, tmp_path):
    root, pool, idx, flagged = data
    feat = DecontamFeature(idx)
    for rows, rg in ((120, 40), (96, 17)):
        pool_dir = _shards(pool, tmp_path / f"pool{rows}", rows, rg)
        out = tmp_path / f"feat{rows}"
        if rows == 120:  # killed on the last shard, then resumed
            with pytest.raises(Exception, match="injected failure on shard shard-3"):
                run_features_job(pool_dir, str(out), [feat], options=_opts(), progress_secs=0, fail_on_shard="shard-3")
            assert sorted(os.listdir(out)) == [f"shard-{i}.{f}.parquet" for i in range(3) for f in ("decontam", "docs")]
            rep = run_features_job(pool_dir, str(out), [DecontamFeature(DecontamIndex.load(str(root / "idx")))],
                                   options=_opts(), progress_secs=0)
            assert rep.computed == {"docs": 1, "decontam": 1} and rep.skipped == {"docs": 3, "decontam": 3}
        else:
            run_features_job(pool_dir, str(out), [feat], options=_opts(), progress_secs=0)
        assert _side_flags(out) == flagged


def test_datatrove_step_drops_exactly_the_flagged(data):
    pytest.importorskip("datatrove")
    from datatrove.data import Document

    from lmsieve.integrations.datatrove import DecontaminationFilter

    root, pool, idx, flagged = data
    docs = [Document(text=r["text"], id=r["id"], metadata={}) for r in pool.select(["id", "text"]).to_pylist()]
    step = DecontaminationFilter(str(root / "idx"), batch_size=37)
    kept = {d.id for d in step.run(iter(docs))}
    assert set(pool.column("id").to_pylist()) - kept == flagged
    stats = step.stats.to_dict() if hasattr(step.stats, "to_dict") else {}
    assert flagged and "dropped_contaminated" in json.dumps(stats)


def test_cli_and_beam_select_the_same_and_never_a_flagged_document(data, tmp_path):
    root, pool, idx, flagged = data
    pool_dir = _shards(pool, tmp_path / "pool", 160, 50)
    feat_dir = str(tmp_path / "feat")
    dfeat = DecontamFeature(idx)
    run_features_job(pool_dir, feat_dir, [NgramFeature(), dfeat], options=_opts(), progress_secs=0)
    cfg = SelectionConfig(method="dsir", budget=Budget(k=48), seed=5, ranking="topk", num_quantiles=5, decontam=dfeat)
    m = run_selection_job(pool_dir, feat_dir, [str(root / "target.parquet")], str(tmp_path / "beam"), cfg,
                          options=_opts(), progress_secs=0)
    beam_ids = pa.concat_tables([pq.read_table(tmp_path / "beam" / o["path"]) for o in m["outputs"]
                                 if o["path"].startswith("selected-")]).column("id").to_pylist()
    c = m["counts"]
    assert c["contaminated"] == len(flagged) and sum(c["contaminated_by_set"].values()) >= len(flagged)
    assert c["input"] == c["selected"] + c["rejected"] + c["quarantined"] + c["contaminated"] == N
    assert len(beam_ids) == 48 and not set(beam_ids) & flagged
    # the CLI with the same index selects the same documents
    assert main(["select", "--method", "dsir", "--target", str(root / "target.parquet"), "--pool", pool_dir,
                 "--keep", "48", "--seed", "5", "--ranking", "topk", "--out", str(tmp_path / "cli"), "--no-progress",
                 "--decontaminate", str(root / "idx")]) == 0
    cli = json.loads((tmp_path / "cli" / "manifest.json").read_text())
    cli_ids = pq.read_table(tmp_path / "cli" / "selected-00000-of-00001.parquet").column("id").to_pylist()
    assert sorted(cli_ids) == sorted(beam_ids)
    assert cli["counts"]["contaminated_by_set"] == c["contaminated_by_set"]
    # report mode reads the same side files (the mode is not part of the flags' fingerprint)
    rep_cfg = SelectionConfig(method="dsir", budget=Budget(k=48), seed=5, ranking="topk", num_quantiles=5,
                              decontam=DecontamFeature(idx, mode="report"))
    r = run_selection_job(pool_dir, feat_dir, [str(root / "target.parquet")], str(tmp_path / "rep"), rep_cfg,
                          options=_opts(), progress_secs=0)
    rep_ids = set(pa.concat_tables([pq.read_table(tmp_path / "rep" / o["path"]) for o in r["outputs"]
                                    if o["path"].startswith("selected-")]).column("id").to_pylist())
    dc = r["counts"]["decontamination"]
    assert dc["mode"] == "report" and dc["selected"] == len(rep_ids & flagged) >= 1
    assert r["counts"]["selected"] + r["counts"]["rejected"] + r["counts"]["quarantined"] == N
    # without decontamination the targeted selection does take planted documents
    sel, s, e = fit_and_score("dsir", pq.read_table(root / "target.parquet"), pool)
    plain = run_selection(sel, pool, Budget(k=48), seed=5, ranking="topk", scores=s, eligible=e)
    assert set(plain.selected.column("id").to_pylist()) & flagged


def test_job_spec_decontaminate_table_runs_and_validates(data, tmp_path, monkeypatch):
    from lmsieve.pipelines.jobspec import load_spec, run_job, validate_spec
    from lmsieve.schemas.errors import ConfigError

    root, pool, idx, flagged = data
    monkeypatch.chdir(tmp_path)
    _shards(pool.slice(0, 240), tmp_path / "pool", 80, 40)
    sub_flagged = flagged & set(pool.slice(0, 240).column("id").to_pylist())
    (tmp_path / "ev").mkdir()
    pq.write_table(target_set("humaneval"), tmp_path / "ev" / "humaneval.parquet")
    pq.write_table(target_set("champ"), tmp_path / "ev" / "champ.parquet")
    pq.write_table(pq.read_table(root / "target.parquet"), tmp_path / "target.parquet")
    (tmp_path / "job.toml").write_text(
        '[inputs]\npool = "pool/"\ntarget = "target.parquet"\n'
        '[features]\nout = "feat"\ncompute = ["dsir_ngrams"]\n'
        '[selection]\nmethod = "dsir"\nout = "sel"\nkeep = 30\nranking = "topk"\n'
        '[decontaminate]\nindex = ["ev/humaneval.parquet", "ev/champ.parquet"]\nmode = "remove"\n'
        '[beam]\nrunner = "FnApiRunner"\n')
    res = run_job(load_spec(tmp_path / "job.toml"), progress_secs=0)
    c = res.selection["counts"]
    assert c["contaminated"] == len(sub_flagged) >= 5
    assert c["input"] == c["selected"] + c["rejected"] + c["quarantined"] + c["contaminated"] == 240
    assert c["decontamination"]["eval_sets"][0]["name"] == "humaneval"
    sel = pa.concat_tables([pq.read_table(tmp_path / "sel" / o["path"]) for o in res.selection["outputs"]
                            if o["path"].startswith("selected-")])
    assert not set(sel.column("id").to_pylist()) & sub_flagged
    raw = {"inputs": {"pool": "pool/"}, "features": {"out": "feat", "compute": ["dsir_ngrams"]}}
    for bad, msg in (({"index": "ev/", "mode": "drop"}, "decontaminate.mode"),
                     ({"index": "ev/", "typo": 1}, "decontaminate.typo"), ({"mode": "remove"}, "decontaminate.index")):
        with pytest.raises(ConfigError, match=msg):
            validate_spec({**raw, "decontaminate": bad}, "j.toml")
