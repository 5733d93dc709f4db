"""Container health check: ``python -m service.healthcheck`` exits 0 when this host's service answers
``/health`` with 200, 1 otherwise. Docker's HEALTHCHECK and compose's healthcheck run it; it needs no
curl in the image and follows ``LIBRA_PORT``.

``--ready`` checks ``/ready`` instead (the engine loaded and a one-token probe succeeded recently).
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    path = "/ready" if "--ready" in argv else "/health"
    url = f"http://127.0.0.1:{os.environ.get('LIBRA_PORT', '8000')}{path}"
    try:
        with urllib.request.urlopen(url, timeout=4) as resp:
            ok = resp.status == 200
    except (urllib.error.URLError, OSError) as exc:
        print(f"{url}: {exc}", file=sys.stderr)
        return 1
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
