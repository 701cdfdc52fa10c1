"""One model stack: a foreign HF Llama dir (random init, BPE trained in the test) goes through the same
code as lmsieve's proxies: losses against a naive per-document loop, batching/padding/order invariance
(the stated tolerance), pooled states, hooks that stop early, fine-tuning, save/load, optimizer state,
capped context, device/dtype defaults; SmolLM2 perplexity when it is in the model cache."""
import copy
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _proxy_fixture import one_thread  # noqa: F401
from _tiny_llama import DEFAULT_TEXTS, build_tiny_llama, smollm2_dir, tiny_llama_dir

from lmsieve.features.device import resolve_dtype
from lmsieve.features.proxy_lm import (LoadedLM, chunk_losses, document_losses, finetune, load_proxy, pooled_states,
                                       save_proxy)
from lmsieve.features.proxy_lm.pooling import hidden_batches
from lmsieve.schemas.errors import ConfigError

#: Batched vs one-window-per-pass scores: float32 on CPU agrees to ~1e-6 nats/token (measured); asserted at 1e-4.
TOL = 1e-4
TEXTS = [DEFAULT_TEXTS[0][:n] for n in (5, 400, 1, 130, 2000, 64)] + ["", "def f(x): return x"]


@pytest.fixture(scope="module")
def lm(one_thread):  # noqa: F811
    return load_proxy(tiny_llama_dir(), device="cpu")


def naive_nll(lm, text: str) -> tuple[float, int]:
    """Per document, one forward pass over [bos] + tokens (shorter than the context), summed NLL."""
    ids = [lm.tokenizer.bos_id] + lm.tokenizer.hf(text, add_special_tokens=False)["input_ids"]
    if len(ids) < 2:
        return 0.0, 0
    x = torch.tensor([ids])
    with torch.no_grad():
        logits = lm.model(input_ids=x).logits[0, :-1].double()
    return float(F.cross_entropy(logits, x[0, 1:], reduction="sum")), len(ids) - 1


def test_foreign_dir_loads_as_hf_with_its_tokenizer(lm):
    assert lm.kind == "hf" and isinstance(lm, LoadedLM)
    assert lm.context == 256 and lm.device.type == "cpu"
    assert next(lm.model.parameters()).dtype == torch.float32
    assert lm.tokenizer.bos_id == lm.tokenizer.hf.convert_tokens_to_ids("<s>")
    ids = lm.tokenizer.encode_batch(["the cat sat"])[0]
    assert lm.tokenizer.decode(ids) == "the cat sat"


def test_losses_equal_a_naive_loop_and_batching_changes_nothing(lm):
    short = [t for t in TEXTS if len(lm.tokenizer.encode_batch([t])[0]) < lm.context]
    batched = document_losses(lm, short, batch_tokens=4096)
    for i, t in enumerate(short):
        nll, n = naive_nll(lm, t)
        assert batched.n_tokens[i] == n
        assert batched.total_nll[i] == pytest.approx(nll, rel=1e-5, abs=1e-5)
    single = document_losses(lm, TEXTS, batch_tokens=1)
    many = document_losses(lm, TEXTS, batch_tokens=1 << 16)
    rev = document_losses(lm, TEXTS[::-1], batch_tokens=300)
    ok = single.n_tokens > 0
    np.testing.assert_allclose(many.mean_ce[ok], single.mean_ce[ok], atol=TOL)
    np.testing.assert_allclose(rev.mean_ce[::-1][ok], single.mean_ce[ok], atol=TOL)
    assert np.array_equal(single.n_tokens, many.n_tokens)
    assert np.isnan(single.mean_ce[TEXTS.index("")])
    nb = np.array([len(t.encode()) for t in TEXTS])
    np.testing.assert_allclose(single.nats_per_byte[ok], single.total_nll[ok] / nb[ok])
    ce1, k1 = chunk_losses(lm, TEXTS, chunk_len=50, batch_tokens=1)
    ce2, k2 = chunk_losses(lm, TEXTS, chunk_len=50, batch_tokens=8192)
    for a, b, c, d in zip(ce1, ce2, k1, k2):
        assert c.tolist() == d.tolist()
        np.testing.assert_allclose(a, b, atol=TOL)


def test_sliding_window_beyond_the_context(lm):
    text = " ".join(DEFAULT_TEXTS)  # several contexts long
    n = len(lm.tokenizer.encode_batch([text])[0])
    assert n > 2 * lm.context
    r = document_losses(lm, [text], window=128, stride=64)
    assert r.n_tokens[0] == n  # every token scored once
    with pytest.raises(ConfigError, match="exceeds the model context"):
        document_losses(lm, [text], window=lm.context + 1)


