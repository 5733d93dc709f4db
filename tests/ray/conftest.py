"""Ray Serve tests (service/ray_serve.py): ``make test-ray``, kept out of ``make test``.

They need the ``ray`` extra and start a local Ray (2 CPUs, with its dashboard, for ``serve deploy``), so they
are collected only with ``LIBRA_RAY_TESTS=1``. The session deploys docker/ray/serve.cpu.yaml as a user would
(``serve deploy`` to the dashboard): two replicas of the nano judge, each with its own vLLM CPU engine, and two
tiny applications that show what Ray's own queue answers (tests/ray/probe_app.py). Everything Ray started
is stopped at the end of the session.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import QUICK_START
from tests.ray.support import ADMISSION_BUDGET, SERVE_ARGS

ROOT = Path(__file__).resolve().parents[2]

if os.environ.get("LIBRA_RAY_TESTS") != "1":
    collect_ignore_glob = ["test_*.py"]

QUEUE_APPS = {  # Ray's own queue (one request in flight, one queued per proxy): by default, and as we set it
    "queue-default": {},
    "queue-ours": {"backpressure_config": {"status_code": 429, "retry_after_s": 5}},
}


def serve_config(http_port: int) -> dict:
    """docker/ray/serve.cpu.yaml with the test's port and admission budget, plus the queue probes."""
    import yaml

    config = yaml.safe_load((ROOT / "docker/ray/serve.cpu.yaml").read_text())
    config["http_options"]["port"] = http_port
    [app] = config["applications"]
    assert app["args"]["serve_args"] == SERVE_ARGS
    app["args"]["serve_args"] = [*SERVE_ARGS, *QUICK_START]  # no compile warm-up: each replica starts ~40 s sooner
    app["args"]["settings"] = {"admission_budget": ADMISSION_BUDGET}
    for name, extra in QUEUE_APPS.items():
        config["applications"].append({
            "name": name, "route_prefix": f"/{name}", "import_path": "tests.ray.probe_app:app",
            "deployments": [{"name": "Sleepy", "max_ongoing_requests": 1, "max_queued_requests": 1, **extra}]})
    return config


class RayCluster:
    """The session's local Ray. ``deploy`` runs ``serve deploy`` against its dashboard, as a user would."""

    def __init__(self, tmp: Path):
        import ray

        from libra_eval.server_process import free_port

        self.tmp = tmp
        self.dashboard_port, self.http_port = free_port(), free_port()
        # Ray's processes inherit this environment: the probe applications import tests.ray.probe_app.
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
        # Ray starts its workers (so the replicas and their engines) at nice 15; on a machine shared with
        # other jobs that starves them for minutes, and the timings here would measure the neighbours.
        os.environ.setdefault("RAY_worker_niceness", "0")
        ray.init(num_cpus=2, include_dashboard=True, dashboard_host="127.0.0.1", dashboard_port=self.dashboard_port,
                 log_to_driver=False)
        self.gcs_address = ray.get_runtime_context().gcs_address
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.config = serve_config(self.http_port)
        self.deploy_s: float | None = None

    def deploy(self, config: dict) -> None:
        import yaml

        path = self.tmp / f"serve-{time.monotonic_ns()}.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        run = subprocess.run([str(Path(sys.executable).parent / "serve"), "deploy", str(path), "--address",
                              f"http://127.0.0.1:{self.dashboard_port}"], capture_output=True, text=True, timeout=180)
        assert run.returncode == 0, run.stdout + run.stderr

    def status(self, name: str):
        from ray import serve

        return serve.status().applications.get(name)

    def wait_for(self, name: str, states: set[str], timeout_s: float = 900):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            status = self.status(name)
            if status is not None and status.status.value in states:
                return status
            time.sleep(1)
        raise TimeoutError(f"application {name} not in {states} after {timeout_s:.0f}s: {self.status(name)}")

    def shutdown(self) -> None:
        import ray
        from ray import serve

        try:
            serve.shutdown()
        finally:
            ray.shutdown()


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory):
    cluster = RayCluster(tmp_path_factory.mktemp("ray"))
    try:
        yield cluster
    finally:
        cluster.shutdown()
        _kill_leftovers()


@pytest.fixture(scope="session")
def ray_app(ray_cluster):
    """The deployed application (``ray_cluster.url`` is Ray's proxy), once both replicas are RUNNING."""
    start = time.monotonic()
    ray_cluster.deploy(ray_cluster.config)
    ray_cluster.wait_for("libra", {"RUNNING"})
    ray_cluster.deploy_s = time.monotonic() - start
    print(f"\n[ray] libra: 2 replicas RUNNING {ray_cluster.deploy_s:.0f}s after serve deploy")
    for name in QUEUE_APPS:
        ray_cluster.wait_for(name, {"RUNNING"}, timeout_s=120)
    return ray_cluster


def _kill_leftovers() -> None:
    """Whatever Ray's shutdown missed (engine cores, workers): descendants of this process only."""
    import psutil

    for child in psutil.Process().children(recursive=True):
        try:
            child.kill()
        except psutil.Error:
            pass
