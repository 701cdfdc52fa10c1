"""Meta-rater (Zhuang et al., ACL 2025, arXiv 2504.14194): a weighted sum of [0, 5]-scaled quality ratings,
with weights from proxy runs + LightGBM (:mod:`lmsieve.selectors.meta_rater_search`).

The rating table (the paper's 25 scores, as far as they run offline):

* ``redpajama``: the 11 RedPajama-V2 signals (:mod:`lmsieve.features.redpajama_signals`);
* ``dsir_refs``: DSIR importance scores against named reference sets (name -> parquet path or
  ``sample:<domain>`` for the bundled sample's documents of that domain). Default, standing in for
  the paper's wiki / AutoMathText / books: ``wiki`` = ``sample:dictionary`` (WordNet glosses and the
  Jargon File, the closest encyclopedic text we bundle), ``math`` = ``sample:math`` (Metamath),
  ``books`` = ``sample:literature`` (Shakespeare, Milton, Austen, KJV). The raw distribution is the
  pool (sample) seen at ``fit``;
* ``models``: offline model raters (:mod:`lmsieve.features.model_raters`), off by default (CPU
  cost): ``{"perplexity": "smollm2-135m", "english": "lid176"}`` (``lmsieve models fetch NAME``);
* ``score_columns``: any float column of the pool as a user rater (QuRating, FineWeb-Edu, PRRC
  scores come this way); ``classes={col: n}`` marks classifier outputs (index or probabilities).

Continuous ratings are min–max scaled over the pool to [0, 5] (constant -> 0; NaN -> 0; later
values clipped) with the statistics stored and reused; classifier outputs are argmax/(n−1)·5.
Score = Σ sign_f·w_f·x_f; ``signs`` (our addition, the spec's pitfall) lets a rating count against.
``weights`` (name -> w) skips the search; otherwise ``fit`` runs it (``proxy_runs``, default 256).
Saved state: JSON + arrays (statistics, weights, runs, losses) + each DSIR reference in its own
sub-directory + ``runs.parquet`` + ``meta_rater.png``; ``fitted=DIR`` loads it (Beam jobs).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from lmsieve.schemas.errors import ConfigError, InputError
from lmsieve.selectors.base import Selector, register
from lmsieve.selectors.fitted_dir import FittedDirMixin
from lmsieve.selectors.meta_rater_search import top_fraction_mask  # noqa: F401  (re-exported)

DEFAULT_DSIR_REFS = {"wiki": "sample:dictionary", "math": "sample:math", "books": "sample:literature"}
DEFAULT_PROXY = {"model": {"n_layer": 2, "d_model": 64, "n_head": 4, "context": 128}, "steps": 100,
                 "batch_size": 16, "lr": 3e-3}
PLOT, RUNS = "meta_rater.png", "runs.parquet"


def minmax_stats(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with np.errstate(all="ignore"):
        lo, hi = np.nanmin(np.where(np.isfinite(X), X, np.nan), axis=0), np.nanmax(np.where(np.isfinite(X), X, np.nan), axis=0)
    return np.nan_to_num(lo), np.nan_to_num(hi)


def scale_0_5(X: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Min–max to [0, 5] with stored statistics; constant features map to 0; clipped; NaN -> 0."""
    span = hi - lo
    with np.errstate(all="ignore"):
        out = np.where(span > 0, (X - lo) / np.where(span > 0, span, 1.0) * 5.0, 0.0)
    return np.clip(np.nan_to_num(out, nan=0.0), 0.0, 5.0)


def scale_classes(pred, n_classes: int) -> np.ndarray:
    """Classifier output -> [0, 5]: argmax index / (n − 1) × 5 (``pred`` = indices or (n, C) probabilities)."""
    p = np.asarray(pred, dtype=np.float64)
    idx = p.argmax(-1) if p.ndim == 2 else p
    return idx / (n_classes - 1) * 5.0


def _reference(spec: str):
    """A DSIR reference set: ``sample:<domain>`` (bundled sample) or a parquet/jsonl path."""
    import pyarrow.compute as pc

    from lmsieve.io.inputs import load_docs

    if str(spec).startswith("sample:"):
        import pyarrow.parquet as pq

        from lmsieve.data import sample_path

        t = pq.read_table(sample_path("pool.parquet"))
        t = t.filter(pc.equal(t.column("domain"), spec.split(":", 1)[1]))
        if t.num_rows == 0:
            raise ConfigError(f"meta_rater.dsir_refs: the bundled sample has no domain {spec.split(':', 1)[1]!r}")
        return t.select(["id", "text"])
    return load_docs(spec, name="dsir reference")[0]


