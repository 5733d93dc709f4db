"""Record ``libra-serve serve``'s greedy verdicts on the held-out items the Ray tests compare against.

    python -m tests.record_verdicts http://127.0.0.1:8000   # a server started as make test starts live_server

Re-run it when the nano judge, its profile or the prompt rendering changes; make test's
tests/integration/test_recorded_verdicts.py fails until the recording agrees with the live server again.
"""

from __future__ import annotations

import json
import sys

from libra_client import LibraClient
from tests.helpers import SERVE_VERDICTS, heldout

START, COUNT = 0, 96


def judged(url: str) -> list[list]:
    results = LibraClient(url, chunk_size=16, max_concurrency=2).score(heldout(START, COUNT), cache=False)
    bad = [r.id for r in results if r.status != "ok"]
    if bad:
        raise SystemExit(f"items not judged ok: {bad}")
    return [[r.id, r.verdict, r.reward] for r in results]


def main(argv: list[str]) -> None:
    verdicts = judged(argv[0])
    rows = ",\n".join(f"  {json.dumps(v)}" for v in verdicts)  # one verdict a line: a diff shows which changed
    SERVE_VERDICTS.write_text(f'{{"start": {START}, "verdicts": [\n{rows}\n]}}\n')
    print(f"wrote {len(verdicts)} verdicts to {SERVE_VERDICTS}")


if __name__ == "__main__":
    main(sys.argv[1:])
