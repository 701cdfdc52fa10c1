"""Model features by name, for the CLI and the jobs: ``build_extractors(["embed", "proxy_loss"], ...)``.

| name           | needs     | columns written (``DIR/<name>.parquet``, keyed by ``id``)              |
|----------------|-----------|------------------------------------------------------------------------|
| ``embed``      | -         | ``embed``: fixed_size_list<float16>[384] (all-MiniLM-L6-v2 by default)   |
| ``proxy_loss`` | a proxy   | ``proxy_mean_ce`` f32, ``proxy_nll`` f64, ``proxy_bpc`` f32, ``proxy_tokens`` i32 |
| ``proxy_chunks``| a proxy  | ``proxy_chunks_ce`` list<f32>, ``proxy_chunks_tokens`` list<i32>        |
| ``pooled``     | a proxy   | ``pooled``: fixed_size_list<float16>[d_model] (RDS+ weighted mean)       |
| ``sae``        | proxy+SAE | ``sae_idx`` list<i32>, ``sae_val`` list<f32> (mean-pooled TopK codes)    |

Options (``--param KEY=VALUE`` on the CLI) go to the extractor that knows them: ``batch_size``,
``max_seq_length``, ``doc_prefix``, ``store_dtype`` (embed); ``window``, ``stride`` (proxy_loss);
``chunk_len`` (proxy_chunks); ``mode``, ``layer``, ``max_tokens`` (pooled); ``store_k`` (sae).
"""
from __future__ import annotations

import inspect

from lmsieve.schemas.errors import ConfigError

FEATURES = ("embed", "proxy_loss", "proxy_chunks", "pooled", "sae")


def _kwargs(cls, options: dict, used: set) -> dict:
    names = set(inspect.signature(cls.__init__).parameters) - {"self", "lm", "sae", "model", "name", "device"}
    picked = {k: v for k, v in options.items() if k in names}
    used.update(picked)
    return picked


def build_extractors(names, *, proxy=None, embed_model=None, sae=None, device: str = "auto",
                     options: dict | None = None) -> list:
    """Extractors for ``names``; ``proxy``/``sae`` are paths (or loaded objects)."""
    options = dict(options or {})
    unknown = [n for n in names if n not in FEATURES]
    if unknown:
        raise ConfigError(f"unknown feature(s) {', '.join(unknown)}; available: {', '.join(FEATURES)}")
    if "name" in options or "device" in options:
        raise ConfigError("--param name/device: not settable here (use --device; rename features in the Python API)")
    used: set = set()
    lm = None
    if any(n != "embed" for n in names):
        if proxy is None:
            raise ConfigError("features " + ", ".join(n for n in names if n != "embed") + " need --proxy DIR "
                              "(an lmsieve proxy from `lmsieve train-proxy`, a local HF causal LM, or a fetched name: smollm2-135m)")
        from lmsieve.features.proxy_lm.checkpoint import LoadedLM, load_proxy

        lm = proxy if isinstance(proxy, LoadedLM) else load_proxy(proxy, device=device)
    out = []
    for n in names:
        if n == "embed":
            from lmsieve.features.embeddings import Embedder

            out.append(Embedder(embed_model, device=device, **_kwargs(Embedder, options, used)))
        elif n == "proxy_loss":
            from lmsieve.features.proxy_lm.losses import ProxyLoss

            out.append(ProxyLoss(lm, **_kwargs(ProxyLoss, options, used)))
        elif n == "proxy_chunks":
            from lmsieve.features.proxy_lm.losses import ProxyChunkLoss

            out.append(ProxyChunkLoss(lm, **_kwargs(ProxyChunkLoss, options, used)))
        elif n == "pooled":
            from lmsieve.features.proxy_lm.pooling import PooledStates

            out.append(PooledStates(lm, **_kwargs(PooledStates, options, used)))
        else:
            from lmsieve.features.sae import SAECodes, TopKSAE, load_sae

            if sae is None and getattr(lm, "path", None) is not None and (lm.path / "sae" / "cfg.json").is_file():
                sae = lm.path / "sae"
            if sae is None:
                raise ConfigError("feature sae needs --sae DIR (or a proxy trained with --sae-latents, which "
                                  "saves one under DIR/sae)")
            model = sae if isinstance(sae, TopKSAE) else load_sae(sae)
            out.append(SAECodes(lm, model, **_kwargs(SAECodes, options, used)))
    left = sorted(set(options) - used)
    if left:
        raise ConfigError(f"--param {', '.join(left)}: not an option of the requested features")
    return out