@register
class MetaRater(FittedDirMixin, Selector):
    name = "meta_rater"
    needs_pool_sample = True  # min–max statistics, DSIR's raw distribution and the proxy runs use the pool
    execution_params = ("device", "batch_size", "runs", "progress")
    fitted_attributes = ("names_", "lo_", "hi_", "weights_")
    cli_note = ("proxy_runs=256 (Dirichlet(1) weightings, one proxy LM each; runs=PATH keeps the resumable run "
                "table), weights={name: w} skips the search, signs={name: -1}, score_columns=[...], "
                "models={\"perplexity\": \"smollm2-135m\", \"english\": \"lid176\"}; fit once with --save-fitted")

    def __init__(self, redpajama: bool = True, dsir_refs: dict | None = None, models: dict | None = None,
                 score_columns=(), classes: dict | None = None, signs: dict | None = None, weights: dict | None = None,
                 proxy_runs: int = 256, top_fraction: float = 0.15, dirichlet_alpha: float = 1.0,
                 candidate_alpha: float = 1.0, n_candidates: int = 200_000, top_k: int = 128,
                 objective: str = "target", proxy: dict | None = None, trainer: str | None = None,
                 eval_docs: int = 64, eval_chars: int = 1024, general_docs: int = 64, regressor: dict | None = None,
                 max_tokens: int = 512, seed: int = 0, fitted: str | None = None, device: str = "cpu",
                 batch_size: int = 8, runs: str | None = None, progress: bool = True):
        if not 0 < top_fraction < 1:
            raise ConfigError(f"meta_rater.top_fraction must be in (0, 1), got {top_fraction}")
        if int(proxy_runs) < 2:
            raise ConfigError(f"meta_rater.proxy_runs must be >= 2, got {proxy_runs}")
        super().__init__(redpajama=bool(redpajama), dsir_refs=DEFAULT_DSIR_REFS if dsir_refs is None else dict(dsir_refs),
                         models=dict(models or {}), score_columns=list(score_columns), classes=dict(classes or {}),
                         signs=dict(signs or {}), weights=weights, proxy_runs=int(proxy_runs),
                         top_fraction=float(top_fraction), dirichlet_alpha=float(dirichlet_alpha),
                         candidate_alpha=float(candidate_alpha), n_candidates=int(n_candidates), top_k=int(top_k),
                         objective=objective, proxy={**DEFAULT_PROXY, **(proxy or {})}, trainer=trainer,
                         eval_docs=int(eval_docs), eval_chars=int(eval_chars), general_docs=int(general_docs),
                         regressor=dict(regressor or {}), max_tokens=int(max_tokens), seed=int(seed), fitted=fitted,
                         device=device, batch_size=int(batch_size), runs=runs, progress=bool(progress))
        unknown = set(self._params["models"]) - {"perplexity", "english"}
        if unknown:
            raise ConfigError(f"meta_rater.models.{sorted(unknown)[0]}: expected 'perplexity' or 'english'")
        self._init_fitted(fitted)
        self.input_columns = ("text", *self._params["score_columns"])

    # -- the rating table ---------------------------------------------------------------------------
    def _raters(self) -> dict:
        if not hasattr(self, "_model_raters"):
            from lmsieve.features.model_raters import EnglishRater, PerplexityRater

            p, r = self._params, {}
            if "perplexity" in p["models"]:
                r["perplexity"] = PerplexityRater(p["models"]["perplexity"], max_tokens=p["max_tokens"],
                                                  batch_size=p["batch_size"], device=p["device"])
            if "english" in p["models"]:
                r["english"] = EnglishRater(p["models"]["english"])
            self._model_raters = r
        return self._model_raters

    def ratings(self, batch) -> dict[str, np.ndarray]:
        """Raw (unscaled) ratings of a batch, name -> array; classifier columns already on [0, 5]."""
        p = self._params
        out: dict[str, np.ndarray] = {}
        if p["redpajama"]:
            from lmsieve.features.redpajama_signals import redpajama_signals

            out.update(redpajama_signals(batch))
        for ref in p["dsir_refs"]:
            if ref not in getattr(self, "dsir_", {}):
                raise ConfigError("meta_rater: the DSIR raters need fit(target, pool_sample) first")
            out[f"dsir_{ref}"] = self.dsir_[ref].score(batch)
        for name, rater in self._raters().items():
            out[name] = rater(batch)
        for col in p["score_columns"]:
            if not hasattr(batch, "column") or col not in batch.schema.names:
                raise InputError(f"meta_rater: score column {col!r} is missing from the batch")
            v = np.asarray(batch.column(col).to_pylist(), dtype=np.float64)
            out[col] = scale_classes(v, p["classes"][col]) if col in p["classes"] else v
        return out

    def scaled(self, batch) -> np.ndarray:
        self.check_fitted()
        r = self.ratings(batch)
        return scale_0_5(np.column_stack([r[k] for k in self.names_]), self.lo_, self.hi_)

    def score_and_mask(self, batch) -> tuple[np.ndarray, np.ndarray]:
        s = self.scaled(batch) @ self.weights_
        return s, np.ones(len(s), dtype=bool)

    # -- fitting ------------------------------------------------------------------------------------
    def fit(self, target, pool_sample=None) -> "MetaRater":
        if self._load_fitted():
            return self
        if pool_sample is None:
            raise ConfigError("meta_rater needs the pool (pool_sample) for its statistics and proxy runs")
        p = self._params
        if p["dsir_refs"]:
            from lmsieve.selectors.dsir import DSIR

            self.dsir_ = {k: DSIR().fit(_reference(v), pool_sample) for k, v in p["dsir_refs"].items()}
        raw = self.ratings(pool_sample)
        names = list(raw)
        X = np.column_stack([raw[k] for k in names])
        self.names_ = names
        self.lo_, self.hi_ = minmax_stats(X)
        for col in p["classes"]:  # classifier outputs are already on [0, 5]
            j = names.index(col)
            self.lo_[j], self.hi_[j] = 0.0, 5.0
        self.signs_ = np.array([float(p["signs"].get(k, 1.0)) for k in names])
        bad = sorted(set(p["signs"]) - set(names))
        if bad:
            raise ConfigError(f"meta_rater.signs.{bad[0]}: not a rating (ratings: {', '.join(names)})")
        if p["weights"] is not None:
            unknown = sorted(set(p["weights"]) - set(names))
            if unknown:
                raise ConfigError(f"meta_rater.weights.{unknown[0]}: not a rating (ratings: {', '.join(names)})")
            w = np.array([float(p["weights"].get(k, 0.0)) for k in names])
        else:
            w = self._search(target, pool_sample, scale_0_5(X, self.lo_, self.hi_) * self.signs_)
        self.weights_ = w * self.signs_
        return self

    def _search(self, target, pool, Xs: np.ndarray) -> np.ndarray:
        import pyarrow as pa

        from lmsieve.sampling.hashing import stable_hash64
        from lmsieve.schemas.document import text_array
        from lmsieve.selectors import meta_rater_search as mrs

        p = self._params
        if target is None:
            raise ConfigError("meta_rater: the weight search needs a target (its held-out half is the validation set)")
        tgt = target if isinstance(target, pa.Table) and "id" in target.column_names else None
        if tgt is None:
            texts = text_array(target)
            tgt = pa.table({"id": [str(i) for i in range(len(texts))], "text": texts})
        if tgt.num_rows < 2:
            raise ConfigError("meta_rater: the target needs at least 2 documents (half of it is held out)")
        th = stable_hash64(p["seed"], tgt.column("id").to_pylist())
        held = tgt.filter(pa.array(th % 2 == 1)) if (th % 2 == 1).any() else tgt
        ids = pool.column("id").to_pylist()
        ph = stable_hash64(p["seed"] + 1, ids)
        general = np.zeros(len(ids), bool)
        general[np.argsort(ph, kind="stable")[:min(p["general_docs"], len(ids) // 10)]] = True
        evals = {"target": held.select(["id", "text"]), "general": pool.filter(pa.array(general)).select(["id", "text"])}
        trainer = (mrs.load_trainer(p["trainer"]) if p["trainer"] else
                   mrs.proxy_trainer(p["proxy"], eval_docs=p["eval_docs"], eval_chars=p["eval_chars"]))
        # what determines a run's loss (not the search-only parameters, so a rerun with another
        # candidate_alpha or more proxy_runs reuses the finished runs)
        search_only = ("proxy_runs", "n_candidates", "top_k", "candidate_alpha", "objective", "regressor", "weights")
        key = {"params": {k: v for k, v in p.items() if k not in self.execution_params + ("fitted",) + search_only},
               "names": self.names_, "pool": int(stable_hash64(0, ids).sum() % (1 << 62)),
               "target": int(th.sum() % (1 << 62))}
        path = p["runs"] or mrs.default_runs_path(key)
        W, losses, rows = mrs.run_proxies(Xs, self.names_, pool, evals, trainer, path, n_runs=p["proxy_runs"],
                                          alpha=p["dirichlet_alpha"], fraction=p["top_fraction"], exclude=general,
                                          progress=p["progress"], config=mrs.config_hash(key))
        res = mrs.fit_and_search(W, losses, objective=p["objective"], n_candidates=p["n_candidates"],
                                 top=p["top_k"], alpha=p["candidate_alpha"], params=p["regressor"] or None)
        self.runs_, self.losses_, self.runs_path_ = W, losses, path
        self.spearman_ = res["spearman"]
        self.heldout_ = {k: {kk: vv for kk, vv in v.items()} for k, v in res["heldout"].items()}
        self.predicted_loss_ = res["predicted_loss"]
        return res["weights"]

    # -- persistence --------------------------------------------------------------------------------
    def __getstate__(self):
        st = super().__getstate__()
        st.pop("_model_raters", None)  # models load lazily where the selector runs
        return st

    def _state_json(self):
        return {"names_": list(self.names_), "spearman_": getattr(self, "spearman_", {}),
                "heldout_": getattr(self, "heldout_", {}), "predicted_loss_": getattr(self, "predicted_loss_", None),
                "runs_path_": getattr(self, "runs_path_", None)}

    def _state_arrays(self):
        out = {"lo_": self.lo_, "hi_": self.hi_, "weights_": self.weights_}
        if hasattr(self, "runs_"):
            out.update(runs_=self.runs_, losses_=self.losses_)
        return out

    def _set_state(self, state, arrays):
        super()._set_state(state, arrays)
        self.names_ = list(self.names_)

    def _save_files(self, path: Path) -> None:
        for name, d in getattr(self, "dsir_", {}).items():
            d.save(path / f"dsir_{name}")
        if hasattr(self, "runs_"):
            from lmsieve.selectors.meta_rater_search import plot_fit

            if self.runs_path_ and os.path.exists(self.runs_path_) and os.path.abspath(self.runs_path_) != os.path.abspath(path / RUNS):
                shutil.copyfile(self.runs_path_, path / RUNS)
            plot_fit(str(path / PLOT), self.names_, self.weights_, self.heldout_, self._params["objective"])

    def _load_files(self, path: Path) -> None:
        from lmsieve.selectors.dsir import DSIR

        if (path / RUNS).is_file():
            self.runs_path_ = str(path / RUNS)
        self.dsir_ = {}
        for name in self._params["dsir_refs"]:
            d = path / f"dsir_{name}"
            if not d.is_dir():
                raise ConfigError(f"{str(path)!r}: no {d.name}/ (the DSIR reference {name!r})")
            self.dsir_[name] = DSIR.load(d)


def search_weights(evaluate, n_features: int, *, n_runs: int = 256, seed: int = 1048, n_candidates: int = 200_000,
                   top: int = 128, alpha: float = 1.0, candidate_alpha: float = 1.0, early_stopping: int = 5) -> dict:
    """The search on a loss function of weight vectors (``evaluate(W) -> losses``), for simulations."""
    from lmsieve.selectors.meta_rater_search import fit_and_search

    W = np.random.Generator(np.random.PCG64(seed)).dirichlet(np.full(n_features, alpha), n_runs)
    losses = np.asarray(evaluate(W), dtype=np.float64)
    res = fit_and_search(W, np.column_stack([losses, losses]), n_candidates=n_candidates, top=top,
                         alpha=candidate_alpha, early_stopping=early_stopping)
    return {"weights": res["weights"], "runs": W, "losses": losses, "spearman": res["spearman"]["target"]}
