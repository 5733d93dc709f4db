"""Train the bundled nano judge from scratch on the small world's synthetic judging data.

    python -m nano.train --out service/models/nano-judge

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


class Batcher:
    """Turns freshly drawn training items into padded (input_ids, labels) tensors."""

    def __init__(self, tokenizer, renderer: PromptRenderer, seed: int):
        self.tok = tokenizer
        self.renderer = renderer
        self.rng = random.Random(seed)
        self.eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
        self.pad = tokenizer.convert_tokens_to_ids("<|endoftext|>")

    def example(self, item: world.Item) -> tuple[list[int], list[int]]:
        prompt = self.renderer.render(item.question, item.response)
        target = self.tok.encode(world.judge_output(item), add_special_tokens=False) + [self.eos]
        return prompt + target, [-100] * len(prompt) + target

    def batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        rows = [self.example(world.make_item(self.rng, "train")) for _ in range(size)]
        width = max(len(ids) for ids, _ in rows)
        ids = torch.full((size, width), self.pad, dtype=torch.long)
        labels = torch.full((size, width), -100, dtype=torch.long)
        for i, (x, y) in enumerate(rows):
            ids[i, : len(x)] = torch.tensor(x)
            labels[i, : len(y)] = torch.tensor(y)
        return ids, labels


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
    args = ap.parse_args(argv)

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    tokenizer = build_tokenizer()
    profile = load_profile("nano")
    renderer = PromptRenderer(tokenizer, profile.messages)
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

    batcher = Batcher(tokenizer, renderer, args.seed)
    probe = [world.make_item(random.Random(7 + i), "eval") for i in range(100)]
    model.train()
    t0 = time.time()
    ema = None
    for step in range(args.steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        ids, labels = batcher.batch(args.batch)
        loss = model(input_ids=ids, labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        ema = loss.item() if ema is None else 0.98 * ema + 0.02 * loss.item()
        if step % 50 == 0 or step == args.steps - 1:
            print(f"step {step} loss {ema:.4f} lr {lr_at(step):.2e} {time.time() - t0:.0f}s", flush=True)
        if args.eval_every and step and step % args.eval_every == 0:
            acc = greedy_accuracy(model, tokenizer, renderer, probe)
            print(f"step {step} probe greedy accuracy {acc:.3f}", flush=True)

    acc = greedy_accuracy(model, tokenizer, renderer, probe)
    print(f"final probe greedy accuracy {acc:.3f} after {time.time() - t0:.0f}s", flush=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.generation_config.eos_token_id = [
        tokenizer.convert_tokens_to_ids("<|im_end|>"),
        tokenizer.convert_tokens_to_ids("<|endoftext|>"),
    ]
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    (tmp / "training.json").write_text(json.dumps({**vars(args), "out": str(args.out), "params": n_params,
                                                   "probe_accuracy": acc}, indent=2) + "\n")
    shutil.rmtree(args.out, ignore_errors=True)
    tmp.rename(args.out)
    print(f"saved to {args.out}")


if __name__ == "__main__":
    main()
