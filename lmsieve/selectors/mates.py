"""MATES: model-aware data selection with data influence models.

Yu, Das, Xiong (NeurIPS 2024), "MATES: Model-Aware Data Selection for Efficient Pretraining with
Data Influence Models"; reference cxcscmu/MATES 5d2860c.

* Oracle (:class:`OracleProbe`): for each probed candidate, restore the proxy checkpoint *with its
  AdamW state*, take one AdamW step on that candidate alone at the learning rate the schedule
  gives at the checkpoint's step (``probe_lr`` overrides), record the mean loss on the reference
  set (the user's target: ``ref_windows`` windows of ``context`` tokens spread evenly over the
  whole target token stream, not its first documents). Lower is better. No gradient clipping on
  the probe step (a single sequence). The candidate is its first ``probe_tokens`` tokens (1024, the
  paper's sequence length) as one batch of context-length windows covering them: our proxies'
  context (128-512) is shorter than the paper's 1024, and a step on the first window only gave a
  much noisier oracle (on 150 shared-pool candidates, AUC of "code_python has lower loss-after"
  for a Python target: 0.65 with the first 128 bytes, 0.86 with the whole candidate).
* Influence model: MiniLM sentence embeddings (``lmsieve.features.embeddings``; ``encoder`` = any
  local sentence-transformers path) + a linear head (``head="mlp"``: one hidden layer), fitted by
  MSE to the oracle losses z-scored with the train split's mean/std; 90/10 split by ``seed``;
  Adam, ``epochs`` epochs, the best epoch by Spearman on the held-out split. ``influence="encoder"``
  fine-tunes a transformer encoder + linear head instead, as the paper does with bert-base
  (:mod:`lmsieve.selectors.mates_encoder`; ``encoder_path`` = a local encoder directory, default the
  packaged MiniLM; held-out split by the stable hash of (seed, candidate id); saved under
  ``influence/`` in the fitted directory as safetensors + JSON).
* Selection: exactly the reference's ``mates_select``: ``m = prediction / temp + Gumbel(0, 1)``, the
  *smallest* m taken (``higher_is_better=False`` + ``default_ranking="gumbel"`` in
  :func:`lmsieve.sampling.select.ranking_keys`; negating the predictions and taking the largest
  would flip the noise's skew), ``default_temperature`` 0.5 (used by the API, CLI and Beam jobs
  unless a temperature is given); the paper keeps 20% of the stage's pool (``keep=0.2``).
* :func:`run_stages`: stage 0 trains the proxy on random data; every later stage re-probes with the
  current checkpoint, re-fits the influence model, selects 20% of its pool and continues training
  the proxy (optimizer state kept) on the selection.

Saved state: JSON + npz (head weights, z-score constants) + ``proxy/`` (safetensors checkpoint
with AdamW state). Probed candidates: the ``n_probe`` pool-sample documents first in the order of
the stable hash of (seed, id).
"""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np

from lmsieve.sampling.hashing import stable_hash64
from lmsieve.schemas.errors import ConfigError, InputError
from lmsieve.selectors.base import Selector, register
from lmsieve.selectors.color_filter import FittedDirMixin, texts_of
from lmsieve.selectors.mates_head import fit_head, head_predict


