"""CoLoR-Filter: bigram stand-ins (spec §3 CPU validation), real tiny proxies, save/load, API = Beam."""
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import torch
from _beam_fitted import beam_select_fitted
from _proxy_fixture import one_thread  # noqa: F401
from conftest import pool_slice, target_set

from lmsieve.api import fit_and_score, run_selection
from lmsieve.features.proxy_lm.config import TokenizerConfig
from lmsieve.features.proxy_lm.tokenizer import train_tokenizer
from lmsieve.sampling.select import Budget
from lmsieve.selectors.color_filter import ColorFilter

TINY_MODEL = {"n_layer": 2, "d_model": 64, "n_head": 2, "context": 128}
TINY_TRAIN = {"steps": 100, "batch_size": 16, "lr": 3e-3, "warmup_steps": 20}
BYTES = train_tokenizer(TokenizerConfig(kind="byte"), [])  # 259 ids: <bos> <eos> <pad> + the 256 bytes


class BigramLM:
    """A count-based byte bigram LM behind the ``LoadedLM`` interface (logits = log p(next | current))."""

    def __init__(self, counts: np.ndarray):
        p = counts / counts.sum(axis=1, keepdims=True)
        self.table = torch.from_numpy(np.log(p)).float()
        self.tokenizer, self.context, self.device = BYTES, 1 << 20, torch.device("cpu")

    def run(self, ids, mask, **kw):
        return self.table[ids], None


def bigram_counts(texts, alpha=0.1) -> np.ndarray:
    c = np.full((259, 259), alpha)
    for ids in BYTES.encode_batch(pa.array(texts)):
        seq = np.concatenate([[BYTES.bos_id], ids])
        np.add.at(c, (seq[:-1], seq[1:]), 1.0)
    return c


def two_domains(n_pool=1500, a="code_python", b="literature", per=40, max_chars=1500):
    t = pool_slice(n_pool)
    pick = pa.concat_tables([t.filter(pc.equal(t.column("domain"), d)).slice(0, per) for d in (a, b)])
    return pick.set_column(pick.schema.get_field_index("text"), "text", pc.utf8_slice_codeunits(pick.column("text"), 0, max_chars))


@pytest.fixture(scope="module")
def bigram_setup():
    pool = two_domains()
    target = target_set("heldout_code_python").slice(0, 80).column("text").to_pylist()
    prior = bigram_counts(pool.column("text").to_pylist())
    cond = prior + bigram_counts(target, alpha=0.0)
    return pool, BigramLM(prior), BigramLM(cond)


def test_bigram_standins_rank_target_chunks_first_and_swap_inverts(bigram_setup):
    pool, prior, cond = bigram_setup
    tau = 4
    sel = ColorFilter.from_models(prior, cond, tau=tau, chunk_len=256, batch_tokens=8192)
    scores, toks = sel.score_chunks(pool)
    is_code = np.array(pool.column("domain").to_pylist()) == "code_python"
    flat = np.concatenate(scores)
    chunk_code = np.concatenate([np.full(len(s), c) for s, c in zip(scores, is_code)])
    picked = sel.select_chunks(pool)
    assert len(picked) == len(flat) // tau  # floor(N / tau) chunks
    offsets = np.cumsum([0] + [len(s) for s in scores])[:-1]
    picked_flat = offsets[picked[:, 0]] + picked[:, 1]
    assert chunk_code[picked_flat].mean() >= 0.95
    # document level through the API's primitives: top 1/tau is code
    s, e = sel.score_and_mask(pool)
    res = run_selection(sel, pool, Budget(fraction=1 / tau), scores=s, eligible=e)
    assert len(res.indices) == pool.num_rows // tau
    assert is_code[res.indices].mean() >= 0.95
    # swapping prior and conditional negates every score and so inverts the ranking
    swapped = ColorFilter.from_models(cond, prior, tau=tau, chunk_len=256, batch_tokens=8192)
    sw = np.concatenate(swapped.score_chunks(pool)[0])
    np.testing.assert_allclose(sw, -flat, atol=1e-6)
    order, order_sw = np.argsort(-flat, kind="stable"), np.argsort(-sw, kind="stable")
    assert np.corrcoef(np.argsort(order), np.argsort(order_sw))[0, 1] < -0.99
    top_sw = swapped.select_chunks(pool)
    assert chunk_code[offsets[top_sw[:, 0]] + top_sw[:, 1]].mean() <= 0.2  # the bottom of the original ranking


def test_chunk_list_mismatch_is_refused(bigram_setup):
    pool, prior, cond = bigram_setup

    class Shifted(BigramLM):
        pass

    other = Shifted(np.ones((259, 259)))
    other.tokenizer = type("T", (), {"encode_batch": lambda self, b: [np.zeros(3, np.int32)] * len(b),
                                     "bos_id": 256, "pad_id": 258})()
    with pytest.raises(RuntimeError, match="chunk list"):
        ColorFilter.from_models(prior, other, chunk_len=256).score_chunks(pool.slice(0, 5))


@pytest.fixture(scope="module")
def real(tmp_path_factory, one_thread):  # noqa: F811
    pool = two_domains(per=60, max_chars=1500)
    target = target_set("heldout_code_python").slice(0, 40)
    params = dict(tau=10, chunk_len=128, proxy_model=TINY_MODEL, proxy_train=TINY_TRAIN, seed=3,
                  finetune_train={"batch_size": 64})
    sel, s, e = fit_and_score("color", target, pool, **params)
    root = tmp_path_factory.mktemp("color")
    return pool, target, params, sel, s, e, root


