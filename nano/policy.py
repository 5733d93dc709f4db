"""The nano policy: a tiny causal LM that answers the nano world's questions, for RL against our rewards.

    python -m nano.policy --out nano/models/nano-policy        # 600 steps, 280 s on 2 CPU cores

It shares the nano judge's byte tokenizer and chat template. Its prompt is the question as one user
turn (``What is 47 + 35?``); its response has one of the shapes of ``world.response`` (the shapes the
nano judge was trained to read: working, then the final answer). Most demonstrations (``--worked-share``,
90% of the rest) are the worked shape, ``First 47 + 30 = 77, then 77 + 5 = 82. The answer is 82.``: two
easy steps, which a model of 1.09M parameters half-learns in minutes (with every shape mixed it stayed
under 8% greedy after 1,500 steps; on 3-digit operands near 0%). It is fine-tuned from scratch for a
**short** while, so that its greedy held-out accuracy starts where RL has something to teach (the
issue's 20-60%) and its samples at temperature 1 are right often enough that a group of 8 usually holds
a correct one. The shipped checkpoint (seed 4321, 600 steps), on 200 probe problems of the evaluation
split: greedy 35.0%, samples at temperature 1 19.5%, a correct one among 8 samples for 63% of problems
(``training.json``; the script prints the same figures, run to run).

A small share of the demonstrations (``--hedge-share``, 10%) *hedge*: "The answer is 82, or possibly
83." (one of the two candidates right), as real policies sometimes do. It gives RL a way to game a
judge that reads only the last number, so the experiment can measure whether the policy learns to hedge
with the reward policy's hedging check off and on (docs/downstream.md).

``final_answer`` is the held-out metric's reading of a response: its last number, and none for a hedged
response (a response that names two different candidates is not an answer).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import time
from pathlib import Path

from nano import world

POLICY_PATH = Path(__file__).resolve().parent / "models" / "nano-policy"
HELDOUT_SEED = 20261205
_NUMBER = re.compile(r"-?\d+")


def prompt_messages(question: str) -> list[dict]:
    """The policy's prompt as chat messages (TRL's conversational form)."""
    return [{"role": "user", "content": question}]


def problem(rng: random.Random, split: str) -> tuple[int, str, int]:
    """A problem of ``split`` with operands of 0-99: the part of the judge's world (1-3 digits) a policy
    of this size can half-learn in minutes of SFT (on 3-digit problems it stays near 0%)."""
    while True:
        a, b, op = rng.randrange(100), rng.randrange(100), rng.choice("+-")
        if op == "-" and b > a:
            a, b = b, a
        if world.split_of(a, op, b) == split:
            return a, op, b


def question(rng: random.Random, split: str) -> tuple[str, int]:
    """A question of ``split`` and its true answer (the answer never enters the RL loop's judge arms)."""
    a, op, b = problem(rng, split)
    text = rng.choice(world.QUESTION_TEMPLATES).format(a=a, op=op, b=b)
    return text, a + b if op == "+" else a - b


def questions(n: int, seed: int, split: str = "train") -> list[tuple[str, int]]:
    rng = random.Random(seed)
    return [question(rng, split) for _ in range(n)]


def heldout_questions(n: int = 500, seed: int = HELDOUT_SEED) -> list[tuple[str, int]]:
    """``n`` distinct problems of the evaluation split (never trained on: ``world.split_of``)."""
    rng = random.Random(seed)
    seen: set[tuple[int, str, int]] = set()
    out: list[tuple[str, int]] = []
    while len(out) < n:
        a, op, b = problem(rng, "eval")
        if (a, op, b) not in seen:
            seen.add((a, op, b))
            text = rng.choice(world.QUESTION_TEMPLATES).format(a=a, op=op, b=b)
            out.append((text, a + b if op == "+" else a - b))
    return out


def worked(a: int, op: str, b: int) -> str:
    """The worked shape of ``world.response`` (its ``First a + tens = mid, then ...`` kind), correct."""
    tens, units = b - b % 10, b % 10
    mid = a + tens if op == "+" else a - tens
    answer = mid + units if op == "+" else mid - units
    return f"First {a} {op} {tens} = {mid}, then {mid} {op} {units} = {answer}. The answer is {answer}."


def demonstration(rng: random.Random, hedge_share: float, worked_share: float) -> tuple[str, str]:
    """One SFT pair (question, response) of the training split: a hedge holding the answer
    (``hedge_share``), else the worked shape (``worked_share``: two easy steps a small model learns far
    faster than a sum written at once), else any of ``world.response``'s shapes, correct."""
    a, op, b = problem(rng, "train")
    truth = a + b if op == "+" else a - b
    text = rng.choice(world.QUESTION_TEMPLATES).format(a=a, op=op, b=b)
    if rng.random() < hedge_share:
        other = world.wrong_answer(rng, a, op, b, truth)
        first, second = (truth, other) if rng.random() < 0.5 else (other, truth)
        return text, f"{a} {op} {b} is {first}. The answer is {first}, or possibly {second}."
    if rng.random() < worked_share:
        return text, worked(a, op, b)
    return text, world.response(rng, a, op, b, truth)


def is_hedged(text: str) -> bool:
    """The policy's own hedge shape and its kin: two different candidates in the last sentence."""
    last = re.split(r"(?<=[.!?])\s+", text.strip())[-1] if text.strip() else ""
    return " or " in last and len(set(_NUMBER.findall(last))) > 1


_PROBLEM = re.compile(r"(\d+) ([+-]) (\d+)")


def truth_of(question: str) -> int:
    """The true answer of a nano-world question (an observer's view: never handed to a judge arm)."""
    a, op, b = _PROBLEM.search(question).groups()
    return int(a) + int(b) if op == "+" else int(a) - int(b)


def final_answer(text: str) -> int | None:
    """The response's final answer as the held-out metric reads it: its last number; none if hedged."""
    if is_hedged(text):
        return None
    numbers = _NUMBER.findall(text)
    return int(numbers[-1]) if numbers else None


def load(path: Path = POLICY_PATH):
    from transformers import AutoTokenizer, Qwen2ForCausalLM

    return Qwen2ForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)