class OracleProbe:
    """One-AdamW-step probes from a fixed checkpoint; the state is restored before every probe."""

    def __init__(self, lm, reference_texts, lr: float | None = None, ref_windows: int = 64, probe_tokens: int = 1024):
        import torch

        from lmsieve.features.proxy_lm.train import lr_at, token_stream, window_starts

        if lm.optimizer is None:
            raise ConfigError("MATES probes need the proxy's AdamW state (load it with_optimizer=True)")
        self.lm = lm
        cfg = lm.train_cfg
        self.lr = float(lr) if lr is not None else lr_at(max(0, lm.step - 1), max(1, cfg.steps), cfg)
        stream = torch.from_numpy(token_stream(lm.tokenizer, texts_of(reference_texts)).astype(np.int64))
        span = min(lm.context + 1, len(stream))
        if span < 2:
            raise InputError("the reference set holds no tokens", "target")
        starts = window_starts(len(stream), span)  # evenly spread over the whole reference set
        starts = starts[np.unique(np.linspace(0, len(starts) - 1, min(ref_windows, len(starts))).round().astype(int))]
        self.ref = torch.stack([stream[s:s + span] for s in starts.tolist()])
        self.probe_tokens = int(probe_tokens)
        self.model_state = {k: v.detach().clone() for k, v in lm.model.state_dict().items()}
        self.opt_state = copy.deepcopy(lm.optimizer.state_dict())

    def restore(self) -> None:
        self.lm.model.load_state_dict(self.model_state)
        self.lm.optimizer.load_state_dict(copy.deepcopy(self.opt_state))

    def ref_loss(self) -> float:
        import torch

        from lmsieve.features.proxy_lm.train import lm_loss

        self.lm.model.eval()
        with torch.no_grad():
            total = sum(float(lm_loss(self.lm, self.ref[i:i + 16])) * len(self.ref[i:i + 16])
                        for i in range(0, len(self.ref), 16))
        return total / len(self.ref)

    def windows(self, text: str):
        """The candidate's first ``probe_tokens`` tokens (after ``<bos>``) as one batch of windows
        covering them (``None`` when it has no token)."""
        import torch

        from lmsieve.features.proxy_lm.train import window_starts

        ids = self.lm.tokenizer.encode_batch([text])[0][: self.probe_tokens]
        seq = torch.from_numpy(np.concatenate([[self.lm.tokenizer.bos_id], ids]).astype(np.int64))
        if len(seq) < 2:
            return None
        span = min(self.lm.context + 1, len(seq))
        return torch.stack([seq[s:s + span] for s in window_starts(len(seq), span).tolist()])

    def step_on(self, text: str) -> None:
        from lmsieve.features.proxy_lm.train import lm_loss

        seq = self.windows(text)
        if seq is None:
            return
        opt = self.lm.optimizer
        for g in opt.param_groups:
            g["lr"] = self.lr
        self.lm.model.train()
        loss = lm_loss(self.lm, seq)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def probe(self, texts) -> np.ndarray:
        """Reference loss after one step on each candidate (float64), from the same state each time."""
        out = []
        for t in texts_of(texts):
            self.restore()
            self.step_on(t)
            out.append(self.ref_loss())
        self.restore()
        return np.array(out, dtype=np.float64)


