"""``make bench``: every benchmark in one run; writes benchmarks/RESULTS.md and the README's table.

Runs every script in ``BENCHES``: DSIR and ZIP-FIT against their reference packages on the whole
shared pool (one-core child processes), the scaling curve (1k → 20k documents and a synthetic 10×
pool), Beam vs the API, the model-feature extractors, the eval harness ("does it help?"), the
selectors' quality tables and the mixture optimiser. Writes benchmarks/RESULTS.md and the README's
two generated blocks. Takes well over an hour on 2 cores; not part of ``make test``.

    python benchmarks/run_all.py [--quick] [--only bench_eval.py,...]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import OUT, REPO, machine  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
README_START, README_END = "<!-- bench:start -->", "<!-- bench:end -->"


def run(script: str, *args: str, env: dict | None = None) -> None:
    print(f"\n== {script} {' '.join(args)}", flush=True)
    subprocess.run([sys.executable, str(HERE / script), *args], check=True, env=env)


def load(out: Path, name: str) -> dict | None:
    p = out / name
    return json.loads(p.read_text()) if p.exists() else None


def headline(dsir: dict | None, zipfit: dict | None) -> str:
    lines = ["| method | lmsieve docs/s/core | reference docs/s/core | speed-up | same scores | peak RSS (MB) ours / ref |",
             "|---|---|---|---|---|---|"]
    if dsir:
        o, r = dsir["rows"][0], dsir["rows"][1]
        lines.append(f"| DSIR (fit + featurize + score), {o['docs']:,} docs | {o['docs_per_s_per_core']:,} | "
                     f"{r['docs_per_s_per_core']:,} (data-selection) | {dsir['speedup_per_core']:.1f}× | "
                     f"max rel. diff {dsir['max_rel_diff']:.1e}, same ranking: {dsir['identical_ranking']} | "
                     f"{o['peak_rss_mb']:.0f} / {r['peak_rss_mb']:.0f} |")
    if zipfit:
        rows = zipfit["rows"]
        for check in zipfit.get("checks", []):
            o, r = [x for x in rows if x["target"] == check["target"]][:2]
            lines.append(f"| ZIP-FIT gzip-1, target {check['target']}, {o['docs']:,} docs ({o['pairs']:,} pairs) | "
                         f"{o['docs_per_s_per_core']:,} ({o['pairs_per_cpu_s']:,} pairs/CPU-s) | "
                         f"{r['docs_per_s_per_core']:,} ({r['pairs_per_cpu_s']:,} pairs/CPU-s) (zip-fit) | "
                         f"{check['speedup_per_core']:.2f}× per CPU-s | bit-identical {check['bit_identical']:,}/"
                         f"{check['n']:,}, max diff {check['max_abs_diff']:.1e} | {o['peak_rss_mb']} / "
                         f"{r['peak_rss_mb']} + {r.get('workers_peak_rss_mb', 0)} per worker |")
    return "\n".join(lines)


#: (script, args for --quick, JSON it writes, RESULTS.md section). Scripts that are missing are skipped;
#: the model-heavy ones (selectors' quality, mixtures) take the longest.
BENCHES = [
    ("bench_dsir.py", ["--limit", "1000"], "dsir.json", "DSIR detail"),
    ("bench_zipfit.py", ["--limit", "500"], "zipfit.json", "ZIP-FIT detail"),
    ("bench_scaling.py", ["--sizes", "500,1000", "--synthetic", "2"], "scaling.json", "Scaling (streamed, one core)"),
    ("bench_beam.py", ["--repeats", "1"], "beam.json", "Beam runner vs in-process API"),
    ("bench_features.py", ["--docs", "40", "--train-docs", "300", "--train-steps", "30"], "features.json", "Model features"),
    ("bench_eval.py", ["--quick"], "eval.json", "Does selection help? (eval harness)"),
    ("bench_loss_selectors.py", ["--limit", "300", "--steps", "60"], "loss_selectors.json", "Loss-based selectors"),
    ("bench_representation.py", ["--limit", "600"], "representation.json", "Representation-based selectors"),
    ("bench_mixture.py", ["--quick"], "mixture.json", "Mixture optimisation (end to end)"),
    ("bench_short_targets.py", ["--limit", "600", "--targets", "humaneval,champ"], "short_targets.json",
     "Short benchmark targets (window mode, classifier, knn)"),
    ("bench_decontam.py", ["--quick"], "decontam.json", "Decontamination"),
]
README_EVAL = ("<!-- eval:start -->", "<!-- eval:end -->")


def table_of(data: dict | None) -> str | None:
    if not data:
        return None
    return data.get("table") or data.get("table_markdown")


def replace_block(text: str, markers: tuple[str, str], body: str) -> str:
    start, end = markers
    if start not in text or end not in text:
        return text
    block = f"{start}\n{body}\n{end}"
    return re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _: block, text, flags=re.S)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="small slices, to check the scripts: writes to benchmarks/out/quick/ and leaves "
                         "RESULTS.md and README alone")
    ap.add_argument("--only", default="", help="comma-separated script names to run (default: all; 'none' "
                                              "runs nothing); RESULTS.md is assembled from every JSON present")
    a = ap.parse_args()
    q = a.quick
    out, results, env = OUT, RESULTS, None
    if q:
        out = OUT / "quick"
        results = out / "RESULTS.md"
        env = {**os.environ, "LMSIEVE_BENCH_OUT": str(out)}
    only = {x.strip() for x in a.only.split(",") if x.strip()}
    for script, quick_args, _, _ in BENCHES:
        if (HERE / script).exists() and (not only or script in only):
            run(script, *(quick_args if q else []), env=env)
    data = {name: load(out, name) for _, _, name, _ in BENCHES}
    dsir, zipfit = data["dsir.json"], data["zipfit.json"]
    m = machine()
    parts = [
        "# Benchmark results",
        "",
        f"Generated by `make bench` (`benchmarks/run_all.py{' --quick' if q else ''}`); do not edit by hand.",
        f"Machine: {m['cpus']} cores ({m['processor']}), Python {m['python']}, no GPU. Speed figures are one core:"
        " each implementation runs in its own child process pinned to one core.",
        "",
        "## Against the reference packages",
        "",
        headline(dsir, zipfit),
        "",
    ]
    for _, _, name, title in BENCHES:
        table = table_of(data[name])
        if table:
            setup = data[name].get("setup")
            parts += [f"## {title}", "", *([setup, ""] if setup else []), table, ""]
    results.write_text("\n".join(parts))
    print(f"wrote {results}")
    if q:
        return
    readme = REPO / "README.md"
    text = readme.read_text()
    text = replace_block(text, (README_START, README_END),
                         f"{headline(dsir, zipfit)}\n\nFull tables: `benchmarks/RESULTS.md`.")
    ev = data["eval.json"]
    if ev and ev.get("table"):
        text = replace_block(text, README_EVAL, f"{ev['setup']}\n\n{ev['table']}")
    readme.write_text(text)
    print(f"updated {readme}")


if __name__ == "__main__":
    main()