def generate(model, tokenizer, prompts: list[str], *, greedy: bool = True, max_new: int = 96,
             batch: int = 250, seed: int = 0) -> list[str]:
    """Completions of ``prompts`` (questions), batched, left-padded; greedy or sampled at temperature 1."""
    import torch

    pad = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    was_training = model.training
    model.eval()
    torch.manual_seed(seed)
    texts: list[str] = []
    with torch.no_grad():
        for start in range(0, len(prompts), batch):
            chunk = [tokenizer.apply_chat_template(prompt_messages(q), add_generation_prompt=True, tokenize=True)
                     for q in prompts[start:start + batch]]
            chunk = [c["input_ids"] if isinstance(c, dict) or hasattr(c, "keys") else c for c in chunk]
            width = max(map(len, chunk))
            ids = torch.full((len(chunk), width), pad, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for i, p in enumerate(chunk):
                ids[i, width - len(p):] = torch.tensor(p)
                mask[i, width - len(p):] = 1
            out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new,
                                 do_sample=not greedy, temperature=None if greedy else 1.0, top_p=None, top_k=None,
                                 pad_token_id=pad, eos_token_id=eos)
            for row in out[:, width:]:
                texts.append(tokenizer.decode(row, skip_special_tokens=True))
    if was_training:
        model.train()
    return texts


def accuracy(model, tokenizer, items: list[tuple[str, int]], **kwargs) -> float:
    """Share of ``items`` whose completion's final answer is exactly the true answer."""
    texts = generate(model, tokenizer, [q for q, _ in items], **kwargs)
    return sum(final_answer(t) == truth for t, (_, truth) in zip(texts, items, strict=True)) / len(items)


def pass_at(model, tokenizer, items: list[tuple[str, int]], k: int = 8) -> tuple[float, float]:
    """(mean accuracy of samples at temperature 1, share of items with a correct one among ``k``)."""
    texts = generate(model, tokenizer, [q for q, _ in items for _ in range(k)], greedy=False, seed=1)
    right = [final_answer(t) == truth for t, (_, truth) in zip(texts, [x for x in items for _ in range(k)],
                                                                  strict=True)]
    groups = [any(right[i * k:(i + 1) * k]) for i in range(len(items))]
    return sum(right) / len(right), sum(groups) / len(groups)