@register
class MATES(FittedDirMixin, Selector):
    """Score = predicted (z-scored) reference loss after training on the document; lower is better."""

    name = "mates"
    higher_is_better = False
    default_ranking = "gumbel"
    default_temperature = 0.5
    needs_pool_sample = True
    execution_params = ("device", "embed_batch_size")
    fitted_attributes = ("head_", "z_mean_", "z_std_")

    def __init__(self, proxy: str | None = None, proxy_model: dict | None = None, proxy_train: dict | None = None,
                 probe_lr: float | None = None, n_probe: int = 200, ref_windows: int = 64, probe_tokens: int = 1024,
                 encoder: str | None = None, influence: str = "head", encoder_path: str | None = None,
                 encoder_epochs: int = 3, encoder_lr: float = 5e-5, encoder_max_length: int = 128,
                 head: str = "linear", hidden: int = 256, epochs: int = 50, val_fraction: float = 0.1,
                 seed: int = 0, fitted: str | None = None, device: str = "cpu", embed_batch_size: int = 64):
        if head not in ("linear", "mlp"):
            raise ConfigError(f"head must be 'linear' or 'mlp', got {head!r}")
        if influence not in ("head", "encoder"):
            raise ConfigError(f"influence must be 'head' or 'encoder', got {influence!r}")
        if n_probe < 10:
            raise ConfigError("n_probe must be >= 10")
        super().__init__(proxy=proxy, proxy_model=proxy_model, proxy_train=proxy_train, probe_lr=probe_lr,
                         n_probe=n_probe, ref_windows=ref_windows, probe_tokens=int(probe_tokens), encoder=encoder, head=head, hidden=hidden,
                         influence=influence, encoder_path=encoder_path, encoder_epochs=encoder_epochs,
                         encoder_lr=encoder_lr, encoder_max_length=encoder_max_length,
                         epochs=epochs, val_fraction=val_fraction, seed=seed, fitted=fitted, device=device,
                         embed_batch_size=embed_batch_size)
        self._init_fitted(fitted)

    def embed(self, batch) -> np.ndarray:
        from lmsieve.features.embeddings import Embedder

        if getattr(self, "_embedder", None) is None:
            self._embedder = Embedder(self._params["encoder"], device="cpu", batch_size=self._params["embed_batch_size"])
        return self._embedder.encode(texts_of(batch))

    def __getstate__(self):
        st = self.__dict__.copy()
        st["_embedder"] = None
        return st

    def fit(self, target, pool_sample=None, lm=None) -> "MATES":
        """Probe ``n_probe`` pool-sample candidates with the proxy (``lm``, ``proxy=PATH``, or one trained
        on the pool sample), then fit the influence head."""
        if self._load_fitted():
            return self
        from lmsieve.features.proxy_lm import load_proxy, train_proxy

        p = self._params
        if pool_sample is None:
            raise ConfigError("MATES needs a pool sample: the candidates it probes")
        texts = texts_of(pool_sample)
        if lm is None and p["proxy"] is not None:
            lm = load_proxy(p["proxy"], device=p["device"], with_optimizer=True)
        elif lm is None:
            lm = train_proxy(texts, p["proxy_model"], {"seed": p["seed"], **(p["proxy_train"] or {})},
                             {"kind": "byte"}, device=p["device"])
        ids = pool_sample.column("id").to_pylist() if hasattr(pool_sample, "column_names") and \
            "id" in pool_sample.column_names else [str(i) for i in range(len(texts))]
        pick = np.argsort(stable_hash64(p["seed"], ids), kind="stable")[: p["n_probe"]]
        cands = [texts[i] for i in pick]
        y = OracleProbe(lm, target, p["probe_lr"], p["ref_windows"], p.get("probe_tokens", 1024)).probe(cands)
        if p.get("influence", "head") == "encoder":
            return self._fit_encoder(cands, [ids[i] for i in pick], y, lm)
        fitted = fit_head(self.embed(cands), y, seed=p["seed"], hidden=p["hidden"] if p["head"] == "mlp" else 0,
                          epochs=p["epochs"], val_fraction=p["val_fraction"])
        self.head_ = fitted["weights"]
        self.z_mean_, self.z_std_ = fitted["mean"], fitted["std"]
        self.report_ = {"spearman": fitted["spearman"], "epoch": fitted["epoch"], "n_probe": len(cands),
                        "oracle_mean": float(y.mean()), "oracle_std": float(y.std())}
        self.proxy_ = lm
        self.oracle_ = y
        return self

    def _fit_encoder(self, cands, cand_ids, y, lm) -> "MATES":
        from lmsieve.selectors.mates_encoder import fit_encoder, heldout_mask

        p = self._params
        tr = ~heldout_mask(cand_ids, p["seed"], p["val_fraction"])
        self.z_mean_, self.z_std_ = float(y[tr].mean()), float(y[tr].std() or 1.0)
        self.encoder_ = fit_encoder(cands, (y - self.z_mean_) / self.z_std_, p["encoder_path"], ids=cand_ids,
                                    epochs=p["encoder_epochs"], lr=p["encoder_lr"], max_length=p["encoder_max_length"],
                                    seed=p["seed"], heldout_fraction=p["val_fraction"], device=p["device"])
        self.head_ = {}
        r = self.encoder_.report
        self.report_ = {"spearman": r["spearman"], "epoch": r["epoch"], "n_probe": len(cands),
                        "oracle_mean": float(y.mean()), "oracle_std": float(y.std())}
        self.proxy_, self.oracle_ = lm, y
        return self

    def score_and_mask(self, batch) -> tuple[np.ndarray, np.ndarray]:
        self.check_fitted()
        if getattr(self, "encoder_", None) is not None:
            s = self.encoder_.predict(texts_of(batch), batch_size=self._params["embed_batch_size"])
            return s, np.ones(len(s), dtype=bool)
        X = self.embed(batch)
        return head_predict(self.head_, X), np.ones(len(X), dtype=bool)

    # -- persistence ----------------------------------------------------------------------------
    def _state_json(self) -> dict:
        return {"z_mean_": self.z_mean_, "z_std_": self.z_std_, "report_": getattr(self, "report_", {})}

    def _state_arrays(self) -> dict:
        return {f"head.{k}": v for k, v in self.head_.items()}

    def _set_state(self, state, arrays) -> None:
        self.z_mean_, self.z_std_, self.report_ = state["z_mean_"], state["z_std_"], state.get("report_", {})
        self.head_ = {k[5:]: v for k, v in arrays.items() if k.startswith("head.")}

    def _save_files(self, path: Path) -> None:
        from lmsieve.features.proxy_lm import save_proxy

        if getattr(self, "proxy_", None) is not None:
            save_proxy(self.proxy_, path / "proxy", optimizer=self.proxy_.optimizer is not None)
        if getattr(self, "encoder_", None) is not None:
            self.encoder_.save(path / "influence")

    def _load_files(self, path: Path) -> None:
        self.proxy_path_ = path / "proxy" if (path / "proxy").is_dir() else None
        if self._params.get("influence", "head") == "encoder":
            from lmsieve.selectors.mates_encoder import EncoderRegressor

            self.encoder_ = EncoderRegressor.load(path / "influence", device=self._params["device"])


