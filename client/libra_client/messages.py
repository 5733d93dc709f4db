"""What the judge is shown of chat messages: trainers hand over prompts and completions as message lists
whose content may be a string or a list of parts (multimodal), and tool-calling completions span several
messages. The judge reads text, so:

- a content string is itself; a list of parts keeps its text parts (joined by newlines) and marks every
  other part by its type: ``[image]``, ``[audio]``, ``[video]``, ... (the judge is told something was
  there, not shown a Python repr of it);
- the question is the last user message;
- the response is the whole final assistant turn: every message after the last user message, in order.
  Assistant text as it is, a tool call as ``[tool call] name(arguments)``, a tool's answer as
  ``[tool result] ...`` (a multi-step agent's final answer is judged with the steps that led to it).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any


def content_text(content: Any) -> str:
    """A message's content as text (parts: text kept, others marked by type)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, Mapping):
        content = [content]
    pieces = []
    for part in content:
        if isinstance(part, str):
            pieces.append(part)
        elif isinstance(part, Mapping):
            kind = str(part.get("type", "text"))
            text = part.get("text")
            pieces.append(str(text) if kind == "text" and text is not None else f"[{kind.removesuffix('_url')}]")
        else:
            pieces.append(str(part))
    return "\n".join(pieces)


def _tool_call(call: Mapping[str, Any]) -> str:
    fn = call.get("function", call)
    args = fn.get("arguments", "")
    if not isinstance(args, str):
        args = json.dumps(args, ensure_ascii=False, sort_keys=True)
    return f"[tool call] {fn.get('name', '?')}({args})"


def message_text(message: Mapping[str, Any]) -> str:
    role = message.get("role")
    text = content_text(message.get("content"))
    if role == "tool":
        return f"[tool result] {text}"
    calls = [_tool_call(c) for c in message.get("tool_calls") or ()]
    return "\n".join(p for p in (text, *calls) if p)


def question_of(prompt: str | Sequence[Mapping[str, Any]]) -> str:
    """The question a prompt asks: the string itself, or the last user message's text."""
    if isinstance(prompt, str):
        return prompt
    users = [m for m in prompt if m.get("role") == "user"]
    chosen = users[-1] if users else (prompt[-1] if prompt else None)
    return "" if chosen is None else content_text(chosen.get("content"))


def response_of(completion: str | Sequence[Mapping[str, Any]]) -> str:
    """The response to judge: the string itself, or the final assistant turn (every message after the
    last user message)."""
    if isinstance(completion, str):
        return completion
    messages = list(completion)
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
    turn = [m for m in messages[last_user + 1:] if m.get("role") != "system"]
    return "\n\n".join(t for t in (message_text(m) for m in turn) if t)
