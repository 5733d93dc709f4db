"""What of a response a judge is shown, for judges trained on an extracted answer (a profile's
``[input] response``): pure functions from the response to the text shown, or None when there is none.

- ``final_answer``: the content of the last ``\\boxed{...}`` (braces balanced, any depth; an empty box
  does not count), else the text after the last ``Final Answer:``-style marker on its line. This is
  General-Verifier's extraction (TIGER-AI-Lab/General-Reasoner ``verifier.py``: last boxed answer
  first, then the same six markers, case-insensitive, the latest in the text wins, trailing end tokens
  stripped), with two differences of ours: any nesting depth inside the box (theirs: two levels), and a
  marker's line may end the text (theirs needs a newline after it).
- ``last_line``: the last non-empty line, as Master-RM's authors feed it ("Solution Process (Final
  Step Only)").
"""

from __future__ import annotations

import re

_MARKERS = re.compile(r"(?:Final Answer|Final Answer is|The answer is|Answer|Solution|The solution is):[ \t]*"
                      r"([^\n]*)", re.IGNORECASE)
_END_TOKENS = ("</s>", "<|im_end|>", "<|endoftext|>")
_BOXED = re.compile(r"\\boxed\s*\{")
_BRACE = re.compile(r"[{}]")


def boxed_spans(text: str) -> list[tuple[int, int]]:
    """Where the contents of the non-empty ``\\boxed{...}`` with balanced braces lie (stripped), in order.
    One pass over the text (each brace matched once), so ``\\boxed{`` repeated without a close costs
    linear time, not a scan to the end per box."""
    opens = [m.end() for m in _BOXED.finditer(text)]
    if not opens:
        return []
    closes: dict[int, int] = {}
    stack: list[int] = []
    for m in _BRACE.finditer(text, opens[0] - 1):
        if m.group() == "{":
            stack.append(m.end())
        elif stack:
            closes[stack.pop()] = m.start()
    return [_stripped(text, start, closes[start]) for start in opens
            if start in closes and text[start:closes[start]].strip()]


def last_boxed_span(text: str) -> tuple[int, int] | None:
    """Where the content of the last non-empty ``\\boxed{...}`` with balanced braces lies (stripped)."""
    spans = boxed_spans(text)
    return spans[-1] if spans else None


def last_boxed(text: str) -> str | None:
    span = last_boxed_span(text)
    return None if span is None else text[span[0]:span[1]]


def final_answer_span(text: str) -> tuple[int, int] | None:
    """Where ``final_answer`` finds its answer in ``text`` (start, end), or None."""
    boxed = last_boxed_span(text)
    if boxed is not None:
        return boxed
    latest = None
    for m in _MARKERS.finditer(text):
        if latest is None or m.start() > latest.start():
            latest = m
    if latest is None:
        return None
    start, end = _stripped(text, *latest.span(1))
    answer = text[start:end]
    for token in _END_TOKENS:
        answer = answer.removesuffix(token).rstrip()
    return (start, start + len(answer)) if answer else None


def final_answer(text: str) -> str | None:
    span = final_answer_span(text)
    return None if span is None else text[span[0]:span[1]]


def _stripped(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def last_line(text: str) -> str | None:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else None


EXTRACTORS = {"final_answer": final_answer, "last_line": last_line}


def shown_response(mode: str, response: str) -> str | None:
    """The response as the judge is shown it under ``mode`` (``full``: as given)."""
    return response if mode == "full" else EXTRACTORS[mode](response)
