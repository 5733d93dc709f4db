"""docs/configuration.md, written from ``Settings`` so the page cannot fall behind it:

    python -m service.config_doc > docs/configuration.md

tests/unit/test_configuration_doc.py regenerates it and fails when the committed file differs. The flag,
variable and default of each setting are those ``libra-serve serve --help`` prints (service/launch.py).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import get_args

from annotated_types import Ge, Gt, Le, Lt

from service.config import Settings
from service.launch import ENGINE_FLAGS, setting_default, setting_env, setting_flag

COMMAND = "python -m service.config_doc > docs/configuration.md"
BOUNDS = ((Ge, "ge", ">="), (Gt, "gt", ">"), (Le, "le", "<="), (Lt, "lt", "<"))

INTRO = f"""\
# Configuration

<!-- Written by `{COMMAND}` from service/config.py; edit the Settings there, not this file. -->

Every setting of `libra-serve serve` is a `LIBRA_*` environment variable and, all but one, a command-line
flag: `libra-serve serve --help` lists them under "Libra Serve settings", beside vLLM's engine flags
(`--help=all` shows those). A setting takes the first of:

1. its flag on the command line (in a Ray Serve config, the application's `serve_args`), where
   `LIBRA_VLLM_ARGS` counts as the line's start: a flag after it wins;
2. in a Ray Serve config (`serve run`, `serve deploy`, KubeRay), the application's `settings:`, by the names
   of the first column (not `model`, `vllm_args`, `judge`, `judges_dir`: flags in `serve_args` there; nor
   `host`, `port`: Ray's `http_options`);
3. its environment variable;
4. its default.

`--model` and `--log-level` are vLLM's own engine flags, which the service reads too: `--log-level` (upper
case: `DEBUG`, `INFO`, ...) sets vLLM's level and the service's. A boolean flag has a negation
(`--no-json-logs`); its variable takes `true` or `false`.

"""


def type_text(name: str) -> str:
    info = Settings.model_fields[name]
    # An optional field (``str | None``) reads as its type: its default, "unset", says the rest.
    [kind] = [k for k in get_args(info.annotation) or (info.annotation,) if k is not type(None)]
    kind = "path" if kind is Path else kind.__name__
    bounds = [f"{sign} {getattr(m, attr)}" for m in info.metadata for cls, attr, sign in BOUNDS if isinstance(m, cls)]
    return ", ".join([kind, *bounds])


def flag_text(name: str) -> str:
    flag = setting_flag(name)
    if flag is None:
        return "none"
    if Settings.model_fields[name].annotation is bool:
        return f"`{flag}`, `--no-{flag[2:]}`"
    return f"`{flag}` (vLLM's)" if name in ENGINE_FLAGS else f"`{flag}`"


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("*", "\\*")


def render() -> str:
    rows = ["| Setting | Variable | Flag | Type | Default | Description |", "|---|---|---|---|---|---|"]
    for name, info in Settings.model_fields.items():
        default = setting_default(name)
        default = default if default in ("unset", "empty") else f"`{default}`"
        rows.append(f"| `{name}` | `{setting_env(name)}` | {flag_text(name)} | {type_text(name)} | {default} "
                    f"| {cell(info.description or '')} |")
    return INTRO + "\n".join(rows) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
