"""Always-think against the direct-first cascade on one live server: accuracy, generated tokens per item,
items/s and the share decided without thinking, at several thresholds, in interleaved rounds.

    python -m libra_eval.direct_first --url http://judge:8000 --samples 3 --out docs/results/direct-first
    python -m libra_eval.direct_first --serve "--model /tmp/nano-judge-direct --judges-dir nano/judges \
        --judge nano-direct" --out docs/results/direct-first-nano      # a server of its own for the run

The server's judge must be able to answer without thinking (``GET /judges``: ``can_answer_directly``
says the profile declares how; whether the model learned to is what this measures: a Qwen3-family judge
with the ``libra`` profile, or the nano judge retrained for it, ``make nano-judge-direct``). Sets: the
nano held-out items (1,000) and the nano bench (240 items in Libra Bench's format). Every configuration
judges every item with the cache off, in an order rotated each round so no configuration always runs
first; figures are medians over the rounds (accuracy and tokens do not move between rounds: greedy).
``--samples K`` adds always-think and the cascade with K voted samples (one round). Writes ``OUT.json``
and ``OUT.png`` (accuracy against tokens per item).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from libra_client import LibraClient
from libra_eval.runner import service

ROOT = Path(__file__).resolve().parents[1]
SETS = {"nano held-out": ROOT / "nano" / "heldout.jsonl", "nano bench": ROOT / "nano" / "libra_bench_nano.jsonl"}


def load(path: Path) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [{"question": r["question"], "response": r["response"], "label": int(r["label"])} for r in rows]


def run(client: LibraClient, items: list[dict], options: dict) -> dict:
    sent = [{"question": it["question"], "response": it["response"]} for it in items]
    t0 = time.perf_counter()
    # The judge is measured, not the reward policy: no answer check decides an item before the engine.
    results = client.score(sent, cache=False, policy={"answer": "none"}, **options)
    wall = time.perf_counter() - t0
    right = sum(r.reward is not None and (r.reward >= 0.5) == bool(it["label"]) for r, it in zip(results, items,
                                                                                                    strict=True))
    tokens = sum(r.raw["usage"]["completion_tokens"] for r in results)
    direct = sum(r.raw.get("judge_pass") == "direct" for r in results)
    return {"accuracy": right / len(items), "tokens_per_item": tokens / len(items), "items_per_s": len(items) / wall,
            "direct_share": direct / len(items), "no_reward": sum(r.reward is None for r in results)}


def configs(thresholds: list[float], samples: int = 1) -> dict[str, dict]:
    extra = {"samples": samples} if samples > 1 else {}
    out = {"always think" + (f", k={samples}" if samples > 1 else ""): {**extra}}
    for t in thresholds:
        out[f"direct first, {t:g}" + (f", k={samples}" if samples > 1 else "")] = {
            "direct_first": True, "direct_threshold": t, **extra}
    return out


def measure(client: LibraClient, items: list[dict], cfgs: dict[str, dict], rounds: int) -> dict:
    names = list(cfgs)
    per: dict[str, list[dict]] = {n: [] for n in names}
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            per[name].append(run(client, items, cfgs[name]))
            m = per[name][-1]
            print(f"  round {r + 1} {name:<24} accuracy {m['accuracy']:.2%} tokens/item {m['tokens_per_item']:.1f} "
                  f"items/s {m['items_per_s']:.1f} direct {m['direct_share']:.0%}", flush=True)
    return {n: {k: statistics.median(m[k] for m in runs) for k in runs[0]} | {"rounds": runs}
            for n, runs in per.items()}


def report(name: str, figures: dict) -> None:
    base = next(iter(figures.values()))
    print(f"\n{name} (medians):")
    print(f"  {'configuration':<24} {'accuracy':>9} {'vs think':>9} {'tokens/item':>12} {'fewer':>7} {'items/s':>8} "
          f"{'faster':>7} {'direct':>7}")
    for cfg, m in figures.items():
        print(f"  {cfg:<24} {m['accuracy']:>9.2%} {100 * (m['accuracy'] - base['accuracy']):>+8.2f}p "
              f"{m['tokens_per_item']:>12.1f} {_ratio(base['tokens_per_item'], m['tokens_per_item']):>6.2f}x "
              f"{m['items_per_s']:>8.1f} {_ratio(m['items_per_s'], base['items_per_s']):>6.2f}x "
              f"{m['direct_share']:>7.0%}")


def _ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def plot(table: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(table), figsize=(6 * len(table), 4.2), squeeze=False)
    for ax, (name, figures) in zip(axes[0], table.items(), strict=True):
        for cfg, m in figures.items():
            marker = "s" if cfg.startswith("always") else "o"
            ax.scatter(m["tokens_per_item"], 100 * m["accuracy"], marker=marker)
            ax.annotate(cfg, (m["tokens_per_item"], 100 * m["accuracy"]), fontsize=7, xytext=(4, 4),
                        textcoords="offset points")
        ax.set_xlabel("generated tokens per item")
        ax.set_ylabel("verdict accuracy (%)")
        ax.set_title(name)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    where = ap.add_mutually_exclusive_group(required=True)
    where.add_argument("--url", help="a running libra-serve whose judge answers without thinking")
    where.add_argument("--serve", metavar="ARGS", help="start libra-serve with these arguments for the run, e.g. "
                       "'--model /tmp/nano-judge-direct --judges-dir nano/judges --judge nano-direct'")
    ap.add_argument("--judge", help="judge profile (default: the server's)")
    ap.add_argument("--max-thinking-tokens", type=int, help="the thinking pass's budget (default: the profile's)")
    ap.add_argument("--thresholds", default="0.8,0.9,0.95,0.99")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--samples", type=int, default=0, help="also K voted samples, always-think and the cascade")
    ap.add_argument("--samples-threshold", type=float, default=0.9, help="the cascade's threshold with --samples")
    ap.add_argument("--data", type=Path, action="append", help="a labeled JSONL (question, response, label: Libra "
                    "Bench's format) instead of the nano sets; repeatable")
    ap.add_argument("--limit", type=int, default=0, help="only the first N items of each set")
    ap.add_argument("--out", type=Path, help="write OUT.json and OUT.png")
    args = ap.parse_args(argv)
    thresholds = [float(t) for t in args.thresholds.split(",")]
    extra = {k: v for k, v in (("judge", args.judge), ("max_thinking_tokens", args.max_thinking_tokens)) if v}
    table: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as logs, service(args.url or "", None, args.url is None, args.serve or "",
                                                        Path(logs)) as target, \
            LibraClient(target.url, chunk_size=64, max_concurrency=8) as client:
        sets = {p.stem: p for p in args.data} if args.data else SETS
        for name, path in sets.items():
            print(f"{name}: {path.name}", flush=True)
            cfgs = {k: {**v, **extra} for k, v in configs(thresholds).items()}
            items = load(path)[:args.limit] if args.limit else load(path)
            table[name] = measure(client, items, cfgs, args.rounds)
            report(name, table[name])
        if args.samples > 1:
            cfgs = {k: {**v, **extra} for k, v in configs([args.samples_threshold], args.samples).items()}
            first = next(iter(sets.values()))
            items = load(first)[:args.limit] if args.limit else load(first)
            name = f"{next(iter(sets))}, k={args.samples}"
            table[name] = measure(client, items, cfgs, 1)
            report(name, table[name])
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".json").write_text(json.dumps(table, indent=1) + "\n")
        plot({k: v for k, v in table.items() if "k=" not in k}, args.out.with_suffix(".png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
