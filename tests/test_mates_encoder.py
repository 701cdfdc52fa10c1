"""MATES's fine-tuned encoder influence model (packaged all-MiniLM-L6-v2, CPU, tiny settings)."""
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from _proxy_fixture import one_thread, tiny_proxy_dir  # noqa: F401
from conftest import pool_slice, target_set
from scipy.stats import spearmanr

from lmsieve.sampling.hashing import stable_hash64
from lmsieve.selectors.mates_encoder import EncoderRegressor, fit_encoder, heldout_mask

CODE = ["def {0}(x):\n    return x + 1", "import numpy as np\n{0} = np.zeros(3)", "for i in range(10):\n    print({0}[i])",
        "class {0}:\n    def __init__(self): pass", "python list comprehension [y for y in {0}]",
        "with open('{0}.txt') as f:\n    data = f.read()", "try:\n    {0}()\nexcept ValueError:\n    pass",
        "lambda {0}: sorted({0}, key=len)"]
COOK = ["Simmer the {0} with garlic and onions for ten minutes.", "Bake the {0} bread at 200 degrees until golden.",
        "Whisk eggs, sugar and butter, then fold in the {0}.", "Season the {0} soup with salt and fresh basil.",
        "Chop the {0} and fry it in olive oil.", "Marinate the {0} chicken overnight in lemon juice.",
        "Roast the {0} vegetables with rosemary.", "Stir the {0} sauce slowly over low heat."]
WORDS = ["alpha", "tomato", "carrot", "beta"]


def synthetic():
    texts, y = [], []
    for w in WORDS:
        for a, b in zip(CODE, COOK):
            texts += [a.format(w), b.format(w)]
            y += [1.0, -1.0]
    return texts, np.array(y), [f"doc{i}" for i in range(len(texts))]  # 64 texts


@pytest.fixture(scope="module")
def fitted(one_thread):  # noqa: F811
    import torch

    texts, y, ids = synthetic()
    rng_before = torch.get_rng_state()
    reg = fit_encoder(texts, y, None, ids=ids, epochs=2, lr=5e-5, batch_size=16, max_length=64, seed=3,
                      heldout_fraction=0.25, device="cpu")
    assert torch.equal(torch.get_rng_state(), rng_before)  # fork_rng: the caller's RNG is untouched
    return texts, y, ids, reg


def test_heldout_split_is_disjoint_and_deterministic():
    ids = [f"doc{i}" for i in range(64)]
    m = heldout_mask(ids, 3, 0.25)
    assert m.sum() == 16 and m.dtype == bool
    np.testing.assert_array_equal(m, heldout_mask(ids, 3, 0.25))
    # Order-free: the held-out ids are the 16 with the smallest hash, whatever the input order.
    assert set(np.array(ids)[m]) == set(np.array(ids)[np.argsort(stable_hash64(3, ids))[:16]])
    rev = ids[::-1]
    assert set(np.array(rev)[heldout_mask(rev, 3, 0.25)]) == set(np.array(ids)[m])
    assert (m != heldout_mask(ids, 4, 0.25)).any()  # the seed matters


def test_finetuned_encoder_beats_untrained_head(fitted):
    texts, y, ids, reg = fitted
    val = heldout_mask(ids, 3, 0.25)
    assert reg.report["n_heldout"] == val.sum() and reg.report["n_train"] == (~val).sum()
    pred = reg.predict([t for t, v in zip(texts, val) if v], batch_size=8)
    rho = spearmanr(pred, y[val]).statistic
    assert rho > 0.5 and abs(rho - reg.report["spearman"]) < 1e-9
    # Untrained reference, computed here: frozen MiniLM mean-pooled + an N(0, 0.02) random head.
    import torch
    from transformers import AutoModel, AutoTokenizer

    from lmsieve.features.embeddings import packaged_model_path

    path = packaged_model_path()
    tok, model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path, use_safetensors=True).eval()
    enc = tok([t for t, v in zip(texts, val) if v], padding=True, truncation=True, max_length=64, return_tensors="pt")
    with torch.no_grad():
        h = model(**enc).last_hidden_state
    m = enc["attention_mask"].unsqueeze(-1).float()
    pooled = ((h * m).sum(1) / m.sum(1)).numpy().astype(np.float64)
    base = spearmanr(pooled @ np.random.default_rng(0).normal(0, 0.02, pooled.shape[1]), y[val]).statistic
    assert rho > base + 0.1, (rho, base)


def test_save_load_identical_predictions(fitted, tmp_path):
    texts, y, ids, reg = fitted
    d = reg.save(tmp_path / "enc")
    assert (d / "encoder" / "model.safetensors").is_file() and (d / "head.safetensors").is_file()
    assert not list(d.rglob("*.bin")) and not list(d.rglob("*.pkl"))
    back = EncoderRegressor.load(d, device="cpu")
    np.testing.assert_array_equal(back.predict(texts[:20], batch_size=8), reg.predict(texts[:20], batch_size=8))
    assert back.report["epoch"] == reg.report["epoch"]


def test_mates_encoder_end_to_end(one_thread, tmp_path):  # noqa: F811
    from lmsieve.selectors.mates import MATES

    t = pool_slice(1500)
    pool = pa.concat_tables([t.filter(pc.equal(t.column("domain"), d)).slice(0, 12) for d in ("code_python", "legal")])
    pool = pool.set_column(pool.schema.get_field_index("text"), "text", pc.utf8_slice_codeunits(pool.column("text"), 0, 300))
    target = target_set("heldout_code_python").slice(0, 5)
    sel = MATES(proxy=str(tiny_proxy_dir()), n_probe=20, ref_windows=4, probe_lr=3e-3, probe_tokens=128, seed=1,
                val_fraction=0.25, influence="encoder", encoder_epochs=1, encoder_max_length=32, embed_batch_size=4)
    s = sel.fit(target, pool).score(pool)
    assert s.shape == (pool.num_rows,) and np.isfinite(s).all() and np.std(s) > 0
    assert sel.report_["n_probe"] == 20 and "spearman" in sel.report_
    d = sel.save(tmp_path / "fitted")
    assert (tmp_path / "fitted" / "influence" / "encoder" / "model.safetensors").is_file()
    np.testing.assert_array_equal(MATES.load(d).score(pool), s)
    np.testing.assert_array_equal(MATES(fitted=d, embed_batch_size=4).fit(target).score(pool), s)
