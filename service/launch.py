"""What a launch of the judge decides, one floor below every launcher.

``libra-serve serve`` (cli.py), the Ray Serve application (ray_serve.py) and the throughput harness all
start the same app from the same flags. The decisions that turn those flags into a server live here, once:

- ``serve_parser``: ``libra-serve serve``'s flags, one per ``Settings`` field ("Libra Serve settings": --host,
  --port, --judge, --judges-dir, --admission-budget, ...), beside every vLLM engine flag, with --model
  defaulting to the bundled nano judge;
- ``parse_serve_args``: the command line after ``LIBRA_VLLM_ARGS``;
- ``ServeSpec.from_args`` / ``resolve``: the service's log level, its ``Settings``, the default judge and the
  nano judge's float32 dtype, as one ``ServeSpec``.

A setting resolves command line > a launcher's overrides (a Serve config's ``settings``) > ``LIBRA_*``
environment > default; the first four flags, which always hold a value, as before: command line > environment
> default (ray_serve.py refuses them as overrides). ``setting_flag``, ``setting_env`` and ``setting_default``
name each setting as --help prints it; service/config_doc.py writes docs/configuration.md from them.

A launcher adds only what is its own: uvicorn and the bind warning (cli.py), Ray's deploy-time checks and
replicas (ray_serve.py). Nothing here starts an engine or builds the app.
"""

from __future__ import annotations

import argparse
import shlex
import textwrap
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, NamedTuple

from pydantic import TypeAdapter, ValidationError

from service.config import NANO_JUDGE_PATH, Settings

GROUP = "Libra Serve settings"
# Settings that are vLLM's own flags: the service reads the engine's flag rather than add a twin of it.
ENGINE_FLAGS = {"model": "--model", "log_level": "--log-level"}
# LIBRA_VLLM_ARGS is itself flags, read before the command line: as a flag of its own it would mean nothing.
ENV_ONLY = frozenset({"vllm_args"})
# serve's first four flags: parsed, they always hold a value (the environment's, else the default), as before.
EAGER = ("host", "port", "judge", "judges_dir")
# The settings with a flag of serve's own ("Libra Serve settings"), in Settings' order.
OWN_FLAGS = tuple(name for name in Settings.model_fields if name not in ENGINE_FLAGS and name not in ENV_ONLY)


def setting_flag(name: str) -> str | None:
    """The command-line flag of Settings field ``name`` (``admission_budget``: ``--admission-budget``); None
    for the one that has none (``vllm_args``)."""
    if name in ENV_ONLY:
        return None
    return ENGINE_FLAGS.get(name, "--" + name.replace("_", "-"))


def setting_env(name: str) -> str:
    return f"{Settings.model_config['env_prefix']}{name.upper()}"


def setting_default(name: str) -> str:
    """The field's default as text. Never the environment's value: that may be a secret (LIBRA_API_KEYS)."""
    default = Settings.model_fields[name].default
    if default is None:
        return "unset"
    if isinstance(default, bool):
        return str(default).lower()
    if isinstance(default, float):
        return f"{default:g}"
    return str(default) if default != "" else "empty"


def setting_help(name: str) -> str:
    """--help's text of a setting: its description, variable and default (``%`` escaped for argparse)."""
    text = f"{Settings.model_fields[name].description} (env {setting_env(name)}, default {setting_default(name)})"
    return text.replace("%", "%%")


def _value_parser(name: str) -> Callable[[str], Any]:
    """A flag's type: the field's own validation (type and bounds), so a bad value is argparse's one-line error
    naming the flag, as a bad engine flag is, rather than a ValidationError traceback once parsing is done."""
    info = Settings.model_fields[name]
    adapter = TypeAdapter(Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation)

    def parse(text: str) -> Any:
        try:
            return adapter.validate_python(text)
        except ValidationError as exc:
            raise argparse.ArgumentTypeError(f"{text!r}: {exc.errors()[0]['msg']}") from None

    return parse


def _metavar(name: str) -> str:
    kind = Settings.model_fields[name].annotation
    if kind is int:
        return "N"
    if kind is float:
        return "SECONDS" if name.endswith("_s") else "NUMBER"
    return "PATH" if Path in getattr(kind, "__args__", (kind,)) else name.upper()


def _flag_options(name: str, settings: Settings) -> dict[str, Any]:
    if name in EAGER:  # their old arguments, kept: a value always parsed, --port an int, the others strings
        return {"default": getattr(settings, name), "type": int if name == "port" else None,
                "help": setting_help(name)}
    # Absent unless given, so a setting not on the command line keeps its override, else its variable, else
    # its default: Settings resolves those itself.
    options: dict[str, Any] = {"default": argparse.SUPPRESS, "help": setting_help(name)}
    if Settings.model_fields[name].annotation is bool:
        return {**options, "action": argparse.BooleanOptionalAction}
    return {**options, "type": _value_parser(name), "metavar": _metavar(name)}


