"""MATES on a Hugging Face model (a tiny random-init Llama directory, no lmsieve files in it):

* one oracle probe equals a manual one-step AdamW update from the *saved* state (weights and
  moments read back from the safetensors files, the AdamW formula written out by hand);
* a model saved without optimizer state gets warmed moments while its weights stay the same;
* fit, save, ``fitted=DIR`` and the Beam features + selection jobs select the same ids as the API.
"""
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import torch
import torch.nn.functional as F
from _proxy_fixture import one_thread  # noqa: F401
from _tiny_llama import tiny_llama_dir
from conftest import pool_slice, target_set
from safetensors.torch import load_file

from lmsieve.features.proxy_lm import finetune, load_proxy, save_proxy
from lmsieve.sampling.select import Budget
from lmsieve.selectors.mates import MATES, OracleProbe, warm_adam_moments


def _pool(n_per=20, chars=300):
    t = pool_slice(800)
    pool = pa.concat_tables([t.filter(pc.equal(t.column("domain"), d)).slice(0, n_per)
                             for d in ("code_python", "literature", "legal")])
    return pool.set_column(pool.schema.get_field_index("text"), "text", pc.utf8_slice_codeunits(pool.column("text"), 0, chars))


@pytest.fixture(scope="module")
def trained_dir(tmp_path_factory, one_thread):  # noqa: F811
    """The tiny Llama fine-tuned for a few steps by lmsieve, saved with its AdamW state."""
    lm = load_proxy(tiny_llama_dir(), device="cpu")
    finetune(lm, _pool().column("text").to_pylist()[:30], {"lr": 3e-3, "batch_size": 4, "seed": 0}, epochs=1, window=64)
    return save_proxy(lm, tmp_path_factory.mktemp("mates-hf") / "model", optimizer=True)


def _manual_probe(model_dir, windows, ref, lr, clip=1.0):
    """Reference loss after one AdamW step on ``windows``, by hand from the files in ``model_dir``."""
    from transformers import LlamaForCausalLM

    model = LlamaForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).train()
    params = dict(model.named_parameters())
    meta = json.loads((model_dir / "optimizer.json").read_text())
    moments = load_file(str(model_dir / "optimizer.safetensors"))
    logits = model(input_ids=windows).logits
    F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), windows[:, 1:].reshape(-1)).backward()
    norm = torch.sqrt(sum((p.grad.double() ** 2).sum() for p in params.values()))
    coef = min(1.0, clip / (float(norm) + 1e-6))
    with torch.no_grad():
        for group in meta["param_groups"]:
            b1, b2 = group["betas"]
            for name in group["params"]:
                p, g = params[name], params[name].grad * coef
                t = float(moments[f"{name}::step"]) + 1
                m = b1 * moments[f"{name}::exp_avg"] + (1 - b1) * g
                v = b2 * moments[f"{name}::exp_avg_sq"] + (1 - b2) * g * g
                p.mul_(1 - lr * group["weight_decay"])
                p.sub_(lr / (1 - b1 ** t) * m / (v.sqrt() / (1 - b2 ** t) ** 0.5 + group["eps"]))
        model.eval()
        out = model(input_ids=ref).logits
        ce = F.cross_entropy(out[:, :-1].reshape(-1, out.shape[-1]), ref[:, 1:].reshape(-1))
    return float(ce)


def test_probe_equals_manual_adamw_step(trained_dir):
    lm = load_proxy(trained_dir, device="cpu", with_optimizer=True)
    assert lm.optimizer is not None and lm.optimizer.state_dict()["state"]
    probe = OracleProbe(lm, target_set("heldout_code_python").slice(0, 5), lr=2e-3, ref_windows=6, probe_tokens=200)
    x = _pool().column("text")[0].as_py()
    windows = probe.windows(x)
    assert windows.shape[0] >= 1
    before = probe.ref_loss()
    got = probe.probe([x])[0]
    want = _manual_probe(trained_dir, windows, probe.ref, 2e-3)
    assert abs(got - before) > 1e-3  # the step does move the reference loss
    assert abs(got - want) < 2e-5 * abs(want), (got, want)
    assert probe.ref_loss() == before  # the state is restored after probing


def test_warm_up_keeps_weights_and_fills_moments(one_thread):  # noqa: F811
    lm = load_proxy(tiny_llama_dir(), device="cpu")
    before = {k: v.clone() for k, v in lm.model.state_dict().items()}
    warm_adam_moments(lm, _pool().column("text").to_pylist()[:6], steps=3, window=64, seed=0)
    after = lm.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    st = lm.optimizer.state_dict()["state"]
    assert st and all(float(s["step"]) == 3 for s in st.values())
    assert all(float(s["exp_avg_sq"].abs().sum()) > 0 for s in st.values())
    with pytest.raises(Exception, match="AdamW state"):
        OracleProbe(load_proxy(tiny_llama_dir(), device="cpu"), ["def f(): pass"])


def test_mates_on_hf_model_fit_save_fitted_beam(tmp_path, one_thread):  # noqa: F811
    from _beam_fitted import beam_select_fitted

    import lmsieve
    from lmsieve.api import fit_and_score, run_selection

    pool = _pool()
    target = target_set("heldout_code_python").slice(0, 5)
    params = dict(model=str(tiny_llama_dir()), n_probe=16, warmup_docs=8, warmup_steps=3, ref_windows=4,
                  probe_tokens=128, encoder_epochs=1, encoder_max_length=32, seed=2, val_fraction=0.25)
    sel, s, e = fit_and_score("mates", target, pool, **params)
    assert sel.report_["n_probe"] == 16 and np.isfinite(s).all() and len(set(s.round(6))) > 10
    d = Path(sel.save(tmp_path / "fitted"))
    assert (d / "influence" / "head.safetensors").is_file() and not (d / "proxy").exists()
    np.testing.assert_allclose(MATES(fitted=str(d)).fit(target).score(pool), s, rtol=0, atol=1e-5)
    budget = Budget(fraction=0.2)
    ref = run_selection(sel, pool, budget, seed=6, scores=s, eligible=e).selected.column("id").to_pylist()
    api = lmsieve.select(pool, "mates", target, keep=0.2, seed=6, fitted=str(d)).column("id").to_pylist()
    got = beam_select_fitted(tmp_path, "mates", str(d), pool, target, 25, budget, seed=6)
    assert len(ref) == 12 and api == ref and got == ref
