"""The Serve configs and the KubeRay manifest, checked statically; the merged /metrics; ``libra-serve ray``'s
bad input (no Ray, a bad flag, an unknown judge), which must read as ``libra-serve serve``'s own messages.

The RayService is validated against KubeRay's own CRD schema: ``kuberay-rayservice-v1.schema.json.gz`` is the
``openAPIV3Schema`` of version v1 in ``ray-operator/config/crd/bases/ray.io_rayservices.yaml`` of
ray-project/kuberay at tag v1.7.0 (commit 59d663aeec13760646da3db9c1cf8cfe883e30b7), as compact JSON.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ["docker/ray/serve.yaml", "docker/ray/serve.cpu.yaml"]
CRD_SCHEMA = Path(__file__).with_name("kuberay-rayservice-v1.schema.json.gz")


def load(path: str) -> dict:
    return yaml.safe_load((ROOT / path).read_text())


@pytest.mark.parametrize("path", CONFIGS)
def test_serve_config_is_valid_and_builds(path):
    from ray.serve.schema import DeploymentSchema, ServeDeploySchema

    from service.ray_serve import DEPLOYMENT, LibraArgs, app_builder, deploy_spec

    config = load(path)
    ServeDeploySchema.model_validate(config)  # what `serve deploy` checks first
    [app] = config["applications"]
    assert app["import_path"] == "service.ray_serve:app_builder" and app["route_prefix"] == "/"
    deployments = {d["name"]: d for d in app["deployments"]}
    assert set(deployments) == {DEPLOYMENT, "LibraMetrics"}
    for d in app["deployments"]:  # Ray's schema ignores unknown keys: a typo would pass silently
        assert set(d) <= set(DeploymentSchema.model_fields), set(d) - set(DeploymentSchema.model_fields)
    judge = deployments[DEPLOYMENT]
    assert judge["backpressure_config"] == {"status_code": 429, "retry_after_s": 5}
    assert "max_ongoing_requests" not in judge  # the builder sets it from the admission budget
    # The args as the builder reads them: serve's parser accepts the flags, the judge exists, the settings too.
    args = LibraArgs.model_validate(app["args"])
    engine_args, settings, judge_name = deploy_spec(args.argv(), args.settings)
    assert judge_name in ("libra", "nano") and engine_args.max_model_len
    built = app_builder(app["args"])
    assert built._bound_deployment._deployment_config.max_ongoing_requests == settings.admission_budget + 64


def walk_unknown_fields(schema: dict, value, path: str = "") -> list[str]:
    """Fields the API server would prune or reject (``kubectl apply --validate=strict``): the structural
    schema's properties only, unless it allows more."""
    unknown = []
    if isinstance(value, dict) and schema.get("properties") is not None:
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            if key in schema["properties"]:
                unknown += walk_unknown_fields(schema["properties"][key], item, f"{path}.{key}")
            elif isinstance(extra, dict):
                unknown += walk_unknown_fields(extra, item, f"{path}.{key}")
            elif not (extra or schema.get("x-kubernetes-preserve-unknown-fields")):
                unknown.append(f"{path}.{key}")
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            unknown += walk_unknown_fields(schema["items"], item, f"{path}[{i}]")
    return unknown


