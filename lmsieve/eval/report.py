"""Eval outputs: a markdown table, a JSON file and PNG plots (loss curves; proxy loss vs random)."""
from __future__ import annotations

import json
import math
import os


def _fmt(row: dict, k: str, digits: int = 3) -> str:
    if k not in row:
        return "–"
    m, s = row[k], row.get(k + "_std", 0.0)
    return f"{m:.{digits}f} ± {s:.{digits}f}"


def markdown_table(rows: list[dict], title: str = "") -> str:
    head = ["method", "target-domain precision", "KL reduction (nats)", "proxy loss (nats/token)",
            "loss / random", "docs", "chars", "contaminated before removal"]
    lines = ([f"{title}", ""] if title else []) + ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        ratio = f"{r['proxy_loss_vs_random']:.3f}" if "proxy_loss_vs_random" in r else "–"
        lines.append("| " + " | ".join([
            r["method"], _fmt(r, "precision"), _fmt(r, "kl_reduction"), _fmt(r, "proxy_loss"), ratio,
            f"{r.get('docs', 0):.0f}", f"{r.get('chars', 0):,.0f}",
            f"{r['contaminated_share']:.2%} ({r.get('contaminated_docs', 0):.1f} docs)" if "contaminated_share" in r
            else "–"]) + " |")
    return "\n".join(lines) + "\n"


def write_report(out_dir: str, runs: list, rows: list[dict], meta: dict) -> dict[str, str]:
    """Write eval.md, eval.json and (when proxy losses exist) loss_curves.png and loss_ratio.png."""
    os.makedirs(out_dir, exist_ok=True)
    paths = {"markdown": os.path.join(out_dir, "eval.md"), "json": os.path.join(out_dir, "eval.json")}
    title = (f"Target `{meta.get('target')}`, budget {meta.get('budget_chars', 0):,} characters, "
             f"{len(meta.get('seeds', []))} seeds")
    with open(paths["markdown"], "w") as f:
        f.write(markdown_table(rows, title))
    with open(paths["json"], "w") as f:
        json.dump({"meta": meta, "summary": rows, "runs": [r.to_dict() for r in runs]}, f, indent=2)
    if any(r.proxy_loss is not None for r in runs):
        paths.update(_plots(out_dir, runs, rows))
    return paths


def _plots(out_dir: str, runs: list, rows: list[dict]) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = {}
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, m in enumerate(dict.fromkeys(r.method for r in runs)):
        for j, r in enumerate(x for x in runs if x.method == m and x.curve):
            xs, ys = zip(*r.curve)
            ax.plot(xs, ys, color=f"C{i}", alpha=0.8, label=m if j == 0 else None)
    ax.set_xlabel("training tokens")
    ax.set_ylabel("held-out target loss (nats/token)")
    ax.set_title("Proxy LM trained on each selection")
    ax.legend()
    fig.tight_layout()
    out["loss_curves"] = os.path.join(out_dir, "loss_curves.png")
    fig.savefig(out["loss_curves"], dpi=120)
    plt.close(fig)

    have = [r for r in rows if "proxy_loss_vs_random" in r]
    if have:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.bar([r["method"] for r in have], [r["proxy_loss_vs_random"] for r in have],
               color=[f"C{i}" for i in range(len(have))])
        ax.axhline(1.0, color="k", lw=0.8, ls="--")
        lo = min(r["proxy_loss_vs_random"] for r in have)
        ax.set_ylim(max(0.0, math.floor(lo * 20) / 20 - 0.05), None)
        ax.set_ylabel("proxy loss / random's (lower is better)")
        fig.tight_layout()
        out["loss_ratio"] = os.path.join(out_dir, "loss_ratio.png")
        fig.savefig(out["loss_ratio"], dpi=120)
        plt.close(fig)
    return out
