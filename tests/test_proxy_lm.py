"""Proxy LM: it learns its domain; losses match slow references; padding and batching change nothing;
checkpoints round-trip and never unpickle; fine-tuning and optimizer state; local HF models."""
import json
import math
import pickle
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _proxy_fixture import TINY_MODEL, domain_docs, one_thread, tiny_proxy_dir  # noqa: F401
from conftest import target_set

from lmsieve.features.proxy_lm import (chunk_losses, document_losses, finetune, load_proxy, save_proxy,
                                       train_proxy)
from lmsieve.schemas.errors import ConfigError

CTX = TINY_MODEL["context"]


@pytest.fixture(scope="module")
def lm(one_thread):  # noqa: F811
    return load_proxy(tiny_proxy_dir(), device="cpu")


def seq_nll_reference(lm, ids, window, stride):
    """Slow reference: each target scored by its own forward pass over the context the sliding
    window gives it (window k = smallest k with k*stride + window >= position)."""
    s = torch.tensor(np.concatenate([[lm.tokenizer.bos_id], ids]), dtype=torch.long)
    total = 0.0
    with torch.no_grad():
        for p in range(1, len(s)):
            k = max(0, math.ceil((p - window) / stride))
            ctx = s[k * stride:p]
            assert 1 <= len(ctx) <= window
            logits = lm.model(ctx[None]).logits
            total -= float(torch.log_softmax(logits[0, -1].double(), -1)[s[p]])
    return total


def full_context_nll(lm, ids):
    s = torch.tensor(np.concatenate([[lm.tokenizer.bos_id], ids]), dtype=torch.long)[None]
    with torch.no_grad():
        logits = lm.model(s[:, :-1]).logits
    return float(F.cross_entropy(logits[0].double(), s[0, 1:], reduction="sum"))


def test_proxy_learns_its_domain(lm):
    """Trained on literature: held-out literature is far likelier than held-out Go code (which is
    the more predictable text for a model trained on it), and far below the uniform 8 bits/byte."""
    lit = document_losses(lm, [t[:2000] for t in target_set("heldout_literature").column("text").to_pylist()[:40]])
    go = document_losses(lm, [t[:2000] for t in target_set("heldout_code_go").column("text").to_pylist()[:40]])
    lit_ce = lit.total_nll.sum() / lit.n_tokens.sum()
    go_ce = go.total_nll.sum() / go.n_tokens.sum()
    assert lit_ce < 0.75 * go_ce
    assert lit_ce < 0.5 * math.log(lm.tokenizer.vocab_size)
    assert np.nanmedian(lit.bpc) < np.nanmedian(go.bpc)


def test_sliding_window_equals_full_context_for_short_document(lm):
    text = "It is a truth universally acknowledged, that a single man in possession of a good fortune."
    ids = lm.tokenizer.encode_batch([text])[0]
    assert len(ids) < CTX
    ref = full_context_nll(lm, ids)
    for window, stride in ((CTX, 16), (CTX, CTX), (len(ids) + 1, 7)):
        r = document_losses(lm, [text], window=window, stride=stride)
        assert r.n_tokens[0] == len(ids)
        assert r.total_nll[0] == pytest.approx(ref, rel=1e-5)
    assert r.bpc[0] == pytest.approx(ref / (len(text) * math.log(2)), rel=1e-5)
    assert r.mean_ce[0] == pytest.approx(ref / len(ids), rel=1e-5)


def test_sliding_window_scores_each_token_once_with_its_window_context(lm):
    text = domain_docs("literature").column("text")[5].as_py()[:200]
    ids = lm.tokenizer.encode_batch([text])[0]
    for window, stride in ((64, 16), (50, 50)):
        r = document_losses(lm, [text], window=window, stride=stride)
        assert r.n_tokens[0] == len(ids)
        assert r.total_nll[0] == pytest.approx(seq_nll_reference(lm, ids, window, stride), rel=1e-5)


def test_batch_of_one_equals_padded_batch(lm):
    texts = [t[:n] for t, n in zip(domain_docs("literature").column("text").to_pylist()[:7],
                                   (10, 700, 1, 130, 2500, 64, 333))] + [""]
    together = document_losses(lm, texts, batch_tokens=4096)
    singles = [document_losses(lm, [t]) for t in texts]
    np.testing.assert_allclose(together.total_nll, [s.total_nll[0] for s in singles], rtol=1e-5, atol=1e-6)
    assert together.n_tokens.tolist() == [len(t.encode()) for t in texts]
    assert np.isnan(together.mean_ce[-1]) and together.total_nll[-1] == 0
    ce_b, tok_b = chunk_losses(lm, texts, chunk_len=100)
    for t, c, k in zip(texts, ce_b, tok_b):
        c1, k1 = chunk_losses(lm, [t], chunk_len=100)
        np.testing.assert_allclose(c, c1[0], rtol=1e-5)
        assert k.tolist() == k1[0].tolist()


