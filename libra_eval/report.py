"""The bench report: Markdown, PNG charts, and a side-by-side comparison of two runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

PAPER_RANGE = "73.7–78.7%"  # thinking judges on Libra Bench in the Libra paper (arXiv 2507.21645)


def pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def markdown(m: dict[str, Any], charts: dict[str, str]) -> str:
    run = m["run"]
    c = m["confusion"]
    parts = [
        f"# Libra Bench report: judge `{run['judge']}` on `{run['model']}`",
        "",
        f"Data `{run['data']}` ({m['n_items']} items, field `{run['field']}`), samples {run.get('samples') or 1}, "
        f"threshold {m['threshold']:g}. Paper range for thinking judges on the full Libra Bench: {PAPER_RANGE}.",
        "",
        f"**Mean subset accuracy (the dataset card's metric): {pct(m['mean_subset_accuracy'])}** · "
        f"plain accuracy {pct(m['accuracy'])} · macro F1 {pct(m['f1'])} "
        f"(precision {pct(m['precision'])}, recall {pct(m['recall'])})",
        "",
        "## By subset",
        "",
        _table(["subset", "items", "accuracy"],
               [[s, str(m["subset_items"][s]), pct(a)] for s, a in m["subset_accuracy"].items()]),
        "",
        "## By generator model",
        "",
        _table(["model", "items", "accuracy"],
               [[k, str(m["model_items"][k]), pct(a)] for k, a in m["model_accuracy"].items()]),
        "",
        "## Confusion (rows: label; columns: the judge's verdict)",
        "",
        _table(["label", "judged correct", "judged incorrect", "no verdict"],
               [[t, str(c[t]["judged_correct"]), str(c[t]["judged_incorrect"]), str(c[t]["no_verdict"])]
                for t in ("correct", "incorrect")]),
        "",
        "## Judge behaviour",
        "",
        _table(["figure", "value"], [
            ["statuses", ", ".join(f"{k} {v}" for k, v in m["statuses"].items())],
            ["no verdict / unparsed / forced / timeout",
             " / ".join(pct(m[k]) for k in ("no_verdict_rate", "unparsed_rate", "forced_rate", "timeout_rate"))],
            ["tokens per item (prompt, completion)",
             f"{m['prompt_tokens_per_item']:.1f}, {m['completion_tokens_per_item']:.1f}"],
            ["items scored in this run", f"{run['scored_this_run']} ({run['resumed_items']} from earlier runs)"],
            ["wall time of this run", f"{run['wall_s']:.1f} s"],
            ["items/s", "–" if run["items_per_s"] is None else f"{run['items_per_s']:.1f}"],
        ]),
    ]
    if "roc_auc" in m:
        auc = m["roc_auc"]
        parts += ["", "## The judge's probability (verdict_prob)", "",
                  f"{m['prob_items']} items carry one. ROC AUC **{'–' if auc is None else f'{auc:.4f}'}** · expected "
                  f"calibration error **{m['calibration']['ece']:.4f}** (10 equal-width bins).", "",
                  _table(["bin", "items", "mean verdict_prob", "observed correct"],
                         [[f"{b['bin'][0]:.1f}-{b['bin'][1]:.1f}", str(b["n"]), f"{b['mean_prob']:.3f}",
                           f"{b['observed']:.3f}"] for b in m["calibration"]["bins"]])]
    if charts:
        parts += ["", "## Charts", ""] + [f"![{name}]({file})" for name, file in charts.items()]
    return "\n".join(parts) + "\n"


def charts(m: dict[str, Any], out: Path) -> dict[str, str]:
    """Per-subset accuracy with the mean line, the confusion matrix, accuracy by generator."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files: dict[str, str] = {}

    def bars(values: dict[str, float], title: str, name: str, mean: float | None) -> None:
        fig, ax = plt.subplots(figsize=(max(5.0, 1.1 * len(values) + 2), 3.8))
        labels = list(values)
        ax.bar(labels, [100 * v for v in values.values()], color="#4c72b0")
        for i, v in enumerate(values.values()):
            ax.text(i, 100 * v + 1, f"{100 * v:.1f}", ha="center", fontsize=8)
        if mean is not None:
            ax.axhline(100 * mean, color="#c44e52", linestyle="--", label=f"mean over subsets {100 * mean:.1f}%")
            ax.legend(loc="lower right", fontsize=8)
        ax.set_ylim(0, 105)
        ax.set_ylabel("accuracy (%)")
        ax.set_title(title)
        ax.tick_params(axis="x", labelrotation=20, labelsize=8)
        fig.tight_layout()
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        files[title] = name

    bars(m["subset_accuracy"], "Accuracy by subset", "subset_accuracy.png", m["mean_subset_accuracy"])
    bars(m["model_accuracy"], "Accuracy by generator model", "model_accuracy.png", None)

    c = m["confusion"]
    cols = ("judged_correct", "judged_incorrect", "no_verdict")
    grid = [[c[t][k] for k in cols] for t in ("correct", "incorrect")]
    fig, ax = plt.subplots(figsize=(5.2, 3.4))
    ax.imshow(grid, cmap="Blues")
    top = max(max(row) for row in grid) or 1
    for i, row in enumerate(grid):
        for j, v in enumerate(row):
            ax.text(j, i, str(v), ha="center", va="center", color="white" if v > top / 2 else "black", fontsize=11)
    ax.set_xticks(range(3), ["judged correct", "judged incorrect", "no verdict"])
    ax.set_yticks(range(2), ["label correct", "label incorrect"])
    ax.set_title("Confusion matrix")
    fig.tight_layout()
    fig.savefig(out / "confusion.png", dpi=110)
    plt.close(fig)
    files["Confusion matrix"] = "confusion.png"
    if m.get("calibration", {}).get("bins"):
        bins = m["calibration"]["bins"]
        fig, ax = plt.subplots(figsize=(4.6, 4.2))
        ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect calibration")
        ax.plot([b["mean_prob"] for b in bins], [b["observed"] for b in bins], marker="o", label="judge")
        for b in bins:
            ax.annotate(str(b["n"]), (b["mean_prob"], b["observed"]), textcoords="offset points", xytext=(4, -10),
                        fontsize=8)
        ax.set_xlim(0, 1), ax.set_ylim(0, 1)
        ax.set_xlabel("verdict_prob (bin mean)"), ax.set_ylabel("share labelled correct")
        ax.set_title(f"Reliability (ECE {m['calibration']['ece']:.3f})")
        ax.legend(loc="upper left", fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "reliability.png", dpi=110)
        plt.close(fig)
        files["Reliability"] = "reliability.png"
    return files


