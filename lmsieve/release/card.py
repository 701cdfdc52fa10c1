"""The dataset card: ``README.md`` (Hugging Face front matter + Markdown) and two PNG plots.

* composition before (the pool, from the selection's manifest) and after (the release), as a
  table and a bar chart of shares per domain (``composition.png``);
* score histogram of the pool's eligible documents and of the selected ones, with the threshold
  marked (``scores.png``): the budget's ``threshold`` when the selection used one, otherwise the
  worst selected score (with Gumbel sampling that is not a hard cutoff, and the card says so);
* licences: the declared identifiers (front matter), documents per licence when the documents
  have a ``license`` column, and the carried ``LICENSES.md`` quoted in full;
* provenance: method, parameters, seed, budget, and the input files with rows and sha256.

Plots use matplotlib's Agg backend and are saved without the ``Software`` metadata, so they are
byte-identical across reruns with the same library versions.
"""
from __future__ import annotations

import json
import os

import numpy as np

from lmsieve.release.shards import DATA_DIR, SPLIT
from lmsieve.release.source import SelectionDir

README = "README.md"
COMPOSITION_PNG = "composition.png"
SCORES_PNG = "scores.png"


def _pct(n: int, total: int) -> str:
    return f"{100.0 * n / total:.1f}%" if total else "-"


def composition_rows(before: dict, after: dict) -> list[tuple[str, int, int]]:
    return [(d, int(before.get(d, 0)), int(after.get(d, 0))) for d in sorted(set(before) | set(after))]


def threshold(sel: SelectionDir) -> tuple[float | None, str]:
    """(score to mark, what it is)."""
    choice = sel.manifest.get("selection") or {}
    budget = choice.get("budget") or {}
    if budget.get("threshold") is not None:
        return float(budget["threshold"]), "budget threshold"
    if sel.scores is None or sel.documents.num_rows == 0:
        return None, ""
    s = sel.scores.column("score").to_numpy(zero_copy_only=False)
    chosen = s[sel.scores.column("selected").to_numpy(zero_copy_only=False)]
    chosen = chosen[np.isfinite(chosen)]
    if not len(chosen):
        return None, ""
    try:
        from lmsieve.selectors.base import get_selector_class

        higher = get_selector_class(sel.method).higher_is_better
    except Exception:  # an unknown method name: scores are higher-is-better by convention
        higher = True
    value = float(chosen.min() if higher else chosen.max())
    gumbel = choice.get("ranking") == "gumbel"
    note = "worst selected score" + (" (Gumbel sampling: not a hard cutoff)" if gumbel else "")
    return value, note


def _plots(root: str, rows, sel: SelectionDir, thr: float | None, thr_note: str) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    if rows:
        n_b, n_a = sum(r[1] for r in rows) or 1, sum(r[2] for r in rows) or 1
        y = np.arange(len(rows))
        fig, ax = plt.subplots(figsize=(7, 0.45 * len(rows) + 1.5))
        ax.barh(y - 0.2, [100 * r[1] / n_b for r in rows], 0.4, label="pool (before)")
        ax.barh(y + 0.2, [100 * r[2] / n_a for r in rows], 0.4, label="release (after)")
        ax.set_yticks(y, [r[0] for r in rows])
        ax.invert_yaxis()
        ax.set_xlabel("share of documents (%)")
        ax.legend(loc="lower right")
        fig.tight_layout()
        fig.savefig(os.path.join(root, COMPOSITION_PNG), dpi=100, metadata={"Software": None})
        plt.close(fig)
        files.append(COMPOSITION_PNG)
    if sel.scores is not None:
        s = sel.scores.column("score").to_numpy(zero_copy_only=False).astype(np.float64)
        mask = sel.scores.column("selected").to_numpy(zero_copy_only=False).astype(bool)
        elig = (sel.scores.column("eligible").to_numpy(zero_copy_only=False).astype(bool)
                if "eligible" in sel.scores.column_names else np.ones(len(s), bool))
        ok = np.isfinite(s) & elig
        fig, ax = plt.subplots(figsize=(7, 3.5))
        if ok.any():
            bins = np.histogram_bin_edges(s[ok], bins=50)
            ax.hist(s[ok], bins=bins, label="pool (eligible)", alpha=0.6)
            ax.hist(s[ok & mask], bins=bins, label="selected", alpha=0.8)
        if thr is not None:
            ax.axvline(thr, color="black", linestyle="--", label=f"{thr_note.split(' (')[0]} = {thr:.4g}")
        ax.set_xlabel(f"{sel.method} score")
        ax.set_ylabel("documents")
        ax.legend()
        fig.tight_layout()
        fig.savefig(os.path.join(root, SCORES_PNG), dpi=100, metadata={"Software": None})
        plt.close(fig)
        files.append(SCORES_PNG)
    return files


