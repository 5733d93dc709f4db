"""A FakeEngine rubric grader and the rubric it is tested with, shared by the rubric unit tests
(test_rubric.py, test_rubric_trainers.py)."""

from __future__ import annotations

import re


def grader(prompt: str, _sample: int) -> str:
    """A grader that checks 'mentions N' criteria literally, says NO to the rest, and rates holistic prompts
    by how many '42's the response has."""
    response = prompt.split("[Response]\n", 1)[-1].split("\n\n[", 1)[0]
    if "[Rubric]" in prompt:
        return f"<think>counting</think>\nRating: {min(10, 1 + 3 * response.count('42'))}"
    criterion = prompt.rsplit("[Criterion]\n", 1)[-1].split("<|im_end|>", 1)[0]
    if "undecidable" in criterion:
        return "<think>hmm</think> I cannot tell."
    m = re.search(r"mentions (\w+)", criterion)
    return "<think>checking</think>\n[[YES]]" if m and m.group(1) in response else "<think>checking</think>\n[[NO]]"


RUBRIC = [{"id": "answer", "text": "The response mentions 42.", "weight": 5},
          {"id": "units", "text": "The response mentions apples.", "weight": 3},
          {"id": "rude", "text": "The response mentions idiot.", "weight": 2, "polarity": "negative"}]
