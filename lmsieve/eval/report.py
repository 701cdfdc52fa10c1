"""Eval outputs: a markdown table, a JSON file and PNG plots (loss curves; proxy loss vs random)."""
from __future__ import annotations

import json
import math
import os


def _fmt(row: dict, k: str, digits: int = 3) -> str:
    """``mean ± std`` over seeds; just the value with one seed (a std of one run says nothing)."""
    if k not in row:
        return "–"
    m, s = row[k], row.get(k + "_std", 0.0)
    if row.get("seeds", 2) < 2:
        return f"{m:.{digits}f}"
    return f"{m:.{digits}f} ± {s:.{digits}f}"


def _names(x) -> str:
    """A path or a list of paths as text (not a Python list repr)."""
    if isinstance(x, (list, tuple)):
        return ", ".join(str(v) for v in x)
    return str(x)


def markdown_table(rows: list[dict], title: str = "") -> str:
    # The proxy's loss is reported per byte of UTF-8 text, whatever its tokenizer.
    head = ["method", "target-domain precision", "KL reduction (nats)", "proxy loss (nats/byte)",
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
    n_seeds = len(meta.get("seeds", []))
    title = (f"Target `{_names(meta.get('target'))}`, budget {meta.get('budget_chars', 0):,} characters, "
             f"{n_seeds} seed{'s' if n_seeds != 1 else ''}" + (" (mean ± std over seeds)" if n_seeds > 1 else ""))
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
    ax.set_ylabel("held-out target loss (nats/byte)")
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
