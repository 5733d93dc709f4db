"""Every random-weight model of the project, built in one place.

- ``nano_config``: the Qwen2 shape of the nano judge (training, ``nano/train.py``) and of the tests'
  random judge (``save_nano_random``: nano tokenizer, a judge that never gives a verdict on its own).
- ``build``: a seeded random Qwen3 model with Qwen's real vocabulary and our Qwen3-style chat template
  (``nano/qwen.py``), so prompt and output token counts are those of a production judge:
  ``--preset tiny`` is the test suite's Qwen-vocabulary world (2 layers, hidden 64, fp32, ~40 MB, loads
  in vLLM on a CPU); ``qwen3-8b`` / ``qwen3-32b`` are full-size shapes for the GPU recipe, where no
  weights can be downloaded (the lent GPU machines reach no model hub).

    python -m nano.random_model --preset tiny --out /tmp/qwen-tiny                    # ~3 s
    python -m nano.random_model --preset qwen3-8b --out /tmp/qwen3-8b-random          # ~16 GB, bf16
    python loadtest/throughput.py --model /tmp/qwen3-8b-random --judge libra --max-tokens 512 \\
        --engine-args "--max-model-len 4096 --max-num-seqs 256" --items 2048

A random model almost never emits its end token, so every judgment runs to its output cap: fixed
output lengths (``throughput.py --max-tokens``), which is what a throughput comparison wants. Speed,
not verdicts, is what such a model measures.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

PRESETS = {
    # Qwen3-8B / Qwen3-32B shapes (hidden, intermediate, layers, heads, kv heads, head dim, vocab).
    "qwen3-8b": dict(hidden_size=4096, intermediate_size=12288, num_hidden_layers=36, num_attention_heads=32,
                     num_key_value_heads=8, head_dim=128, vocab_size=151936, tie_word_embeddings=False),
    "qwen3-32b": dict(hidden_size=5120, intermediate_size=25600, num_hidden_layers=64, num_attention_heads=64,
                      num_key_value_heads=8, head_dim=128, vocab_size=151936, tie_word_embeddings=False),
    # A model whose forward pass costs more than serving it on a CPU (~90M parameters, 78M of them the
    # embedding): benchmarks where the engine, not the front end, sets the pace (loadtest/scalar_bench.py).
    "small": dict(hidden_size=512, intermediate_size=1536, num_hidden_layers=4, num_attention_heads=8,
                  num_key_value_heads=2, head_dim=64, vocab_size=151936, tie_word_embeddings=True),
    # The tests' Qwen-vocabulary world, and checking the recipe on a CPU in seconds.
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                 num_key_value_heads=1, head_dim=32, vocab_size=151936, tie_word_embeddings=True),
}
DTYPES = {"tiny": "float32", "small": "float32"}
HEADS = ("lm", "scalar")  # a CPU runs the tiny model in fp32; the full-size shapes are bf16


def nano_config(tokenizer, hidden: int, layers: int, intermediate: int | None = None, max_position: int = 1024):
    """A Qwen2 config over the nano tokenizer's vocabulary (one head per 32 dimensions, tied embeddings)."""
    from transformers import Qwen2Config

    from nano.tokenizer import VOCAB_SIZE

    return Qwen2Config(
        vocab_size=VOCAB_SIZE,
        hidden_size=hidden,
        intermediate_size=intermediate or hidden * 4,
        num_hidden_layers=layers,
        num_attention_heads=hidden // 32,
        num_key_value_heads=hidden // 32,
        max_position_embeddings=max_position,
        rope_theta=10000.0,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        torch_dtype="float32",
    )


def save_nano_random(out: Path, hidden: int = 64, layers: int = 2, intermediate: int = 128, seed: int = 0) -> Path:
    """A seeded random-weight model with the nano tokenizer, saved as a checkpoint vLLM loads (fp32)."""
    import torch
    from transformers import Qwen2ForCausalLM

    from nano.tokenizer import build_tokenizer

    tokenizer = build_tokenizer()
    torch.manual_seed(seed)
    Qwen2ForCausalLM(nano_config(tokenizer, hidden, layers, intermediate)).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def build(preset: str, out: Path, max_position: int = 40960, seed: int = 0, head: str = "lm") -> Path:
    """Write Qwen's tokenizer (nano/qwen.py) and a seeded random Qwen3 model of ``preset`` to ``out``:
    ``head="lm"`` a generative ``Qwen3ForCausalLM``; ``head="scalar"`` a Bradley-Terry-shaped reward
    model, ``Qwen3ForSequenceClassification`` with one label (the shape of Skywork-Reward-V2's Qwen3 models)."""
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM, Qwen3ForSequenceClassification

    from nano.qwen import build_tokenizer

    shape = PRESETS[preset]
    dtype = DTYPES.get(preset, "bfloat16")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer()
    tokenizer.save_pretrained(out)
    config = Qwen3Config(**shape, max_position_embeddings=max_position, rope_theta=1_000_000.0, torch_dtype=dtype,
                         eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
                         pad_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
                         **({"num_labels": 1} if head == "scalar" else {}))
    if head not in HEADS:
        raise ValueError(f"head must be one of {HEADS}, not {head!r}")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(seed)
    with torch.device(device):
        cls = Qwen3ForSequenceClassification if head == "scalar" else Qwen3ForCausalLM
        model = cls(config).to(getattr(torch, dtype))
    model.save_pretrained(out, safe_serialization=True)
    params = sum(p.numel() for p in model.parameters())
    print(f"wrote {out}: {preset} ({type(model).__name__}), {params / 1e9:.3f}B parameters, "
          f"vocab {shape['vocab_size']}, {dtype}")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=sorted(PRESETS), default="qwen3-8b")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--max-position", type=int, default=40960)
    ap.add_argument("--head", choices=HEADS, default="lm",
                    help="lm: a generative judge; scalar: a one-label sequence classifier (a Bradley-Terry "
                         "reward model)")
    args = ap.parse_args(argv)
    build(args.preset, args.out, args.max_position, head=args.head)
    return 0


if __name__ == "__main__":
    sys.exit(main())
