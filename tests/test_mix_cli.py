"""`lmsieve mix` (sample), `lmsieve mix optimise` (callback and --runs), reports, and the Beam job's [mixture] step."""
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from _proxy_fixture import one_thread  # noqa: F401

from lmsieve.cli.main import main
from lmsieve.data import sample_path

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "jobs" / "mix_example.toml"
PSTAR = np.array([0.6, 0.3, 0.1])
pytestmark = pytest.mark.usefixtures("one_thread")  # GP fits: torch on one thread on a shared box


def _png_ok(path):
    import matplotlib.image as mpimg

    assert Path(path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100


def test_mix_sample_example_spec_meets_budget_and_is_reproducible(tmp_path, capsys):
    assert main(["mix", "--spec", str(EXAMPLE), "--out", str(tmp_path / "a")]) == 0
    assert json.loads(capsys.readouterr().out)["docs"] > 0
    rows = pq.read_table(tmp_path / "a" / "mixture-00000-of-00001.parquet").to_pylist()
    man = json.loads((tmp_path / "a" / "manifest.json").read_text())
    pool = pq.read_table(sample_path("pool.parquet")).to_pylist()
    w = {"code_python": 0.4, "tech_docs": 0.3, "literature": 0.2, "dictionary": 0.1}  # as in the example
    for d, share in w.items():
        got = sum(len(r["text"].encode()) for r in rows if r["domain"] == d)
        biggest = max(len(r["text"].encode()) for r in pool if r["domain"] == d)
        assert share * 100_000 <= got < share * 100_000 + biggest, d    # within one document
        c = man["counts"]["components"][d]
        assert c["tokens"] == got and c["docs"] == sum(r["domain"] == d for r in rows)
        assert c["chars"] == sum(len(r["text"]) for r in rows if r["domain"] == d)
    assert {r["domain"] for r in rows} == set(w)
    assert [r["id"] for r in rows] == [r["id"] for r in pool if r["id"] in {x["id"] for x in rows}]  # input order
    assert main(["mix", "--spec", str(EXAMPLE), "--out", str(tmp_path / "b")]) == 0
    for f in ("mixture-00000-of-00001.parquet", "manifest.json"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()
    assert main(["mix", "--spec", str(EXAMPLE), "--out", str(tmp_path / "c"), "--seed", "5"]) == 0
    assert pq.read_table(tmp_path / "c" / "mixture-00000-of-00001.parquet").column("id").to_pylist() != \
        [r["id"] for r in rows]


def test_mix_bad_spec_exits_2_naming_the_key(tmp_path, capsys):
    p = tmp_path / "m.toml"
    p.write_text('[mixture]\npool = "sample:pool.parquet"\nweights = {code_python = -1}\nbudget = 10\n')
    assert main(["mix", "--spec", str(p), "--out", str(tmp_path / "o")]) == 2
    assert "mixture.weights.code_python" in capsys.readouterr().err
    p.write_text('[mixture]\npool = "sample:pool.parquet"\nweights = {code_python = 1}\nbudget = 1e9\n')
    assert main(["mix", "--spec", str(p), "--out", str(tmp_path / "o")]) == 2
    assert "cannot fill its share" in capsys.readouterr().err
    assert not (tmp_path / "o" / "manifest.json").exists()


def _bowl(w: dict, cost: float) -> float:
    x = np.array([w["a"], w["b"], w["c"]])
    shift = 0.0 if cost == 1.0 else 0.05 * x[2]  # the cheap fidelity is biased and offset
    return float(((x - PSTAR) ** 2).sum() + 1.0 + shift + (0.2 if cost != 1.0 else 0.0))


def test_runs_table_recommendation_and_report(tmp_path, capsys):
    rng = np.random.Generator(np.random.PCG64(0))
    W = rng.dirichlet(np.ones(3), 30)
    cost = np.where(np.arange(30) % 3 == 0, 1.0, 0.1)
    t = pa.table({"w_a": W[:, 0], "w_b": W[:, 1], "w_c": W[:, 2], "fidelity_cost": cost,
                  "loss_code": [_bowl(dict(zip("abc", w)), c) for w, c in zip(W, cost)]})  # no fidelity/seconds
    pq.write_table(t, tmp_path / "runs.parquet")
    assert main(["mix", "optimise", "--runs", str(tmp_path / "runs.parquet"), "--out", str(tmp_path / "o")]) == 0
    rec = json.loads((tmp_path / "o" / "recommendation.json").read_text())["recommended"]
    assert abs(sum(rec.values()) - 1) < 1e-6
    assert np.abs(np.array([rec[k] for k in "abc"]) - PSTAR).sum() < 0.25
    s = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert {"target", "components", "recommended", "n_runs", "total_cost", "by_fidelity", "plots"} <= set(s)
    assert s["n_runs"] == 30 and s["total_cost"] == pytest.approx(cost.sum()) and s["target"] == "code"
    for name in s["plots"].values():
        _png_ok(tmp_path / "o" / name)
    assert (tmp_path / "o" / "manifest.json").exists()
    t2 = t.set_column(4, "loss_code", pa.array([*t.column("loss_code").to_pylist()[:3], float("nan"),
                                                *t.column("loss_code").to_pylist()[4:]]))
    pq.write_table(t2, tmp_path / "bad.parquet")
    assert main(["mix", "optimise", "--runs", str(tmp_path / "bad.parquet"), "--out", str(tmp_path / "p")]) == 2
    err = capsys.readouterr().err
    assert "bad.parquet" in err and "row 3" in err and "loss_code" in err


def test_optimise_with_callback_is_resumable_and_writes_a_usable_spec(tmp_path):
    from lmsieve.mixtures import load_spec
    from lmsieve.mixtures.session import run_optimise

    spec = tmp_path / "s.toml"
    spec.write_text('[mixture]\nweights = {a = 1, b = 1, c = 1}\nbudget = 1000\n'
                    '[optimise]\ntarget = "code.parquet"\nn_init = 3\nn_runs = 6\nn_candidates = 32\n')
    calls = []

    def train_fn(weights, fidelity, seed):  # a user's own cluster, plugged in as a callback
        calls.append(weights)
        return {"losses": {"code": _bowl(weights, fidelity.cost)}, "seconds": 1.0, "flops": 1.0}

    s = run_optimise(spec, str(tmp_path / "o"), train_fn=train_fn)
    runs = pq.read_table(tmp_path / "o" / "runs.parquet").to_pylist()
    assert len(runs) == len(calls) and 6 <= len(runs) <= 8  # 6 + recommended and uniform, unless queried
    assert {"run_id", "w_a", "w_b", "w_c", "fidelity", "fidelity_cost", "seconds", "flops", "seed",
            "loss_code"} <= set(runs[0])
    rec = s["recommended"]
    lu = s["loss_at_target_fidelity"]
    assert lu["recommended"] < lu["uniform"]
    again = load_spec(tmp_path / "o" / "recommended.toml")
    assert again.weights == pytest.approx(rec, abs=1e-5)
    n = len(calls)
    run_optimise(spec, str(tmp_path / "o"), train_fn=train_fn)  # rerun: every run is in the table
    assert len(calls) == n
    for name in ("trace.png", "weights.png"):
        _png_ok(tmp_path / "o" / name)


def test_report_trace_and_meta_rater_plot(tmp_path):
    from lmsieve.mixtures.report import trace_curves, write_report

    rows = [{"fidelity": f, "fidelity_cost": c, "loss_t": y} for f, c, y in
            [("lo", 0.1, 5.0), ("hi", 1.0, 4.0), ("lo", 0.1, 4.5), ("hi", 1.0, 4.2), ("lo", 0.1, 4.8)]]
    tc = trace_curves(rows, "t")
    assert tc["lo"][0] == pytest.approx([0.1, 1.2, 2.3]) and tc["lo"][1] == [5.0, 4.5, 4.5]
    assert tc["hi"][0] == pytest.approx([1.1, 2.2]) and tc["hi"][1] == [4.0, 4.0]
    s = write_report(str(tmp_path), rows=rows, components=["x", "y"], target="t", recommended={"x": 0.7, "y": 0.3},
                     meta_rater=(["dsir", "word.n_words"], np.array([0.8, -0.2])))
    assert s["meta_rater_weights"] == {"dsir": 0.8, "word.n_words": -0.2}
    assert s["by_fidelity"]["lo"] == {"runs": 3, "cost": 0.1, "best_loss": 4.5}
    for name in ("trace.png", "weights.png", "meta_rater.png"):
        _png_ok(tmp_path / name)


def _job(tmp_path, mixture: str) -> Path:
    p = tmp_path / "job.toml"
    p.write_text(f'[inputs]\npool = "sample:pool.parquet"\n'
                 f'[features]\nout = "{tmp_path}/features"\ncompute = ["random"]\n'
                 f'[selection]\nmethod = "random"\nout = "{tmp_path}/selected"\nkeep_fraction = 0.5\n'
                 f'[mixture]\n{mixture}\n[beam]\nrunner = "FnApiRunner"\n')
    return p


def test_beam_job_mixture_step_samples_the_selection(tmp_path):
    from lmsieve.mixtures import MixtureSpec
    from lmsieve.mixtures.mixing import mix
    from lmsieve.pipelines.jobspec import load_spec as load_job
    from lmsieve.schemas.errors import ConfigError

    with pytest.raises(ConfigError, match="mixture.weights.x"):
        load_job(_job(tmp_path, 'out = "o"\nweights = {x = -1}\nbudget = 5'))
    with pytest.raises(ConfigError, match="mixture.pool"):
        load_job(_job(tmp_path, 'out = "o"\nweights = {x = 1}\nbudget = 5\npool = "p"'))
    job = _job(tmp_path, f'out = "{tmp_path}/mix"\nweights = {{code_python = 0.5, literature = 0.5}}\n'
                         'budget = 200000\nseed = 1')
    assert main(["run", str(job), "--no-progress"]) == 0
    got = pq.read_table(tmp_path / "mix" / "mixture-00000-of-00001.parquet")
    man = json.loads((tmp_path / "mix" / "manifest.json").read_text())
    assert [f["path"] for f in man["inputs"]["pool"]] == [str(p) for p in sorted((tmp_path / "selected").glob(
        "selected-*.parquet"))]
    selected = {i for f in (tmp_path / "selected").glob("selected-*.parquet")
                for i in pq.read_table(f).column("id").to_pylist()}
    assert set(got.column("id").to_pylist()) <= selected
    # the same sample `lmsieve mix` draws from the selection output
    direct, _ = mix(MixtureSpec(weights={"code_python": 0.5, "literature": 0.5}, budget=200000, seed=1,
                                pool=(str(tmp_path / "selected" / "selected-00000-of-00001.parquet"),)))
    assert direct.column("id").to_pylist() == got.column("id").to_pylist()
