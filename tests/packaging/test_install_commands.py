"""The install commands the docs show work from a clone, checked by pip against PyPI.

Neither distribution is on PyPI: ``libra-serve`` requires ``libra-serve-client==0.1.0``, which is this
repository's ``client/``, so a command that installs the server must install the client in the same run
(``pip install -e ./client -e '.[gpu]'``; from wheels, both wheels in one command). Every fenced shell line of
README.md and docs/*.md that starts with ``pip install`` and installs this project (the server ``.``, the
client ``./client``, or either by name; ``/path/to/libra-serve`` reads as the clone) is read at test time and
resolved as written, with pip's dry run from the repository root for a GPU host's platform
(tests/packaging/support.py: the vLLM image's, with nothing of this machine's pip setup). A line that does not
resolve fails the test with the file, the line and pip's error.

The hint ``libra-serve ray`` prints without Ray is for an environment the server is installed in: it is
resolved by pip in a throwaway venv holding the server and the client (editable, without their dependencies).

The packaging tier (``make package-check``, ~1-2 min); the extraction itself is checked in ``make test``.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from tests.packaging.support import (
    RESOLVE_TIMEOUT_S,
    ROOT,
    index_answers,
    packaging_tier,
    pip_env,
    project,
    resolve_all,
    vllm_pin,
)

SERVER, CLIENT = "libra-serve", "libra-serve-client"
# The docs' stand-in for the clone's directory (docs/integrations.md: ``pip install /path/to/libra-serve/client``).
CLONE_PLACEHOLDER = "/path/to/libra-serve"
SHELL_FENCES = {"", "sh", "bash", "shell", "console", "zsh"}
FENCE = re.compile(r"^\s*(`{3,}|~{3,})\s*([\w+-]*)")
# pip options that take a value (the value is not a requirement).
OPTIONS_WITH_VALUE = {"-r", "--requirement", "-c", "--constraint", "-i", "--index-url", "--extra-index-url",
                      "-f", "--find-links", "--target", "-t", "--prefix", "--root", "--python-version",
                      "--platform", "--abi", "--implementation", "--upgrade-strategy"}


def doc_files(root: Path = ROOT) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def shell_lines(text: str) -> list[tuple[int, str]]:
    """``(line number, command)`` of each line in a fenced shell block; ``\\`` continuations joined, ``$ `` dropped."""
    out, fence, pending, start = [], None, "", 0
    for number, line in enumerate(text.splitlines(), 1):
        match = FENCE.match(line)
        if fence is None:
            if match:
                fence = match.group(1) if match.group(2).lower() in SHELL_FENCES else "skip:" + match.group(1)
            continue
        if match and match.group(1).startswith(fence.removeprefix("skip:")[0]) and not match.group(2) \
                and len(match.group(1)) >= len(fence.removeprefix("skip:")):
            fence = None
            continue
        if fence.startswith("skip:"):
            continue
        stripped = line.strip().removeprefix("$ ")
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        out.append((start, pending + stripped))
        pending = ""
    return out


def requirement_args(args: list[str]) -> list[str]:
    """The requirement arguments of ``pip install``'s ``args`` (``-e X`` gives X)."""
    out, skip = [], False
    for i, arg in enumerate(args):
        if skip:
            skip = False
        elif arg in ("-e", "--editable"):
            out.append(args[i + 1])
            skip = True
        elif arg in OPTIONS_WITH_VALUE:
            skip = True
        elif not arg.startswith("-"):
            out.append(arg)
    return out


def distribution(spec: str, root: Path = ROOT) -> str | None:
    """This project's distribution ``spec`` installs (``.[gpu]``, ``./client``, ``libra-serve[ray]``), else None."""
    path = spec.split("[", 1)[0]
    if path.startswith((".", "/", "~")):
        where = (root / path).resolve()
        return {root.resolve(): SERVER, (root / "client").resolve(): CLIENT}.get(where)
    try:
        name = canonicalize_name(Requirement(spec).name)
    except InvalidRequirement:
        return None
    return name if name in (SERVER, CLIENT) else None


def install_commands(root: Path = ROOT) -> list[dict]:
    """Each doc command line that installs this project: where it is, its pip arguments (the placeholder for the
    clone made ``root``) and the distributions of this project it names."""
    found = []
    for doc in doc_files(root):
        for number, line in shell_lines(doc.read_text()):
            if not re.match(r"pip\s+install\s", line):
                continue
            words = shlex.split(line, comments=True)
            args = [w.replace(CLONE_PLACEHOLDER, str(root), 1) if w.startswith(CLONE_PLACEHOLDER) else w
                    for w in words[2:]]
            names = {d for d in map(lambda s: distribution(s, root), requirement_args(args)) if d}
            if names:
                found.append({"where": f"{doc.relative_to(root)}:{number}", "line": line, "args": args,
                              "names": names})
    return found