def _front_matter(name: str, licenses: dict, ext: str = ".parquet") -> str:
    declared = licenses.get("declared") or []
    lic = declared[0] if len(declared) == 1 else ("other" if not declared else json.dumps(declared))
    return "\n".join([
        "---", f"pretty_name: {json.dumps(name)}", f"license: {lic}", "tags:", "- lmsieve", "- data-selection",
        "configs:", "- config_name: default", "  data_files:", f"  - split: {SPLIT}",
        f"    path: {DATA_DIR}/{SPLIT}-*{ext}", "---", ""])


def card_text(sel: SelectionDir, *, name: str, shards: list[dict], counts: dict, licenses: dict,
              description: str, rows, thr: float | None, thr_note: str, plots: list[str], license_text: str) -> str:
    from lmsieve import __version__

    m, c = sel.manifest, sel.counts
    choice = m.get("selection") or {}
    first = shards[0]["path"] if shards else ".parquet"
    ext = next((e for e in (".jsonl.gz", ".jsonl", ".parquet") if first.endswith(e)), ".parquet")
    loader, file_word = ("parquet", "Parquet") if ext == ".parquet" else ("json", "JSONL")
    L = [_front_matter(name, licenses, ext), f"# {name}", ""]
    if description:
        L += [description, ""]
    L += [f"Selected with lmsieve {__version__} (`{m.get('command')}`): **{counts['documents']:,}** of "
          f"{c.get('input', 0):,} pool documents by **{sel.method}**, seed {m.get('seed')}, "
          f"ranking {choice.get('ranking')}, budget `{json.dumps(choice.get('budget'), sort_keys=True)}`.", "",
          f"| | documents | characters | tokens | UTF-8 bytes | shards | {file_word} bytes |",
          "|---|---|---|---|---|---|---|",
          f"| release | {counts['documents']:,} | {counts['characters']:,} | {counts['tokens']:,} | "
          f"{counts['utf8_bytes']:,} | {len(shards)} | {sum(s['bytes'] for s in shards):,} |",
          f"| pool | {c.get('input', 0):,} | {c.get('characters', {}).get('input', 0):,} | | | | |", "",
          "Tokens are whitespace-delimited words (runs of non-whitespace characters), not a subword tokenizer's count.",
          "", "## Loading", "", "```python", "from datasets import load_dataset",
          f'ds = load_dataset("{loader}", data_files="RELEASE_DIR/{DATA_DIR}/{SPLIT}-*{ext}", split="{SPLIT}")',
          "```", "", "Check the files, counts and schema with `lmsieve verify RELEASE_DIR` (or `sha256sum -c "
          "checksums.sha256`).", "", "## Composition before and after selection", ""]
    if rows:
        nb, na = sum(r[1] for r in rows), sum(r[2] for r in rows)
        L += ["| domain | pool docs | pool share | release docs | release share | kept |", "|---|---|---|---|---|---|"]
        L += [f"| {d} | {b:,} | {_pct(b, nb)} | {a:,} | {_pct(a, na)} | {_pct(a, b)} |" for d, b, a in rows]
        L += [f"| **total** | {nb:,} | 100% | {na:,} | 100% | {_pct(na, nb)} |", ""]
        L += [f"![composition before and after]({COMPOSITION_PNG})", ""] if COMPOSITION_PNG in plots else []
    else:
        L += ["The documents have no `domain` column.", ""]
    L += ["## Scores", ""]
    if SCORES_PNG in plots:
        L += [f"![score histogram]({SCORES_PNG})", ""]
    L += [f"Threshold marked: {thr_note} = {thr:.6g}." if thr is not None else "No threshold to mark.", ""]
    L += decontamination_lines(counts.get("decontamination") or {})
    L += ["## Licences", ""]
    L += [f"Declared: {', '.join(licenses['declared'])}." if licenses.get("declared") else
          "Declared: none given (front matter says `other`); see the notes below.", ""]
    if counts.get("per_license"):
        L += [f"Documents per `{licenses['column']}`:", "", "| licence | documents |", "|---|---|"]
        L += [f"| {k} | {v:,} |" for k, v in counts["per_license"].items()] + [""]
    if license_text:
        L += [f"Carried from the input ({licenses['source']}, copied as `{licenses['file']}`):", ""]
        L += ["> " + line if line else ">" for line in license_text.rstrip("\n").split("\n")] + [""]
    L += ["## Provenance", "", f"Method parameters: `{json.dumps(m.get('params'), sort_keys=True)}`", "",
          "| input | file | rows | sha256 |", "|---|---|---|---|"]
    for role, files in sorted((m.get("inputs") or {}).items()):
        for f in files if isinstance(files, list) else []:
            sha = f.get("sha256") or "(see manifest.json)"
            L.append(f"| {role} | `{os.path.basename(str(f.get('path')))}` | {f.get('rows', '')} | `{sha}` |")
    L += ["", "Full provenance (input checksums, selection manifest, versions, counts per domain and per selector): "
          "`manifest.json`.", ""]
    return "\n".join(L)


