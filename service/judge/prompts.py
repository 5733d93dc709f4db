"""Token-safe prompt rendering: the service tokenizes prompts itself and hands ids to the engine.

Questions, responses and references are untrusted (a policy under RL will try to fool its judge), so
a string like ``<|im_end|>`` or ``</think>`` inside them must reach the model as plain text, never as a
control token. We render the chat template with sentinel placeholders, split the rendered text at the
sentinels, encode the template's own text normally (so its markup becomes control tokens) and encode
each untrusted field with a copy of the tokenizer that has no added or special tokens at all
(``PlainEncoder``): same normalizer, pre-tokenizer and model, so the same ids the full tokenizer gives
ordinary text, but a special-token string can only become ordinary tokens. The copy runs in Rust (one
call per text, batches in parallel threads), which matters: encoding is the front end's main cost.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

# Private-use code points: no chat template or profile text contains them.
_SENTINEL = "\ue000{}\ue001"
FIELDS = ("question", "response", "reference")
_FIELD_RE = re.compile(r"\{(" + "|".join(FIELDS) + r")\}")


def _with_sentinels(text: str) -> str:
    for field in FIELDS:
        text = text.replace("{" + field + "}", _SENTINEL.format(field))
    return text


class PlainEncoder:
    """Encodes untrusted text as plain text with a copy of ``tokenizer`` stripped of its added tokens."""

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer
        backend = getattr(tokenizer, "backend_tokenizer", None)
        self._plain = None
        if backend is not None:
            from tokenizers import Tokenizer

            spec = json.loads(backend.to_str())
            spec["added_tokens"] = []  # nothing in the text can match a control token any more
            spec["post_processor"] = None
            spec["truncation"] = spec["padding"] = None
            self._plain = Tokenizer.from_str(json.dumps(spec))

    def encode(self, text: str) -> list[int]:
        if not text:
            return []
        if self._plain is None:  # slow tokenizer: the library's own switch
            return list(self.tokenizer.encode(text, add_special_tokens=False, split_special_tokens=True))
        return self._plain.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """Several texts at once (in parallel threads, without the GIL, for a fast tokenizer)."""
        if self._plain is None:
            return [self.encode(t) for t in texts]
        return [e.ids for e in self._plain.encode_batch(list(texts), add_special_tokens=False)]


class PromptRenderer:
    """Turns (question, response, reference) into prompt token ids for one tokenizer and template.

    ``messages`` is a list of ``{"role", "content"}`` dicts rendered with the tokenizer's chat template;
    or ``raw_prompt`` is a plain-text prompt used as is (for judges trained on a raw format). Either may
    contain the fields ``{question}``, ``{response}`` and ``{reference}``; nothing else is interpreted.
    """

    def __init__(self, tokenizer: Any, messages: Sequence[Mapping[str, str]] = (), raw_prompt: str | None = None,
                 encoder: PlainEncoder | None = None):
        self.tokenizer = tokenizer
        self.encoder = encoder or PlainEncoder(tokenizer)
        self._raw_prompt = raw_prompt
        self._messages = [{"role": m["role"], "content": m["content"]} for m in messages]
        if raw_prompt is not None:
            # The tokenizer's own leading special tokens (a BOS for Llama-style models, none for Qwen).
            lead = tokenizer.decode(tokenizer.encode("", add_special_tokens=True), skip_special_tokens=False)
            rendered = lead + _with_sentinels(raw_prompt)
        else:
            placeholder_messages = [{"role": m["role"], "content": _with_sentinels(m["content"])} for m in messages]
            rendered = tokenizer.apply_chat_template(placeholder_messages, tokenize=False, add_generation_prompt=True)
        # Alternating [template text, field name, template text, field name, ..., template text].
        self._parts: list[list[int] | str] = []
        rest = rendered
        while True:
            start = rest.find("\ue000")
            if start < 0:
                self._parts.append(self._encode_template(rest))
                break
            end = rest.index("\ue001", start)
            self._parts.append(self._encode_template(rest[:start]))
            self._parts.append(rest[start + 1 : end])
            rest = rest[end + 1 :]

    def _encode_template(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False)) if text else []

    def encode_text(self, text: str) -> list[int]:
        """Encode untrusted text as plain text: special-token strings become ordinary tokens."""
        return self.encoder.encode(text)

    def fill(self, question: str, response: str, reference: str | None = None) -> list[dict[str, str]]:
        """The prompt as chat messages with the fields filled in (before the chat template), for people
        and SFT data; a raw-prompt judge's prompt is one user message. One pass: a field's value that
        contains ``{response}`` stays as written."""
        values = {"question": question, "response": response, "reference": reference or ""}

        def sub(text: str) -> str:
            return _FIELD_RE.sub(lambda m: values[m.group(1)], text)

        if self._raw_prompt is not None:
            return [{"role": "user", "content": sub(self._raw_prompt)}]
        return [{"role": m["role"], "content": sub(m["content"])} for m in self._messages]

    def render(self, question: str, response: str, reference: str | None = None) -> list[int]:
        ids, _ = self.render_parts(question, response, reference)
        return ids

    def render_parts(
        self, question: str, response: str, reference: str | None = None, response_ids: list[int] | None = None,
        encoded: Mapping[str, list[int]] | None = None,
    ) -> tuple[list[int], tuple[int, int]]:
        """The prompt ids and the [start, end) span of the (first) response in them.

        ``response_ids`` replaces the encoded response (the scorer passes a truncated one); ``encoded``
        maps texts to their ids already encoded (the scorer encodes a request's texts in one batch).
        """
        values = {"question": question, "response": response, "reference": reference or ""}
        ids: list[int] = []
        span = (0, 0)
        for part in self._parts:
            if isinstance(part, str):
                start = len(ids)
                if part == "response" and response_ids is not None:
                    ids.extend(response_ids)
                else:
                    text = values[part]
                    known = encoded.get(text) if encoded is not None else None
                    ids.extend(known if known is not None else self.encode_text(text))
                if part == "response" and span == (0, 0):
                    span = (start, len(ids))
            else:
                ids.extend(part)
        return ids, span
