"""Random-weight and nano-sized Qwen models, built in one place.

- ``nano_config``: the Qwen2 shape of the nano judge (training, ``nano/train.py``) and of the tests'
  random judge (``save_nano_random``: a judge that never gives a verdict on its own, for forced verdicts).
- ``build``: a random model of a realistic architecture, for GPU benchmarks where no weights can be
  downloaded (the lent GPU machines reach no model hub):

    python -m nano.random_model --preset qwen3-8b --out /tmp/qwen3-8b-random     # ~16 GB, bf16
    python loadtest/throughput.py --model /tmp/qwen3-8b-random --judge libra --max-tokens 512 \\
        --engine-args "--max-model-len 4096 --max-num-seqs 256" --items 2048

The tokenizer is the nano judge's byte-level one (ChatML template, ``<think>`` tokens) widened to the
architecture's vocabulary with filler tokens, so every id the random model samples decodes. A random
model almost never emits its end token, so every judgment runs to the output cap: fixed output lengths
(``throughput.py --max-tokens``), which is what a throughput comparison wants. Speed, not verdicts, is what
such a model measures.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

PRESETS = {
    # Qwen3-8B / Qwen3-32B shapes (hidden, intermediate, layers, heads, kv heads, head dim, vocab).
    "qwen3-8b": dict(hidden_size=4096, intermediate_size=12288, num_hidden_layers=36, num_attention_heads=32,
                     num_key_value_heads=8, head_dim=128, vocab_size=151936, tie_word_embeddings=False),
    "qwen3-32b": dict(hidden_size=5120, intermediate_size=25600, num_hidden_layers=64, num_attention_heads=64,
                      num_key_value_heads=8, head_dim=128, vocab_size=151936, tie_word_embeddings=False),
    # For checking the recipe on a CPU in seconds.
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                 num_key_value_heads=1, head_dim=32, vocab_size=4096, tie_word_embeddings=True),
}


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


def save_widened_tokenizer(out: Path, vocab_size: int) -> int:
    """Save the nano tokenizer to ``out`` with filler tokens ``t<N>`` added to its BPE vocabulary (ids
    after its own tokens) up to ``vocab_size``; its control tokens keep their ids. Returns the end-of-turn id."""
    from tokenizers import Tokenizer

    from nano.tokenizer import build_tokenizer

    nano = build_tokenizer()
    nano.save_pretrained(out)  # tokenizer_config.json (chat template, control tokens) as the nano judge has it
    spec = json.loads(nano.backend_tokenizer.to_str())
    vocab = spec["model"]["vocab"]
    for token in spec["added_tokens"]:  # ids must be contiguous, or the library renumbers the control tokens
        vocab[token["content"]] = token["id"]
    first = max(vocab.values()) + 1
    for k, token_id in enumerate(range(first, vocab_size)):
        vocab[f"t{k}"] = token_id
    Tokenizer.from_str(json.dumps(spec)).save(str(out / "tokenizer.json"))
    return nano.convert_tokens_to_ids("<|im_end|>")


def build(preset: str, out: Path, max_position: int) -> None:
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    shape = PRESETS[preset]
    out.mkdir(parents=True, exist_ok=True)
    eos = save_widened_tokenizer(out, shape["vocab_size"])
    config = Qwen3Config(**shape, max_position_embeddings=max_position, eos_token_id=eos, rope_theta=1_000_000.0,
                         torch_dtype="bfloat16")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen3ForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(out, safe_serialization=True)
    params = sum(p.numel() for p in model.parameters())
    print(f"wrote {out}: {preset}, {params / 1e9:.2f}B parameters, vocab {shape['vocab_size']}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=sorted(PRESETS), default="qwen3-8b")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--max-position", type=int, default=40960)
    args = ap.parse_args(argv)
    build(args.preset, args.out, args.max_position)
    return 0


if __name__ == "__main__":
    sys.exit(main())
