"""Decontamination benchmarks (issue 20): flagging speed next to the DSIR featurizer, index build cost,
and how contaminated targeted selections are.

1. **Flagging docs/s per core** on the shared pool (one pinned core, child process): the exact index
   of humaneval + champ (and the Bloom variant on a slice) next to ``HashedNgramFeaturizer`` (DSIR).
2. **Index build** time and peak RSS for 10k and 1M synthetic evaluation items (30 random words each,
   vocabulary 50k: 18 13-grams per item), exact and Bloom (fpr 1e-6), one child process each.
3. **Contamination of selections**: each method (default DSIR, ZIP-FIT, random; BETR with
   ``--methods``) selects 2% of the shared pool targeted at humaneval and at champ; we report how
   many selected documents contain an item of that benchmark, on the pool as it is ("natural"), with
   100 item prompts pasted into 100 random long pool documents ("pasted", upper-cased, line breaks
   moved), and with 100 documents replaced by short pages holding an item ("copied").

    python benchmarks/bench_decontam.py            # full (about 10-15 min on a shared 2-core box)
    python benchmarks/bench_decontam.py --quick    # small slices, a minute or two

Decontamination runs on CPU only; ``--device`` is accepted for symmetry with the other benchmarks and
only affects BETR's embedding model. Prints tables; writes benchmarks/out/decontam.json.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._common import SHARED, machine, peak_rss_mb, pin_one_core, print_table, run_child, write_json  # noqa: E402


def load_pool(limit: int | None):
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = sorted((SHARED / "pool").glob("*.parquet"))
    t = pa.concat_tables([pq.read_table(f, columns=["id", "text", "domain"]) for f in files])
    return t.slice(0, limit) if limit else t


def eval_sets():
    import pyarrow.parquet as pq

    return {n: pq.read_table(SHARED / "targets" / f"{n}.parquet") for n in ("humaneval", "champ")}


# -- 1. flagging speed ----------------------------------------------------------------------------
def child_flag(which: str, limit: int | None) -> dict:
    pin_one_core()
    import pyarrow.compute as pc

    from lmsieve.features.decontam import DecontamIndex, flag_texts
    from lmsieve.features.ngrams import HashedNgramFeaturizer

    pool = load_pool(limit)
    mb = pc.sum(pc.binary_length(pool.column("text"))).as_py() / 1e6
    t0 = time.perf_counter()
    if which == "dsir":
        HashedNgramFeaturizer().transform(pool)
        extra = {}
    else:
        idx = DecontamIndex.build(eval_sets(), bloom_fpr=1e-9 if which == "bloom" else None)
        t0 = time.perf_counter()
        f = flag_texts(idx, pool)
        extra = {"flagged": int(f.flagged.sum())}
    dt = time.perf_counter() - t0
    return {"impl": which, "docs": pool.num_rows, "MB": round(mb, 1), "seconds": round(dt, 2),
            "docs/s/core": round(pool.num_rows / dt, 1), "MB/s/core": round(mb / dt, 2),
            "peak RSS MB": round(peak_rss_mb()), **extra}


# -- 2. index build -------------------------------------------------------------------------------
def child_build(n_items: int, bloom: str) -> dict:
    pin_one_core()
    import numpy as np
    import pyarrow as pa

    from lmsieve.features.decontam import DecontamIndex

    rng = np.random.default_rng(0)
    vocab = np.array([f"w{i}" for i in range(50_000)], dtype=object)
    texts, step = [], 100_000
    for s in range(0, n_items, step):
        w = vocab[rng.integers(0, len(vocab), (min(step, n_items - s), 30))]
        texts.extend(" ".join(r) for r in w.tolist())
    table = pa.table({"id": [str(i) for i in range(n_items)], "text": texts})
    del texts
    base = peak_rss_mb()
    t0 = time.perf_counter()
    idx = DecontamIndex.build({"synthetic": table}, bloom_fpr=float(bloom) if bloom != "none" else None)
    dt = time.perf_counter() - t0
    size = idx.hashes.nbytes + idx.post_ptr.nbytes + idx.post_item.nbytes + sum(len(b.save_bytes()) for b in idx.blooms)
    return {"items": n_items, "storage": "exact" if bloom == "none" else f"bloom {bloom}", "ngrams": idx.sets[0]["ngrams"],
            "seconds": round(dt, 2), "items/s": round(n_items / dt), "index MB": round(size / 1e6, 1),
            "peak RSS MB": round(peak_rss_mb()), "RSS before build MB": round(base)}


# -- 3. contamination of selections ----------------------------------------------------------------
def plant(pool, items: list[str], n: int, how: str, seed: int = 0):
    """``pasted``: an item's prompt pasted mid-document (upper-cased, line breaks moved);
    ``copied``: a document replaced by a short page holding an item (problem and solution) after
    300 characters of its own text, as a forum post or a solutions page would."""
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    texts = pool.column("text").to_pylist()
    for j, d in enumerate(rng.choice(len(texts), n, replace=False).tolist()):
        if how == "pasted":
            item = items[j % len(items)].upper().replace("\n", " ").replace(". ", ".\n")
            cut = len(texts[d]) // 2
            texts[d] = texts[d][:cut] + "\n" + item + "\n" + texts[d][cut:]
        else:
            texts[d] = texts[d][:300] + "\n\n" + items[j % len(items)]
    return pool.set_column(pool.column_names.index("text"), "text", pa.array(texts))


def contamination(pool_limit: int | None, methods: list[str], keep: float, max_target: int, device: str) -> list[dict]:
    from lmsieve.api import fit_and_score, run_selection
    from lmsieve.features.decontam import DecontamIndex, flag_texts
    from lmsieve.sampling.select import Budget

    base = load_pool(pool_limit)
    rows = []
    for name, ev in eval_sets().items():
        idx = DecontamIndex.build({name: ev})
        target = ev.select(["id", "text"]).slice(0, max_target)
        for variant in ("natural", "pasted", "copied"):
            col = "prompt" if variant == "pasted" else "text"
            pool = base if variant == "natural" else plant(base, ev.column(col).to_pylist(), 100, variant)
            flags = flag_texts(idx, pool).flagged
            row = {"target": name, "pool": variant, "pool docs": pool.num_rows, "contaminated in pool": int(flags.sum())}
            for m in methods:
                params = {"device": device} if m == "betr" and device != "auto" else {}
                t0 = time.perf_counter()
                sel, s, e = fit_and_score(m, target, pool, **params)
                res = run_selection(sel, pool, Budget(fraction=keep), seed=0, scores=s, eligible=e)
                k = int(flags[res.indices].sum())
                row[m] = f"{k}/{len(res.indices)} ({k / max(1, len(res.indices)):.1%})"
                row[f"{m}_contaminated"], row[f"{m}_selected"] = k, len(res.indices)
                row[f"{m}_seconds"] = round(time.perf_counter() - t0, 1)
                print(f"  {name} {variant} {m}: {row[m]}", file=sys.stderr, flush=True)
            rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small slices and sizes")
    ap.add_argument("--methods", default="dsir,zipfit,random", help="selection methods for part 3 (add betr)")
    ap.add_argument("--keep", type=float, default=0.02, help="fraction each method selects (default 0.02)")
    ap.add_argument("--max-target", type=int, default=40, help="target items each selector sees (ZIP-FIT cost)")
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="BETR's embedding device")
    ap.add_argument("--skip", default="", help="comma-separated parts to skip: flag,build,select")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--part", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--arg", nargs="*", default=[], help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        out = child_flag(a.arg[0], int(a.arg[1]) or None) if a.part == "flag" else child_build(int(a.arg[0]), a.arg[1])
        print(json.dumps(out))
        return
    skip = set(a.skip.split(","))
    tables = []
    result = {"machine": machine(), "quick": a.quick,
              "note": "shared 2-core box with ~8 parallel sessions: figures are noisy and conservative"}
    if "flag" not in skip:
        limit = 3000 if a.quick else 0
        flag = [run_child(__file__, "--part", "flag", "--arg", w, str(limit)) for w in ("dsir", "exact")]
        flag.append(run_child(__file__, "--part", "flag", "--arg", "bloom", str(1000 if a.quick else 4000)))
        tables.append("Flagging speed (one core; exact index of humaneval + champ; Bloom fpr 1e-9 on a slice):")
        print("\n## " + tables[-1] + "\n")
        tables.append(print_table(flag, ["impl", "docs", "MB", "seconds", "docs/s/core", "MB/s/core", "peak RSS MB", "flagged"]))
        result["flag"] = flag
    if "build" not in skip:
        sizes = (10_000, 100_000) if a.quick else (10_000, 1_000_000)
        build = [run_child(__file__, "--part", "build", "--arg", str(n), b) for n in sizes for b in ("none", "1e-6")]
        tables.append("Index build (synthetic items of 30 words; one core):")
        print("\n## " + tables[-1] + "\n")
        tables.append(print_table(build, ["items", "storage", "ngrams", "seconds", "items/s", "index MB", "peak RSS MB",
                                          "RSS before build MB"]))
        result["build"] = build
    if "select" not in skip:
        methods = [m.strip() for m in a.methods.split(",") if m.strip()]
        sel = contamination(4000 if a.quick else None, methods, a.keep, a.max_target, a.device)
        tables.append(f"Contaminated documents in each selection ({a.keep:.0%} of the pool, targeted at the benchmark, "
                      f"{a.max_target} target items):")
        print("\n## " + tables[-1] + "\n")
        tables.append(print_table(sel, ["target", "pool", "pool docs", "contaminated in pool", *methods]))
        result["select"] = sel
    result["table"] = "\n\n".join(tables)
    write_json("decontam.json", result)


if __name__ == "__main__":
    main()