def test_chunk_mode(lm):
    for n in (0, 1, 511, 512, 513, 1100):
        ce, tok = chunk_losses(lm, ["a" * n], chunk_len=512)
        assert len(ce[0]) == len(tok[0]) == math.ceil(n / 512)
        assert tok[0].tolist() == [min(512, n - i) for i in range(0, n, 512)]
    text = domain_docs("literature").column("text")[3].as_py()[:250]
    ids = lm.tokenizer.encode_batch([text])[0]
    ce, tok = chunk_losses(lm, [text], chunk_len=100)  # each chunk fits the 128-token context
    ref = [full_context_nll(lm, ids[i:i + 100]) / len(ids[i:i + 100]) for i in range(0, len(ids), 100)]
    np.testing.assert_allclose(ce[0], ref, rtol=1e-5)


def test_checkpoint_round_trip(lm, tmp_path):
    out = save_proxy(lm, tmp_path / "copy")
    back = load_proxy(out, device="cpu")
    a, b = lm.model.state_dict(), back.model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    texts = ["To be, or not to be", "func main() {}"]
    assert document_losses(back, texts).total_nll.tolist() == document_losses(lm, texts).total_nll.tolist()
    assert json.loads((out / "lmsieve.json").read_text())["format"] == "lmsieve-proxy-lm"
    assert json.loads((out / "config.json").read_text())["architectures"] == ["LlamaForCausalLM"]


class _Boom:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))  # unpickling creates the marker file


