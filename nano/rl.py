"""Close the loop: GRPO (TRL's real ``GRPOTrainer``) and DPO on the nano policy, rewarded by Libra Serve.

    python -m nano.rl                              # one arm (judge), one seed: before/after held-out accuracy
    python -m nano.rl --arm rule --seed 2          # another arm
    python -m nano.rl --table                      # every arm x 3 seeds, DPO too -> docs/results/downstream.*

The policy (``nano/policy.py``) answers unlabeled questions of the nano world's training split; the
reward is ``libra_client.trl.libra_reward`` against a live ``libra-serve`` (the real vLLM engine and the
bundled nano judge; started here unless ``--url`` names one). Only the ``rule`` arm's data set carries
an answer (its ``reference`` column, ``mode: verify``): it is what labels would buy. The arms:

- ``judge``: the nano profile, reference-free (Libra's setting);
- ``judge-hedge-off``: the same with the reward policy's hedging check turned off;
- ``rule``: math-verify against each question's true answer;
- ``weak-prob``: the nano judge with a 40-token thinking budget (verdicts forced before it has worked
  the problem through), paid its probability of ``correct`` (``reward_mode: prob``);
- ``weak-forced``: the same weak judge paid its forced verdict (0 or 1);
- ``start``: no training;
- ``dpo``: samples of the starting policy labeled by ``libra-serve label`` (no references), pairs of
  a correct-labeled and an incorrect-labeled response to the same question, TRL's real ``DPOTrainer``.

Every arm of a seed sees the same question stream, in the same order, and starts from the same
checkpoint. Accuracy is greedy, on held-out problems of the evaluation split (never trained on), exact
final answer (``policy.final_answer``: a hedged response is not an answer).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from nano import policy

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"
ENV_KEYS = ("LIBRA_JUDGE", "LIBRA_MODE", "LIBRA_REWARD_MODE", "LIBRA_MAX_THINKING_TOKENS", "LIBRA_POLICY")
WEAK_BUDGET = 40  # thinking tokens: docs/api.md's forced-verdict figure (AUC 0.688 on the nano held-out set)


@dataclass(frozen=True)
class Arm:
    name: str
    env: dict[str, str]
    reference: bool = False  # only the labeled-rule arm's data carries answers
    what: str = ""


ARMS = {a.name: a for a in (
    Arm("judge", {"LIBRA_JUDGE": "nano"}, what="nano judge, reference-free"),
    Arm("judge-hedge-off", {"LIBRA_JUDGE": "nano", "LIBRA_POLICY": '{"hedged": "judge"}'},
        what="nano judge, hedging check off"),
    Arm("rule", {"LIBRA_JUDGE": "nano", "LIBRA_MODE": "verify"}, reference=True,
        what="math-verify with the true answer (labels)"),
    Arm("weak-prob", {"LIBRA_JUDGE": "nano", "LIBRA_MAX_THINKING_TOKENS": str(WEAK_BUDGET),
                      "LIBRA_REWARD_MODE": "prob"}, what=f"nano judge forced at {WEAK_BUDGET} tokens, prob reward"),
    Arm("weak-forced", {"LIBRA_JUDGE": "nano", "LIBRA_MAX_THINKING_TOKENS": str(WEAK_BUDGET)},
        what=f"nano judge forced at {WEAK_BUDGET} tokens, verdict reward"),
)}
TABLE_ARMS = ("judge", "judge-hedge-off", "rule", "weak-prob", "weak-forced", "dpo")


@dataclass
class Run:
    """What one arm and seed measured."""

    arm: str
    seed: int
    before: float = 0.0
    after: float = 0.0
    curve: list[dict] = field(default_factory=list)  # per logged step: reward, held-out accuracy, ...
    steps: list[dict] = field(default_factory=list)  # per step: wall, reward wait, judge tokens, items/s
    seconds: float = 0.0


# --- the service ------------------------------------------------------------------------------------

@contextlib.contextmanager
def service(url: str | None, log: Path):
    """``url``, or a libra-serve of our own (the bundled nano judge on the real engine) for the block."""
    if url:
        yield url.rstrip("/")
        return
    from libra_eval.server_process import ServerProcess

    with ServerProcess(["--enforce-eager"], log_path=log) as server:
        yield server.url


def engine_completion_tokens(url: str) -> float:
    """The server's ``libra_engine_tokens_total{kind="completion"}`` (judge tokens generated so far); NaN
    when the server does not answer (a measurement never stops training: the reward call decides)."""
    try:
        with urllib.request.urlopen(url + "/metrics", timeout=10) as resp:
            text = resp.read().decode()
    except OSError:
        return float("nan")
    match = re.search(r'^libra_engine_tokens_total\{kind="completion"\} (\S+)$', text, re.M)
    return float(match.group(1)) if match else float("nan")


@contextlib.contextmanager
def arm_env(arm: Arm, url: str):
    """The client settings of ``arm`` (``libra_client.env`` reads them at every call)."""
    saved = {k: os.environ.get(k) for k in (*ENV_KEYS, "LIBRA_URL")}
    for k in ENV_KEYS:
        os.environ.pop(k, None)
    os.environ.update({"LIBRA_URL": url, **arm.env})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# --- GRPO ------------------------------------------------------------------------------------------

def _text(completion) -> str:
    return completion[-1]["content"] if isinstance(completion, list) else str(completion)


PAID = 0.5  # a reward at or above this pays the completion (a verdict of correct; prob above even)
PAID_WRONG_CLASSES = frozenset({"hedged", "no_answer", "right_then_wrong", "misquoted", "wrong"})
EXAMPLES_PER_STEP = 2  # paid-but-wrong completions kept per step, for reading what the policy found


def paid_but_wrong(question: str, text: str) -> str | None:
    """Why a completion the reward paid is not right, as a class; None when it is right. The truth comes
    from the question (the observer's view; the judge arms never see it). Classes: ``hedged`` (two
    candidates: the reward policy's rule or the held-out metric's), ``no_answer`` (no number),
    ``right_then_wrong`` (the true answer is written, but the final one differs), ``misquoted`` (the
    working's first step computes another problem: ``First 45 + 70`` for 35 + 74), ``wrong`` (else)."""
    from service.judge.hedging import hedged_candidates

    if policy.is_hedged(text) or hedged_candidates(text, question):  # right or not, a hedge is no answer
        return "hedged"
    truth = policy.truth_of(question)
    if policy.final_answer(text) == truth:
        return None
    if policy.final_answer(text) is None:
        return "no_answer"
    if str(truth) in re.findall(r"-?\d+", text):
        return "right_then_wrong"
    return "misquoted" if _misquoted(question, text) else "wrong"


def _misquoted(question: str, text: str) -> bool:
    """Whether the working's first step computes another problem than the question's: its operands are
    neither the question's (``a op b``) nor the worked shape's first step (``a op tens of b``)."""
    first = re.search(r"(\d+)\s*[+-]\s*(\d+)\s*=", text)
    if not first:
        return False
    a, _, b = re.search(r"(\d+) ([+-]) (\d+)", question).groups()
    x, y = first.groups()
    return (int(x), int(y)) not in ((int(a), int(b)), (int(a), int(b) - int(b) % 10))


class Meter:
    """Wraps ``libra_reward`` (TRL calls it once per step) to time the wait and count what came back,
    and reads each paid completion against the truth: what the policy is paid for without being right."""

    def __init__(self, url: str):
        self.url = url
        self.reset()

    def reset(self) -> None:
        self.wait = 0.0
        self.items = 0
        self.statuses: list[str] = []
        self.hedged = 0
        self.rewards: list[float | None] = []
        self.paid = 0
        self.paid_wrong: dict[str, int] = {}
        self.examples: list[dict] = []

    def reward_function(self):
        from libra_client.trl import libra_reward as reward

        meter = self

        async def libra_reward(prompts, completions, log_extra=None, log_metric=None, **kwargs):
            def capture(name, values):
                if name == "judge_status":
                    meter.statuses.extend(values)
                if log_extra is not None:
                    log_extra(name, values)

            start = time.perf_counter()
            rewards = await reward(prompts, completions, log_extra=capture, log_metric=log_metric, **kwargs)
            meter.wait += time.perf_counter() - start
            meter.items += len(completions)
            meter.hedged += sum(policy.is_hedged(_text(c)) for c in completions)
            meter.rewards.extend(rewards)
            for prompt, completion, reward_ in zip(prompts, completions, rewards, strict=True):
                if reward_ is None or reward_ < PAID:
                    continue
                meter.paid += 1
                question, text = _text(prompt), _text(completion)
                if (why := paid_but_wrong(question, text)) is not None:
                    meter.paid_wrong[why] = meter.paid_wrong.get(why, 0) + 1
                    if len(meter.examples) < EXAMPLES_PER_STEP:
                        meter.examples.append({"class": why, "question": question, "response": text,
                                               "reward": reward_})
            return rewards

        return libra_reward


def grpo_config(out_dir: str, steps: int, seed: int, lr: float, prompts_per_step: int, generations: int):
    from trl import GRPOConfig

    return GRPOConfig(
        output_dir=out_dir, max_steps=steps, seed=seed, learning_rate=lr, lr_scheduler_type="constant",
        per_device_train_batch_size=prompts_per_step * generations, num_generations=generations,
        max_completion_length=80, temperature=1.0, beta=0.0, shuffle_dataset=False, use_cpu=True, bf16=False,
        report_to=[], logging_steps=1, save_strategy="no", log_completions=False, disable_dropout=True,
    )


def dataset(arm: Arm, seed: int, n: int):
    """The seed's question stream; answers only in the labeled arm's ``reference`` column."""
    from datasets import Dataset

    rows = []
    for q, truth in policy.questions(n, seed=1000 + seed, split="train"):
        row = {"prompt": policy.prompt_messages(q)}
        if arm.reference:
            row["reference"] = str(truth)
        rows.append(row)
    return Dataset.from_list(rows)


def run_grpo(arm: Arm, seed: int, url: str, *, steps: int, lr: float, prompts_per_step: int = 16,
             generations: int = 8, eval_every: int = 5, heldout_n: int = 500, start: Path = policy.POLICY_PATH,
             progress: bool = True, callbacks: tuple = ()) -> Run:
    """One GRPO run; the returned ``Run`` also holds the trained ``model`` and TRL's ``log_history``."""
    import torch
    from transformers import TrainerCallback
    from trl import GRPOTrainer

    warnings.filterwarnings("ignore", message="TRL currently supports vLLM")
    torch.manual_seed(seed)
    model, tok = policy.load(start)
    heldout = policy.heldout_questions(heldout_n)
    run = Run(arm.name, seed)
    t_run = time.perf_counter()
    run.before = policy.accuracy(model, tok, heldout)
    meter = Meter(url)

    class Record(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            self.t0 = time.perf_counter()
            self.tokens0 = engine_completion_tokens(url)
            meter.reset()

        def on_step_end(self, args, state, control, model=None, **kw):
            wall = time.perf_counter() - self.t0
            tokens = engine_completion_tokens(url) - self.tokens0
            got = [r for r in meter.rewards if r is not None]
            step = {"step": state.global_step, "wall_s": round(wall, 3), "reward_wait_s": round(meter.wait, 3),
                    "wait_share": round(meter.wait / wall, 3) if wall else None, "judge_tokens": tokens,
                    "items": meter.items, "items_per_s": round(meter.items / meter.wait, 1) if meter.wait else None,
                    "mean_reward": round(sum(got) / len(got), 4) if got else None,
                    "missing": meter.items - len(got),
                    "no_answer": meter.statuses.count("no_answer") / max(1, len(meter.statuses)),
                    "degenerate": meter.statuses.count("degenerate") / max(1, len(meter.statuses)),
                    "hedged": meter.hedged / max(1, meter.items), "paid": meter.paid,
                    "paid_wrong": dict(meter.paid_wrong), "paid_wrong_examples": list(meter.examples)}
            run.steps.append(step)
            if state.global_step % eval_every == 0 or state.global_step == args.max_steps:
                step = {**step, "heldout": policy.accuracy(model, tok, heldout)}
                run.curve.append({k: step[k] for k in ("step", "mean_reward", "heldout", "hedged", "no_answer")})
                if progress:
                    print(f"  [{arm.name} seed {seed}] step {step['step']}/{args.max_steps} reward "
                          f"{step['mean_reward']} held-out {step['heldout']:.1%} hedged {step['hedged']:.1%} "
                          f"wait {step['wait_share']:.0%} of {wall:.1f}s", flush=True)

    with tempfile.TemporaryDirectory() as tmp, arm_env(arm, url):
        trainer = GRPOTrainer(model=model, processing_class=tok, reward_funcs=[meter.reward_function()],
                              args=grpo_config(tmp, steps, seed, lr, prompts_per_step, generations),
                              train_dataset=dataset(arm, seed, steps * prompts_per_step),
                              callbacks=[Record(), *callbacks])
        run.curve.append({"step": 0, "mean_reward": None, "heldout": run.before, "hedged": None, "no_answer": None})
        trainer.train()
    run.after = policy.accuracy(model, tok, heldout)
    run.seconds = round(time.perf_counter() - t_run, 1)
    run.model, run.log_history = model, trainer.state.log_history  # not fields: not in the table's JSON
    return run


# --- DPO -------------------------------------------------------------------------------------------

def dpo_pairs(url: str, seed: int, n_questions: int, k: int = 8, start: Path = policy.POLICY_PATH,
              workdir: Path | None = None, pairs_per_question: int = 2) -> tuple[list[dict], dict]:
    """``k`` samples per question of the starting policy, labeled by ``libra-serve label`` (no references);
    its ``dpo_pairs.jsonl`` (chosen: judged correct, rejected: judged incorrect) as chat messages."""
    model, tok = policy.load(start)
    qs = [q for q, _ in policy.questions(n_questions, seed=5000 + seed, split="train")]
    texts = policy.generate(model, tok, [q for q in qs for _ in range(k)], greedy=False, seed=seed)
    workdir = Path(workdir or tempfile.mkdtemp())
    src, out = workdir / f"samples-{seed}.jsonl", workdir / f"labeled-{seed}"
    with open(src, "w") as fh:
        for i, q in enumerate(qs):
            fh.write(json.dumps({"id": f"q{i}", "question": q, "responses": texts[i * k:(i + 1) * k]}) + "\n")
    exe = Path(sys.executable).with_name("libra-serve")
    subprocess.run([str(exe), "label", str(src), "--url", url, "--out", str(out), "--no-progress", "--fresh",
                    "--pairs-per-question", str(pairs_per_question)], check=True, stdout=subprocess.DEVNULL)
    pairs = [json.loads(line) for line in open(out / "dpo_pairs.jsonl") if line.strip()]
    counts = json.loads((out / "summary.json").read_text())
    return [{"prompt": policy.prompt_messages(p["prompt"]), "chosen": [{"role": "assistant", "content": p["chosen"]}],
             "rejected": [{"role": "assistant", "content": p["rejected"]}]} for p in pairs], counts


def run_dpo(url: str, seed: int, *, n_questions: int = 256, lr: float = 1e-4, epochs: int = 1,
            heldout_n: int = 500, start: Path = policy.POLICY_PATH, progress: bool = True) -> Run:
    import torch
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    torch.manual_seed(seed)
    t_run = time.perf_counter()
    run = Run("dpo", seed)
    model, tok = policy.load(start)
    heldout = policy.heldout_questions(heldout_n)
    run.before = policy.accuracy(model, tok, heldout)
    with tempfile.TemporaryDirectory() as tmp:
        pairs, counts = dpo_pairs(url, seed, n_questions, start=start, workdir=Path(tmp))
        args = DPOConfig(output_dir=tmp, num_train_epochs=epochs, per_device_train_batch_size=16, learning_rate=lr,
                         lr_scheduler_type="constant", seed=seed, use_cpu=True, bf16=False, report_to=[],
                         logging_steps=5, save_strategy="no", beta=0.1)
        trainer = DPOTrainer(model=model, args=args, train_dataset=Dataset.from_list(pairs), processing_class=tok)
        trainer.train()
    run.after = policy.accuracy(model, tok, heldout)
    run.steps.append({"label": counts})
    run.curve = [{"step": 0, "heldout": run.before}, {"step": trainer.state.global_step, "heldout": run.after}]
    run.seconds = round(time.perf_counter() - t_run, 1)
    if progress:
        print(f"  [dpo seed {seed}] {counts['pairs']} pairs from {counts['responses_scored']} labeled samples",
              flush=True)
    return run


# --- the judges' own quality -----------------------------------------------------------------------

def auc(scores: list[float], labels: list[int]) -> float | None:
    """ROC AUC of ``scores`` for ``labels`` (Mann-Whitney; ties count half); None without both labels."""
    pos = [s for s, y in zip(scores, labels, strict=True) if y]
    neg = [s for s, y in zip(scores, labels, strict=True) if not y]
    if not pos or not neg:
        return None
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def judge_quality(url: str, arms: list[str], n: int = 400, start: Path = policy.POLICY_PATH) -> dict[str, dict]:
    """Each judge arm as a classifier of the starting policy's own completions: ``n`` samples at
    temperature 1 on evaluation-split problems (not the reported held-out set), labeled by their exact
    final answer, scored through /score with the arm's settings. ``accuracy``: reward >= 0.5 agrees with
    the label (a missing reward counts 0); ``auc``: of the probability of ``correct`` where the judge gives
    one (``verdict_prob``), else of the reward. The world the policy is trained in, not the bench's."""
    import httpx

    from libra_client.env import client_settings

    model, tok = policy.load(start)
    items = policy.heldout_questions(n, seed=policy.HELDOUT_SEED + 2)
    texts = policy.generate(model, tok, [q for q, _ in items], greedy=False, seed=7)
    labels = [int(policy.final_answer(t) == truth) for t, (_, truth) in zip(texts, items, strict=True)]
    out: dict[str, dict] = {}
    for name in arms:
        arm = ARMS[name]
        with arm_env(arm, url):
            _, _, options = client_settings()
        body = {"items": [{"question": q, "response": t, **({"reference": str(truth)} if arm.reference else {})}
                          for t, (q, truth) in zip(texts, items, strict=True)], **options}
        if options.get("mode") != "verify":
            body["verdict_prob"] = True
        results = httpx.post(url + "/score", json=body, timeout=600).raise_for_status().json()["results"]
        rewards = [r.get("reward") or 0.0 for r in results]
        # verdict_prob is the probability of the best-rewarded label (correct), whatever the verdict.
        probs = [r["verdict_prob"] if r.get("verdict_prob") is not None else rw
                 for r, rw in zip(results, rewards, strict=True)]
        out[name] = {"n": n, "right_share": sum(labels) / n,
                     "accuracy": sum((rw >= 0.5) == bool(y) for rw, y in zip(rewards, labels, strict=True)) / n,
                     "auc": auc(probs, labels), "forced": sum(r["status"] == "forced" for r in results) / n}
    return out


# --- the table -------------------------------------------------------------------------------------

def summarize(runs: list[Run]) -> list[dict]:
    rows = []
    for name in dict.fromkeys(r.arm for r in runs):
        mine = [r for r in runs if r.arm == name]
        gains = [100 * (r.after - r.before) for r in mine]
        steps = [s for r in mine for s in r.steps if "wall_s" in s]
        rows.append({
            "arm": name, "seeds": [r.seed for r in mine],
            "before": statistics.mean(100 * r.before for r in mine),
            "after": statistics.mean(100 * r.after for r in mine),
            "after_sd": statistics.stdev(100 * r.after for r in mine) if len(mine) > 1 else 0.0,
            "gain": statistics.mean(gains), "gain_sd": statistics.stdev(gains) if len(gains) > 1 else 0.0,
            "gain_min": min(gains), "gain_max": max(gains),
            "wait_share": statistics.median(s["wait_share"] for s in steps) if steps else None,
            "step_s": statistics.median(s["wall_s"] for s in steps) if steps else None,
            "judge_tokens_per_item": (sum(s["judge_tokens"] for s in steps) / max(1, sum(s["items"] for s in steps))
                                      if steps else None),
            "items_per_s": statistics.median(s["items_per_s"] for s in steps if s["items_per_s"]) if steps else None,
            "hedged_first": statistics.mean(s["hedged"] for r in mine for s in r.steps[:3] if "hedged" in s)
            if steps else None,
            "hedged_last": statistics.mean(s["hedged"] for r in mine for s in r.steps[-3:] if "hedged" in s)
            if steps else None,
            "no_answer_last": statistics.mean(s["no_answer"] for r in mine for s in r.steps[-3:] if "no_answer" in s)
            if steps else None,
            "seconds": statistics.mean(r.seconds for r in mine),
            **_paid_wrong(mine),
        })
    return rows


def _paid_wrong(runs: list[Run]) -> dict:
    """Of the completions the reward paid, the share that were wrong, in the first and last three steps,
    and the wrong ones by class over the whole run (runs recorded before the classes: nothing)."""
    steps = [s for r in runs for s in r.steps if "paid" in s]
    if not steps:
        return {}

    def share(part: list[dict]) -> float | None:
        paid = sum(s["paid"] for s in part)
        return sum(sum(s["paid_wrong"].values()) for s in part) / paid if paid else None

    classes: dict[str, int] = {}
    for s in steps:
        for k, v in s["paid_wrong"].items():
            classes[k] = classes.get(k, 0) + v
    return {"paid_wrong_first": share([s for r in runs for s in r.steps[:3] if "paid" in s]),
            "paid_wrong_last": share([s for r in runs for s in r.steps[-3:] if "paid" in s]),
            "paid_wrong_classes": classes, "paid_total": sum(s["paid"] for s in steps)}


def print_paid_wrong(table: dict) -> dict[str, dict[str, int]]:
    """Per arm: completions paid, and the paid-but-wrong ones a table kept (up to ``EXAMPLES_PER_STEP``
    a step) by their class as ``paid_but_wrong`` reads them now; printed with an example of each."""
    out: dict[str, dict[str, int]] = {}
    for run in table["runs"]:
        steps = [s for s in run["steps"] if "paid" in s]
        if not steps:
            continue
        counts = out.setdefault(run["arm"], {"paid": 0, "wrong_counted": 0, "kept": 0})
        counts["paid"] += sum(s["paid"] for s in steps)
        counts["wrong_counted"] += sum(sum(s["paid_wrong"].values()) for s in steps)
        for s in steps:
            for e in s["paid_wrong_examples"]:
                counts["kept"] += 1
                why = paid_but_wrong(e["question"], e["response"]) or "right"
                counts[why] = counts.get(why, 0) + 1
                counts.setdefault("example " + why, f"{e['question']} -> {e['response']}")
    for arm, counts in out.items():
        print(f"{arm}: {counts['wrong_counted']} of {counts['paid']} paid completions wrong "
              f"({counts['wrong_counted'] / max(1, counts['paid']):.1%}); {counts['kept']} kept, by class:")
        for k in sorted(k for k in counts if k in PAID_WRONG_CLASSES or k == "right"):
            print(f"  {k:>16}: {counts[k]:>4}   e.g. {counts['example ' + k]}")
    return out


def plot(runs: list[Run], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_r, ax_a) = plt.subplots(1, 2, figsize=(11, 4.2))
    for i, name in enumerate(dict.fromkeys(r.arm for r in runs if r.arm != "dpo")):
        mine = [r for r in runs if r.arm == name]
        color = f"C{i}"
        steps = sorted({p["step"] for r in mine for p in r.curve})
        for key, ax in (("mean_reward", ax_r), ("heldout", ax_a)):
            xs, ys = [], []
            for s in steps:
                vals = [p[key] for r in mine for p in r.curve if p["step"] == s and p.get(key) is not None]
                if vals:
                    xs.append(s)
                    ys.append(statistics.mean(vals) * (100 if key == "heldout" else 1))
            ax.plot(xs, ys, marker="o", ms=3, color=color, label=f"{name} ({len(mine)} seeds)")
    dpo = [r for r in runs if r.arm == "dpo"]
    if dpo:
        ax_a.axhline(100 * statistics.mean(r.after for r in dpo), color="k", ls=":", label="dpo (after)")
    ax_r.set(title="mean reward of the step's completions", xlabel="GRPO step", ylabel="reward")
    ax_a.set(title="greedy held-out accuracy", xlabel="GRPO step", ylabel="% exact final answer")
    ax_a.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arm", default="judge", choices=[*ARMS, "dpo"])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--table", action="store_true", help="every arm x --seeds seeds, plus DPO; writes --out")
    ap.add_argument("--arms", default=",".join(TABLE_ARMS), help="the arms of --table (comma-separated)")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--prompts-per-step", type=int, default=16)
    ap.add_argument("--generations", type=int, default=8)
    ap.add_argument("--url", default=None, help="a running libra-serve (default: start one with the nano judge)")
    ap.add_argument("--out", type=Path, default=RESULTS / "downstream")
    ap.add_argument("--judge-quality", action="store_true",
                    help="only measure each judge arm of --arms as a classifier of the policy's samples; into --out")
    ap.add_argument("--paid-wrong", type=Path, metavar="TABLE_JSON",
                    help="print, per arm, the paid-but-wrong completions a table kept, by class (no service)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads for the policy (the engine has the rest)")
    args = ap.parse_args(argv)

    if args.paid_wrong:
        print_paid_wrong(json.loads(args.paid_wrong.read_text()))
        return
    import torch

    torch.set_num_threads(args.threads)
    kw = dict(steps=args.steps, lr=args.lr, prompts_per_step=args.prompts_per_step, generations=args.generations)
    t0 = time.perf_counter()
    log = Path(tempfile.gettempdir()) / "nano-rl-serve.log"
    with service(args.url, log) as url:
        if args.judge_quality:
            quality = judge_quality(url, [a for a in args.arms.split(",") if a in ARMS])
            for name, q in quality.items():
                print(f"{name:>16}: accuracy {q['accuracy']:.1%}  AUC {q['auc']:.3f}  forced {q['forced']:.0%}")
            path = args.out.with_suffix(".json")
            table = json.loads(path.read_text()) if path.exists() else {}
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({**table, "judges": quality}, indent=1) + "\n")
            return
        if not args.table:
            run = run_dpo(url, args.seed) if args.arm == "dpo" else run_grpo(ARMS[args.arm], args.seed, url, **kw)
            print(f"{run.arm}, seed {run.seed}: before {100 * run.before:.1f}%, after {100 * run.after:.1f}% "
                  f"({run.seconds:.0f} s)")
            return
        runs: list[Run] = []
        args.out.parent.mkdir(parents=True, exist_ok=True)
        for seed in range(1, args.seeds + 1):  # seeds outermost: a cut-short table still compares arms
            for name in [a for a in args.arms.split(",") if a]:
                runs.append(run_dpo(url, seed) if name == "dpo" else run_grpo(ARMS[name], seed, url, **kw))
                r = runs[-1]
                print(f"{r.arm}, seed {r.seed}: before {100 * r.before:.1f}%, after {100 * r.after:.1f}% "
                      f"({r.seconds:.0f} s)", flush=True)
                table = {"settings": {**{k: v for k, v in vars(args).items() if k not in ("out", "url")},
                                      "weak_budget": WEAK_BUDGET}, "summary": summarize(runs),
                         "runs": [dataclasses.asdict(x) for x in runs], "seconds": round(time.perf_counter() - t0)}
                args.out.with_suffix(".json").write_text(json.dumps(table, indent=1) + "\n")
        plot(runs, args.out.with_suffix(".png"))
    for row in summarize(runs):
        print(f"{row['arm']:>16}: before {row['before']:.1f}%  after {row['after']:.1f}% (sd {row['after_sd']:.1f})"
              f"  gain {row['gain']:+.1f} [{row['gain_min']:+.1f}, {row['gain_max']:+.1f}]")
    print(f"table: {args.out.with_suffix('.json')}, curves: {args.out.with_suffix('.png')} "
          f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.set_event_loop_policy(None)
        main()
