"""The recording the Ray tests compare their replicas with (tests/fixtures/nano_serve_verdicts.json) is what
``libra-serve serve`` judges today, on the real engine: so "Ray's replicas judge as libra-serve serve does"
holds without a plain server started beside the replicas in make test-ray."""

from __future__ import annotations

import json

import pytest

from tests.helpers import SERVE_VERDICTS
from tests.record_verdicts import judged

pytestmark = pytest.mark.integration


def test_the_recorded_serve_verdicts_are_what_the_live_server_judges(live_server):
    recorded = json.loads(SERVE_VERDICTS.read_text())
    assert len(recorded["verdicts"]) == 96
    assert judged(live_server.url) == recorded["verdicts"], "re-record: python -m tests.record_verdicts URL"