def test_real_tiny_proxies_top10_precision(real):
    pool, _, _, sel, s, e, _ = real
    res = run_selection(sel, pool, Budget(fraction=0.1), scores=s, eligible=e)
    is_code = np.array(pool.column("domain").to_pylist()) == "code_python"
    assert len(res.indices) == pool.num_rows // 10
    assert is_code[res.indices].mean() >= 0.8, is_code[res.indices].mean()


def test_save_load_and_beam_match_api(real):
    pool, target, params, sel, s, e, root = real
    d = sel.save(root / "fitted")
    assert (root / "fitted" / "prior" / "model.safetensors").is_file()
    again = ColorFilter.load(d)
    np.testing.assert_allclose(again.score(pool.slice(0, 30)), s[:30], atol=1e-5)  # other batches: float tolerance
    # Beam: the features job stores the fitted selector's scores; the selection job cuts them
    got = beam_select_fitted(root, "color", d, pool, target, 70, Budget(fraction=0.1), seed=4)
    ref = run_selection(sel, pool, Budget(fraction=0.1), seed=4, scores=s, eligible=e).selected.column("id").to_pylist()
    assert len(ref) == 12 and got == ref


# -- a foreign Hugging Face prior (tiny random-init Llama dir) -----------------------------------------
def naive_doc_scores(prior, cond, texts, chunk_len):
    """Per document, chunk by chunk, one forward pass per model: token-weighted mean of L_prior − L_cond."""
    out = []
    for text in texts:
        ids = prior.tokenizer.hf(text, add_special_tokens=False)["input_ids"]
        num = den = 0.0
        for s in range(0, len(ids), chunk_len):
            x = torch.tensor([[prior.tokenizer.bos_id] + ids[s:s + chunk_len]])
            with torch.no_grad():
                ce = [float(torch.nn.functional.cross_entropy(m.model(input_ids=x).logits[0, :-1].double(), x[0, 1:]))
                      for m in (prior, cond)]
            num += (ce[0] - ce[1]) * (x.shape[1] - 1)
            den += x.shape[1] - 1
        out.append(num / den if den else 0.0)
    return np.array(out)


@pytest.fixture(scope="module")
def hf_prior(tmp_path_factory, one_thread):  # noqa: F811
    from _tiny_llama import tiny_llama_dir

    pool = two_domains(per=25, max_chars=500)
    target = target_set("heldout_code_python").slice(0, 30)
    d = tiny_llama_dir(texts=pool.column("text").to_pylist(), vocab_size=600, n_layer=2, d_model=64, context=256)
    params = dict(model=str(d), tau=5, chunk_len=64, seed=1, device="cpu", finetune_train={"lr": 3e-3})
    sel, s, e = fit_and_score("color", target, pool, **params)
    return pool, target, params, sel, s, e, tmp_path_factory.mktemp("color-hf")


def test_hf_prior_conditional_is_a_real_finetune(hf_prior):
    from lmsieve.features.proxy_lm import document_losses

    pool, target, params, sel, s, e, _ = hf_prior
    assert sel.prior_.kind == "hf" and sel.conditional_.kind == "lmsieve"
    p, c = dict(sel.prior_.model.named_parameters()), dict(sel.conditional_.model.named_parameters())
    assert p.keys() == c.keys() and all(not torch.equal(p[k], c[k]) for k in p)
    held = target_set("heldout_code_python").slice(30, 20).column("text").to_pylist()
    lp, lc = (document_losses(m, [t[:800] for t in held]) for m in (sel.prior_, sel.conditional_))
    assert lc.total_nll.sum() < 0.9 * lp.total_nll.sum()  # held-out target text: the conditional fits it better
    texts = pool.column("text").to_pylist()
    np.testing.assert_allclose(s, naive_doc_scores(sel.prior_, sel.conditional_, texts, 64), atol=1e-4)
    is_code = np.array(pool.column("domain").to_pylist()) == "code_python"
    assert s[is_code].mean() > s[~is_code].mean()


def test_hf_prior_fitted_dir_runs_in_beam(hf_prior):
    pool, target, params, sel, s, e, root = hf_prior
    d = sel.save(root / "fitted")
    for name in ("prior", "conditional"):
        assert {"config.json", "model.safetensors", "tokenizer.json"} <= {f.name for f in (root / "fitted" / name).iterdir()}
    again = ColorFilter(fitted=str(d), device="cpu").fit(target)
    np.testing.assert_allclose(again.score(pool), s, atol=1e-5)
    got = beam_select_fitted(root, "color", str(d), pool, target, 23, Budget(fraction=0.2), seed=4,
                             selector_kwargs={"device": "cpu"})
    ref = run_selection(sel, pool, Budget(fraction=0.2), seed=4, scores=s, eligible=e).selected.column("id").to_pylist()
    assert len(ref) == 10 and got == ref


def test_fitted_selector_pickles_without_its_models(hf_prior):
    import pickle

    pool, target, params, sel, s, e, root = hf_prior
    d = root / "fitted-pickle"
    sel.save(d)
    fitted = ColorFilter(fitted=str(d), device="cpu").fit(target)
    blob = pickle.dumps(fitted)
    assert len(blob) < 20_000  # the models reload from the fitted dir on the worker
    np.testing.assert_allclose(pickle.loads(blob).score(pool), s, atol=1e-5)