def test_rayservice_manifest_against_kuberays_crd_schema():
    import jsonschema
    import ray

    manifest = load("docker/ray/rayservice.yaml")
    assert (manifest["apiVersion"], manifest["kind"]) == ("ray.io/v1", "RayService")
    schema = json.loads(gzip.decompress(CRD_SCHEMA.read_bytes()))
    jsonschema.Draft7Validator(schema).validate(manifest)  # types, enums, required fields, quantity patterns
    assert walk_unknown_fields(schema, manifest) == []
    # A self-check of the check: a misspelled field is caught.
    assert walk_unknown_fields(schema, {"spec": {"rayClusterConfig": {"headGroupSpec": {"rayStartParam": {}}}}}) \
        == [".spec.rayClusterConfig.headGroupSpec.rayStartParam"]

    spec = manifest["spec"]
    # The Serve config KubeRay deploys is docker/ray/serve.yaml's application, field for field.
    assert yaml.safe_load(spec["serveConfigV2"]) == {"applications": load("docker/ray/serve.yaml")["applications"]}
    cluster = spec["rayClusterConfig"]
    pins = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["ray"]
    assert cluster["rayVersion"] == ray.__version__ and pins == [f"ray[serve]=={ray.__version__}"]
    assert cluster["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"  # no replica on the head
    [judge] = [d for d in load("docker/ray/serve.yaml")["applications"][0]["deployments"] if d["name"] == "LibraJudge"]
    [workers] = cluster["workerGroupSpecs"]
    [container] = workers["template"]["spec"]["containers"]
    gpus = int(container["resources"]["limits"]["nvidia.com/gpu"])
    assert gpus >= judge["ray_actor_options"]["num_gpus"]
    most = judge["autoscaling_config"]["max_replicas"] * judge["ray_actor_options"]["num_gpus"]
    assert workers["maxReplicas"] * gpus >= most  # room for every replica the autoscaler may start


def test_merged_exposition_labels_every_sample_with_its_replica():
    from prometheus_client.parser import text_string_to_metric_families

    from service.ray_serve import merge_expositions

    def text(n: int) -> str:
        return (f'# HELP libra_requests_total Requests.\n# TYPE libra_requests_total counter\n'
                f'libra_requests_total{{endpoint="/score",code="200"}} {n}\n'
                f'# HELP vllm:num_requests_running Running.\n# TYPE vllm:num_requests_running gauge\n'
                f'vllm:num_requests_running{{engine="0"}} {n}\n'
                f'# HELP libra_reward Rewards.\n# TYPE libra_reward histogram\n'
                f'libra_reward_bucket{{le="0.5"}} {n}\nlibra_reward_bucket{{le="+Inf"}} {n}\n'
                f'libra_reward_count {n}\nlibra_reward_sum {n / 2}\n')

    merged = merge_expositions({"r1": text(1), "r2": text(2)}).decode()
    families = {f.name: f for f in text_string_to_metric_families(merged)}
    assert set(families) == {"libra_requests", "vllm:num_requests_running", "libra_reward"}
    assert merged.count("# TYPE ") == 3  # each family once, with both replicas' samples
    for family in families.values():
        assert {s.labels["replica"] for s in family.samples} == {"r1", "r2"}
    assert {(s.labels["replica"], s.value) for s in families["libra_requests"].samples} == {("r1", 1.0), ("r2", 2.0)}
    assert {s.labels["replica"]: s.value for s in families["libra_reward"].samples
            if s.name == "libra_reward_count"} == {"r1": 1.0, "r2": 2.0}


def run_cli(*argv: str, prelude: str = "") -> subprocess.Popen:
    code = f"{prelude}import sys; from service.cli import main; main(sys.argv[1:])"
    return subprocess.Popen([sys.executable, "-c", code, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=ROOT)


def finish(proc: subprocess.Popen) -> tuple[int, str]:
    _, err = proc.communicate(timeout=300)
    return proc.returncode, err.strip()


def test_libra_serve_ray_bad_input_is_one_line_and_serves_message():
    """Each case in a child process, all at once (each imports vLLM): ``libra-serve ray`` vs ``serve``."""
    procs = {
        "no ray": run_cli("ray", prelude="import sys; sys.modules['ray'] = None; "),
        "ray flag": run_cli("ray", "--no-such-flag", "1"),
        "serve flag": run_cli("serve", "--no-such-flag", "1"),
        "ray judge": run_cli("ray", "--judge", "nope"),
        "serve judge": run_cli("serve", "--judge", "nope"),
    }
    out = {name: finish(proc) for name, proc in procs.items()}
    code, err = out["no ray"]
    assert code == 1 and err.startswith("libra-serve ray: Ray Serve is not installed") and "\n" not in err
    assert "pip install 'libra-serve[ray]'" in err

    code, err = out["ray flag"]
    serve_code, serve_err = out["serve flag"]
    assert code != 0 and serve_code != 0 and "\n" not in err
    assert err == serve_err.splitlines()[-1] == "libra-serve serve: error: unrecognized arguments: --no-such-flag 1"

    code, err = out["ray judge"]
    _, serve_err = out["serve judge"]
    # `libra-serve serve` ends in a ProfileError traceback; its message is the line `libra-serve ray` prints.
    assert code != 0 and "\n" not in err and err.startswith("unknown judge profile 'nope'; known: ")
    assert serve_err.splitlines()[-1] == f"service.judge.profiles.ProfileError: {err}"