def run_stages(pool, reference, *, stages: int = 3, steps_per_stage: int = 100, fraction: float = 0.2,
               temperature: float = 0.5, seed: int = 0, proxy_model: dict | None = None, **params) -> list[list[str]]:
    """MATES's staged loop over ``pool`` (a Table with id/text): the ids selected per stage."""
    import pyarrow as pa

    from lmsieve.features.proxy_lm import finetune, train_proxy
    from lmsieve.sampling.select import Budget, select

    ids = pool.column("id")
    part = stable_hash64(seed, ids) % np.uint64(stages)
    parts = [pool.filter(pa.array(part == np.uint64(s))) for s in range(stages)]
    rnd = parts[0].take(pa.array(select(np.zeros(parts[0].num_rows), parts[0].column("id"), Budget(fraction=fraction),
                                        seed=seed, ranking="gumbel")))
    lm = train_proxy(rnd, proxy_model, {"seed": seed, "steps": steps_per_stage}, {"kind": "byte"}, device="cpu")
    out = [rnd.column("id").to_pylist()]
    for s in range(1, stages):
        sel = MATES(seed=seed + s, **params).fit(reference, parts[s], lm=lm)
        idx = select(sel.score(parts[s]), parts[s].column("id"), Budget(fraction=fraction), seed=seed + s,
                     ranking="gumbel", temperature=temperature, higher_is_better=False)
        chosen = parts[s].take(pa.array(idx))
        finetune(lm, chosen, {"seed": seed + s, "lr": lm.train_cfg.lr}, epochs=1, reset_optimizer=False)
        out.append(chosen.column("id").to_pylist())
    return out


__all__ = ["MATES", "OracleProbe", "fit_head", "head_predict", "run_stages"]
