"""Meta-rater: scaling, thresholds, the synthetic check through the selector's own search (fake proxy
trainer), save/load with every rater, the Beam job = the API."""
import numpy as np
import pyarrow as pa
import pytest

from lmsieve.selectors import get_selector_class
from lmsieve.selectors.meta_rater import scale_0_5, scale_classes, top_fraction_mask

Z_COLS = [f"z{i}" for i in range(25)]


def test_scaling_and_ties():
    X = np.array([[0.0, 3.0], [5.0, 3.0], [10.0, 3.0]])
    lo, hi = X.min(0), X.max(0)
    assert np.allclose(scale_0_5(X, lo, hi), [[0, 0], [2.5, 0], [5, 0]])  # constant -> 0
    assert np.allclose(scale_0_5(np.array([[20.0, 1.0]]), lo, hi), [[5.0, 0.0]])  # stored stats, clipped
    assert np.allclose(scale_0_5(np.array([[np.nan, 3.0]]), lo, hi), [[0.0, 0.0]])  # undefined -> 0
    assert np.allclose(scale_classes([0, 2, 5], 6), [0, 2, 5])
    assert np.allclose(scale_classes([[0.1, 0.9, 0.0]], 3), [2.5])
    s = np.array([1.0] * 10 + [2.0] * 10)
    assert top_fraction_mask(s, 0.15).sum() == 10  # ties at the threshold are kept
    s = np.arange(100.0)
    assert top_fraction_mask(s, 0.15).sum() == 15  # the 85th percentile


def _synthetic_pool(n=4000, seed=5):
    rng = np.random.Generator(np.random.PCG64(seed))
    Z = rng.normal(size=(n, 25))
    cols = {"id": [f"d{i}" for i in range(n)], "text": ["x"] * n, **{c: Z[:, j] for j, c in enumerate(Z_COLS)},
            "hidden": Z[:, 3] + Z[:, 17]}
    return pa.table(cols), Z


def _true_loss(Z, w):
    Xs = scale_0_5(Z, Z.min(0), Z.max(0))
    m = top_fraction_mask(Xs @ w)
    return -float((Z[m, 3] + Z[m, 17]).mean())


@pytest.mark.parametrize("candidate_alpha, min_mass", [(1.0, 0.25), (0.05, 0.5)])
def test_synthetic_check_through_the_selector(tmp_path, candidate_alpha, min_mass):
    """Spec §2: hidden quality = z3 + z17, proxy loss = −(mean hidden quality of the top 15 %) + noise;
    256 proxy runs through MetaRater.fit (run table, regressor, 200k candidates, mean of the best 128).
    With the paper's Dirichlet(1) candidates the mean of 128 cannot concentrate in 25 dimensions
    (a perfect regressor reaches ~0.35 of the mass on the two features), so the spec's > 50 % is
    checked with the reference's own --alpha knob at 0.05; both must beat uniform weights."""
    pool, Z = _synthetic_pool()
    cls = get_selector_class("meta_rater")
    sel = cls(redpajama=False, dsir_refs={}, score_columns=Z_COLS, trainer="_meta_rater_fake:trainer",
              proxy_runs=256, candidate_alpha=candidate_alpha, runs=str(tmp_path / "runs.parquet"),
              progress=False).fit(pool.slice(0, 10), pool)
    w = sel.weights_
    assert sel.names_ == Z_COLS and np.isclose(w.sum(), 1.0)
    assert w[3] + w[17] > min_mass
    assert _true_loss(Z, w) < _true_loss(Z, np.full(25, 1 / 25)) - 0.3
    assert sel.spearman_["target"] > 0.5  # held-out runs the regressor never saw
    # resumable: a second fit reads the 256 finished runs instead of training again
    import pyarrow.parquet as pq

    assert pq.read_table(tmp_path / "runs.parquet").num_rows == 256
    again = cls(redpajama=False, dsir_refs={}, score_columns=Z_COLS, trainer="tests_do_not_exist:nope",
                proxy_runs=256, candidate_alpha=candidate_alpha, runs=str(tmp_path / "runs.parquet"), progress=False)
    with pytest.raises(Exception, match="cannot import"):
        again.fit(pool.slice(0, 10), pool)  # the trainer is resolved before the table is read


