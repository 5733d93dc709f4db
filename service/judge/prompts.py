"""Token-safe, token-faithful prompt rendering: the service tokenizes prompts itself and hands ids to
the engine.

Questions, responses and references are untrusted (a policy under RL will try to fool its judge), so
a string like ``<|im_end|>`` or ``</think>`` inside them must reach the model as plain text, never as a
control token. And the judge must see exactly the ids its own tokenizer gives the same prompt, or it
is shown text it was never trained on: byte-level BPE merges across the seam between template text
and a field (``"Question: " + "What"`` is ``ĠWhat``, not ``Ġ`` + ``What``), so a field cannot be
encoded apart from the text around it.

So: render the chat template with sentinel placeholders for the fields, split the rendered text only
at the template's own added tokens (its markup: ``<|im_start|>``, ``<think>``...), which become their
ids, and encode each remaining span -- template text with the field values substituted in -- as one
string with ``PlainEncoder``, a copy of the tokenizer with no added tokens at all (same normalizer,
pre-tokenizer and model). This is what the tokenizer itself does to the rendered prompt, except that
an added-token string inside a field can only become ordinary tokens. Spans without fields are
encoded once, and so is the leading template text of a span with fields, up to its last pre-token
(which may merge with the field after it); the rest of a request's spans are encoded in one batch,
in Rust threads.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# Private-use code points: no chat template or profile text contains them.
_OPEN, _CLOSE = "\ue000", "\ue001"
FIELDS = ("question", "response", "reference", "criterion")  # criterion: a rubric's (judge/rubric.py)
_FIELD_RE = re.compile(r"\{(" + "|".join(FIELDS) + r")\}")
_SENTINEL_RE = re.compile(_OPEN + "(" + "|".join(FIELDS) + ")" + _CLOSE)


def _with_sentinels(text: str) -> str:
    return _FIELD_RE.sub(lambda m: _OPEN + m.group(1) + _CLOSE, text)


class PlainEncoder:
    """Encodes text as plain text with a copy of ``tokenizer`` stripped of its added tokens."""

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

    def stable_head(self, text: str) -> tuple[list[int], int]:
        """The ids of ``text``'s leading pre-tokens that no text appended after it can change, and the
        offset where the rest begins. BPE merges never cross a pre-token boundary, and every pre-token
        but the last ends before the end of ``text``, so they are fixed; the last one may merge with
        what follows (``"Question:" + " What"``), and stays with the part encoded per item."""
        plain = self._plain
        if plain is None or plain.pre_tokenizer is None or not text:
            return [], 0
        if plain.normalizer is not None and plain.normalizer.normalize_str(text) != text:
            return [], 0  # offsets would not be the text's own
        pieces = plain.pre_tokenizer.pre_tokenize_str(text)
        if len(pieces) < 2:
            return [], 0
        cut = pieces[-1][1][0]
        encoding = plain.encode(text, add_special_tokens=False)
        return [i for i, (_, end) in zip(encoding.ids, encoding.offsets, strict=True) if end <= cut], cut

    def char_ends(self, text: str) -> list[int]:
        """For each token of ``text``, the character offset where it ends (to cut text at token
        boundaries without splitting a character)."""
        if self._plain is None:
            ids = self.encode(text)
            return [len(self.tokenizer.decode(ids[: i + 1])) for i in range(len(ids))]
        return [end for _, end in self._plain.encode(text, add_special_tokens=False).offsets]


@dataclass(frozen=True)
class _Span:
    """Template text between two added tokens: literal pieces alternating with field names, after
    ``head`` (the ids of its leading template text that no field can change: encoded once)."""

    pieces: tuple[str, ...]  # [text, field, text, field, ..., text]
    head: tuple[int, ...] = ()

    def fill(self, values: Mapping[str, str]) -> str:
        return "".join(values[p] if i % 2 else p for i, p in enumerate(self.pieces))


# Field values that stress the seam between cached template text and a field: a span whose cached head
# does not give the tokenizer's own ids for each of them is encoded whole, per item.
_SEAM_PROBES = ("", "x", " x", "X y", "\n", "\n\nx", "  ", " \n", "1", "12", "?", ".\n", "é", "\u0301x", "数",
                "'s", "<|im_end|>")


class PromptRenderer:
    """Turns (question, response, reference) into prompt token ids for one tokenizer and template.

    ``messages`` is a list of ``{"role", "content"}`` dicts rendered with the tokenizer's chat template;
    or ``raw_prompt`` is a plain-text prompt
    used as is (for judges trained on a raw format). Either may contain the fields ``{question}``,
    ``{response}``, ``{reference}`` and ``{criterion}`` (a rubric's criterion, or its list of criteria);
    nothing else is interpreted.

    Two steps, so a request's spans can be encoded in one batch: ``texts(...)`` gives the strings to
    encode, ``assemble(ids)`` the prompt from their ids; ``render(...)`` does both for one item.
    """

    def __init__(self, tokenizer: Any, messages: Sequence[Mapping[str, str]] = (), raw_prompt: str | None = None,
                 encoder: PlainEncoder | None = None, generation_prompt: bool = True):
        """``generation_prompt``: end with the template's opening of the model's turn (a judge generates
        after it); off for a reward model, which reads the conversation up to the end of the response."""
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
            rendered = tokenizer.apply_chat_template(placeholder_messages, tokenize=False,
                                                     add_generation_prompt=generation_prompt)
        # [ids of an added token | a span], in order; a span without fields is encoded now.
        self._parts: list[list[int] | _Span] = []
        for text, token in _split_at_added_tokens(rendered, tokenizer):
            pieces = tuple(_SENTINEL_RE.split(text))
            if len(pieces) > 1:
                self._parts.append(self._span(pieces))
            elif text:
                self._parts.append(self.encoder.encode(text))
            if token is not None:
                self._parts.append([tokenizer.convert_tokens_to_ids(token)])

    def _span(self, pieces: tuple[str, ...]) -> _Span:
        """A span, with its stable leading template text encoded once when that provably changes
        nothing: for each seam probe, head + encode(rest) must equal encode(whole)."""
        head, cut = self.encoder.stable_head(pieces[0])
        if not head:
            return _Span(pieces)
        span = _Span((pieces[0][cut:], *pieces[1:]), tuple(head))
        whole = _Span(pieces)
        for probe in _SEAM_PROBES:
            values = dict.fromkeys(FIELDS, probe)
            if list(span.head) + self.encoder.encode(span.fill(values)) != self.encoder.encode(whole.fill(values)):
                return whole
        return span

    def texts(self, question: str, response: str, reference: str | None = None, criterion: str | None = None
              ) -> list[str]:
        """The strings this prompt needs encoded: its spans that hold fields, with the values filled in."""
        values = _values(question, response, reference, criterion)
        return [p.fill(values) for p in self._parts if isinstance(p, _Span)]

    def assemble(self, encoded: Sequence[Sequence[int]]) -> list[int]:
        """The prompt ids, given the ids of ``texts(...)`` in order."""
        ids: list[int] = []
        spans = iter(encoded)
        for part in self._parts:
            if isinstance(part, _Span):
                ids.extend(part.head)
                ids.extend(next(spans))
            else:
                ids.extend(part)
        return ids

    def render(self, question: str, response: str, reference: str | None = None, criterion: str | None = None
               ) -> list[int]:
        return self.assemble(self.encoder.encode_batch(self.texts(question, response, reference, criterion)))

    def fill(self, question: str, response: str, reference: str | None = None, criterion: str | None = None
             ) -> list[dict[str, str]]:
        """The prompt as chat messages with the fields filled in (before the chat template), for people
        and SFT data; a raw-prompt judge's prompt is one user message. One pass: a field's value that
        contains ``{response}`` stays as written."""
        values = _values(question, response, reference, criterion)

        def sub(text: str) -> str:
            return _FIELD_RE.sub(lambda m: values[m.group(1)], text)

        if self._raw_prompt is not None:
            return [{"role": "user", "content": sub(self._raw_prompt)}]
        return [{"role": m["role"], "content": sub(m["content"])} for m in self._messages]


def _values(question: str, response: str, reference: str | None, criterion: str | None) -> dict[str, str]:
    return {"question": question, "response": response, "reference": reference or "", "criterion": criterion or ""}


def _split_at_added_tokens(text: str, tokenizer: Any) -> list[tuple[str, str | None]]:
    """``text`` as (plain text, the added token after it or None), the way the tokenizer splits it:
    at the leftmost, then longest, occurrence of any of its added tokens."""
    tokens = sorted(getattr(tokenizer, "get_added_vocab", dict)(), key=len, reverse=True)
    if not tokens:
        return [(text, None)]
    pattern = re.compile("|".join(map(re.escape, tokens)))
    out, start = [], 0
    for m in pattern.finditer(text):
        out.append((text[start:m.start()], m.group()))
        start = m.end()
    out.append((text[start:], None))
    return out
