"""Decontamination core (issue 20): normalisation, hashing, index, flags, Bloom bound, reference agreement."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

import _decontam_reference as R
from conftest import pool_slice, target_set as target
from lmsieve.features.decontam import DecontamIndex, flag_texts, matched_spans, resolve_index, words
from lmsieve.features.decontam.hashing import chain_hash_py, chain_levels, word_hashes
from lmsieve.features.decontam.normalise import tokenize_words
from lmsieve.schemas.errors import ConfigError, InputError

ITEM = ("Write a function that returns the sum of all even numbers in the given list, "
        "ignoring negative values and zero.")
SHORT = "What is the capital city of France, please?"  # 8 words: whole-item rule
FILLER = " ".join(f"filler{i} word" for i in range(300))


def _index(**kw):
    return DecontamIndex.build({"bench": pa.table({"id": ["long", "short"], "text": [ITEM, SHORT]})}, **kw)


def test_normalisation_vectorised_equals_reference():
    texts = ["Héllo, ﬁne WORLD_x 3.5", "ΣΊΣΥΦΟΣ ſtraße İstanbul", "a\u0301b  c\n\nd", "", "東京 タワー ２０２６",
             "don't-stop: x,y x, y"]
    row, toks = tokenize_words(pa.array(texts))
    got = [[] for _ in texts]
    for r, t in zip(row.tolist(), toks.to_pylist()):
        got[r].append(t)
    assert got == [R.words(t) for t in texts]
    assert words("Full\u3000width ＡＢＣ") == ["full", "width", "abc"]


def test_chain_hash_matches_python_definition():
    w = words(ITEM)
    wh = word_hashes(pa.array(w))
    row = np.zeros(len(w), np.int64)
    for k, start, h in chain_levels(row, wh, [1, 5, 13]):
        assert h.tolist() == [chain_hash_py(w[s:s + k]) for s in start.tolist()]


def test_pasted_item_with_changed_case_punctuation_and_line_breaks_is_flagged():
    idx = _index()
    pasted = ITEM.upper().replace(",", " ;").replace(" ", "\n", 5).replace(".", "!!")
    doc = FILLER + "\n\n" + pasted + "\n" + FILLER
    f = flag_texts(idx, [doc, FILLER])
    assert f.flagged.tolist() == [True, False]
    assert f.item[0] == 0 and f.matches[0] == len(words(ITEM)) - 13 + 1
    assert "sum of all even numbers" in matched_spans(idx, doc, 0)


def test_n_minus_one_shared_words_not_flagged_n_flagged():
    idx = _index()
    w = words(ITEM)
    for start in range(len(w) - 12):
        just_under = "alpha " + " ".join(w[start:start + 12]) + " omega"
        exact = "alpha " + " ".join(w[start:start + 13]) + " omega"
        assert flag_texts(idx, [just_under, exact]).flagged.tolist() == [False, True]


def test_whole_item_rule_for_short_items():
    idx = _index()
    docs = ["So: what is the CAPITAL city of france -- please!", "what is the capital city of france",
            "somewhat is the capital city of france please", FILLER + " What is the capital city of France, please? " + FILLER]
    assert flag_texts(idx, docs).flagged.tolist() == [True, False, False, True]
    # below min_words an item field is not indexed at all (counted as too short)
    idx2 = DecontamIndex.build({"b": pa.table({"id": ["x"], "text": ["the answer is 42"]})})
    assert idx2.sets[0]["too_short"] == 1 and len(idx2.hashes) == 0
    assert not flag_texts(idx2, ["the answer is 42"]).flagged.any()


def test_min_overlap_and_fraction():
    idx = _index()
    w = words(ITEM)  # 19 words: 7 distinct 13-grams
    two = " ".join(w[:14])  # 2 shared 13-grams
    assert flag_texts(idx, [two], min_overlap=2).flagged[0]
    assert not flag_texts(idx, [two], min_overlap=3).flagged[0]
    assert not flag_texts(idx, [two], min_fraction=0.5).flagged[0]
    assert flag_texts(idx, [" ".join(w[:17])], min_fraction=0.5).flagged[0]
    with pytest.raises(ConfigError):
        flag_texts(idx, [two], min_overlap=0)


def test_flags_independent_of_batching():
    pool = pool_slice(600, ("id", "text"))
    idx = _index()
    texts = pool.column("text").to_pylist()
    texts[17] = texts[17] + " " + ITEM
    texts[401] = SHORT + texts[401]
    whole = flag_texts(idx, texts)
    parts = [flag_texts(idx, texts[a:b]) for a, b in ((0, 1), (1, 250), (250, 251), (251, 600))]
    for f in ("flagged", "sets", "matches", "item"):
        assert np.array_equal(whole.__dict__[f], np.concatenate([p.__dict__[f] for p in parts]))
    assert np.flatnonzero(whole.flagged).tolist() == [17, 401]


def test_save_load_roundtrip_no_pickle(tmp_path):
    idx = _index()
    idx.save(str(tmp_path / "idx"))
    again = resolve_index(str(tmp_path / "idx"))
    assert again.fingerprint() == idx.fingerprint()
    assert np.load(tmp_path / "idx" / "index.npz", allow_pickle=False)["hashes"].dtype == np.uint64
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "index.json").write_text("{}")
    with pytest.raises(InputError):
        DecontamIndex.load(str(tmp_path / "bad"))


def test_bloom_false_positive_rate_within_bound():
    rng = np.random.default_rng(0)
    members = [" ".join(f"w{x}" for x in rng.integers(0, 10**9, 13)) for _ in range(20000)]
    fpr = 0.01
    idx = DecontamIndex.build({"s": pa.table({"id": [str(i) for i in range(len(members))], "text": members})},
                              bloom_fpr=fpr)
    assert flag_texts(idx, members[:500]).flagged.all()  # no false negatives
    # each 13-word probe is one lookup of a non-member n-gram
    probes = [" ".join(f"z{x}" for x in rng.integers(0, 10**9, 13)) for _ in range(40000)]
    measured = flag_texts(idx, probes).flagged.mean()
    sigma = np.sqrt(fpr * (1 - fpr) / len(probes))
    assert measured <= fpr + 3 * sigma, measured


def test_bloom_and_exact_agree_on_real_pool():
    pool = pool_slice(300, ("id", "text"))
    ev = {n: target(n) for n in ("humaneval", "champ")}
    texts = pool.column("text").to_pylist()
    texts[3] += " " + ev["humaneval"].column("prompt")[5].as_py()
    exact = flag_texts(DecontamIndex.build(ev), texts)
    bloom = flag_texts(DecontamIndex.build(ev, bloom_fpr=1e-12), texts)
    assert exact.flagged[3] and np.array_equal(exact.flagged, bloom.flagged)
    assert np.array_equal(exact.sets, bloom.sets)


def test_exact_index_agrees_with_python_reference_on_shared_pool():
    """Shared data: the whole-pool check against a per-document pure-Python reference (no hashing)."""
    pool = pool_slice(2500, ("id", "text"))
    ev = {n: target(n) for n in ("humaneval", "champ")}
    texts = pool.column("text").to_pylist()
    rng = np.random.default_rng(1)
    # plant items (prompts, whole texts, short answers) so that both sides have positives to agree on
    for i, d in enumerate(rng.choice(len(texts), 60, replace=False).tolist()):
        name = ("humaneval", "champ")[i % 2]
        col = ("prompt", "text", "answer")[i % 3]
        item = ev[name].column(col)[int(rng.integers(ev[name].num_rows))].as_py()
        cut = len(texts[d]) // 2
        texts[d] = texts[d][:cut] + "\n" + item.upper() + "\n" + texts[d][cut:]
    idx = DecontamIndex.build(ev)
    f = flag_texts(idx, texts)
    ref = R.build(ev)
    want = [R.flag(ref, t) for t in texts]
    got = [{idx.set_names[s] for s in range(2) if (int(m) >> s) & 1} for m in f.sets]
    assert got == want
    assert 35 <= f.flagged.sum() <= 70  # answers under 8 words are not indexed


def test_max_matches_ignores_boilerplate_ngrams():
    boiler = "licensed under the apache license version two point zero you may not use this file except"
    idx = DecontamIndex.build({"b": pa.table({"id": ["x"], "text": [boiler + " " + ITEM]})})
    docs = [f"header {i} " + boiler + " body" for i in range(5)] + ["z " + ITEM + " z", FILLER]
    assert flag_texts(idx, docs).flagged.tolist() == [True] * 6 + [False]
    f = flag_texts(idx, docs, max_matches=3)
    assert f.flagged.tolist() == [False] * 5 + [True, False] and f.ignored == len(words(boiler)) - 12
    assert flag_texts(idx, docs, max_matches=5).flagged.tolist() == [True] * 6 + [False]
