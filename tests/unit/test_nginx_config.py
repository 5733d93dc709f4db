"""docker/nginx.conf run in a real nginx in front of the real app: a streamed /score reaches the client line
by line, the first line long before the last item is judged.

The app runs on the FakeEngine with a delay, so every judged item takes that long and the one item decided
without the engine (an answerless response) comes first. The same check on the real engine is in
tests/integration/test_nginx_streaming.py; the nginx runner is tests/nginx_support.py.

nginx is Debian's package (``make deploy-tools`` installs it where apt-get can); without it these tests skip
locally and fail in CI.
"""

from __future__ import annotations

import re
import subprocess

import pytest

from service.config import Settings
from service.engine.fake import FakeEngine
from tests.helpers import AppServer, build_app_for, heldout, perfect_nano_judge
from tests.nginx_support import JUNK, NGINX_CONF, LocalNginx, nginx_binary, render_nginx_conf, timed_stream

DELAY_S = 3.0  # the FakeEngine's time per judgment


def test_the_rendered_config_is_the_shipped_one_with_the_local_upstream_and_port(tmp_path):
    text = render_nginx_conf(18001, 18002, tmp_path)
    assert "server 127.0.0.1:18001 max_fails=1 fail_timeout=10s;" in text and "libra-0" not in text
    assert "listen 127.0.0.1:18002;" in text
    shipped = NGINX_CONF.read_text()
    for line in shipped.splitlines():
        if "libra-" not in line and "listen" not in line:
            assert line in text, line
    conf = tmp_path / "nginx.conf"
    conf.write_text(text)
    check = subprocess.run([nginx_binary(), "-p", str(tmp_path), "-e", str(tmp_path / "error.log"), "-c", str(conf),
                            "-g", f"pid {tmp_path / 'nginx.pid'};", "-t"], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


def test_score_is_not_buffered_and_waits_as_long_as_a_thinking_judge_may():
    text = NGINX_CONF.read_text()
    score = re.search(r"location = /score \{(.*?)\}", text, re.S).group(1)
    assert "proxy_buffering off;" in score and "proxy_pass http://libra;" in score
    [read_timeout] = re.findall(r"proxy_read_timeout (\d+)s;", text)
    assert int(read_timeout) > Settings.model_fields["max_timeout_s"].default


@pytest.fixture(scope="module")
def slow_app(nano_tokenizer):
    engine = FakeEngine(nano_tokenizer, perfect_nano_judge, delay_s=DELAY_S, max_model_len=1024)
    with AppServer(build_app_for(engine)) as server:
        yield server


def test_streamed_lines_pass_nginx_as_they_are_decided(slow_app):
    items = [JUNK, *heldout(100, 64)]
    with LocalNginx(slow_app.port) as lb:
        headers, arrivals = timed_stream(lb.url, items)
    assert headers["content-type"] == "application/x-ndjson"
    (first_s, first), (last_s, done) = arrivals[0], arrivals[-1]
    assert first["id"] == "junk" and done["done"] is True and done["items"] == len(items)
    assert sorted(line["index"] for _, line in arrivals[:-1]) == list(range(len(items)))
    assert last_s >= DELAY_S  # the judged items took the engine's time ...
    assert first_s < DELAY_S / 3, f"the first line came through nginx after {first_s:.2f} s"  # ... the junk none
    print(f"\nthrough nginx, proxy_buffering off: first line {first_s:.3f} s, final line {last_s:.3f} s")

