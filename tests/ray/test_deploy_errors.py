"""A Serve config with an unknown judge or an invalid vLLM flag fails at deploy (``serve deploy``), with the
message ``libra-serve serve`` gives (test_config.py shows ``libra-serve ray`` and ``serve`` print the same
lines), and no replica or engine is ever started for it; the running application is untouched."""

from __future__ import annotations

import copy
import time

from tests.ray.support import replicas

BAD = {
    "bad-flag": (["--no-such-flag", "1"], "libra-serve serve: error: unrecognized arguments: --no-such-flag 1"),
    "bad-judge": (["--judge", "nope"], "unknown judge profile 'nope'; known: "),
}


def test_bad_serve_config_fails_at_deploy_with_serves_message(ray_app):
    config = copy.deepcopy(ray_app.config)
    [libra] = [a for a in config["applications"] if a["name"] == "libra"]
    for name, (flags, _) in BAD.items():
        app = copy.deepcopy(libra)
        app.update(name=name, route_prefix=f"/{name}")
        app["args"]["serve_args"] = libra["args"]["serve_args"] + flags
        config["applications"].append(app)
    before = replicas()
    start = time.monotonic()
    ray_app.deploy(config)
    try:
        for name, (_, message) in BAD.items():
            status = ray_app.wait_for(name, {"DEPLOY_FAILED"}, timeout_s=300)
            assert message in status.message, status.message
            # The application's builder refused it: no deployment, so no replica and no engine.
            assert status.deployments == {}, status.deployments
        print(f"\n[ray] bad configs DEPLOY_FAILED {time.monotonic() - start:.0f}s after serve deploy")
        assert ray_app.status("libra").status.value == "RUNNING" and replicas() == before
    finally:
        ray_app.deploy(ray_app.config)
        deadline = time.monotonic() + 120
        while any(ray_app.status(name) for name in BAD) and time.monotonic() < deadline:
            time.sleep(1)
    assert not any(ray_app.status(name) for name in BAD)
