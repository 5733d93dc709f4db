"""docker/nginx.conf in a real nginx in front of the live server (the real engine): a streamed /score comes
through the load balancer line by line, the item decided without the engine long before the last item is
judged, with the same results as straight from the server.

The nginx runner (the shipped config rendered with a local upstream and port, nginx a non-daemon child) is
tests/unit/test_nginx_config.py's, where the same check runs on the FakeEngine.
"""

from __future__ import annotations

import pytest

from nano import world
from tests.nginx_support import JUNK, LocalNginx, timed_stream

pytestmark = pytest.mark.integration


def test_a_streamed_score_passes_nginx_line_by_line(live_server):
    items = [JUNK, *world.score_items(64, seed=41, id_prefix="lb41-")]
    with LocalNginx(live_server.port) as lb:
        headers, arrivals = timed_stream(lb.url, items)
    assert headers["content-type"] == "application/x-ndjson"
    *results, (last_s, done) = arrivals
    first_s, first = results[0]
    assert done["done"] is True and done["items"] == len(items) and sum(done["statuses"].values()) == len(items)
    assert sorted(line["index"] for _, line in results) == list(range(len(items)))
    assert first["id"] == "junk"  # decided without the engine
    # Through a buffering proxy every line would come with the last; here the first comes while the engine
    # still judges the other 64.
    assert first_s < last_s / 2, f"first line after {first_s:.2f} s, final line after {last_s:.2f} s"

    # The same kind of request straight to the server: nginx adds no wait of its own to the first line.
    direct_items = [JUNK | {"id": "junk-direct"}, *world.score_items(64, seed=42, id_prefix="lb42-")]
    _, direct = timed_stream(live_server.url, direct_items)
    direct_first_s, direct_last_s = direct[0][0], direct[-1][0]
    assert first_s < direct_first_s + 1.0
    print(f"\nthrough nginx: first line {first_s:.3f} s, final line {last_s:.3f} s; "
          f"direct: first {direct_first_s:.3f} s, final {direct_last_s:.3f} s")
