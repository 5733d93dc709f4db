"""Reading trainers' chat-formatted text: the question a templated prompt asks, the response after it.

OpenRLHF sends decoded prompt+response strings *with* special tokens (chat markup, trailing end and
pad tokens) and the templated prompt strings; slime sends a templated prompt or chat messages. The
response is what follows the prompt, with trailing special tokens stripped, and the question is the
last user turn of the templated prompt. The templates known here: ChatML (Qwen), Llama 3, Gemma,
DeepSeek R1/V3, Phi-3/Zephyr, Llama 2/Mistral; other text is used without its markup.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

# Last user turn of common chat templates: (user-turn opener, turn closer).
_USER_TURNS = [
    (r"<\|im_start\|>user\n", r"<\|im_end\|>"),  # ChatML (Qwen, many others)
    (r"<\|start_header_id\|>user<\|end_header_id\|>\n\n", r"<\|eot_id\|>"),  # Llama 3
    (r"<start_of_turn>user\n", r"<end_of_turn>"),  # Gemma
    (r"<｜User｜>", r"<｜Assistant｜>"),  # DeepSeek R1 / V3
    (r"<\|user\|>\n?", r"<\|end\|>|<\|assistant\|>"),  # Phi-3, Zephyr
    (r"\[INST\]", r"\[/INST\]"),  # Llama 2 / Mistral
]
_ASSISTANT_OPENERS = [r"<\|im_start\|>assistant\n", r"<\|start_header_id\|>assistant<\|end_header_id\|>\n\n",
                      r"<start_of_turn>model\n", r"<｜Assistant｜>", r"<\|assistant\|>\n?", r"\[/INST\]"]
_SPECIAL = re.compile(r"<\|[^|<>\s]{1,40}\|>|<｜[^｜]{1,40}｜>|</s>|<s>|<pad>|<eos>|<end_of_turn>|<start_of_turn>")


def question_from_prompt(prompt: str) -> str:
    """The last user turn of a templated prompt; the prompt without markup when no template matches."""
    for opener, closer in _USER_TURNS:
        starts = [m.end() for m in re.finditer(opener, prompt)]
        if starts:
            rest = prompt[starts[-1]:]
            end = re.search(closer, rest)
            return (rest[: end.start()] if end else rest).strip()
    return _SPECIAL.sub("", prompt).strip()


def strip_trailing_special(text: str, extra: tuple[str, ...] = ()) -> str:
    """Drop trailing end/pad tokens (and the whitespace between them) from a decoded response."""
    while True:
        stripped = text.rstrip()
        for tok in extra:
            if tok and stripped.endswith(tok):
                stripped = stripped[: -len(tok)]
                break
        else:
            m = re.search(r"(?:" + _SPECIAL.pattern + r")$", stripped)
            if not m:
                return stripped
            stripped = stripped[: m.start()]
        text = stripped


def split_query(query: str, prompt: str | None, extra_special: tuple[str, ...] = ()) -> tuple[str, str]:
    """(question, response) from an OpenRLHF query and its templated prompt."""
    if prompt is not None and query.startswith(prompt):
        response, templated = query[len(prompt):], prompt
    elif prompt is not None and prompt in query:
        at = query.index(prompt) + len(prompt)
        response, templated = query[at:], query[:at]
    else:  # no usable prompt: split at the last assistant opener
        cut = None
        for opener in _ASSISTANT_OPENERS:
            for m in re.finditer(opener, query):
                cut = m.end() if cut is None or m.end() > cut else cut
        templated, response = (query[:cut], query[cut:]) if cut is not None else (query, "")
    return question_from_prompt(templated), strip_trailing_special(response, extra_special)


def content_text(content: Any) -> str:
    """A message's content as the judge reads it: a string as is; a list of parts (multimodal) as its
    text parts, each other part marked by its type (``[image]``, ``[audio]``), never a Python repr."""
    if content is None or isinstance(content, str):
        return content or ""
    parts = [content] if isinstance(content, Mapping) else content
    texts = []
    for part in parts:
        if isinstance(part, Mapping):
            kind = str(part.get("type", "text"))
            texts.append(str(part["text"]) if kind == "text" and "text" in part else f"[{kind.removesuffix('_url')}]")
        else:
            texts.append(str(part))
    return "\n".join(texts)


def question_from_messages(messages: Sequence[Mapping[str, Any]]) -> str:
    """The last user message's text (the last message's, when no message is from the user)."""
    users = [m.get("content", "") for m in messages if m.get("role") == "user"]
    return content_text(users[-1] if users else (messages[-1].get("content", "") if messages else ""))
