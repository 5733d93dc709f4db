"""The package map holds: the server imports none of the client side or the toy kit, the client
package imports nothing of the server, loadtest nothing of the tests, nothing imports the command line,
nothing below the HTTP layer imports it, modules stay small, and tests share helpers, not test modules."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The one crossing: `libra-serve bench|label|traces` dispatches from the server's command line.
ALLOWED = {("service/cli.py", "libra_eval.cli")}


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def py_files(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


@pytest.mark.parametrize(("folder", "forbidden"), [
    ("service", ("nano", "libra_eval", "libra_client", "tests")),
    ("client", ("service", "libra_eval", "nano", "tests")),
    ("libra_eval", ("service", "nano", "tests")),
    ("loadtest", ("tests",)),  # the tests may use loadtest's pieces (verl_calls.py), never the reverse
])
def test_packages_import_only_what_the_map_allows(folder, forbidden):
    offenders = [f"{p.relative_to(ROOT)}: {m}" for p in py_files(folder) for m in sorted(imported_modules(p))
                 if m.split(".")[0] in forbidden and (str(p.relative_to(ROOT)), m) not in ALLOWED]
    assert not offenders


def imported_names(path: Path) -> set[str]:
    """``imported_modules`` plus ``package.name`` for each ``from package import name``, which may be a module."""
    names = imported_modules(path)
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names |= {f"{node.module}.{a.name}" for a in node.names}
    return names


def imports_of(name: str, path: Path) -> list[str]:
    """What ``path`` imports of module ``name`` (or below it), without the names inside an imported module."""
    hits = {m for m in imported_names(path) if m == name or m.startswith(f"{name}.")}
    return sorted(m for m in hits if m.rpartition(".")[0] not in hits)


def repo_files() -> list[Path]:
    return [p for folder in ("service", "client", "libra_eval", "nano", "loadtest", "tests", "docker")
            for p in py_files(folder)]


def test_nothing_imports_the_command_line():
    """``service/cli.py`` only dispatches: what a launch decides is ``service/launch.py``'s, which every
    launcher (cli, ray_serve, loadtest/throughput.py) imports. Running the CLI (``-m service.cli``) is fine."""
    offenders = {str(p.relative_to(ROOT)): imports_of("service.cli", p) for p in repo_files()}
    assert {path: names for path, names in offenders.items() if names} == {}


# The floors of service/ above the HTTP layer: build_app wires it, and the launchers sit on build_app.
ABOVE_API = {"service/app.py", "service/launch.py", "service/cli.py", "service/ray_serve.py"}


def test_nothing_below_the_http_layer_imports_it():
    """engine/, config, logs, judge/, lifecycle and metrics sit below service/api/: an error they raise is
    their own, and api/errors.py maps it to a status."""
    below = [p for p in py_files("service") if not p.relative_to(ROOT).is_relative_to("service/api")
             and str(p.relative_to(ROOT)) not in ABOVE_API]
    offenders = {str(p.relative_to(ROOT)): imports_of("service.api", p) for p in below}
    assert {path: names for path, names in offenders.items() if names} == {}


def test_the_client_package_loads_no_server_dependency():
    code = ("import sys, libra_client, libra_client.verl, libra_client.trl, libra_client.env, libra_client.slime; "
            "print(sorted({m.split('.')[0] for m in sys.modules}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=ROOT / "client").stdout
    loaded = set(eval(out))  # noqa: S307 - our own subprocess's printed list
    assert not loaded & {"service", "fastapi", "uvicorn", "vllm", "torch", "transformers", "pydantic", "numpy"}
    assert "httpx" in loaded


def test_server_modules_stay_small():
    sizes = {str(p.relative_to(ROOT)): len(p.read_text(encoding="utf-8").splitlines()) for p in py_files("service")}
    assert {name: n for name, n in sizes.items() if n > 450} == {}


def test_no_test_module_imports_another():
    offenders = [f"{p.relative_to(ROOT)}: {m}" for p in py_files("tests") for m in imported_modules(p)
                 if m.startswith("tests.") and (m.split(".")[-1].startswith("test_") or m.endswith("conftest"))]
    assert not offenders