def compare(a_path: Path, b_path: Path) -> str:
    """Markdown: two bench runs side by side (two judges, or two models), with the difference."""
    a, b = (json.loads(Path(p).read_text(encoding="utf-8")) for p in (a_path, b_path))

    def name(m: dict, path: Path) -> str:
        run = m.get("run", {})
        return f"{run.get('judge', '?')} / {run.get('model', '?')} ({path})"

    def row(label: str, x: float | None, y: float | None) -> list[str]:
        diff = "–" if x is None or y is None else f"{100 * (y - x):+.1f}"
        return [label, pct(x), pct(y), diff]

    rows = [row("**mean subset accuracy**", a["mean_subset_accuracy"], b["mean_subset_accuracy"]),
            row("accuracy", a["accuracy"], b["accuracy"]), row("macro F1", a["f1"], b["f1"]),
            row("no-verdict rate", a["no_verdict_rate"], b["no_verdict_rate"])]
    for s in sorted(set(a["subset_accuracy"]) | set(b["subset_accuracy"])):
        rows.append(row(f"subset {s}", a["subset_accuracy"].get(s), b["subset_accuracy"].get(s)))
    for k in sorted(set(a["model_accuracy"]) | set(b["model_accuracy"])):
        rows.append(row(f"model {k}", a["model_accuracy"].get(k), b["model_accuracy"].get(k)))
    notes = []
    if a["n_items"] != b["n_items"]:
        notes.append(f"\nThe runs cover different items: {a['n_items']} vs {b['n_items']}.")
    return ("# Libra Bench comparison\n\n" + f"A: {name(a, a_path)}  \nB: {name(b, b_path)}\n\n"
            + _table(["figure", "A", "B", "B − A (points)"], rows) + "\n" + "".join(notes) + "\n")
