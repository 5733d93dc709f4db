"""The Qwen-vocabulary world: production judges' real tokenizer, with no weights to download.

What is Qwen's real data and what is ours:

- **Qwen's** (from the PyPI package ``dashscope``, Apache-2.0: ``dashscope/resources/qwen.tiktoken``):
  the 151,643 byte-level BPE ranks that Qwen2, Qwen2.5 and Qwen3 share. Also Qwen's, as published
  facts: the pre-tokenizer pattern of Qwen2's tokenizer (``QWEN2_PATTERN``), NFC normalisation, and
  Qwen3's 26 added tokens at their ids 151643-151668 with their special flags (``ADDED_TOKENS``, from
  Qwen3's ``tokenizer_config.json``); end of turn ``<|im_end|>``, padding ``<|endoftext|>``, no BOS.
- **Ours**: the chat template (``CHAT_TEMPLATE``, written here in Qwen3's layout: ChatML turns,
  thinking on by default, ``enable_thinking=False`` closes an empty think block) and every model with
  this vocabulary: seeded random Qwen3 weights (``nano/random_model.py``, preset ``tiny`` for the
  tests). Random weights rarely give a verdict, so a judgment runs to its budget and is forced: what
  this world measures is prompts, tokens and speed, not accuracy.

    python -m nano.qwen --out /tmp/qwen-tokenizer       # the tokenizer alone, ~3 s
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                 r"|\s*[\r\n]+|\s+(?!\S)|\s+")
BPE_RANKS = 151_643
# (id, content, special) as Qwen3's tokenizer_config.json lists them; lstrip/rstrip/normalized all false.
ADDED_TOKENS = (
    (151643, "<|endoftext|>", True), (151644, "<|im_start|>", True), (151645, "<|im_end|>", True),
    (151646, "<|object_ref_start|>", True), (151647, "<|object_ref_end|>", True), (151648, "<|box_start|>", True),
    (151649, "<|box_end|>", True), (151650, "<|quad_start|>", True), (151651, "<|quad_end|>", True),
    (151652, "<|vision_start|>", True), (151653, "<|vision_end|>", True), (151654, "<|vision_pad|>", True),
    (151655, "<|image_pad|>", True), (151656, "<|video_pad|>", True), (151657, "<tool_call>", False),
    (151658, "</tool_call>", False), (151659, "<|fim_prefix|>", False), (151660, "<|fim_middle|>", False),
    (151661, "<|fim_suffix|>", False), (151662, "<|fim_pad|>", False), (151663, "<|repo_name|>", False),
    (151664, "<|file_sep|>", False), (151665, "<tool_response>", False), (151666, "</tool_response>", False),
    (151667, "<think>", False), (151668, "</think>", False),
)

# Ours, in Qwen3's layout. An assistant turn in the history keeps only what follows its thinking.
CHAT_TEMPLATE = (
    "{%- for m in messages %}"
    "{%- set content = m['content'] %}"
    "{%- if m['role'] == 'assistant' and '</think>' in content %}"
    "{%- set content = content.split('</think>')[-1].lstrip('\\n') %}"
    "{%- endif %}"
    "{{- '<|im_start|>' + m['role'] + '\\n' + content + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}"
    "{{- '<think>\\n\\n</think>\\n\\n' }}"
    "{%- endif %}"
    "{%- endif %}"
)


def tiktoken_file() -> Path:
    """Qwen's BPE ranks as dashscope ships them (install: the dev extra, or ``pip install dashscope``)."""
    import importlib.util

    spec = importlib.util.find_spec("dashscope")  # located, not imported: only its data file is needed
    if spec is None or spec.origin is None:
        raise RuntimeError("the Qwen vocabulary comes from the PyPI package dashscope: pip install dashscope")
    path = Path(spec.origin).resolve().parent / "resources" / "qwen.tiktoken"
    if not path.is_file():
        raise RuntimeError(f"{path} is missing from the installed dashscope package")
    return path


def build_tokenizer():
    """A ``PreTrainedTokenizerFast`` with Qwen's vocabulary, pre-tokenizer, normaliser and added tokens."""
    from tokenizers import AddedToken, normalizers
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    backend = TikTokenConverter(vocab_file=str(tiktoken_file()), pattern=QWEN2_PATTERN).converted()
    backend.normalizer = normalizers.NFC()
    if backend.get_vocab_size(with_added_tokens=False) != BPE_RANKS:
        raise RuntimeError(f"expected {BPE_RANKS} BPE ranks, found {backend.get_vocab_size(with_added_tokens=False)}")
    for token_id, content, special in ADDED_TOKENS:  # in id order, so each lands on its id
        token = AddedToken(content, special=special, normalized=False, lstrip=False, rstrip=False, single_word=False)
        added = backend.add_special_tokens([token]) if special else backend.add_tokens([token])
        if added != 1 or backend.token_to_id(content) != token_id:
            raise RuntimeError(f"{content} landed on id {backend.token_to_id(content)}, not {token_id}")
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   chat_template=CHAT_TEMPLATE, model_max_length=40960,
                                   clean_up_tokenization_spaces=False)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    build_tokenizer().save_pretrained(args.out)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
