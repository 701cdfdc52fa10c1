"""RDS+: representation-based data selection (Ivison et al. 2025, arXiv:2503.01807).

Representation (``lmsieve.features.proxy_lm.pooling``): the last layer of a causal LM (``model``:
a fetched model name such as ``smollm2-135m``, a local Hugging Face directory or an lmsieve proxy;
default SmolLM2-135M once ``lmsieve models fetch smollm2-135m`` has run), position-weighted mean
over the valid tokens only (padding masked, positions counted over valid tokens), L2-normalised;
similarity = dot product with the target (query) examples. Documents are right-truncated to
``max_tokens`` = 2,048 tokens as in the paper (or the model's context if shorter). Instruction
rows are formatted with ``chat_template`` first.

Two single-task selections, as the reference repository has two:

* ``rds`` (``get_top_optimized``): a document's score is its **max similarity over the queries**;
  per-document, so the Beam features job can store it like ZIP-FIT's.
* ``rds-rr`` (``get_top_influences``): queries take turns popping their best remaining
  candidate; a popped candidate that is already selected is discarded and that query loses its
  turn. Only the top ``per_query_k`` candidates per query are kept (``knn.merge_topk`` over pool
  blocks), never the query x pool matrix.

Several tasks (a list or dict of target tables, both names): a document's task score is its max
over that task's queries; tasks then take turns adding their best not-yet-selected document
(*our choice*: a task whose candidate is taken moves on to its next one instead of losing its
turn, so every task gets floor(N/T) or one more of the first N picks whatever the score scales).

A round-robin order is not "rank by score": it is turned into a 1-D score usable by
``run_selection``: the document picked p-th (p = 0, 1, ...) scores -p, and every document the
round-robin never reached scores -(R + 2) + s (R picks, s its max similarity in [-1, 1]), so a
top-k by score reproduces the round-robin order and continues by similarity. Such scores are
global over what is scored at once: ``fit_and_score`` (CLI, API) scores the whole pool in one
``fit_score`` call; ``score_and_mask`` on a batch orders within that batch only.
The Beam jobs (``lmsieve.pipelines.round_robin``) therefore store, per document, its max
similarity and the queries whose per-unit top-``per_query_k`` it is in (:meth:`RDS.query_topk`),
merge those into the global per-query top-k with a combiner and run the round-robin once
(:func:`positions_to_scores`): the same scores as ``fit_score``. Multi-task selection is
in-process only (a Beam job's target files form one task).
"""
from __future__ import annotations

import numpy as np

from lmsieve.features.knn import merge_topk
from lmsieve.schemas.errors import ConfigError, InputError
from lmsieve.selectors.base import Selector, register
from lmsieve.selectors.chat_template import TEMPLATE_COLUMNS, template_texts
from lmsieve.selectors.fitted_dir import FittedDirMixin

EMBED_BLOCK = 1024
DEFAULT_MODEL = "smollm2-135m"


def default_model_ref(method: str) -> str:
    """``smollm2-135m`` when it is in the model cache, else one line saying how to fetch it."""
    try:
        from lmsieve.models import fetched_dir
    except ImportError:  # pragma: no cover - lmsieve.models ships with lmsieve
        fetched_dir = None
    if fetched_dir is not None and fetched_dir(DEFAULT_MODEL) is not None:
        return DEFAULT_MODEL
    raise ConfigError(f"{method} needs a language model: run `lmsieve models fetch {DEFAULT_MODEL}` once "
                      "(or pass model=<fetched name or local model directory>)")


def load_lm(ref: str, device: str = "auto", **kw):
    """A fetched model name or a local model directory -> a loaded causal LM."""
    from lmsieve.features.proxy_lm import load_proxy

    return load_proxy(ref, device=device, **kw)


def round_robin_order(cands: list[np.ndarray], limit: int | None = None) -> np.ndarray:
    """Single-task round-robin over queries (``get_top_influences``): ``cands[q]`` are query q's
    candidates best first; a popped candidate already taken is discarded and the turn is lost."""
    taken: set[int] = set()
    order: list[int] = []
    pos = [0] * len(cands)
    limit = limit if limit is not None else sum(len(c) for c in cands)
    live = [q for q in range(len(cands)) if len(cands[q])]
    while live and len(order) < limit:
        nxt = []
        for q in live:
            if len(order) >= limit:
                break
            c = int(cands[q][pos[q]])
            pos[q] += 1
            if c not in taken:
                taken.add(c)
                order.append(c)
            if pos[q] < len(cands[q]):
                nxt.append(q)
        live = nxt
    return np.array(order, dtype=np.int64)


