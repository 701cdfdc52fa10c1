"""One tiny proxy LM (a Llama) per test session, shared by the model-feature tests (trained once, ~13 s).

Byte-level, 2 layers, width 64, context 128, 200 steps on the ``literature`` documents of the
first 3,000 pool rows (the domain label picks training data for the test only).
"""
from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

import pyarrow.compute as pc
import pytest
from conftest import pool_slice

TINY_MODEL = {"n_layer": 2, "d_model": 64, "n_head": 2, "context": 128}
TINY_TRAIN = {"steps": 200, "batch_size": 16, "lr": 3e-3, "warmup_steps": 30, "seed": 0}


def domain_docs(domain: str, n_pool: int = 3000):
    t = pool_slice(n_pool)
    return t.filter(pc.equal(t.column("domain"), domain))


@functools.lru_cache(maxsize=1)
def _trained() -> Path:
    from lmsieve.features.proxy_lm import save_proxy, train_proxy

    lm = train_proxy(domain_docs("literature"), TINY_MODEL, TINY_TRAIN, {"kind": "byte"}, device="cpu")
    root = tempfile.mkdtemp(prefix="lmsieve-proxy-")
    atexit.register(shutil.rmtree, root, True)
    out = Path(root) / "proxy"
    save_proxy(lm, out, optimizer=True)
    return out


def tiny_proxy_dir() -> Path:
    """Directory of the session's tiny proxy checkpoint (with optimizer state); do not modify it."""
    domain_docs("literature")  # skips when the shared data is absent
    return _trained()


@pytest.fixture(scope="module")
def one_thread():
    """Run a module's torch work on one thread: on a shared 2-core box, two OpenMP threads that
    wait on each other while another process holds a core are several times slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@functools.lru_cache(maxsize=1)
def tiny_sae_dir() -> str:
    """A TopK SAE (256 latents, K=16, 100 steps) on layer 1 of the tiny proxy, trained once per session."""
    from lmsieve.features.proxy_lm import load_proxy
    from lmsieve.features.sae import collect_activations, save_sae, train_sae

    lm = load_proxy(str(tiny_proxy_dir()), device="cpu")
    docs = [s[:300] for s in domain_docs("literature").column("text").to_pylist()[:20]]
    sae, _ = train_sae(collect_activations(lm, docs, 1), num_latents=256, k=16, layer=1, steps=100,
                       batch_size=512, seed=0)
    return str(save_sae(sae, Path(tempfile.mkdtemp(prefix="lmsieve-sae-")) / "sae"))
