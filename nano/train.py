"""Train the bundled nano judge from scratch on the small world's synthetic judging data.

    python -m nano.train --out service/models/nano-judge
    make nano-judge-direct                                # a judge that also answers directly (two runs)

With ``--direct-share``, that share of the examples is judged the way Qwen3 answers with
``enable_thinking: false``: after the generation prompt comes an empty thinking block and the verdict
alone (``<think>\n\n</think>\n\n\boxed{correct}``). The loss is on the verdict only: the service writes
the empty block itself (the profile's ``[cascade] direct_open``), and a judge trained to write it would
learn to skip its thinking. The saved chat template switches thinking off as Qwen3's does. By token, a
direct example's verdict weighs about 1/60 of a thinking example; ``--per-example`` weighs them alike
(``example_loss``). What it learned, and the cascade measured with it: docs/performance.md, "Direct-first
judging"; its profile is nano/judges/nano-direct.toml.

Seeded and deterministic on a given machine; about 40 minutes on 2 CPU cores with the defaults. The
prompt is rendered by the service's own PromptRenderer with the ``nano`` judge profile, so the model is
trained on exactly the token ids the service sends it. Loss is on the judge's output only.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import time
from pathlib import Path

import torch
from transformers import Qwen2ForCausalLM

from nano import world
from nano.random_model import nano_config
from nano.tokenizer import build_tokenizer
from service.judge.profiles import load_profile
from service.judge.prompts import PromptRenderer

# What the nano profile's [cascade] direct_open and [force] prefix put after the generation prompt for a
# verdict without thinking: Qwen3's enable_thinking=false opening, then the verdict's own start.
DIRECT_OPEN = "<think>\n\n</think>\n\n\\boxed{"
# The nano tokenizer's template, plus Qwen3's switch (its chat template: enable_thinking false writes an
# empty thinking block after the generation prompt).
DIRECT_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}"
    "{% if enable_thinking is defined and enable_thinking is false %}{{ '<think>\n\n</think>\n\n' }}{% endif %}"
    "{% endif %}"
)


def direct_verdict(item: world.Item) -> str:
    """What follows ``DIRECT_OPEN``: the verdict's label and the closing brace."""
    return ("correct" if item.label else "incorrect") + "}"


@torch.no_grad()
def direct_probs(model, tokenizer, renderer, items: list[world.Item]) -> list[float]:
    """P(correct) of each item's direct verdict: the first token after ``DIRECT_OPEN``, normalised over
    the labels' first tokens (as the service reads it: service/judge/prob.py)."""
    model.eval()
    c, i = (tokenizer.encode(t, add_special_tokens=False)[0] for t in ("c", "i"))
    opening = tokenizer.encode(DIRECT_OPEN, add_special_tokens=False)
    out = []
    for it in items:
        ids = torch.tensor([renderer.render(it.question, it.response) + opening])
        logits = model(input_ids=ids).logits[0, -1]
        pair = torch.softmax(logits[[c, i]], dim=0)
        out.append(float(pair[0]))
    model.train()
    return out


def direct_report(probs: list[float], items: list[world.Item]) -> str:
    right = sum((p >= 0.5) == bool(it.label) for p, it in zip(probs, items, strict=True))
    sure = [max(p, 1 - p) >= 0.9 for p in probs]
    sure_right = sum(s and (p >= 0.5) == bool(it.label) for s, p, it in zip(sure, probs, items, strict=True))
    return (f"direct accuracy {right / len(items):.3f}, sure (>= 0.9) {sum(sure) / len(items):.2f} of items, "
            f"right when sure {sure_right / max(1, sum(sure)):.3f}")


class Batcher:
    """Turns freshly drawn training items into padded (input_ids, labels) tensors."""

    def __init__(self, tokenizer, renderer: PromptRenderer, seed: int, direct_share: float = 0.0):
        self.tok = tokenizer
        self.renderer = renderer
        self.rng = random.Random(seed)
        self.direct_share = direct_share
        self.direct_open = tokenizer.encode(DIRECT_OPEN, add_special_tokens=False)
        self.eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
        self.pad = tokenizer.convert_tokens_to_ids("<|endoftext|>")

    def example(self, item: world.Item, direct: bool = False) -> tuple[list[int], list[int]]:
        prompt = self.renderer.render(item.question, item.response)
        if direct:  # the verdict alone, after the opening the service writes (no loss on the opening)
            prompt = prompt + self.direct_open
            target = self.tok.encode(direct_verdict(item), add_special_tokens=False) + [self.eos]
        else:
            target = self.tok.encode(world.judge_output(item), add_special_tokens=False) + [self.eos]
        return prompt + target, [-100] * len(prompt) + target

    def batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        rows, direct = [], []
        for _ in range(size):  # the item, then its coin: the draws in the order the bundled judge was trained with
            item = world.make_item(self.rng, "train")
            direct.append(self.rng.random() < self.direct_share)
            rows.append(self.example(item, direct[-1]))
        width = max(len(ids) for ids, _ in rows)
        ids = torch.full((size, width), self.pad, dtype=torch.long)
        labels = torch.full((size, width), -100, dtype=torch.long)
        for i, (x, y) in enumerate(rows):
            ids[i, : len(x)] = torch.tensor(x)
            labels[i, : len(y)] = torch.tensor(y)
        return ids, labels, torch.tensor(direct)


