"""pip's resolution as the packaging tier runs it: ``pip install --dry-run --report`` against the package
index, for the vLLM image's platform (Linux x86_64, CPython 3.12, glibc 2.35), with nothing of this machine's
pip setup (no local wheel directory, no extra index). pip reads each wheel's metadata with HTTP range requests
(``fast-deps``: PyPI has no separate metadata files for them), so the GBs of CUDA wheels are never downloaded.

Shared by test_gpu_resolution.py (the GPU image's requirements) and test_install_commands.py (the install
command lines the docs show)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import httpx
import pytest
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


def pip_env() -> dict[str, str]:
    """The caller's environment without its pip configuration (PIP_ENV_KEPT aside)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") or k in PIP_ENV_KEPT}
    return env | {"PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}


def start_resolution(args: list[str], report: Path, cwd: Path = ROOT) -> subprocess.Popen:
    """``pip install --dry-run`` of ``args`` (requirements, or a command line's own arguments: ``-e ./client``,
    ``'.[gpu]'``, relative to ``cwd``) for the vLLM image; its report goes to ``report``."""
    cmd = [sys.executable, "-c", PIP_AS_IMAGE, "install", "--dry-run", "--ignore-installed", "--quiet",
           "--report", str(report), "--index-url", INDEX, "--use-feature=fast-deps",
           "--only-binary=:all:", "--target", str(report.parent / "target"),
           "--python-version", "3.12", "--implementation", "cp", "--abi", "cp312",
           *(arg for platform in PLATFORMS for arg in ("--platform", platform)), *args]
    return subprocess.Popen(cmd, env=pip_env(), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(proc: subprocess.Popen, what: str, report: Path, deadline: float) -> dict:
    """The resolved distributions, by canonical name, to their metadata; fails naming ``what`` and pip's error."""
    try:
        output, _ = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail(f"resolving {what} took over {RESOLVE_TIMEOUT_S} s")
    assert proc.returncode == 0, f"{what} does not resolve for the vLLM image's platform:\n{output[-4000:]}"
    data = json.loads(report.read_text())
    assert data["environment"]["python_version"] == "3.12", "pip did not take the image's marker environment"
    return {canonicalize_name(item["metadata"]["name"]): item["metadata"] for item in data["install"]}


def resolve_all(runs: dict[str, tuple[list[str], str]], tmp_path: Path, cwd: Path = ROOT) -> dict[str, dict]:
    """Every run ``key: (args, what)`` resolved at once (each in ``tmp_path/key``); ``key: resolved``. Fails
    with every run that does not resolve, each named by its ``what`` with pip's error."""
    deadline = time.monotonic() + RESOLVE_TIMEOUT_S
    procs, resolved, failures = {}, {}, []
    try:
        for key, (args, _) in runs.items():
            (tmp_path / key).mkdir()
            procs[key] = start_resolution(args, tmp_path / key / "report.json", cwd)
        for key, (_, what) in runs.items():
            try:
                resolved[key] = finish(procs[key], what, tmp_path / key / "report.json", deadline)
            except (AssertionError, pytest.fail.Exception) as exc:
                failures.append(str(exc))
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    if failures:
        pytest.fail("\n\n".join(failures), pytrace=False)
    return resolved