def global_max_order(sims: np.ndarray) -> np.ndarray:
    """``get_top_optimized``: documents by max similarity over queries (ties: smaller index)."""
    return np.lexsort((np.arange(sims.shape[1]), -sims.max(axis=0)))


def task_round_robin(task_scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(order, picking task) for (N, T) task scores: tasks take turns adding their best document
    not yet selected (duplicates counted once)."""
    n, t = task_scores.shape
    ranked = [np.lexsort((np.arange(n), -task_scores[:, j])) for j in range(t)]
    taken = np.zeros(n, dtype=bool)
    pos = [0] * t
    order, who = [], []
    while len(order) < n:
        for j in range(t):
            while pos[j] < n and taken[ranked[j][pos[j]]]:
                pos[j] += 1
            if pos[j] < n:
                c = int(ranked[j][pos[j]])
                taken[c] = True
                order.append(c)
                who.append(j)
    return np.array(order, dtype=np.int64), np.array(who, dtype=np.int64)


def order_to_scores(order: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """1-D scores whose descending order starts with ``order`` and continues by ``fallback``."""
    pos = np.full(len(fallback), -1, dtype=np.int64)
    pos[order] = np.arange(len(order))
    return positions_to_scores(pos, len(order), fallback)


def positions_to_scores(pos: np.ndarray, n_order: int, fallback: np.ndarray) -> np.ndarray:
    """Per document: -p if it is the p-th of ``n_order`` picks (``pos`` = p >= 0), else
    -(n_order + 2) + its ``fallback`` similarity clipped to [-1, 1]."""
    s = -(n_order + 2) + np.clip(np.asarray(fallback, dtype=np.float64), -1.0, 1.0)
    return np.where(np.asarray(pos) >= 0, -np.asarray(pos, dtype=np.float64), s)


@register
class RDS(FittedDirMixin, Selector):
    """RDS+ with the global max-over-queries ranking (``get_top_optimized``)."""

    name = "rds"
    input_columns = TEMPLATE_COLUMNS
    fitted_attributes = ("queries_", "task_sizes_")
    execution_params = ("device", "batch_tokens")
    round_robin = False

    def __init__(self, model: str | None = None, pooling: str = "weighted", layer: int = -1,
                 max_tokens: int | None = 2048, per_query_k: int = 1024, device: str = "auto",
                 batch_tokens: int = 8192, fitted: str | None = None):
        if model is None and fitted is None:
            model = default_model_ref(self.name)
        if pooling not in ("weighted", "mean", "last"):
            raise ConfigError(f"pooling: expected weighted, mean or last, got {pooling!r}")
        super().__init__(model=None if model is None else str(model), pooling=pooling, layer=int(layer),
                         max_tokens=max_tokens, per_query_k=int(per_query_k), device=device,
                         batch_tokens=int(batch_tokens), fitted=fitted)
        self._init_fitted(fitted)

    def __getstate__(self):
        """Pickled (Beam workers) without the loaded models: they reload lazily from ``model``."""
        st = dict(super().__getstate__())
        for a in ("_lm",):
            st.pop(a, None)
        return st

    # -- representation -------------------------------------------------------------------------
    def lm(self):
        if getattr(self, "_lm", None) is None:
            self._lm = load_lm(self._params["model"], device=self._params["device"])
        return self._lm

    def fingerprint_params(self) -> dict:
        """Parameters (or the fitted files' hash) plus the model's content hash, so stored scores go
        stale with the model."""
        return {**super().fingerprint_params(), "model_hash": self.lm().model_hash()}

    def embed(self, batch) -> np.ndarray:
        """float32 (n, d) pooled, L2-normalised last-layer states of a batch (templated)."""
        from lmsieve.features.proxy_lm import pooled_states

        p, lm = self._params, self.lm()
        max_tokens = min(int(p["max_tokens"]), lm.context) if p["max_tokens"] else None
        return pooled_states(lm, template_texts(batch), mode=p["pooling"], layer=p["layer"],
                             max_tokens=max_tokens, batch_tokens=p["batch_tokens"])

    # -- fitting --------------------------------------------------------------------------------
    def fit(self, target, pool_sample=None) -> "RDS":
        if self._load_fitted():  # fitted=DIR: the saved queries (the target is not re-embedded)
            return self
        tasks = list(target.values()) if isinstance(target, dict) else \
            list(target) if isinstance(target, (list, tuple)) else [target]
        embs = [self.embed(t) for t in tasks]
        if not embs or any(len(e) == 0 for e in embs):
            raise InputError(f"{self.name} needs at least one query example per task", "target")
        self.queries_ = np.concatenate(embs).astype(np.float32)
        self.task_sizes_ = [len(e) for e in embs]
        return self

    # -- scoring --------------------------------------------------------------------------------
    def _stream(self, table, progress=None):
        """(per-task max (N, T), per-query top-k (scores, ids) or None) over the table in blocks."""
        q, bounds = self.queries_, np.cumsum([0] + list(self.task_sizes_))
        k = min(self._params["per_query_k"], table.num_rows if hasattr(table, "num_rows") else len(table))
        task_max, best = [], None
        n_rows = table.num_rows if hasattr(table, "num_rows") else len(table)
        for start in range(0, n_rows, EMBED_BLOCK):
            block = table.slice(start, EMBED_BLOCK) if hasattr(table, "slice") else table[start:start + EMBED_BLOCK]
            sims = q @ self.embed(block).T  # (Q, block): transient
            task_max.append(np.stack([sims[a:b].max(axis=0) for a, b in zip(bounds[:-1], bounds[1:])], axis=1))
            if self.round_robin and len(self.task_sizes_) == 1 and k > 0:
                kk = min(k, sims.shape[1])
                idx = np.argsort(-sims, axis=1, kind="stable")[:, :kk]
                s = np.take_along_axis(sims, idx, 1).astype(np.float32)
                best = (s, idx + start) if best is None else merge_topk(best[0], best[1], s, idx + start, k)
            if progress:
                progress(sims.shape[1])
        tm = np.concatenate(task_max).astype(np.float64) if task_max else np.zeros((0, len(self.task_sizes_)))
        return tm, best

    def _scores(self, table, progress=None) -> np.ndarray:
        tm, best = self._stream(table, progress)
        if len(tm) == 0:
            return np.zeros(0)
        if len(self.task_sizes_) > 1:
            order, _ = task_round_robin(tm)
            return order_to_scores(order, tm.max(axis=1))
        if not self.round_robin:
            return tm[:, 0]
        return order_to_scores(round_robin_order([row[row >= 0] for row in best[1]]), tm[:, 0])

    def score_and_mask(self, batch) -> tuple[np.ndarray, np.ndarray]:
        self.check_fitted()
        s = self._scores(_as_table(batch))
        return s, np.ones(len(s), dtype=bool)

    def query_topk(self, batch) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
        """(max similarity per document, (sims, rows) of each query's top-``per_query_k`` within
        the batch, rows -1 where missing): one unit's share of the global round-robin (single task)."""
        self.check_fitted()
        if not self.round_robin or len(self.task_sizes_) != 1:
            raise ConfigError(f"{self.name}: query_topk is for the single-task round-robin (rds-rr)")
        tm, best = self._stream(_as_table(batch))
        if best is None:
            best = (np.zeros((len(self.queries_), 0), np.float32), np.zeros((len(self.queries_), 0), np.int64))
        return tm[:, 0], best

    def fit_score(self, target, table, progress=None) -> tuple[np.ndarray, np.ndarray]:
        """Fit on ``target`` and score the whole ``table`` at once (global round-robin orders)."""
        self.fit(target)
        s = self._scores(table.select([c for c in table.column_names if c in self.input_columns]), progress)
        return s, np.ones(len(s), dtype=bool)

    # -- persistence ----------------------------------------------------------------------------
    def _state_json(self) -> dict:
        return {"task_sizes_": [int(x) for x in self.task_sizes_]}

    def _state_arrays(self) -> dict[str, np.ndarray]:
        return {"queries_": np.asarray(self.queries_, dtype=np.float32)}

    def _set_state(self, state: dict, arrays: dict) -> None:
        self.task_sizes_ = [int(x) for x in state["task_sizes_"]]
        self.queries_ = arrays["queries_"].astype(np.float32)

    def _save_files(self, path) -> None:  # the model is referenced by ``model``, not copied
        pass

    def _load_files(self, path) -> None:
        pass


def _as_table(batch):
    """A pyarrow table (or record batch) of a batch given as pyarrow, pandas or a list of str."""
    if hasattr(batch, "slice"):
        return batch
    import pyarrow as pa

    if hasattr(batch, "columns") and hasattr(batch, "to_dict"):  # pandas
        return pa.Table.from_pandas(batch, preserve_index=False)
    return pa.table({"text": list(batch)})


@register
class RDSRoundRobin(RDS):
    """RDS+ with round-robin over query examples (``get_top_influences``)."""

    name = "rds-rr"
    round_robin = True  # scores depend on the whole pool: Beam via lmsieve.pipelines.round_robin

    def fit(self, target, pool_sample=None) -> "RDSRoundRobin":
        return super().fit(target)