def _group_text() -> str:
    engine = " and ".join(f"{flag} (env {setting_env(name)})" for name, flag in ENGINE_FLAGS.items())
    env_only = " ".join(f"{setting_env(name)} has no flag: {_lower_first(Settings.model_fields[name].description)}"
                        for name in sorted(ENV_ONLY))
    paragraphs = ["The service's own settings: each flag also reads its LIBRA_* variable, and the command line "
                  "wins.",
                  f"vLLM's flags {engine} are settings too. {env_only} Every setting: docs/configuration.md."]
    return "\n\n".join(_fill(p) for p in paragraphs)


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def _fill(text: str) -> str:
    """vLLM's help formatter prints descriptions as given: they come wrapped, never inside a flag's name."""
    return textwrap.fill(text, 78, break_on_hyphens=False, break_long_words=False)


def _serve_parser_class(base: type[argparse.ArgumentParser]) -> type[argparse.ArgumentParser]:
    class ServeParser(base):
        def format_help(self) -> str:
            # vLLM's --help lists only its groups' titles (--help=<group> shows one): the service's own flags,
            # a few dozen among hundreds of the engine's, are shown in full.
            text = super().format_help()
            if getattr(self, "_search_keyword", None) is not None or f"\n{GROUP}:\n" in text:
                return text
            [group] = [g for g in self._action_groups if g.title == GROUP]
            formatter = self._get_formatter()
            formatter.start_section(GROUP)
            formatter.add_text(group.description)
            formatter.add_arguments(group._group_actions)
            formatter.end_section()
            return text.rstrip("\n") + "\n\n" + formatter.format_help()

    return ServeParser


def _formatter_class(base: type[argparse.HelpFormatter]) -> type[argparse.HelpFormatter]:
    class Formatter(base):
        def _get_help_string(self, action: argparse.Action) -> str | None:
            # A setting's help names its default itself: the field's, not the parsed one (the environment's).
            return action.help if action.dest in Settings.model_fields else super()._get_help_string(action)

    return Formatter


def serve_parser() -> argparse.ArgumentParser:
    from service.engine.vllm_engine import add_engine_args, engine_parser_class

    settings = Settings()
    parser = _serve_parser_class(engine_parser_class())(
        prog="libra-serve serve", usage="%(prog)s [-h] [Libra Serve settings] [vLLM engine flags]",
        description=_fill("Serve a thinking judge over HTTP. vLLM's engine flags: --help=<group> (e.g. "
                          "--help=ModelConfig), --help=<word> (the flags naming it), --help=all."))
    parser.formatter_class = _formatter_class(parser.formatter_class)
    group = parser.add_argument_group(GROUP, _group_text())
    for name in OWN_FLAGS:
        group.add_argument(setting_flag(name), **_flag_options(name, settings))
    add_engine_args(parser)
    for name, flag in ENGINE_FLAGS.items():  # vLLM's help of the flags that are settings too says so
        action = parser._option_string_actions.get(flag)
        if action is None:
            # vLLM leaves --model out when sys.argv holds "serve" and "--help" (`vllm serve` takes the model as
            # its first argument), as `libra-serve serve --help` does: then the help lists it with ours.
            group.add_argument(flag, help=setting_help(name))
        else:
            action.help = " ".join(filter(None, (action.help, setting_help(name))))
    parser.set_defaults(model=settings.model or str(NANO_JUDGE_PATH), disable_log_stats=False)
    return parser


def parse_serve_args(argv: Sequence[str]) -> argparse.Namespace:
    """The command line, after ``LIBRA_VLLM_ARGS`` (so flags on the command line override it)."""
    return serve_parser().parse_args(shlex.split(Settings().vllm_args) + list(argv))


