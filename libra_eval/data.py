"""Input files: Libra Bench rows (labeled) and unlabeled question/responses rows, validated with the
file and line named in every error."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH_FIELDS = ("response", "response_with_cot")


class DataError(ValueError):
    """The input file is not in the expected shape; the message names the file, line and field."""


def read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line."""
    try:
        fh = open(path, encoding="utf-8")
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror}") from None
    with fh:
        try:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
                if not isinstance(row, dict):
                    raise DataError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
                yield lineno, row
        except UnicodeDecodeError:
            raise DataError(f"{path}: not UTF-8 text") from None


def _text(path: Path, lineno: int, row: dict, name: str, required: bool = True) -> str | None:
    value = row.get(name)
    if value is None:
        if required:
            raise DataError(f"{path}:{lineno}: missing field {name!r}")
        return None
    if not isinstance(value, str):
        raise DataError(f"{path}:{lineno}: field {name!r} must be a string, got {type(value).__name__}")
    return value


def _key(path: Path, lineno: int, row: dict, name: str, seen: dict[str, int]) -> tuple[Any, str]:
    """The row's identifier (``name``, else the line number) and its text form, unique in the file."""
    value = row.get(name, lineno)
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise DataError(f"{path}:{lineno}: field {name!r} must be an integer or a string")
    key = str(value)
    if key in seen:
        raise DataError(f"{path}:{lineno}: {name} {value!r} already used on line {seen[key]}")
    seen[key] = lineno
    return value, key


@dataclass(frozen=True)
class BenchRow:
    """One Libra Bench item. ``key`` (the ``index`` as text) identifies it in result logs."""

    key: str
    index: Any
    question: str
    response: str  # the judged text: the row's response or response_with_cot
    label: int  # 1 correct, 0 incorrect
    model: str
    subset: str
    reference: str | None

    def item(self, with_reference: bool) -> dict[str, Any]:
        item = {"id": self.key, "question": self.question, "response": self.response}
        if with_reference and self.reference:
            item["reference"] = self.reference
        return item


def load_bench(path: Path, field: str = "response") -> list[BenchRow]:
    """Rows in Libra Bench format: index, question, response, label (1/0), model, reference, subset,
    response_with_cot. ``index`` defaults to the line number; ``model`` and ``subset`` to "unknown"
    and "all"; ``label`` and the judged field are required."""
    if field not in BENCH_FIELDS:
        raise DataError(f"--field must be one of {', '.join(BENCH_FIELDS)}, not {field!r}")
    rows: list[BenchRow] = []
    seen: dict[str, int] = {}
    for lineno, row in read_jsonl(path):
        index, key = _key(path, lineno, row, "index", seen)
        label = row.get("label")
        if label in (True, False):
            label = int(label)
        if label not in (0, 1):
            raise DataError(f"{path}:{lineno}: field 'label' must be 1 (correct) or 0 (incorrect), got {label!r}")
        rows.append(BenchRow(
            key=key, index=index, question=_text(path, lineno, row, "question"),
            response=_text(path, lineno, row, field), label=label,
            model=_text(path, lineno, row, "model", required=False) or "unknown",
            subset=_text(path, lineno, row, "subset", required=False) or "all",
            reference=_text(path, lineno, row, "reference", required=False),
        ))
    if not rows:
        raise DataError(f"{path}: no items")
    return rows


@dataclass(frozen=True)
class UnlabeledRow:
    """One question with the responses to label; ``key`` is its ``id`` (or the line number)."""

    key: str
    question: str
    responses: tuple[str, ...]
    reference: str | None


def load_unlabeled(path: Path) -> list[UnlabeledRow]:
    """Rows ``{"question": ..., "responses": [...]}`` with optional ``id`` and ``reference``."""
    rows: list[UnlabeledRow] = []
    seen: dict[str, int] = {}
    for lineno, row in read_jsonl(path):
        _, key = _key(path, lineno, row, "id", seen)
        responses = row.get("responses")
        if not isinstance(responses, list) or not responses:
            raise DataError(f"{path}:{lineno}: field 'responses' must be a non-empty list of strings")
        for j, r in enumerate(responses):
            if not isinstance(r, str):
                raise DataError(f"{path}:{lineno}: responses[{j}] must be a string, got {type(r).__name__}")
        rows.append(UnlabeledRow(key, _text(path, lineno, row, "question"), tuple(responses),
                                 _text(path, lineno, row, "reference", required=False)))
    if not rows:
        raise DataError(f"{path}: no items")
    return rows