def test_doc_install_lines_are_found(tmp_path):
    (tmp_path / "client").mkdir()
    (tmp_path / "docs").mkdir()
    (tmp_path / "README.md").write_text(
        "Prose `pip install libra-serve` is not a command line.\n\n"
        "```sh\npip install -e ./client -e '.[gpu]'   # the server\nlibra-serve --model m\n```\n\n"
        "```python\npip install -e .\n```\n\n"
        "````bash\n$ pip install -U huggingface_hub\npip install ./client \\\n    '.[gpu,ray]'\n````\n")
    (tmp_path / "docs" / "a.md").write_text("- item:\n\n  ```sh\n  pip install /path/to/libra-serve/client\n  ```\n")
    got = [(c["where"], c["args"], c["names"]) for c in install_commands(tmp_path)]
    assert got == [
        ("README.md:4", ["-e", "./client", "-e", ".[gpu]"], {SERVER, CLIENT}),
        ("README.md:14", ["./client", ".[gpu,ray]"], {SERVER, CLIENT}),
        ("docs/a.md:4", [f"{tmp_path}/client"], {CLIENT}),
    ]
    assert install_commands(), "no doc shows a pip install of this project: the test would check nothing"


@packaging_tier
def test_doc_install_commands_resolve_from_a_clone(tmp_path):
    why_not = index_answers("vllm", vllm_pin())
    if why_not:
        pytest.skip(f"resolving the docs' install commands needs the package index: {why_not}")
    commands = {}
    for cmd in install_commands():
        commands.setdefault(shlex.join(cmd["args"]), cmd)  # one resolution per distinct command
    runs = {f"cmd{i}": (cmd["args"], f"{cmd['where']}: `{cmd['line']}`") for i, cmd in enumerate(commands.values())}
    resolved = resolve_all(runs, tmp_path)
    for key, cmd in zip(runs, commands.values(), strict=True):
        missing = {name for name in cmd["names"] if name not in resolved[key]}
        assert not missing, f"{cmd['where']}: `{cmd['line']}` resolves without {missing}"
        if SERVER in cmd["names"]:
            assert resolved[key][CLIENT]["version"] == project()["version"]
    print(f"\n{len(runs)} install command lines resolved: " + "; ".join(c["line"] for c in commands.values()))


def ray_hint() -> str:
    """What ``libra-serve ray`` prints to install Ray when it is missing: the command after ``install it with:``."""
    blocked = "import sys; sys.modules['ray'] = None; from service.cli import main; main(['ray'])"
    proc = subprocess.run([sys.executable, "-c", blocked], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 1, proc.stderr
    match = re.search(r"install it with: (pip install .+)$", proc.stderr.strip())
    assert match, proc.stderr
    return match.group(1)


@packaging_tier
def test_ray_hint_resolves_where_the_server_is_installed(tmp_path):
    why_not = index_answers("ray", project()["optional-dependencies"]["ray"][0].split("==")[1])
    if why_not:
        pytest.skip(f"resolving the ray hint needs the package index: {why_not}")
    hint = ray_hint()
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    py = str(venv / "bin" / "python")
    env = pip_env()
    subprocess.run([py, "-m", "pip", "install", "-q", "--no-deps", "-e", str(ROOT / "client"), "-e", str(ROOT)],
                   check=True, timeout=600, env=env)
    report = tmp_path / "report.json"
    words = shlex.split(hint)
    assert words[:2] == ["pip", "install"], hint
    # Where the user runs it: anywhere, not in the clone.
    proc = subprocess.run([py, "-m", "pip", "install", "--dry-run", "--quiet", "--report", str(report),
                           "--use-feature=fast-deps", "--only-binary=:all:", *words[2:]],
                          capture_output=True, text=True, timeout=RESOLVE_TIMEOUT_S, env=env, cwd=tmp_path)
    assert proc.returncode == 0, f"the hint `{hint}` does not resolve where the server is installed:\n" \
                                 f"{proc.stdout[-2000:]}{proc.stderr[-4000:]}"
    resolved = {canonicalize_name(item["metadata"]["name"]): item["metadata"]
                for item in json.loads(report.read_text())["install"]}
    [ray_req] = [Requirement(r) for r in project()["optional-dependencies"]["ray"]]
    assert ray_req.specifier.contains(resolved["ray"]["version"]), resolved.get("ray")
    assert SERVER not in resolved and CLIENT not in resolved, "pip must take the installed server and client"