class ServeSpec(NamedTuple):
    """Everything a launcher needs to build the app: ``args`` go to ``open_vllm_engine``, ``settings`` and
    ``judge`` to ``build_app``. A tuple, so ``args, settings, judge = spec`` reads as before."""

    args: argparse.Namespace
    settings: Settings
    judge: str

    @classmethod
    def from_args(cls, args: argparse.Namespace, overrides: Mapping[str, Any] | None = None) -> ServeSpec:
        """The decisions on parsed flags. ``overrides`` are Settings fields from a launcher that has no
        environment of its own to set (a Serve config's ``settings``); serve's flags win over them, and they
        over ``LIBRA_*``. Raises pydantic's ValidationError for a bad setting. Fixes ``args.dtype`` in place
        for the nano judge."""
        overrides = dict(overrides or {})
        # --log-level is vLLM's own flag; it sets the service's level too (else the override, else LIBRA_LOG_LEVEL).
        level = getattr(args, "log_level", None) or overrides.pop("log_level", None) or Settings().log_level
        # A flag not given is absent from args (its default is SUPPRESS): Settings then takes the override, else
        # the variable, else the default. Init arguments beat the environment in pydantic-settings.
        given = {name: getattr(args, name) for name in OWN_FLAGS if name not in EAGER and hasattr(args, name)}
        settings = Settings(**{**overrides, **given, "host": args.host, "port": args.port, "judge": args.judge,
                               "judges_dir": args.judges_dir, "log_level": level})
        judge = settings.resolve_judge(args.model)
        if judge_kind(judge, settings) == "scalar" and getattr(args, "runner", None) == "auto":
            # A scalar profile's model is a sequence classifier: vLLM's pooling runner (it resolves --convert
            # classify and LAST pooling for a *ForSequenceClassification model; ../docs/scalar-rewards.md).
            args.runner = "pooling"
        if settings.is_nano(args.model) and args.dtype == "auto":
            # vLLM would run the fp32 checkpoint in bf16 on CPU; a 1M-parameter model keeps its precision.
            args.dtype = "float32"
            args.served_model_name = args.served_model_name or ["nano-judge"]
        return cls(args, settings, judge)


class ModelKindError(ValueError):
    """The model cannot run the judge's kind (a generative model for a scalar profile, or the reverse); the
    message is one line naming the model, the profile and what is missing."""


# Architectures (config.json "architectures") that carry a classification head a scalar profile reads.
SCALAR_ARCHITECTURES = ("ForSequenceClassification", "ForRewardModel")


def judge_kind(judge: str, settings: Settings) -> str | None:
    """The kind of profile ``judge`` (None when it does not load: ``build_app`` says why)."""
    from service.judge.profiles import ProfileError, load_profile

    try:
        return load_profile(judge, settings.extra_judge_dirs).kind
    except ProfileError:
        return None


def check_model_kind(spec: ServeSpec) -> None:
    """Refuse, before any engine starts, a model that cannot serve the default judge's kind: a scalar profile
    needs a one-label sequence classifier (``*ForSequenceClassification`` with num_labels 1, or a
    ``*ForRewardModel``); a generative profile needs a model that generates (not a classifier). Reads the
    model's config.json only (transformers' AutoConfig); raises ``ModelKindError``."""
    from transformers import AutoConfig

    kind = judge_kind(spec.judge, spec.settings)
    if kind is None:
        return
    args = spec.args
    runner = getattr(args, "runner", "auto")
    if kind == "scalar" and runner != "pooling":
        raise ModelKindError(f"judge {spec.judge!r} is a scalar profile and needs vLLM's pooling runner, but "
                             f"--runner is {runner!r}: leave it out (the service sets it) or give --runner pooling")
    try:
        config = AutoConfig.from_pretrained(args.model, revision=getattr(args, "revision", None),
                                            trust_remote_code=bool(getattr(args, "trust_remote_code", False)))
    except Exception:  # noqa: BLE001 - an unreadable model is vLLM's to report, in its own words
        return
    archs = list(getattr(config, "architectures", None) or [])
    classifier = any(a.endswith(SCALAR_ARCHITECTURES) for a in archs)
    shown = ", ".join(archs) or "no architectures in config.json"
    if kind == "scalar":
        if not classifier:
            raise ModelKindError(
                f"model {args.model} ({shown}) has no classification head, and judge {spec.judge!r} is a scalar "
                "profile: it needs a reward model, a *ForSequenceClassification with one label or a *ForRewardModel "
                "(e.g. Skywork/Skywork-Reward-V2-Llama-3.1-8B); give such a model, or a generative judge profile")
        labels = getattr(config, "num_labels", 1)
        if any(a.endswith("ForSequenceClassification") for a in archs) and labels != 1:
            raise ModelKindError(
                f"model {args.model} ({shown}) has {labels} labels, and judge {spec.judge!r} is a scalar profile: "
                "it reads one score (num_labels 1, a Bradley-Terry reward model)")
    elif classifier:
        raise ModelKindError(
            f"model {args.model} ({shown}) is a classifier (a scalar reward model) with no language-model head, and "
            f"judge {spec.judge!r} is a generative profile that needs one to write its verdict; give a scalar "
            "profile (--judge skywork-reward-v2, or your own with kind = \"scalar\") or a generative model")


def resolve(argv: Sequence[str], overrides: Mapping[str, Any] | None = None) -> ServeSpec:
    """``libra-serve serve``'s flags (after ``LIBRA_VLLM_ARGS``) as one ServeSpec; a bad flag exits as argparse does."""
    return ServeSpec.from_args(parse_serve_args(argv), overrides)
