"""TopK sparse autoencoder over an LM's residual stream, and per-document sparse codes (MONA).

Encoder: ``z = TopK_K(ReLU(W_enc (h - b_pre) + b_enc))`` per token (K kept, the rest 0; codes are
>= 0, and exactly K are non-zero unless fewer than K pre-activations are positive); decoder:
``h_hat = W_dec^T z + b_pre`` with unit-norm decoder rows (renormalised after every step, the
gradient component along each row removed first). As in Eleuther's ``sparsify``, the pre-bias is
the decoder bias ``b_dec``. Training minimises the fraction of variance unexplained (FVU) with
Adam on activations of one layer (``hidden_states[layer]``, Hugging Face numbering: 0 =
embeddings, i = after block i); ``<bos>`` positions are left out (their state is the same in every
document).

Dead latents: the AuxK loss of Gao et al. 2024, "Scaling and evaluating sparse autoencoders"
(reference openai/sparse_autoencoder ``train.py``): a latent that has not fired for
``dead_tokens`` training tokens (paper: 10M) is dead; the ``k_aux`` largest (ReLU) pre-activations
among the dead latents reconstruct the main model's residual ``e = x - x_hat`` (decoder without
bias), and ``auxk_coef`` (1/32) times the normalised MSE ``||e_hat - e||^2 / ||e - mean(e)||^2`` is
added to the FVU; ``e`` is detached, so only the dead latents learn from it. ``k_aux`` defaults to
``d_in // 2`` (sparsify's reading of the paper's Appendix B.1; capped at the number of dead
latents); ``dead_tokens`` defaults to the paper's 10M, capped at a tenth of the tokens the run
sees, so short CPU runs revive latents too (our choice; the cap is written to ``cfg.json``).

A document's code is the **mean** of its token codes (not the sum: MONA shows summing adds a
length bias), stored sparsely as its ``store_k`` largest entries (indices int32 ascending by
value rank, values float32 > 0); ``store_k=0`` stores every non-zero (exact).

On-disk format = Eleuther ``sparsify`` (``EleutherAI/sae-llama-3-8b-32x`` and siblings): a
directory with ``cfg.json`` (``d_in``, ``k``, ``num_latents`` or ``expansion_factor``; optional
``activation``: only ``"topk"``; ``transcode``/``skip_connection`` must be false) and
``sae.safetensors`` holding ``encoder.weight`` (num_latents x d_in), ``encoder.bias``, ``W_dec``
(num_latents x d_in) and ``b_dec`` (d_in). A repository of several hookpoints has one such
directory per hookpoint (``layers.30/``); hookpoint ``layers.i`` is the output of block ``i``,
i.e. ``hidden_states[i + 1]``. Our own SAEs are saved in the same format, with the layer in
``cfg.json`` (``lmsieve_layer``; ``sparsify`` ignores unknown keys). Only JSON and safetensors are read.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from lmsieve.features.device import generator, resolve_device
from lmsieve.features.proxy_lm.checkpoint import LoadedLM
from lmsieve.features.proxy_lm.pooling import hidden_batches, resolve_layer, truncated_sequences
from lmsieve.features.store import Extractor, FeatureColumn, hash_files
from lmsieve.schemas.errors import ConfigError


class _Linear(nn.Module):
    def __init__(self, d_in: int, d_out: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(d_out, d_in))
        self.bias = nn.Parameter(torch.zeros(d_out))


class TopKSAE(nn.Module):
    def __init__(self, d_in: int, num_latents: int, k: int, layer: int | None = None, gen: torch.Generator | None = None):
        super().__init__()
        if not 1 <= k <= num_latents:
            raise ConfigError(f"SAE: need 1 <= k <= num_latents, got k={k}, num_latents={num_latents}")
        self.d_in, self.num_latents, self.k, self.layer = int(d_in), int(num_latents), int(k), layer
        self.encoder = _Linear(d_in, num_latents)
        self.W_dec = nn.Parameter(torch.empty(num_latents, d_in))
        self.b_dec = nn.Parameter(torch.zeros(d_in))
        with torch.no_grad():
            nn.init.normal_(self.encoder.weight, 0.0, 1.0, generator=gen)
            self.encoder.weight /= self.encoder.weight.norm(dim=1, keepdim=True)
            self.W_dec.copy_(self.encoder.weight)

    def pre_acts(self, x: torch.Tensor) -> torch.Tensor:
        """ReLU(W_enc (x - b_dec) + b_enc): (N, num_latents) >= 0."""
        return F.relu(F.linear(x.to(self.b_dec.dtype) - self.b_dec, self.encoder.weight, self.encoder.bias))

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(values (N, K) >= 0, latent indices (N, K) int64), largest first."""
        return self.pre_acts(x).topk(self.k, dim=-1, sorted=True)

    def decode(self, values: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        return F.embedding_bag(indices, self.W_dec, per_sample_weights=values, mode="sum") + self.b_dec

    def forward(self, x: torch.Tensor):
        values, indices = self.encode(x)
        return self.decode(values, indices), values, indices

    @torch.no_grad()
    def normalize_decoder(self) -> None:
        self.W_dec /= self.W_dec.norm(dim=1, keepdim=True).clamp_min(torch.finfo(self.W_dec.dtype).eps)

    @torch.no_grad()
    def remove_parallel_grad(self) -> None:
        if self.W_dec.grad is not None:
            g = self.W_dec.grad
            g -= (g * self.W_dec).sum(dim=1, keepdim=True) * self.W_dec


def fvu(x: torch.Tensor, recon: torch.Tensor) -> torch.Tensor:
    """Fraction of variance unexplained: ||x - x_hat||^2 / ||x - mean(x)||^2."""
    return (x - recon).pow(2).sum() / (x - x.mean(0)).pow(2).sum().clamp_min(1e-12)


def auxk_loss(sae: TopKSAE, pre: torch.Tensor, x: torch.Tensor, recon: torch.Tensor, dead: torch.Tensor,
              k_aux: int) -> torch.Tensor:
    """Gao et al.'s AuxK term (before ``auxk_coef``): the top-``k_aux`` dead pre-activations
    ``pre`` (N, latents) reconstruct ``e = x - recon`` (detached); normalised MSE. 0 if none is dead."""
    n_dead = int(dead.sum())
    if n_dead == 0 or k_aux < 1:
        return pre.new_zeros(())
    e = (x - recon).detach()
    vals, idx = pre.masked_fill(~dead[None, :], -1.0).topk(min(k_aux, n_dead), dim=-1, sorted=False)
    e_hat = F.embedding_bag(idx, sae.W_dec, per_sample_weights=vals.clamp_min(0.0), mode="sum")
    return (e_hat - e).pow(2).sum() / (e - e.mean(0)).pow(2).sum().clamp_min(1e-12)


def collect_activations(lm: LoadedLM, batch, layer: int, *, max_tokens: int | None = None, skip_bos: bool = True,
                        batch_tokens: int = 8192, progress=None) -> torch.Tensor:
    """float32 ``(tokens, d_model)`` states of ``hidden_states[layer]`` over all valid tokens
    (``progress(n_docs)`` after each micro-batch)."""
    seqs = truncated_sequences(lm, batch, max_tokens)
    out = []
    for docs, h, mask in hidden_batches(lm, seqs, layer, batch_tokens):
        m = _token_mask(lm, mask, skip_bos).to(h.device)
        out.append(h[m].float().cpu())
        if progress:
            progress(len(docs))
    return torch.cat(out) if out else torch.zeros(0, lm.hidden_size())


def _token_mask(lm: LoadedLM, mask: torch.Tensor, skip_bos: bool) -> torch.Tensor:
    m = mask.clone()
    if skip_bos and lm.tokenizer.bos_id is not None:
        m[:, 0] = False
    return m


DEAD_TOKENS = 10_000_000  # Gao et al. 2024: dead after 10M tokens without firing
AUXK_COEF = 1 / 32


def train_sae(acts: torch.Tensor, *, num_latents: int, k: int, layer: int | None = None, steps: int = 1000,
              batch_size: int = 1024, lr: float | None = None, seed: int = 0, device="cpu", auxk: bool = True,
              k_aux: int | None = None, dead_tokens: int | None = None, auxk_coef: float = AUXK_COEF,
              progress=None) -> tuple[TopKSAE, list[float]]:
    """Train a TopK SAE on ``acts`` (N, d) with FVU + ``auxk_coef`` x AuxK (``auxk=False``: FVU
    only); returns it (on ``device``; ``sae.train_info`` says what ran) and the FVU of every step."""
    acts = acts.float()
    g = generator(seed)
    sae = TopKSAE(acts.shape[1], num_latents, k, layer, g).to(resolve_device(device))
    with torch.no_grad():
        sae.b_dec.copy_(acts.mean(0).to(sae.b_dec.device))
    lr = lr or 2e-4 / math.sqrt(num_latents / 2 ** 14)  # sparsify's default scaling
    opt = torch.optim.Adam(sae.parameters(), lr=lr, eps=6.25e-10)
    bs = min(batch_size, len(acts))
    k_aux = int(k_aux or max(1, sae.d_in // 2))
    dead_tokens = int(dead_tokens or max(1, min(DEAD_TOKENS, steps * bs // 10)))
    since = torch.zeros(num_latents, dtype=torch.long, device=sae.b_dec.device)  # tokens since last fired
    history, aux_hist = [], []
    from lmsieve import progress as _progress

    bar = _progress.bar(total=steps, desc="SAE training", unit="step")
    for _ in range(steps):
        bar.update(1)
        x = acts[torch.randint(0, len(acts), (bs,), generator=g)].to(sae.b_dec.device)
        pre = sae.pre_acts(x)
        values, indices = pre.topk(sae.k, dim=-1, sorted=True)
        recon = sae.decode(values, indices)
        loss = fvu(x, recon)
        total = loss
        if auxk:
            aux = auxk_loss(sae, pre, x, recon, since >= dead_tokens, k_aux)
            total = loss + auxk_coef * aux
            aux_hist.append(float(aux.detach()))
        opt.zero_grad(set_to_none=True)
        total.backward()
        sae.remove_parallel_grad()
        opt.step()
        sae.normalize_decoder()
        with torch.no_grad():
            since += len(x)
            since[indices[values > 0]] = 0
        history.append(float(loss.detach()))
        if progress:
            progress(1)
    bar.close()
    sae.train_info = {"steps": steps, "batch_size": bs, "lr": lr, "tokens": len(acts), "auxk": bool(auxk),
                      "k_aux": k_aux, "dead_tokens": dead_tokens, "auxk_coef": auxk_coef,
                      "dead_fraction": float((since >= dead_tokens).float().mean()),
                      "fvu_first": history[0] if history else None, "fvu_last": history[-1] if history else None,
                      "auxk_last": aux_hist[-1] if aux_hist else None}
    return sae.eval(), history


def train_sae_on_texts(lm: LoadedLM, texts, out_dir, *, layer: int = -2, num_latents: int | None = None,
                      expansion: int = 8, k: int = 32, max_tokens: int = 256, steps: int = 1000,
                      batch_size: int = 1024, seed: int = 0, show_progress: bool = False, **auxk) -> TopKSAE:
    """Collect ``hidden_states[layer]`` of ``lm`` over ``texts`` (each cut to ``max_tokens``), train a
    TopK SAE with AuxK (``num_latents`` default ``expansion`` x d_model) and save it to ``out_dir``."""
    import logging

    from lmsieve.schemas.document import text_array

    idx = resolve_layer(lm, layer)
    texts = text_array(texts)
    bar = _bar(show_progress, len(texts), "SAE activations", "doc")
    acts = collect_activations(lm, texts, idx, max_tokens=min(int(max_tokens), lm.context),
                               progress=bar.update if bar else None)
    if bar:
        bar.close()
    if len(acts) < 2:
        raise ConfigError("train-sae: the data gave fewer than 2 tokens of activations")
    bar = _bar(show_progress, steps, "SAE training", "step")
    sae, hist = train_sae(acts, num_latents=int(num_latents or expansion * acts.shape[1]), k=k, layer=idx,
                          steps=steps, batch_size=batch_size, seed=seed, device=lm.device,
                          progress=bar.update if bar else None, **auxk)
    if bar:
        bar.close()
    sae.train_info.update({"docs": len(texts), "max_tokens": int(max_tokens), "model_hash": _model_hash(lm)})
    save_sae(sae, out_dir)
    logging.getLogger(__name__).info("SAE on hidden_states[%d]: %d tokens, FVU %.3f -> %.3f", idx, len(acts),
                                     hist[0], hist[-1])
    return sae


def _model_hash(lm: LoadedLM) -> str | None:
    try:
        return lm.model_hash()
    except ConfigError:
        return None


def _bar(show: bool, total: int, desc: str, unit: str):
    if not show:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit)


@torch.no_grad()
def document_codes(lm: LoadedLM, sae: TopKSAE, batch, *, store_k: int = 256, max_tokens: int | None = None,
                   skip_bos: bool = True, batch_tokens: int = 8192) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per document: (latent indices int32, mean code values float32), largest ``store_k`` first."""
    if sae.layer is None:
        raise ConfigError("this SAE has no layer; pass one when loading it")
    seqs = truncated_sequences(lm, batch, max_tokens)
    idx_out = [np.zeros(0, np.int32)] * len(seqs)
    val_out = [np.zeros(0, np.float32)] * len(seqs)
    for docs, h, mask in hidden_batches(lm, seqs, sae.layer, batch_tokens):
        m = _token_mask(lm, mask, skip_bos).to(h.device)
        values, indices = sae.encode(h[m].to(sae.b_dec.device))
        owner = torch.arange(len(docs), device=h.device)[:, None].expand_as(m)[m].to(values.device)
        dense = torch.zeros(len(docs), sae.num_latents, dtype=torch.float64, device=values.device)
        dense.index_put_((owner[:, None].expand_as(indices), indices), values.double(), accumulate=True)
        dense /= m.sum(1).clamp_min(1).to(dense)[:, None]
        keep = sae.num_latents if store_k <= 0 else min(store_k, sae.num_latents)
        top_v, top_i = dense.topk(keep, dim=1, sorted=True)
        for r, d in enumerate(docs):
            nz = top_v[r] > 0
            idx_out[d] = top_i[r][nz].cpu().numpy().astype(np.int32)
            val_out[d] = top_v[r][nz].cpu().numpy().astype(np.float32)
    return idx_out, val_out


def save_sae(sae: TopKSAE, out_dir: str | Path) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in sae.state_dict().items()}, str(out / "sae.safetensors"))
    cfg = {"d_in": sae.d_in, "num_latents": sae.num_latents, "k": sae.k, "expansion_factor": sae.num_latents // sae.d_in,
           "normalize_decoder": True, "activation": "topk", "lmsieve_layer": sae.layer}
    if getattr(sae, "train_info", None):
        cfg["lmsieve_train"] = sae.train_info
    (out / "cfg.json").write_text(json.dumps(cfg, indent=2))
    sae.path = out
    return out


def load_sae(path: str | Path, *, hookpoint: str | None = None, layer: int | None = None) -> TopKSAE:
    """A sparsify-format SAE directory (or ``path/hookpoint``); ``layer`` overrides the stored one."""
    path = Path(path) / hookpoint if hookpoint else Path(path)
    if not (path / "cfg.json").is_file() or not (path / "sae.safetensors").is_file():
        raise ConfigError(f"SAE {str(path)!r}: expected cfg.json and sae.safetensors (sparsify format)")
    cfg = json.loads((path / "cfg.json").read_text())
    if cfg.get("activation", "topk") != "topk" or cfg.get("transcode") or cfg.get("skip_connection"):
        raise ConfigError(f"SAE {str(path)!r}: only plain TopK autoencoders are supported (cfg {cfg})")
    d_in = int(cfg["d_in"])
    num_latents = int(cfg.get("num_latents") or d_in * int(cfg["expansion_factor"]))
    if layer is None:
        layer = cfg.get("lmsieve_layer")
        hook = re.fullmatch(r"(?:model\.)?layers\.(\d+)", path.name)
        if layer is None and hook:
            layer = int(hook.group(1)) + 1
    sae = TopKSAE(d_in, num_latents, int(cfg["k"]), layer)
    state = {k: v.float() for k, v in load_file(str(path / "sae.safetensors")).items()}
    sae.load_state_dict(state, strict=True)
    sae.path = path
    return sae.eval()


class SAECodes(Extractor):
    """Columns ``<name>_idx`` (list<int32>) and ``<name>_val`` (list<float32>): mean-pooled codes."""

    kind = "sae_codes"
    doc_batch = 256

    def __init__(self, lm: LoadedLM, sae: TopKSAE, *, name: str = "sae", store_k: int = 256,
                 max_tokens: int | None = None, skip_bos: bool = True):
        if getattr(sae, "path", None) is None:
            raise ConfigError("SAECodes needs a saved SAE (save_sae, then load_sae) for its fingerprint")
        self.lm, self.sae, self.name, self.store_k, self.skip_bos = lm, sae, name, int(store_k), skip_bos
        self.max_tokens = int(max_tokens or lm.context)
        resolve_layer(lm, sae.layer if sae.layer is not None else -1)

    def columns(self):
        return [FeatureColumn(f"{self.name}_idx", pa.list_(pa.int32()), (None,)),
                FeatureColumn(f"{self.name}_val", pa.list_(pa.float32()), (None,))]

    def params(self):
        return {"layer": self.sae.layer, "k": self.sae.k, "store_k": self.store_k, "max_tokens": self.max_tokens,
                "skip_bos": self.skip_bos, "sae": hash_files(self.sae.path, ["cfg.json", "sae.safetensors"])}

    def model_hash(self):
        return self.lm.model_hash()

    def __call__(self, batch):
        idx, val = document_codes(self.lm, self.sae, batch, store_k=self.store_k, max_tokens=self.max_tokens,
                                  skip_bos=self.skip_bos)
        return {f"{self.name}_idx": pa.array([i.tolist() for i in idx], pa.list_(pa.int32())),
                f"{self.name}_val": pa.array([v.tolist() for v in val], pa.list_(pa.float32()))}
