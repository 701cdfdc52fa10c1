"""Target-domain precision of the representation selectors (BETR, RDS+, MONA) next to DSIR,
ZIP-FIT and random, on the shared pool.

For each target set the top 5% of the pool (k = floor(0.05 N), ``Budget(fraction=0.05)``, seed 0)
is selected and its precision measured as the share of documents from the target's domain
(``heldout_code_python`` and ``humaneval`` -> ``code_python``, ``heldout_math`` -> ``math``);
domain labels are used only here. Every method goes through ``lmsieve.api.fit_and_score`` +
``run_selection`` with the pool as the pool sample.

CPU-sized settings (2 shared cores): the whole pool by default (``--limit 0``; the pool is
shuffled, so ``--limit N`` takes a random N-document slice), the first ``--n-targets`` examples of
each target set; MiniLM truncated to 128 tokens; BETR's sample is the first ``--betr-sample`` pool
documents (hash-split 90/10 for training/held-out), no token threshold (``token_fraction=1``: the
top 5% by score); RDS+ and MONA use a small byte-level proxy LM trained here on ``--proxy-docs``
pool documents (2 layers, width 64, context 128: documents are cut to their first 128 bytes) and a
TopK SAE (512 latents, K=32, 150 steps) on its penultimate layer, far below the papers' Llama models.

Target-independent representations are computed once per run and reused across targets (and
between ``rds`` and ``rds-rr``): the pool's pooled states and SAE codes, BETR's sample embeddings
(memoised by text around the selectors' own ``embed`` / ``codes`` / ``Embedder.encode``; scores are
the selectors' own). That is what makes the whole pool fit in ~14 minutes on this machine.

    python benchmarks/bench_representation.py [--limit 0] [--n-targets 30]

With ``--model M`` (a fetched name such as ``smollm2-135m``, or a local Hugging Face directory) the
model-based selectors also run on that model, as extra columns ``<method>@<model>``: ``rds``,
``rds-rr``, ``mona`` (its own cached SAE, AuxK, on the penultimate layer), ``color`` (prior = M,
conditional = M fine-tuned on the target), ``mates`` (M probed with warmed AdamW moments, MiniLM
encoder influence model, Gumbel at T=0.5) and ``preselect`` (M + lmsieve's proxies as the family);
documents are cut to ``--max-tokens`` tokens (CPU cost), ``--device auto|cpu|cuda``. The byte-proxy
columns stay as they were (``--methods`` picks them; ``color``, ``mates`` and ``preselect`` there
run on the tiny byte-level proxies of ``bench_loss_selectors.py``). A CPU-sized run (~15 min on 2 shared cores):

    python benchmarks/bench_representation.py --limit 200 --n-targets 20 --model smollm2-135m \
        --max-tokens 64 --targets heldout_code_python,humaneval

Writes ``benchmarks/out/representation.json`` (``--out-name`` to change).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import SHARED, machine, print_table, write_json  # noqa: E402

TARGETS = {"heldout_code_python": "code_python", "heldout_math": "math", "humaneval": "code_python"}
METHODS = ["betr", "rds", "rds-rr", "mona", "dsir", "zipfit", "random"]
MODEL_METHODS = ["rds", "rds-rr", "mona", "color", "mates", "preselect"]
N_PROBE = 60  # MATES probes per fit with --model (--n-probe)


def model_params(m: str, model: str, max_tokens: int, device: str, n_probe: int = N_PROBE) -> dict:
    """Parameters of a model-based selector running on ``model`` (CPU-sized by ``max_tokens``)."""
    common = {"device": device}
    if m in ("rds", "rds-rr"):
        return dict(model=model, max_tokens=max_tokens, **common)
    if m == "mona":
        return dict(model=model, max_tokens=max_tokens, sae_docs=256, sae_max_tokens=max_tokens, sae_steps=300,
                    **common)
    if m == "color":
        return dict(model=model, chunk_len=max_tokens, tau=7, **common)
    if m == "mates":
        return dict(model=model, n_probe=n_probe, warmup_docs=16, warmup_steps=10, probe_tokens=max_tokens, ref_windows=8,
                    encoder_epochs=3, encoder_max_length=128, **common)
    if m == "preselect":
        return dict(models=[model], window=max_tokens, stride=max(1, max_tokens // 2), **common)
    raise ValueError(m)


def load_pool(limit: int):
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = sorted((SHARED / "pool").glob("*.parquet"))
    pool = pa.concat_tables([pq.read_table(f, columns=["id", "text", "domain"]) for f in files]).combine_chunks()
    return pool.slice(0, limit) if limit else pool


def build_models(pool, n_docs: int, steps: int, workdir: Path) -> tuple[str, str]:
    from lmsieve.features.proxy_lm import save_proxy, train_proxy
    from lmsieve.features.sae import collect_activations, save_sae, train_sae

    texts = pool.select(["id", "text"]).slice(0, n_docs)
    lm = train_proxy(texts, {"n_layer": 2, "d_model": 64, "n_head": 2, "context": 128},
                     {"steps": steps, "batch_size": 16, "lr": 3e-3, "warmup_steps": 40, "seed": 0},
                     {"kind": "byte"}, device="cpu")
    proxy = save_proxy(lm, workdir / "proxy")
    acts = collect_activations(lm, [t[:1000] for t in texts.column("text").to_pylist()[:200]], 1)
    sae, _ = train_sae(acts, num_latents=512, k=32, layer=1, steps=150, batch_size=512, seed=0)
    return str(proxy), str(save_sae(sae, workdir / "sae"))


def memo_by_text(fn, cache: dict, split, stack):
    """``fn(batch)`` memoised per (templated) text: only unseen texts are computed."""
    import pyarrow as pa

    from lmsieve.selectors.chat_template import template_texts

    def wrapped(batch, *a, **kw):
        texts = template_texts(batch)
        todo = list(dict.fromkeys(t for t in texts if t not in cache))
        if todo:
            cache.update(zip(todo, split(fn(pa.table({"text": todo}), *a, **kw))))
        return stack([cache[t] for t in texts])

    return wrapped


def _rows(x):
    return list(x)


def _stack_rows(v):
    import numpy as np

    return np.stack(v) if v else np.zeros((0, 0), np.float32)


def _split_codes(c):
    return list(zip(*c))


def _stack_codes(v):
    return [x[0] for x in v], [x[1] for x in v]


class CachedEmbedder:
    """One MiniLM for every BETR fit, its document embeddings memoised by text (queries not)."""

    def __init__(self, emb):
        self.emb, self.cache = emb, {}
        self.doc = memo_by_text(lambda b: emb.encode(b, side="doc"), self.cache, _rows, _stack_rows)

    def encode(self, batch, side: str = "doc", progress: bool = False):
        return self.doc(batch) if side == "doc" else self.emb.encode(batch, side=side)


def fit_and_score_cached(m: str, target, docs, sample, params: dict, caches: dict):
    """``api.fit_and_score`` with the target-independent representations memoised (see the doc)."""
    from lmsieve.api import fit_selector, load_target, make_selector, score_table

    sel = make_selector(m, **params)
    if m in ("rds", "rds-rr"):
        sel.embed = memo_by_text(sel.embed, caches.setdefault("rds", {}), _rows, _stack_rows)
    elif m == "mona":
        sel.codes = memo_by_text(sel.codes, caches.setdefault("mona", {}), _split_codes, _stack_codes)
    elif m == "betr":
        if "betr" not in caches:
            caches["betr"] = CachedEmbedder(sel._embedder())
        sel._embedder = lambda: caches["betr"]
    if sample is None and hasattr(sel, "fit_score"):
        return sel, *sel.fit_score(load_target(target), docs)
    sel = fit_selector(sel, target, pool=sample if sample is not None else docs)
    return sel, *score_table(sel, docs)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=0, help="pool documents (0 = all)")
    ap.add_argument("--n-targets", type=int, default=30)
    ap.add_argument("--betr-sample", type=int, default=1500)
    ap.add_argument("--proxy-docs", type=int, default=2000)
    ap.add_argument("--proxy-steps", type=int, default=150)
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--model", default=None, help="also run the model-based selectors on this model")
    ap.add_argument("--model-methods", default=",".join(MODEL_METHODS))
    ap.add_argument("--max-tokens", type=int, default=2048, help="tokens per document for --model runs")
    ap.add_argument("--device", default="auto", help="auto (CUDA when available), cpu or cuda")
    ap.add_argument("--targets", default=",".join(TARGETS))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n-probe", type=int, default=N_PROBE, help="MATES probes with --model")
    ap.add_argument("--out-name", default="representation.json")
    args = ap.parse_args(argv)
    import numpy as np
    import pyarrow.parquet as pq
    import torch

    from lmsieve.api import run_selection
    from lmsieve.sampling.select import Budget

    torch.set_num_threads(args.threads)
    pool = load_pool(args.limit)
    docs = pool.select(["id", "text"])
    domains = np.array(pool.column("domain").to_pylist())
    methods = [m for m in args.methods.split(",") if m]
    tag = Path(args.model).name if args.model else ""
    model_methods = [m for m in args.model_methods.split(",") if m] if args.model else []
    work = Path(tempfile.mkdtemp(prefix="bench-repr-"))
    t0 = time.perf_counter()
    proxy, sae = build_models(docs, args.proxy_docs, args.proxy_steps, work) if {"rds", "rds-rr", "mona"} & set(methods) else ("", "")
    model_secs = time.perf_counter() - t0
    params = {
        "betr": dict(max_seq_length=128, token_fraction=1.0, bucket=200_000),
        "rds": dict(model=proxy, max_tokens=128), "rds-rr": dict(model=proxy, max_tokens=128),
        "mona": dict(model=proxy, sae=sae, max_tokens=128), "dsir": {}, "zipfit": {"n_jobs": 2}, "random": {},
    }
    from bench_loss_selectors import method_params as byte_params  # color, mates, preselect on byte proxies

    params.update({m: byte_params(m, args.proxy_steps * 2) for m in ("color", "mates", "preselect")})
    for m in model_methods:
        params[f"{m}@{tag}"] = model_params(m, args.model, args.max_tokens, args.device, args.n_probe)
    columns = methods + [f"{m}@{tag}" for m in model_methods]
    rows, raw, caches = [], {}, {}
    for tname in args.targets.split(","):
        dom = TARGETS[tname]
        target = pq.read_table(SHARED / "targets" / f"{tname}.parquet").slice(0, args.n_targets)
        row = {"target": tname, "domain": dom, "base_rate": round(float((domains == dom).mean()), 3)}
        for m in columns:
            t1 = time.perf_counter()
            sample = docs.slice(0, args.betr_sample) if m == "betr" else None
            method, cache = (m.split("@")[0], caches.setdefault(tag, {})) if "@" in m else (m, caches)
            try:
                sel, s, e = fit_and_score_cached(method, target, docs, sample, params[m], cache)
            except Exception as exc:  # noqa: BLE001 - a benchmark cell records the failure
                row[m] = f"error: {type(exc).__name__}"
                raw[f"{tname}/{m}"] = {"error": f"{type(exc).__name__}: {exc}"}
                print(f"{tname} {m}: failed: {exc}", flush=True)
                continue
            idx = run_selection(sel, docs, Budget(fraction=0.05), seed=0, scores=s, eligible=e).indices
            prec = float((domains[idx] == dom).mean()) if len(idx) else float("nan")
            row[m] = round(prec, 3)
            raw[f"{tname}/{m}"] = {"precision": prec, "selected": int(len(idx)), "secs": round(time.perf_counter() - t1, 1)}
            print(f"{tname} {m}: precision {prec:.3f} ({len(idx)} docs, {raw[f'{tname}/{m}']['secs']} s)", flush=True)
        rows.append(row)
    table = print_table(rows, ["target", "domain", "base_rate", *columns])
    out = {"benchmark": "representation", "pool_docs": docs.num_rows, "keep_fraction": 0.05,
           "model": args.model, "max_tokens": args.max_tokens if args.model else None, "device": args.device,
           "threads": args.threads,
           "n_targets": args.n_targets, "betr_sample": args.betr_sample, "proxy_and_sae_secs": round(model_secs, 1),
           "params": {m: {k: (v if k not in ("model", "sae") else "<built here>") for k, v in params[m].items()}
                      for m in columns},
           "rows": rows, "runs": raw, "table_markdown": table, "machine": machine()}
    write_json(args.out_name, out)
    return out


if __name__ == "__main__":
    main()
