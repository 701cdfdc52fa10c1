"""MATES: model-aware data selection with data influence models.

Yu, Das, Xiong (NeurIPS 2024), "MATES: Model-Aware Data Selection for Efficient Pretraining with
Data Influence Models"; reference cxcscmu/MATES 5d2860c.

* Probed model (``model``): a fetched model name (``smollm2-135m``), a local Hugging Face causal LM
  directory or an lmsieve proxy; saved with AdamW state (``lmsieve train-proxy --save-optimizer``,
  or ``save_proxy(lm, dir, optimizer=True)``) its moments are used as they are; without, MATES warms
  them up on ``warmup_docs`` pool-sample documents (not among the probed ones) with ``warmup_steps``
  zero-learning-rate AdamW steps, so the weights stay the model's
  (:func:`lmsieve.selectors.mates_probe.warm_adam_moments`). No model: a proxy is trained on the
  pool sample (``proxy_model``/``proxy_train``). ``proxy=`` is the old name of ``model=``.
* Oracle (:class:`~lmsieve.selectors.mates_probe.OracleProbe`): for each probed candidate, restore
  the weights *and AdamW state*, take one AdamW step on that candidate alone (gradient clipped to
  ``probe_clip`` 1.0 as the reference) at the learning rate the schedule gives at the checkpoint's
  step (``probe_lr`` overrides; a pretrained model with warmed moments uses 1e-4), record the mean
  loss on the reference set (the user's target: ``ref_windows`` windows of ``context`` tokens spread
  evenly over the whole target token stream, not its first documents). Lower is better. The
  candidate is its first ``probe_tokens`` tokens (1024, the paper's sequence length) as one batch
  of context-length windows covering them (a step on the first short window only gave a much
  noisier oracle: on 150 shared-pool candidates, AUC of "code_python has lower loss-after" for a
  Python target: 0.65 with the first 128 bytes, 0.86 with the whole candidate).
* Influence model (default ``influence="encoder"``, as the paper's fine-tuned bert-base): a
  transformer encoder + linear head fine-tuned by MSE on the oracle losses z-scored with the
  train split's mean/std (:mod:`lmsieve.selectors.mates_encoder`; ``encoder_path`` = a local
  encoder directory, default the packaged MiniLM; best epoch by held-out Spearman; held-out split
  by the stable hash of (seed, candidate id); saved under ``influence/`` as safetensors + JSON).
  ``encoder_max_length`` 128 tokens by default, not the paper's 2 x 512 (CPU cost).
  ``influence="head"``: frozen MiniLM sentence embeddings + a linear (``head="mlp"``: one hidden
  layer) head, cheaper.
* Selection: exactly the reference's ``mates_select``: ``m = prediction / temp + Gumbel(0, 1)``, the
  *smallest* m taken (``higher_is_better=False`` + ``default_ranking="gumbel"`` in
  :func:`lmsieve.sampling.select.ranking_keys`; negating the predictions and taking the largest
  would flip the noise's skew), ``default_temperature`` 0.5 (used by the API, CLI and Beam jobs
  unless a temperature is given); the paper keeps 20% of the stage's pool (``keep=0.2``).
* :func:`run_stages`: stage 0 trains the proxy on random data; every later stage re-probes with the
  current checkpoint, re-fits the influence model, selects 20% of its pool and continues training
  the proxy (optimizer state kept) on the selection.

Saved state: JSON + npz (head weights, z-score constants), ``influence/`` (encoder) and, for a
proxy trained during ``fit``, ``proxy/`` (weights + AdamW state; a given ``model`` is referenced by
its parameter, not copied). Probed candidates: the ``n_probe`` pool-sample documents first in the
order of the stable hash of (seed, id); warm-up documents the next ``warmup_docs``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from lmsieve.sampling.hashing import stable_hash64
from lmsieve.schemas.errors import ConfigError, InputError
from lmsieve.selectors.base import Selector, register
from lmsieve.selectors.color_filter import texts_of
from lmsieve.selectors.fitted_dir import FittedDirMixin
from lmsieve.selectors.mates_head import fit_head, head_predict
from lmsieve.selectors.mates_probe import FOREIGN_PROBE_LR, OracleProbe, warm_adam_moments


@register
class MATES(FittedDirMixin, Selector):
    """Score = predicted (z-scored) reference loss after training on the document; lower is better."""

    name = "mates"
    higher_is_better = False
    default_ranking = "gumbel"
    default_temperature = 0.5
    needs_pool_sample = True
    execution_params = ("device", "embed_batch_size", "batch_tokens")
    fitted_attributes = ("head_", "z_mean_", "z_std_")

    def __init__(self, model: str | None = None, proxy_model: dict | None = None, proxy_train: dict | None = None,
                 probe_lr: float | None = None, probe_clip: float = 1.0, n_probe: int = 200, ref_windows: int = 64,
                 probe_tokens: int = 1024, warmup_docs: int = 64, warmup_steps: int = 50,
                 encoder: str | None = None, influence: str = "encoder", encoder_path: str | None = None,
                 encoder_epochs: int = 3, encoder_lr: float = 5e-5, encoder_max_length: int = 128,
                 head: str = "linear", hidden: int = 256, epochs: int = 50, val_fraction: float = 0.1,
                 seed: int = 0, fitted: str | None = None, device: str = "auto", embed_batch_size: int = 64,
                 batch_tokens: int = 8192, proxy: str | None = None):
        if model is not None and proxy is not None and str(model) != str(proxy):
            raise ConfigError("mates: give model= (proxy= is its old name), not both")
        model = model if model is not None else proxy
        if head not in ("linear", "mlp"):
            raise ConfigError(f"head must be 'linear' or 'mlp', got {head!r}")
        if influence not in ("head", "encoder"):
            raise ConfigError(f"influence must be 'head' or 'encoder', got {influence!r}")
        if n_probe < 10:
            raise ConfigError("n_probe must be >= 10")
        super().__init__(model=None if model is None else str(model), proxy_model=proxy_model, proxy_train=proxy_train,
                         probe_lr=probe_lr, probe_clip=probe_clip, n_probe=n_probe, ref_windows=ref_windows,
                         probe_tokens=int(probe_tokens), warmup_docs=int(warmup_docs), warmup_steps=int(warmup_steps),
                         encoder=encoder, head=head, hidden=hidden,
                         influence=influence, encoder_path=encoder_path, encoder_epochs=encoder_epochs,
                         encoder_lr=encoder_lr, encoder_max_length=encoder_max_length,
                         epochs=epochs, val_fraction=val_fraction, seed=seed, fitted=fitted, device=device,
                         embed_batch_size=embed_batch_size, batch_tokens=int(batch_tokens))
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
        """Probe ``n_probe`` pool-sample candidates with the model (``lm``, ``model=``, or a proxy
        trained on the pool sample), then fit the influence model."""
        if self._load_fitted():
            return self
        p = self._params
        if pool_sample is None:
            raise ConfigError("MATES needs a pool sample: the candidates it probes")
        texts = texts_of(pool_sample)
        ids = pool_sample.column("id").to_pylist() if hasattr(pool_sample, "column_names") and \
            "id" in pool_sample.column_names else [str(i) for i in range(len(texts))]
        order = np.argsort(stable_hash64(p["seed"], ids), kind="stable")
        pick = order[: p["n_probe"]]
        lm, lr = self._probed_model(lm, texts, [texts[i] for i in order[p["n_probe"]:p["n_probe"] + p["warmup_docs"]]])
        cands = [texts[i] for i in pick]
        bar = None
        if len(cands) >= 50:
            from tqdm import tqdm

            bar = tqdm(total=len(cands), desc="MATES oracle probes", unit="probe")
        probe = OracleProbe(lm, target, lr, p["ref_windows"], p["probe_tokens"], clip=p["probe_clip"],
                            batch_tokens=p["batch_tokens"])
        y = probe.probe(cands, progress=bar.update if bar else None)
        if bar:
            bar.close()
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

    def _probed_model(self, lm, texts, warm_texts):
        """(model with AdamW state, probe lr or None for the schedule's)."""
        from lmsieve.features.proxy_lm import load_proxy, train_proxy
        from lmsieve.features.proxy_lm.checkpoint import resolve_model

        p = self._params
        if lm is None and p["model"] is not None:
            has_opt = (resolve_model(p["model"]) / "optimizer.safetensors").is_file()
            lm = load_proxy(p["model"], device=p["device"], with_optimizer=has_opt)
        elif lm is None:
            lm = train_proxy(texts, p["proxy_model"], {"seed": p["seed"], **(p["proxy_train"] or {})},
                             {"kind": "byte"}, device=p["device"])
        if getattr(lm, "optimizer", None) is not None:
            return lm, p["probe_lr"]
        if not warm_texts:
            raise ConfigError("mates: the model has no AdamW state and the pool sample leaves no warm-up documents "
                              f"after the {p['n_probe']} probed ones (lower n_probe or give a larger pool)")
        warm_adam_moments(lm, warm_texts, steps=p["warmup_steps"], window=min(lm.context, p["probe_tokens"]),
                          seed=p["seed"], clip=p["probe_clip"])
        return lm, p["probe_lr"] if p["probe_lr"] is not None else FOREIGN_PROBE_LR

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

        lm = getattr(self, "proxy_", None)
        if lm is not None and self._params.get("model") is None:  # trained here: nowhere else on disk
            save_proxy(lm, path / "proxy", optimizer=lm.optimizer is not None)
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


__all__ = ["MATES", "OracleProbe", "fit_head", "head_predict", "run_stages", "warm_adam_moments"]
