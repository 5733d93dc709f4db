"""Write the nano judge's held-out set: ``python -m nano.heldout`` -> nano/heldout.jsonl.

1,000 items from the evaluation split (problems never trained on), half correct. The file is shipped;
this script documents and reproduces it.
"""

from __future__ import annotations

import json
from pathlib import Path

from nano import world

HELDOUT_PATH = Path(__file__).resolve().parent / "heldout.jsonl"


def rows() -> list[dict]:
    return [
        {"id": f"nano-{i:04d}", "question": it.question, "response": it.response, "label": it.label}
        for i, it in enumerate(world.heldout(1000))
    ]


def load(path: Path = HELDOUT_PATH) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


if __name__ == "__main__":
    with open(HELDOUT_PATH, "w", encoding="utf-8") as fh:
        for row in rows():
            fh.write(json.dumps(row) + "\n")
    print(f"wrote {HELDOUT_PATH}")