def test_loading_never_executes_code_from_the_checkpoint(lm, tmp_path, monkeypatch):
    marker = tmp_path / "PWNED"
    payload = pickle.dumps({"state": _Boom(marker)})
    # An HF-looking directory whose only weights are a pickle: refused, nothing unpickled.
    evil = tmp_path / "evil"
    evil.mkdir()
    (evil / "config.json").write_text(json.dumps({"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]}))
    (evil / "pytorch_model.bin").write_bytes(payload)
    with pytest.raises(ConfigError):
        load_proxy(evil, device="cpu")
    # A real checkpoint with pickles beside it: loads, and the pickles are never opened.
    ck = tmp_path / "ck"
    shutil.copytree(tiny_proxy_dir(), ck)
    for name in ("pytorch_model.bin", "model.pt", "optimizer.pt", "training_args.bin"):
        (ck / name).write_bytes(payload)

    def refuse(*a, **k):
        raise AssertionError("unpickling attempted")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    back = load_proxy(ck, device="cpu", with_optimizer=True)
    assert back.optimizer is not None
    assert not marker.exists()


def test_finetune_one_epoch_lowers_loss_on_the_target(lm, tmp_path):
    tuned = load_proxy(tiny_proxy_dir(), device="cpu")
    go = target_set("heldout_code_go")
    train = [t[:1500] for t in go.column("text").to_pylist()[:40]]
    held = [t[:2000] for t in go.column("text").to_pylist()[40:60]]
    before = document_losses(tuned, held)
    finetune(tuned, train, {"batch_size": 16, "lr": 2e-3})
    tokens = sum(len(t.encode()) + 1 for t in train)  # + <bos> per document
    windows = math.ceil((tokens - 1) / CTX)
    assert len(tuned.history) == math.ceil(windows / 16)  # one epoch
    after = document_losses(tuned, held)
    assert after.total_nll.sum() < 0.9 * before.total_nll.sum()
    assert document_losses(lm, held).total_nll.tolist() == before.total_nll.tolist()  # the original is untouched


def test_optimizer_state_round_trip_gives_the_same_adamw_step(tmp_path):
    src = load_proxy(tiny_proxy_dir(), device="cpu", with_optimizer=True)
    assert src.optimizer.state, "the saved checkpoint carries AdamW moments"
    ck = save_proxy(src, tmp_path / "with-opt", optimizer=True)
    back = load_proxy(ck, device="cpu", with_optimizer=True)
    for (n, p), (_, q) in zip(src.model.named_parameters(), back.model.named_parameters()):
        s, t = src.optimizer.state[p], back.optimizer.state[q]
        assert torch.equal(s["exp_avg"], t["exp_avg"]) and torch.equal(s["exp_avg_sq"], t["exp_avg_sq"]), n
        assert float(s["step"]) == float(t["step"])
    batch = torch.tensor([[src.tokenizer.bos_id] + src.tokenizer.encode_batch(["probe sequence for one step"])[0].tolist()])
    for m in (src, back):  # one AdamW step each, from the original and the restored state
        loss = F.cross_entropy(m.model(batch[:, :-1]).logits[0], batch[0, 1:])
        m.optimizer.zero_grad()
        loss.backward()
        m.optimizer.step()
    for p, q in zip(src.model.parameters(), back.model.parameters()):
        assert torch.equal(p, q)


def test_training_is_deterministic_for_a_seed():
    docs = [t[:2000] for t in domain_docs("legal").column("text").to_pylist()[:20]]
    cfg = {"n_layer": 1, "d_model": 32, "n_head": 2, "context": 32}
    runs = [train_proxy(docs, cfg, {"steps": 8, "batch_size": 4, "seed": s}, {"kind": "byte"}, device="cpu")
            for s in (7, 7, 8)]
    a, b, c = (r.model.state_dict() for r in runs)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_bpe_tokenizer_round_trips_and_compresses(tmp_path):
    docs = domain_docs("tech_docs").column("text").to_pylist()[:60]
    lm = train_proxy(docs, {"n_layer": 1, "d_model": 32, "n_head": 2, "context": 64}, {"steps": 2, "batch_size": 2},
                     {"kind": "bpe", "vocab_size": 600}, device="cpu")
    ids = lm.tokenizer.encode_batch(docs[:5])
    assert all(lm.tokenizer.decode(i) == t for i, t in zip(ids, docs[:5]))
    assert sum(map(len, ids)) < 0.7 * sum(len(t.encode()) for t in docs[:5])
    back = load_proxy(save_proxy(lm, tmp_path / "bpe"), device="cpu")
    assert [x.tolist() for x in back.tokenizer.encode_batch(docs[:5])] == [x.tolist() for x in ids]


def _tiny_hf_model(path):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(domain_docs("manpages").column("text").to_pylist()[:30], trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>")
    fast.save_pretrained(path)
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=tok.get_vocab_size(), n_positions=64, n_embd=32, n_layer=2, n_head=2,
                     bos_token_id=0, eos_token_id=0)
    GPT2LMHeadModel(cfg).save_pretrained(path)


def test_local_hugging_face_causal_lm(tmp_path):
    _tiny_hf_model(tmp_path / "hf")
    assert any(p.suffix == ".safetensors" for p in (tmp_path / "hf").iterdir())
    lm = load_proxy(tmp_path / "hf", device="cpu")
    assert lm.kind == "hf" and lm.context == 64
    texts = ["NAME\n    ls - list directory contents", "SYNOPSIS ls [OPTION]... [FILE]..."]
    r = document_losses(lm, texts)
    for text, nll, n in zip(texts, r.total_nll, r.n_tokens):
        ids = [lm.tokenizer.bos_id] + lm.tokenizer.hf(text, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            out = lm.model(input_ids=torch.tensor([ids]), labels=torch.tensor([ids]))
        assert n == len(ids) - 1
        assert nll == pytest.approx(float(out.loss) * (len(ids) - 1), rel=1e-5)
    from lmsieve.features.proxy_lm import PooledStates

    pooled = PooledStates(lm, store_dtype="float32")(texts)["pooled"]
    assert pooled.type.list_size == 32
    ids = [lm.tokenizer.bos_id] + lm.tokenizer.hf(texts[0], add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        h = lm.model(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states[-1][0].double()
    w = torch.arange(1, len(ids) + 1, dtype=torch.float64)
    v = (w[:, None] * h).sum(0)
    np.testing.assert_allclose(pooled[0].values.to_numpy(), (v / v.norm()).numpy(), rtol=1e-4, atol=1e-6)


def test_pooling_closed_form_hand_checked():
    from lmsieve.features.proxy_lm import pool_hidden

    h = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [9.0, 9.0]],    # right-padded: 3 valid
                      [[7.0, -7.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]])  # left-padded: same 3 tokens
    mask = torch.tensor([[1, 1, 1, 0], [0, 1, 1, 1]], dtype=torch.bool)
    # weights 1/6, 2/6, 3/6: (1/6 + 3/6, 2/6 + 3/6) = (4/6, 5/6) -> (4, 5) / sqrt(41)
    want = np.array([4.0, 5.0]) / math.sqrt(41)
    got = pool_hidden(h, mask, "weighted").numpy()
    np.testing.assert_allclose(got, [want, want], rtol=1e-6)
    np.testing.assert_allclose(pool_hidden(h, mask, "mean").numpy(), [[2 ** -0.5] * 2] * 2, rtol=1e-6)
    np.testing.assert_allclose(pool_hidden(h, mask, "last").numpy(), [[2 ** -0.5] * 2] * 2, rtol=1e-6)
    raw = pool_hidden(h, mask, "weighted", normalize=False).numpy()
    np.testing.assert_allclose(raw, [[4 / 6, 5 / 6]] * 2, rtol=1e-6)


def test_pooled_states_match_manual_sum_and_ignore_padding(lm):
    from lmsieve.features.proxy_lm import pooled_states

    texts = ["Of Man's first disobedience", "and the fruit", "x", "Of that forbidden tree, whose mortal taste " * 5]
    got = pooled_states(lm, texts)
    for text, row in zip(texts, got):
        ids = ([lm.tokenizer.bos_id] + lm.tokenizer.encode_batch([text])[0].tolist())[:CTX]
        with torch.no_grad():
            hs = lm.model(torch.tensor([ids]), output_hidden_states=True).hidden_states
        h = hs[-1][0].double().numpy()
        w = np.arange(1, len(ids) + 1) / (len(ids) * (len(ids) + 1) / 2)
        v = (w[:, None] * h).sum(0)
        np.testing.assert_allclose(row, v / np.linalg.norm(v), rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(pooled_states(lm, [text])[0], row, rtol=1e-5, atol=1e-6)
    for mode in ("mean", "last"):
        both = pooled_states(lm, texts, mode=mode)
        np.testing.assert_allclose(both[1], pooled_states(lm, texts[1:2], mode=mode)[0], rtol=1e-5, atol=1e-6)
