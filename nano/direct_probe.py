"""Where a nano judge trained to answer without thinking is sure (docs/performance.md, "Direct-first judging").

    python -m nano.direct_probe --model /tmp/nano-judge-direct [--threshold 0.9]

Reads the direct verdict's P(correct) for the 1,000 held-out items in process (``nano.train.direct_probs``:
the first token after the empty thinking block, as the service reads it) and prints, per kind of item, how
many it would decide without thinking at the threshold and how many of those it gets right: correct answers;
wrong answers with a wrong number of digits (off by a thousand, the other operation); wrong answers whose
units digit is wrong (off by one or two, a last digit replaced); the other wrong answers (a dropped carry,
off by ten or a hundred, swapped digits).
"""

from __future__ import annotations

import argparse
from collections import Counter

import torch
from transformers import Qwen2ForCausalLM

from nano import world
from nano.tokenizer import build_tokenizer
from nano.train import direct_probs
from service.judge.profiles import load_profile
from service.judge.prompts import PromptRenderer

KINDS = ("correct", "wrong, digit count wrong", "wrong, units digit wrong", "wrong, other")


def kind(it: world.Item) -> str:
    if it.label:
        return "correct"
    if len(str(it.answer)) != len(str(it.truth)):
        return "wrong, digit count wrong"
    return "wrong, units digit wrong" if it.answer % 10 != it.truth % 10 else "wrong, other"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--threshold", type=float, default=0.9)
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    tokenizer = build_tokenizer()
    renderer = PromptRenderer(tokenizer, load_profile("nano").messages)
    model = Qwen2ForCausalLM.from_pretrained(args.model, torch_dtype=torch.float32)
    items = world.heldout(1000)
    probs = direct_probs(model, tokenizer, renderer, items)
    total, sure, right = Counter(), Counter(), Counter()
    for it, p in zip(items, probs, strict=True):
        k = kind(it)
        total[k] += 1
        if max(p, 1 - p) >= args.threshold:
            sure[k] += 1
            right[k] += (p >= 0.5) == bool(it.label)
    print(f"direct verdicts at P >= {args.threshold:g}, 1,000 held-out items:")
    for k in KINDS:
        print(f"  {k:<26} {total[k]:>4} items, decided directly {sure[k]:>4}, right {right[k]:>4}")
    print(f"  direct accuracy (P >= 0.5 says correct): "
          f"{sum((p >= 0.5) == bool(it.label) for it, p in zip(items, probs, strict=True)) / len(items):.1%}")


if __name__ == "__main__":
    main()
