"""Global selection at scale: per-group cutoffs from approximate quantiles, exact when asked.

The in-process selection ranks documents by (key descending, tiebreak ascending), where key and
tiebreak come from :func:`lmsieve.sampling.ranking_keys` (score or score/T + Gumbel noise from the
stable (seed, id) hash; ineligible documents never rank), and keeps a prefix: the first k, the
first floor(f·N), or the shortest prefix holding a fraction of all characters. Here the same
prefix is found without bringing the pool to one worker (no ``Top.Of`` over the pool, no
``Sample``):

1. per group (the whole pool, or each domain with quotas) the exact totals (documents, weight,
   eligible documents, eligible weight): a ``CombinePerKey`` of small vectors;
2. ``ApproximateQuantilesCombineFn`` over the eligible keys, weighted by the budget's unit (1 per
   document, or characters), batched per unit of documents;
3. *approximate* (``exact = false``): the cutoff is the quantile at the budget's rank: keep every
   key at or above it; the error is bounded by the quantile error (epsilon) plus one document;
4. *exact* (``exact = true``, the default): the quantiles become bucket boundaries; one pass counts
   documents and weight per bucket exactly, which locates the bucket holding the cutoff and the
   exact amount above it; a second pass collects only that bucket (the band, ~N/num_quantiles
   documents) on one worker, sorts it and finds the exact last selected (key, tiebreak). The
   result is identical to the in-process selection. Correctness does not depend on the quantile
   error, only the band's size does.

*Ties.* The quantiles are taken over the full rank order, (key, tiebreak) as one 128-bit integer
(:func:`composite`: the key's order-preserving bits, then the stable (seed, id) hash reversed), not
over the key alone. Tied keys are then split between buckets by their hash like any other keys,
so the band stays O(N / num_quantiles + epsilon N) whatever the score distribution (with key-only
boundaries, 30% tied scores put 30% of the pool in one band).

Threshold budgets (score at least t) need no global pass. The cutoff per group is a small
:class:`Cutoff` handed to the filter as a dict side input.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

import apache_beam as beam
from lmsieve.pipelines.global_stats import ArraySum
from lmsieve.sampling.select import Budget

NONE, ALL, KEY, EXACT, SCORE = "none", "all", "key", "exact", "score"


@dataclass
class Scored:
    """The valid documents of one unit after scoring: what global selection works on."""

    shard: int
    unit: int
    row_start: int
    rows: int  # all rows of the unit, valid or not
    rows_valid: np.ndarray  # int32 offsets (in the unit) of the valid documents
    ids: list
    score: np.ndarray
    eligible: np.ndarray
    key: np.ndarray  # -inf where not eligible
    tiebreak: np.ndarray  # uint64
    chars: np.ndarray  # int64
    weight: np.ndarray  # int64 budget unit (characters or words) per document
    domain: np.ndarray  # object: domain or None
    group: np.ndarray  # object: budget group ("" for a global budget)
    selected: np.ndarray | None = None
    contam: dict | None = None  # [decontaminate]: this unit's contamination counts (decontam_step)
    contam_sets: np.ndarray | None = None  # report mode: uint64 set mask per document
    tokens: np.ndarray | None = None  # int64 UTF-8 bytes per document (the mixture step's counts)


@dataclass(frozen=True)
class Cutoff:
    """Which documents of a group are kept (see the module doc)."""

    kind: str
    key: float = 0.0
    tiebreak: int = 0
    score: float = 0.0
    higher_is_better: bool = True

    def mask(self, key: np.ndarray, tiebreak: np.ndarray, score: np.ndarray, eligible: np.ndarray) -> np.ndarray:
        if self.kind == NONE:
            return np.zeros(len(key), dtype=bool)
        if self.kind == ALL:
            return eligible.copy()
        if self.kind == KEY:
            return eligible & (key >= self.key)
        if self.kind == EXACT:
            return eligible & ((key > self.key) | ((key == self.key) & (tiebreak <= np.uint64(self.tiebreak))))
        ok = score >= self.score if self.higher_is_better else score <= self.score
        return eligible & ok


@dataclass(frozen=True)
class WeightTarget:
    """A budget given directly as a weight target (the mixture step's per-component quota):
    keep the shortest prefix whose weight reaches ``target``."""

    target: float | None = None
    threshold = None
    k = None
    fraction = None


def budget_kind(b: Budget) -> str:
    if isinstance(b, WeightTarget):
        return "weight"
    if b.threshold is not None:
        return "threshold"
    return "weight" if b.length_fraction is not None else "count"


def budget_target(b: Budget, n_valid: int, total_weight: int) -> float:
    """The prefix the budget asks for, in its unit: documents, or weight (API semantics)."""
    if isinstance(b, WeightTarget):
        return float(b.target)
    if b.k is not None:
        return float(b.k)
    if b.fraction is not None:
        return float(math.floor(b.fraction * n_valid + 1e-9))
    goal = b.length_fraction * float(total_weight)
    return goal * (1 - 1e-12) if goal > 0 else 0.0


def trivial_cutoff(b: Budget, totals: np.ndarray | None) -> Cutoff | None:
    """NONE/ALL when the budget needs no search (or the group is empty), else None."""
    if totals is None or totals[2] == 0:
        return Cutoff(NONE)
    n_valid, w_total, n_elig, w_elig = (int(x) for x in totals)
    t = budget_target(b, n_valid, w_total)
    if t <= 0:
        return Cutoff(NONE)
    if budget_kind(b) == "count" and t >= n_elig:
        return Cutoff(ALL)
    if budget_kind(b) == "weight" and t >= w_elig:
        return Cutoff(ALL)
    return None


# -- per-unit pieces --------------------------------------------------------------------------------
def group_totals(s: Scored):
    """(group, [documents, weight, eligible documents, eligible weight]) per group of a unit."""
    for g in _groups(s):
        m = s.group == g
        e = m & s.eligible
        yield g, np.array([m.sum(), s.weight[m].sum(), e.sum(), s.weight[e].sum()], dtype=np.int64)


def _groups(s: Scored):
    if len(s.group) == 0:
        return []
    first = s.group[0]
    if all(g == first for g in s.group):  # the common case (one global group)
        return [first]
    return sorted({g for g in s.group.tolist()}, key=lambda g: (g is None, g))


_SIGN = np.uint64(1 << 63)
_ONES = np.uint64((1 << 64) - 1)


def ordered_bits(key: np.ndarray) -> np.ndarray:
    """uint64 whose unsigned order is the float64 order of ``key`` (finite keys and -inf)."""
    b = (np.asarray(key, dtype=np.float64) + 0.0).view(np.uint64)  # + 0.0: -0.0 ranks as 0.0
    return np.where(b & _SIGN, ~b, b | _SIGN)


def composite_parts(key: np.ndarray, tiebreak: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(high, low) uint64 words of the rank order: larger = better (higher key, then lower hash)."""
    return ordered_bits(key), _ONES - np.asarray(tiebreak, dtype=np.uint64)


def composite(key: np.ndarray, tiebreak: np.ndarray) -> list[int]:
    """The rank order as Python ints (what the quantile combiner sorts)."""
    hi, lo = composite_parts(key, tiebreak)
    return [(h << 64) | x for h, x in zip(hi.tolist(), lo.tolist())]


def quantile_inputs(s: Scored, kinds: dict):
    """(group, (composite keys, weights)) of the eligible documents, for the weighted quantile combiner."""
    for g in _groups(s):
        kind = kinds.get(g)
        if kind not in ("count", "weight"):
            continue
        m = (s.group == g) & s.eligible
        if m.any():
            w = s.weight[m] if kind == "weight" else np.ones(int(m.sum()), dtype=np.int64)
            yield g, (composite(s.key[m], s.tiebreak[m]), w.tolist())


def bucket_of(key: np.ndarray, tiebreak: np.ndarray, bounds: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Bucket index per document: the number of boundaries at or below its (key, tiebreak) in the
    rank order (higher bucket = better). ``bounds``: (high, low) words sorted ascending."""
    bh, bl = bounds
    hi, lo = composite_parts(key, tiebreak)
    left = np.searchsorted(bh, hi, side="left")
    right = np.searchsorted(bh, hi, side="right")
    out = left.astype(np.int64)
    eq = np.flatnonzero(right > left)  # keys equal to a boundary's key: compare the low words
    if len(eq):
        pairs = left[eq] * (len(bh) + 1) + right[eq]
        for pr in np.unique(pairs):
            a, b = divmod(int(pr), len(bh) + 1)
            sel = eq[pairs == pr]
            out[sel] += np.searchsorted(bl[a:b], lo[sel], side="right")
    return out


def hist_inputs(s: Scored, kinds: dict, bounds: dict):
    """(group, 2 x (buckets) array: documents and weight per bucket) of the eligible documents."""
    for g in _groups(s):
        kind = kinds.get(g)
        b = bounds.get(g)
        if kind not in ("count", "weight") or b is None:
            continue
        m = (s.group == g) & s.eligible
        if not m.any():
            continue
        j = bucket_of(s.key[m], s.tiebreak[m], b)
        nb = len(b[0]) + 1
        out = np.zeros((2, nb), dtype=np.int64)
        out[0] = np.bincount(j, minlength=nb)
        out[1] = np.bincount(j, weights=s.weight[m], minlength=nb).astype(np.int64)
        yield g, out


@dataclass(frozen=True)
class Band:
    bucket: int
    above: float  # documents or weight strictly above the bucket
    target: float
    unit: str  # "count" | "weight"


def locate(b: Budget, totals: np.ndarray, hist: np.ndarray) -> Band:
    """The bucket holding the cutoff, from exact per-bucket totals (walked from the top)."""
    kind = budget_kind(b)
    t = budget_target(b, int(totals[0]), int(totals[1]))
    per = hist[0] if kind == "count" else hist[1]
    above = 0
    for j in range(len(per) - 1, -1, -1):
        if above + per[j] >= t:
            return Band(j, float(above), t, kind)
        above += int(per[j])
    raise AssertionError("cutoff beyond the eligible total")  # excluded by trivial_cutoff


def band_inputs(s: Scored, bands: dict, bounds: dict):
    """(group, (key, tiebreak, weight)) of the eligible documents in their group's band bucket."""
    for g in _groups(s):
        band = bands.get(g)
        if band is None:
            continue
        m = (s.group == g) & s.eligible
        if not m.any():
            continue
        idx = np.flatnonzero(m)
        inb = idx[bucket_of(s.key[idx], s.tiebreak[idx], bounds[g]) == band.bucket]
        if len(inb):
            w = s.weight[inb] if band.unit == "weight" else np.ones(len(inb), dtype=np.int64)
            yield g, (s.key[inb], s.tiebreak[inb], w)


def exact_cutoff(band: Band, parts) -> Cutoff:
    """Sort the band best-first and find the element where the running total reaches the target."""
    parts = list(parts)
    key = np.concatenate([p[0] for p in parts])
    tb = np.concatenate([p[1] for p in parts])
    w = np.concatenate([p[2] for p in parts]).astype(np.int64)
    order = np.lexsort((tb, -key))
    cum = band.above + np.cumsum(w[order])
    i = int(np.searchsorted(cum, band.target, side="left"))
    i = min(i, len(order) - 1)
    from lmsieve.pipelines.metrics import counter

    counter("band_docs").inc(len(key))  # the band's size (the memory one worker needs)
    return Cutoff(EXACT, key=float(key[order[i]]), tiebreak=int(tb[order[i]]))


def approx_cutoff(b: Budget, totals: np.ndarray, quantiles: list) -> Cutoff:
    """Keep keys at or above the quantile at the budget's rank (approximate mode)."""
    kind = budget_kind(b)
    t = budget_target(b, int(totals[0]), int(totals[1]))
    total = float(totals[2] if kind == "count" else totals[3])
    q = list(quantiles)
    keep = min(1.0, max(0.0, t / total))
    i = int(math.floor((1.0 - keep) * (len(q) - 1) + 0.5))
    key, tb = decode(q[min(max(i, 0), len(q) - 1)])
    return Cutoff(EXACT, key=key, tiebreak=tb)  # keep (key, tiebreak) at or above the quantile


def decode(c: int) -> tuple[float, int]:
    """A composite rank value -> (key, tiebreak)."""
    hi = np.uint64(int(c) >> 64)
    bits = hi & ~_SIGN if hi & _SIGN else ~hi
    return float(np.array([bits], dtype=np.uint64).view(np.float64)[0]), int(_ONES - np.uint64(int(c) & int(_ONES)))


def boundaries(quantiles) -> tuple[np.ndarray, np.ndarray]:
    """Distinct quantiles, ascending, as (high, low) uint64 words (bucket boundaries). Composite
    ints from the combiner; plain float keys (any values will do) count as (key, largest hash)."""
    vals = []
    for q in quantiles:
        if isinstance(q, (float, np.floating)):
            if not np.isfinite(q):
                continue
            q = int(ordered_bits(np.array([q]))[0]) << 64
        vals.append(int(q))
    vals = sorted(set(vals))
    mask = (1 << 64) - 1
    return (np.array([v >> 64 for v in vals], dtype=np.uint64), np.array([v & mask for v in vals], dtype=np.uint64))


# module-level steps (pickled by reference; see features_job.distribute)
def _with_targets(budgets: dict, targets: dict | None) -> dict:
    if targets is None:
        return budgets
    return {g: WeightTarget(targets.get(g, 0.0)) if isinstance(b, WeightTarget) else b for g, b in budgets.items()}


def _approx_cutoffs(_, searched, budgets, totals, quants, targets=None):
    budgets = _with_targets(budgets, targets)
    out = []
    for g in searched:
        b = budgets[g]
        c = trivial_cutoff(b, totals.get(g))
        out.append((g, c if c is not None else approx_cutoff(b, totals[g], quants[g])))
    return out


def _plan_bands(_, searched, budgets, totals, hist, targets=None):
    budgets = _with_targets(budgets, targets)
    bands, trivial = {}, []
    for g in searched:
        c = trivial_cutoff(budgets[g], totals.get(g))
        if c is not None:
            trivial.append((g, c))
        else:
            bands[g] = locate(budgets[g], totals[g], hist[g])
    return [(bands, trivial)]


def _bounds(kv):
    return kv[0], boundaries(kv[1])


def _first(x):
    return x[0]


def _second(x):
    return x[1]


def _exact_group(kv, bands):
    return kv[0], exact_cutoff(bands[kv[0]], kv[1])


class GroupCutoffs(beam.PTransform):
    """PCollection[Scored] -> PCollection[(group, Cutoff)] for every budgeted group."""

    def __init__(self, budgets: dict, *, exact: bool = True, num_quantiles: int = 1001,
                 epsilon: float = 1e-3, max_num_elements: int | None = None, higher_is_better: bool = True,
                 targets=None):
        """``targets``: optional singleton PCollection {group: weight target} filling the
        :class:`WeightTarget` budgets at run time (targets computed from the data)."""
        super().__init__()
        self.targets = targets
        self.budgets, self.exact = dict(budgets), exact
        self.num_quantiles, self.epsilon = int(num_quantiles), float(epsilon)
        self.max_num_elements = max_num_elements
        self.higher_is_better = higher_is_better

    def expand(self, scored):
        from apache_beam.transforms.stats import ApproximateQuantilesCombineFn

        p = scored.pipeline
        budgets = self.budgets
        kinds = {g: budget_kind(b) for g, b in budgets.items()}
        hib = self.higher_is_better
        outs = []
        thr = [(g, Cutoff(SCORE, score=float(b.threshold), higher_is_better=hib))
               for g, b in budgets.items() if b.threshold is not None]
        if thr:
            outs.append(p | "ThresholdCutoffs" >> beam.Create(thr))
        searched = [g for g, k in kinds.items() if k != "threshold"]
        if not searched:
            return outs[0] if outs else p | "NoCutoffs" >> beam.Create([])
        totals = (scored | "GroupTotals" >> beam.FlatMap(group_totals)
                  | "SumTotals" >> beam.CombinePerKey(ArraySum()))
        qfn = ApproximateQuantilesCombineFn.create(
            num_quantiles=self.num_quantiles, epsilon=self.epsilon,
            max_num_elements=self.max_num_elements, weighted=True, input_batched=True)
        quants = (scored | "QuantileInputs" >> beam.FlatMap(quantile_inputs, kinds)
                  | "Quantiles" >> beam.CombinePerKey(qfn))
        one = p | "Once" >> beam.Create([None])
        tot_si = beam.pvalue.AsDict(totals)
        tgt = {} if self.targets is None else {"targets": beam.pvalue.AsSingleton(self.targets)}
        if not self.exact:
            outs.append(one | "ApproxCutoffs" >> beam.FlatMap(_approx_cutoffs, searched, budgets, totals=tot_si,
                                                               quants=beam.pvalue.AsDict(quants), **tgt))
            return outs | "AllCutoffs" >> beam.Flatten()
        bounds = quants | "Bounds" >> beam.Map(_bounds)
        bounds_si = beam.pvalue.AsDict(bounds)
        hist = (scored | "HistInputs" >> beam.FlatMap(hist_inputs, kinds, bounds_si)
                | "SumHist" >> beam.CombinePerKey(ArraySum()))
        planned = one | "LocateBands" >> beam.FlatMap(_plan_bands, searched, budgets, totals=tot_si,
                                                      hist=beam.pvalue.AsDict(hist), **tgt)
        bands_si = beam.pvalue.AsSingleton(planned | "Bands" >> beam.Map(_first))
        outs.append(planned | "TrivialCutoffs" >> beam.FlatMap(_second))
        outs.append(scored | "BandInputs" >> beam.FlatMap(band_inputs, bands_si, bounds_si)
                    | "GroupBand" >> beam.GroupByKey()
                    | "ExactCutoff" >> beam.Map(_exact_group, bands=bands_si))
        return outs | "AllCutoffs" >> beam.Flatten()


__all__ = ["Cutoff", "GroupCutoffs", "Scored", "approx_cutoff", "budget_target", "exact_cutoff", "locate"]