def test_pooled_states_padding_and_order_change_nothing(lm):
    ref = np.stack([pooled_states(lm, [t], batch_tokens=1)[0] for t in TEXTS])
    both = pooled_states(lm, TEXTS, batch_tokens=1 << 16)
    rev = pooled_states(lm, TEXTS[::-1], batch_tokens=500)[::-1]
    np.testing.assert_allclose(both, ref, atol=TOL)
    np.testing.assert_allclose(rev, ref, atol=TOL)
    ids = [lm.tokenizer.bos_id] + lm.tokenizer.encode_batch([TEXTS[1]])[0].tolist()
    with torch.no_grad():
        h = lm.model(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states[-1][0].double()
    w = torch.arange(1, len(ids) + 1, dtype=torch.float64)
    v = (w[:, None] * h).sum(0)
    np.testing.assert_allclose(ref[1], (v / v.norm()).numpy(), atol=1e-5)


def test_hooks_stop_early_with_the_same_states(lm):
    seqs = [np.array([lm.tokenizer.bos_id] + lm.tokenizer.encode_batch([t])[0].tolist()) for t in TEXTS[:3]]
    for layer in (0, 1):
        for idx, h, mask in hidden_batches(lm, seqs, layer=layer):
            for r, i in enumerate(idx):
                with torch.no_grad():
                    full = lm.model(input_ids=torch.tensor(seqs[i][None]), output_hidden_states=True).hidden_states
                np.testing.assert_allclose(h[r, : len(seqs[i])].numpy(), full[layer][0].numpy(), atol=1e-5)


def test_finetune_save_load_and_optimizer_of_a_foreign_model(lm, tmp_path):
    tuned = copy.deepcopy(lm)
    train = list(DEFAULT_TEXTS) * 4
    before = document_losses(tuned, list(DEFAULT_TEXTS)).total_nll.sum()
    finetune(tuned, train, {"batch_size": 4, "lr": 3e-3}, window=64)
    assert tuned.kind == "lmsieve" and tuned.path is None
    after = document_losses(tuned, list(DEFAULT_TEXTS)).total_nll.sum()
    assert after < 0.9 * before
    assert document_losses(lm, list(DEFAULT_TEXTS)).total_nll.sum() == pytest.approx(before)  # original untouched
    out = save_proxy(tuned, tmp_path / "tuned", optimizer=True)
    meta = json.loads((out / "lmsieve.json").read_text())
    assert meta["base"] == str(tiny_llama_dir().resolve()) and meta["context"] == 256
    back = load_proxy(out, device="cpu", with_optimizer=True)
    assert back.kind == "lmsieve" and back.model_hash() != lm.model_hash()
    assert document_losses(back, TEXTS).total_nll.tolist() == document_losses(tuned, TEXTS).total_nll.tolist()
    # the restored AdamW state gives the same step as the in-memory one
    x = torch.tensor([[lm.tokenizer.bos_id] + lm.tokenizer.encode_batch(["a probe sequence"])[0].tolist()])
    for m in (tuned, back):
        loss = m.token_nll(x).mean()
        m.optimizer.zero_grad()
        loss.backward()
        m.optimizer.step()
    for (n, p), q in zip(tuned.model.named_parameters(), back.model.parameters()):
        assert torch.equal(p, q), n


def test_context_is_capped_and_defaults(tmp_path):
    d = build_tiny_llama(tmp_path / "long", context=131072, n_layer=1, d_model=32, n_head=2)
    lm = load_proxy(d, device="auto")
    assert lm.context == 2048 and lm.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert load_proxy(d, device="cpu", max_context=100).context == 100
    assert resolve_dtype("auto", torch.device("cpu")) == torch.float32
    assert resolve_dtype("fp16", torch.device("cpu")) == torch.float16
    half = load_proxy(d, device="cpu", dtype="bfloat16")
    assert next(half.model.parameters()).dtype == torch.bfloat16
    r = document_losses(half, ["the cat sat on the mat"])
    assert np.isfinite(r.total_nll).all()
    with pytest.raises(ConfigError):
        load_proxy(d, dtype="int8")
    with pytest.raises(ConfigError, match="not a local path|not a directory|models fetch"):
        load_proxy(tmp_path / "nope")  # neither a directory nor a fetched name


def test_smollm2_perplexity_on_english_pool_documents(one_thread):  # noqa: F811
    """With SmolLM2-135M in the cache: perplexity (per token, 10 English shared-pool documents) < 60."""
    from conftest import pool_slice

    d = smollm2_dir()
    lm = load_proxy(d, device="cpu")
    assert lm.context == 2048 and lm.num_layers() == 30 and lm.hidden_size() == 576
    t = pool_slice(400)
    doms = t.column("domain").to_pylist()
    texts = [s[:600] for s, dm in zip(t.column("text").to_pylist(), doms) if dm in ("literature", "tech_docs", "news",
                                                                                        "wiki", "legal")][:10]
    assert len(texts) == 10
    r = document_losses(lm, texts)
    ppl = math.exp(r.total_nll.sum() / r.n_tokens.sum())
    print(f"SmolLM2-135M perplexity on 10 English pool documents: {ppl:.1f}")
    assert ppl < 60, ppl  # measured 15.4


def test_unknown_parameter_is_one_line_listing_the_parameters():
    from lmsieve.api import make_selector

    with pytest.raises(ConfigError, match=r"color has no parameter 'prior'; valid: .*\bmodel=None"):
        make_selector("color", prior="somewhere")
    with pytest.raises(ConfigError, match=r"preselect has no parameter 'modle' \(did you mean 'models'\?\)"):
        make_selector("preselect", modle=["a", "b", "c"])