def decontamination_lines(dec: dict) -> list[str]:
    """The card's statement of the evaluation sets the release was decontaminated against."""
    L = ["## Decontamination", ""]
    parts = [(when, e) for when, e in (("selection", dec.get("selection")), ("release", dec.get("release"))) if e]
    if not parts:
        return L + ["Not decontaminated against any evaluation set (`lmsieve select --decontaminate`, "
                    "`lmsieve release --decontaminate`; docs/decontamination.md).", ""]
    for when, e in parts:
        r = e.get("rule", {})
        what = "removed" if e.get("mode") == "remove" else "flagged only (report mode)"
        L += [f"At {when}: documents sharing a word {r.get('n')}-gram with an evaluation item (short items: "
              f"the whole item, {r.get('min_words')}+ words) were {what}; index `{e.get('index')}`.", "",
              "| evaluation set | items | n-grams indexed | documents flagged |", "|---|---|---|---|"]
        by = e.get("by_set", {})
        L += [f"| {s.get('name')} | {s.get('items', 0):,} | {s.get('ngrams', 0):,} | {by.get(s.get('name'), 0):,} |"
              for s in e.get("eval_sets", [])] + [""]
    return L


def write_card(root: str, sel: SelectionDir, *, name: str, shards: list[dict], counts: dict, licenses: dict,
               description: str = "") -> list[str]:
    """Write README.md and the plots into ``root``; returns the file names written."""
    pd = sel.counts.get("per_domain") or {}
    rows = composition_rows(pd.get("input") or {}, counts.get("per_domain") or {}) if pd.get("input") else []
    thr, note = threshold(sel)
    plots = _plots(root, rows, sel, thr, note)
    text = ""
    if licenses.get("file"):
        with open(os.path.join(root, licenses["file"]), encoding="utf-8", errors="replace") as f:
            text = f.read()
    card = card_text(sel, name=name, shards=shards, counts=counts, licenses=licenses, description=description,
                     rows=rows, thr=thr, thr_note=note, plots=plots, license_text=text)
    with open(os.path.join(root, README), "w", encoding="utf-8", newline="\n") as f:
        f.write(card)
    return [README, *plots]


__all__ = ["card_text", "decontamination_lines", "composition_rows", "threshold", "write_card"]