def test_run_table_resume_skips_finished_runs(tmp_path):
    calls = []

    def counting(selected, evals, seed):
        calls.append(seed)
        return {"losses": {"target": float(seed), "general": 0.0}}

    from lmsieve.selectors.meta_rater_search import run_proxies

    pool, Z = _synthetic_pool(200)
    X = scale_0_5(Z, Z.min(0), Z.max(0))
    W1, L1, _ = run_proxies(X[:, :3], ["a", "b", "c"], pool, {}, counting, str(tmp_path / "r.parquet"), n_runs=4,
                            progress=False)
    W2, L2, _ = run_proxies(X[:, :3], ["a", "b", "c"], pool, {}, counting, str(tmp_path / "r.parquet"), n_runs=6,
                            progress=False)
    assert len(calls) == 6 and np.allclose(W1, W2[:4]) and np.allclose(L1, L2[:4])
    from lmsieve.schemas.errors import ConfigError

    with pytest.raises(ConfigError, match="another Meta-rater configuration"):
        run_proxies(X[:, :3], ["a", "b", "c"], pool, {}, counting, str(tmp_path / "r.parquet"), n_runs=6,
                    progress=False, config="other")


def test_user_columns_signs_classes_and_save(tmp_path):
    rng = np.random.Generator(np.random.PCG64(0))
    good, bad = rng.normal(size=200), rng.normal(size=200)
    cls6 = rng.integers(0, 6, 200).astype(float)
    t = pa.table({"id": [str(i) for i in range(200)], "text": ["x"] * 200, "good": good, "bad": bad, "prrc": cls6})
    cls = get_selector_class("meta_rater")
    sel = cls(score_columns=["good", "bad", "prrc"], classes={"prrc": 6}, redpajama=False, dsir_refs={},
              weights={"good": 1, "bad": 1}, signs={"bad": -1}).fit(None, t)
    s = sel.score(t)
    assert np.corrcoef(s, bad)[0, 1] < -0.3 and np.corrcoef(s, good)[0, 1] > 0.3
    assert sel.lo_[2] == 0 and sel.hi_[2] == 5  # classifier outputs: argmax/(n-1)*5, not min-max
    assert np.allclose(sel.scaled(t)[:, 2], cls6)
    again = cls.load(sel.save(tmp_path / "mr"))
    assert np.allclose(again.score(t.slice(0, 50)), s[:50])  # stored min–max statistics reused