def _shown(path: Path) -> str:
    """``path`` relative to the repository when inside it (the checkpoint's record names no machine)."""
    root = Path(__file__).resolve().parents[1]
    path = path.resolve()
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def main(argv: list[str] | None = None) -> None:
    import torch
    from transformers import Qwen2ForCausalLM

    from nano.random_model import nano_config
    from nano.tokenizer import build_tokenizer

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=POLICY_PATH)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--hedge-share", type=float, default=0.1)
    ap.add_argument("--worked-share", type=float, default=0.9)
    ap.add_argument("--seed", type=int, default=4321)
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--snapshots", type=Path, default=None, help="also save the model every --eval-every steps here")
    args = ap.parse_args(argv)

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    tok = build_tokenizer()
    eos = tok.convert_tokens_to_ids("<|im_end|>")
    pad = tok.convert_tokens_to_ids("<|endoftext|>")
    model = Qwen2ForCausalLM(nano_config(tok, args.hidden, args.layers, max_position=256))
    n_params = sum(p.numel() for p in model.parameters())
    print(f"params: {n_params / 1e6:.2f}M", flush=True)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.98), weight_decay=0.01)
    warmup = 50

    def lr_at(step: int) -> float:  # constant after warmup: a run of N steps is the first N of a longer one
        return args.lr * min(1.0, (step + 1) / warmup)

    rng = random.Random(args.seed)
    probe = heldout_questions(200, seed=HELDOUT_SEED + 1)  # not the reported held-out set
    t0 = time.time()
    model.train()
    for step in range(args.steps):
        rows = []
        for _ in range(args.batch):
            q, r = demonstration(rng, args.hedge_share, args.worked_share)
            prompt = tok.apply_chat_template(prompt_messages(q), add_generation_prompt=True, tokenize=False)
            p_ids = tok.encode(prompt, add_special_tokens=False)
            r_ids = tok.encode(r, add_special_tokens=False) + [eos]
            rows.append((p_ids + r_ids, [-100] * len(p_ids) + r_ids))
        width = max(len(x) for x, _ in rows)
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        labels = torch.full((len(rows), width), -100, dtype=torch.long)
        for i, (x, y) in enumerate(rows):
            ids[i, :len(x)] = torch.tensor(x)
            labels[i, :len(y)] = torch.tensor(y)
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        loss = model(input_ids=ids, labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 50 == 0:
            print(f"step {step} loss {loss.item():.4f} {time.time() - t0:.0f}s", flush=True)
        if args.eval_every and (step + 1) % args.eval_every == 0:
            print(f"step {step + 1} probe greedy {accuracy(model, tok, probe):.3f} "
                  f"{time.time() - t0:.0f}s", flush=True)
            if args.snapshots:
                model.save_pretrained(args.snapshots / f"step-{step + 1}")

    greedy = accuracy(model, tok, probe)
    sample, group = pass_at(model, tok, probe[:100])
    print(f"probe: greedy {greedy:.3f}, sampled {sample:.3f}, pass@8 {group:.3f} ({time.time() - t0:.0f}s)")
    tmp = args.out.with_name(args.out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.generation_config.eos_token_id = [eos, pad]
    model.generation_config.pad_token_id = pad
    model.save_pretrained(tmp, safe_serialization=True)
    tok.save_pretrained(tmp)
    (tmp / "training.json").write_text(json.dumps(
        {**vars(args), "out": _shown(args.out), "snapshots": _shown(args.snapshots) if args.snapshots else "",
         "params": n_params, "probe_greedy": greedy, "probe_sampled": sample,
         "probe_pass_at_8": group, "seconds": round(time.time() - t0)}, indent=2) + "\n")
    shutil.rmtree(args.out, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp.rename(args.out)
    print(f"saved to {args.out}")


if __name__ == "__main__":
    main()