@torch.no_grad()
def greedy_accuracy(model, tokenizer, renderer, items: list[world.Item], max_new: int = 140) -> float:
    """Verdict accuracy with greedy decoding (a quick in-training check, not the service path)."""
    from service.judge.verdict import parse_verdict

    model.eval()
    pad = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    prompts = [renderer.render(it.question, it.response) for it in items]
    width = max(map(len, prompts))
    ids = torch.full((len(items), width), pad, dtype=torch.long)
    mask = torch.zeros((len(items), width), dtype=torch.long)
    for i, p in enumerate(prompts):  # left padding for batched generation
        ids[i, width - len(p) :] = torch.tensor(p)
        mask[i, width - len(p) :] = 1
    out = model.generate(
        input_ids=ids, attention_mask=mask, max_new_tokens=max_new, do_sample=False, pad_token_id=pad
    )
    correct = 0
    for it, row in zip(items, out[:, width:], strict=True):
        text = tokenizer.decode(row, skip_special_tokens=False)
        verdict = parse_verdict(text.split("<|im_end|>")[0], "</think>", r"\\boxed\{\s*(correct|incorrect)\s*\}")
        correct += int(verdict.label == ("correct" if it.label else "incorrect"))
    model.train()
    return correct / len(items)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("service/models/nano-judge"))
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--eval-every", type=int, default=500)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--init", type=Path, help="start from this checkpoint instead of random weights")
    ap.add_argument("--direct-share", type=float, default=0.0,
                    help="share of examples judged without thinking (Qwen3's enable_thinking: false)")
    ap.add_argument("--per-example", action="store_true",
                    help="the loss per example, then averaged over the batch: a direct example's verdict weighs "
                         "as much as a whole thinking example (by token, it weighs ~1/60: example_loss)")
    ap.add_argument("--save-every", type=int, default=0, help="also save the checkpoint every N steps")
    ap.add_argument("--stop-after", type=int, default=0, help="stop after N steps (the schedule is still --steps')")
    args = ap.parse_args(argv)

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    tokenizer = build_tokenizer()
    profile = load_profile("nano")
    renderer = PromptRenderer(tokenizer, profile.messages)
    if args.init:
        model = Qwen2ForCausalLM.from_pretrained(args.init, torch_dtype=torch.float32)
    else:
        model = Qwen2ForCausalLM(nano_config(tokenizer, args.hidden, args.layers))
    n_params = sum(p.numel() for p in model.parameters())
    print(f"params: {n_params / 1e6:.2f}M", flush=True)

    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr,
        betas=(0.9, 0.98),
    )
    warmup = max(1, args.steps // 30)

    def lr_at(step: int) -> float:
        if step < warmup:
            return args.lr * (step + 1) / warmup
        progress = (step - warmup) / max(1, args.steps - warmup)
        return args.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))

    batcher = Batcher(tokenizer, renderer, args.seed, args.direct_share)
    probe = [world.make_item(random.Random(7 + i), "eval") for i in range(100)]
    model.train()
    t0 = time.time()
    ema = None
    for step in range(args.stop_after or args.steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        ids, labels, direct = batcher.batch(args.batch)
        loss = (example_loss(model, ids, labels, direct) if args.per_example
                else model(input_ids=ids, labels=labels).loss)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        ema = loss.item() if ema is None else 0.98 * ema + 0.02 * loss.item()
        if step % 50 == 0 or step == (args.stop_after or args.steps) - 1:
            print(f"step {step} loss {ema:.4f} lr {lr_at(step):.2e} {time.time() - t0:.0f}s", flush=True)
        if args.eval_every and step and step % args.eval_every == 0:
            acc = greedy_accuracy(model, tokenizer, renderer, probe)
            direct = (", " + direct_report(direct_probs(model, tokenizer, renderer, probe), probe)
                      if args.direct_share else "")
            print(f"step {step} probe greedy accuracy {acc:.3f}{direct}", flush=True)
        if args.save_every and step and step % args.save_every == 0:
            save(model, tokenizer, args, n_params, None, step)

    acc = greedy_accuracy(model, tokenizer, renderer, probe)
    print(f"final probe greedy accuracy {acc:.3f} after {time.time() - t0:.0f}s", flush=True)
    if args.direct_share:
        print("final " + direct_report(direct_probs(model, tokenizer, renderer, probe), probe), flush=True)
    save(model, tokenizer, args, n_params, acc, args.stop_after or args.steps)


def example_loss(model, ids: torch.Tensor, labels: torch.Tensor, direct: torch.Tensor) -> torch.Tensor:
    """Cross-entropy per example, then averaged over the examples: a thinking example's is the mean over its
    tokens, a direct example's the sum over its few (in effect its one deciding token: the label's first; the
    rest follow from it), so a direct verdict weighs as much as a whole thinking example."""
    logits = model(input_ids=ids).logits[:, :-1]
    target = labels[:, 1:]
    per_token = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.size(-1)), target.reshape(-1), ignore_index=-100, reduction="none"
    ).view(target.shape)
    counted = torch.where(direct, torch.ones_like(direct, dtype=torch.long), (target != -100).sum(dim=1).clamp(min=1))
    return (per_token.sum(dim=1) / counted).mean()


def save(model, tokenizer, args, n_params: int, acc: float | None, step: int) -> None:
    if args.direct_share:
        tokenizer.chat_template = DIRECT_CHAT_TEMPLATE
    tmp = args.out.with_name(args.out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.generation_config.eos_token_id = [
        tokenizer.convert_tokens_to_ids("<|im_end|>"),
        tokenizer.convert_tokens_to_ids("<|endoftext|>"),
    ]
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    (tmp / "training.json").write_text(json.dumps({**vars(args), "out": str(args.out), "params": n_params,
                                                   "init": None if args.init is None else str(args.init),
                                                   "probe_accuracy": acc, "saved_at_step": step},
                                                  indent=2) + "\n")
    shutil.rmtree(args.out, ignore_errors=True)
    tmp.rename(args.out)
    print(f"saved to {args.out} at step {step}", flush=True)


if __name__ == "__main__":
    main()