def _tiny_models(root):
    """A tiny random Llama (HF dir with a word-level tokenizer) and a tiny fastText language id model."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["<unk>", "<pad>", "</s>", *"the a of to and in is it was for on he".split()])}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    hf_tok = PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="<unk>", pad_token="<pad>", eos_token="</s>")
    torch.manual_seed(0)
    lm = LlamaForCausalLM(LlamaConfig(vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64))
    lm.save_pretrained(root / "lm")
    hf_tok.save_pretrained(root / "lm")
    (root / "lid").mkdir()
    train = root / "lid.txt"
    train.write_text("".join(f"__label__en the cat is on the mat {i}\n__label__de der hund ist im haus {i}\n"
                             for i in range(50)))
    # trained in a fresh interpreter: fastText training hits NaN once torch is imported in the process
    import subprocess
    import sys

    code = ("import fasttext, sys; fasttext.train_supervised(sys.argv[1], epoch=5, verbose=0, minCount=1, dim=8, "
            "lr=0.1, thread=1).save_model(sys.argv[2])")
    # fastText's training on such a tiny file hits "Encountered NaN" now and then even in a fresh
    # process (seen about one run in three); the fixture only needs some model, so it tries again.
    for attempt in range(8):
        done = subprocess.run([sys.executable, "-c", code, str(train), str(root / "lid" / "lid.176.ftz")],
                              capture_output=True, text=True)
        if done.returncode == 0:
            break
    else:
        raise AssertionError(f"the tiny fastText fixture failed 8 times: {done.stderr[-300:]}")
    return str(root / "lm"), str(root / "lid" / "lid.176.ftz")


def test_save_load_round_trip_with_every_rater(tmp_path):
    """RedPajama signals, three DSIR references, both model raters, a user column and a classifier
    column: the loaded selector scores bit for bit like the fitted one (no pickle)."""
    import pyarrow.parquet as pq

    from lmsieve.data import sample_path

    lm, lid = _tiny_models(tmp_path)
    pool = pq.read_table(sample_path("pool.parquet")).slice(0, 120).select(["id", "text"])
    rng = np.random.Generator(np.random.PCG64(1))
    pool = pool.append_column("edu", pa.array(rng.normal(size=120))).append_column(
        "prrc", pa.array(rng.integers(0, 6, 120).astype(float)))
    cls = get_selector_class("meta_rater")
    sel = cls(models={"perplexity": lm, "english": lid}, score_columns=["edu", "prrc"], classes={"prrc": 6},
              max_tokens=32, signs={"perplexity": -1}, trainer="_meta_rater_fake_text:trainer", proxy_runs=8,
              n_candidates=2000, top_k=16, runs=str(tmp_path / "runs.parquet"), progress=False)
    sel.fit(pool.slice(0, 20), pool)
    assert len(sel.names_) == 11 + 3 + 2 + 2 and sel.names_[11:14] == ["dsir_wiki", "dsir_math", "dsir_books"]
    assert sel.weights_[sel.names_.index("perplexity")] <= 0  # the sign
    s = sel.score(pool)
    d = sel.save(tmp_path / "fitted")
    for f in ("selector.json", "arrays.npz", "dsir_wiki", "dsir_math", "dsir_books", "runs.parquet", "meta_rater.png"):
        assert (tmp_path / "fitted" / f).exists(), f
    again = cls.load(d)
    assert again.names_ == sel.names_
    assert np.array_equal(again.score(pool), s)
    via_param = cls(fitted=d).fit(None)
    assert not via_param.needs_pool_sample and np.array_equal(via_param.score(pool), s)


def test_api_equals_beam(tmp_path):
    """Fit once (save), then the Beam features + selection jobs score per document from the fitted dir."""
    import pyarrow.parquet as pq
    from _beam_fitted import beam_select_fitted

    from lmsieve.data import sample_path

    pool = pq.read_table(sample_path("pool.parquet")).slice(0, 300).select(["id", "text"])
    target = pq.read_table(sample_path("target_code_python.parquet")).slice(0, 10).select(["id", "text"])
    cls = get_selector_class("meta_rater")
    sel = cls(trainer="_meta_rater_fake_text:trainer", proxy_runs=8, n_candidates=2000, top_k=16,
              runs=str(tmp_path / "runs.parquet"), progress=False).fit(target, pool)
    fitted = sel.save(tmp_path / "fitted")
    from lmsieve.api import Budget, run_selection

    budget = Budget(length_fraction=0.1)
    ref = run_selection(cls(fitted=fitted).fit(None), pool, budget, seed=3).selected.column("id").to_pylist()
    (tmp_path / "beam").mkdir()
    got = beam_select_fitted(tmp_path / "beam", "meta_rater", fitted, pool, target, 170, budget, seed=3)
    assert len(ref) > 0 and got == ref


def test_cli_save_fitted_then_param_fitted(tmp_path):
    """`lmsieve select --method meta_rater --save-fitted DIR` runs the search; `--param fitted=DIR` reuses it."""
    import json

    import pyarrow.parquet as pq

    from lmsieve.cli.main import main
    from lmsieve.data import sample_path

    pool = tmp_path / "pool.parquet"
    pq.write_table(pq.read_table(sample_path("pool.parquet")).slice(0, 150), pool)
    tgt = sample_path("target_code_python.parquet")
    common = ["--target", tgt, "--pool", str(pool), "--keep", "20", "--no-progress"]
    params = ["--param", "trainer=_meta_rater_fake_text:trainer", "--param", "proxy_runs=6",
              "--param", "n_candidates=500", "--param", "top_k=8", "--param", f"runs={tmp_path / 'runs.parquet'}"]
    assert main(["select", "--method", "meta_rater", *common, *params, "--out", str(tmp_path / "a"),
                 "--save-fitted", str(tmp_path / "fitted")]) == 0
    assert (tmp_path / "fitted" / "meta_rater.png").is_file() and (tmp_path / "fitted" / "runs.parquet").is_file()
    assert pq.read_table(tmp_path / "runs.parquet").num_rows == 6
    assert main(["select", "--method", "meta_rater", *common, "--param", f"fitted={tmp_path / 'fitted'}",
                 "--out", str(tmp_path / "b")]) == 0
    a = pq.read_table(tmp_path / "a" / "scores.parquet")
    b = pq.read_table(tmp_path / "b" / "scores.parquet")
    assert a.column("score").to_pylist() == b.column("score").to_pylist()
    assert json.loads((tmp_path / "b" / "manifest.json").read_text())["method"] == "meta_rater"
