"""The serve command line: engine flags from the environment for containers, a flag per setting, the command
line wins."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.config import NANO_JUDGE_PATH, Settings
from service.launch import (
    ENGINE_FLAGS,
    ENV_ONLY,
    OWN_FLAGS,
    parse_serve_args,
    resolve,
    serve_parser,
    setting_default,
    setting_env,
    setting_flag,
)


def test_model_and_engine_flags_from_the_environment(monkeypatch):
    monkeypatch.delenv("LIBRA_MODEL", raising=False)
    monkeypatch.delenv("LIBRA_VLLM_ARGS", raising=False)
    args = parse_serve_args([])
    assert args.model == str(NANO_JUDGE_PATH) and args.tensor_parallel_size == 1

    monkeypatch.setenv("LIBRA_MODEL", "/models/judge")
    monkeypatch.setenv("LIBRA_VLLM_ARGS",
                       "--tensor-parallel-size 2 --max-model-len 16384 --served-model-name 'my judge'")
    args = parse_serve_args([])
    assert args.model == "/models/judge"
    assert (args.tensor_parallel_size, args.max_model_len, args.served_model_name) == (2, 16384, ["my judge"])

    args = parse_serve_args(["--model", "/other", "--max-model-len", "8192"])
    assert args.model == "/other" and args.max_model_len == 8192 and args.tensor_parallel_size == 2


def test_libra_serve_ray_without_ray_is_one_clear_line():
    """The `ray` extra missing: `libra-serve ray` stops with one line naming the install, whether or not
    this venv has Ray (CI installs it for `make test-ray`): the import of ray is blocked here."""
    import subprocess
    import sys

    blocked = ("import sys; sys.modules['ray'] = None; "
               "from service.cli import main; main(['ray', '--num-replicas', '1'])")
    proc = subprocess.run([sys.executable, "-c", blocked], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("libra-serve ray: Ray Serve is not installed")
    assert "pip install 'libra-serve[ray]'" in lines[0]


@pytest.fixture
def no_libra_env(monkeypatch):
    """No LIBRA_* variable from the machine running the tests."""
    import os

    for name in [n for n in os.environ if n.startswith("LIBRA_")]:
        monkeypatch.delenv(name)
    return monkeypatch


def test_no_setting_flag_is_one_of_vllms():
    """A setting's flag (or its dest) that vLLM also defines would be taken by one of the two, silently or,
    in a newer vLLM, as argparse's conflict error at every start: checked against vLLM's own parser."""
    from service.engine.vllm_engine import add_engine_args, engine_parser_class

    vllm = engine_parser_class()()
    add_engine_args(vllm)
    vllm_flags = {flag for action in vllm._actions for flag in action.option_strings}
    vllm_dests = {action.dest for action in vllm._actions}
    own = {name: setting_flag(name) for name in OWN_FLAGS}
    clashes = {name: flag for name, flag in own.items()
               if {flag, f"--no-{flag[2:]}"} & vllm_flags or name in vllm_dests}
    assert clashes == {}, f"Settings fields whose flag vLLM defines too: {clashes}"
    # The settings that are vLLM's flags on purpose must still be vLLM's (else they would have no flag at all).
    assert set(ENGINE_FLAGS.values()) <= vllm_flags
    assert set(Settings.model_fields) == set(OWN_FLAGS) | set(ENGINE_FLAGS) | ENV_ONLY


def test_every_setting_is_in_help_with_its_variable_and_default(no_libra_env):
    no_libra_env.setenv("LIBRA_API_KEYS", "s3cret-key")
    no_libra_env.setenv("LIBRA_ADMISSION_BUDGET", "77")
    text = " ".join(serve_parser().format_help().split())  # unwrapped
    for name in Settings.model_fields:
        assert setting_env(name) in text, name
        if name in OWN_FLAGS:
            flag = setting_flag(name)
            assert f"{flag} " in text or f"{flag}, --no-{flag[2:]} " in text, name
            assert f"(env {setting_env(name)}, default {setting_default(name)})" in text, name
    assert "(env LIBRA_ADMISSION_BUDGET, default 8192)" in text  # the field's default, not the environment's
    assert "s3cret-key" not in text
    assert "--model (env LIBRA_MODEL) and --log-level (env LIBRA_LOG_LEVEL)" in text
    assert "LIBRA_VLLM_ARGS has no flag" in text


def test_setting_flags_win_over_the_environment_and_overrides(no_libra_env):
    spec = resolve([])
    assert (spec.settings.admission_budget, spec.settings.metrics_auth, spec.settings.trainer_timeout_s) \
        == (8192, False, 100.0)

    no_libra_env.setenv("LIBRA_ADMISSION_BUDGET", "100")
    no_libra_env.setenv("LIBRA_METRICS_AUTH", "true")
    no_libra_env.setenv("LIBRA_JUDGES_DIR", "/env/judges")
    spec = resolve([])
    assert (spec.settings.admission_budget, spec.settings.metrics_auth) == (100, True)
    assert spec.settings.judges_dir == Path("/env/judges")
    # A launcher's overrides (a Serve config's `settings`) beat the environment...
    spec = resolve([], {"admission_budget": 50, "trainer_timeout_s": 90})
    assert (spec.settings.admission_budget, spec.settings.trainer_timeout_s) == (50, 90.0)
    # ... and the command line beats both, flag by flag.
    spec = resolve(["--admission-budget", "7", "--no-metrics-auth", "--api-keys-file", "/k", "--judges-dir", "/j"],
                   {"admission_budget": 50, "trainer_timeout_s": 90})
    assert (spec.settings.admission_budget, spec.settings.metrics_auth, spec.settings.trainer_timeout_s) \
        == (7, False, 90.0)
    assert (spec.settings.api_keys_file, spec.settings.judges_dir) == (Path("/k"), Path("/j"))

    no_libra_env.setenv("LIBRA_VLLM_ARGS", "--cache-mb 1 --max-model-len 512")
    spec = resolve(["--cache-mb", "2"])
    assert (spec.settings.cache_mb, spec.args.max_model_len) == (2, 512)  # after LIBRA_VLLM_ARGS, the line wins


def test_the_first_four_flags_parse_as_before(no_libra_env):
    args = parse_serve_args([])
    assert (args.host, args.port, args.judge, args.judges_dir) == ("127.0.0.1", 8000, None, None)
    no_libra_env.setenv("LIBRA_HOST", "0.0.0.0")
    no_libra_env.setenv("LIBRA_PORT", "9000")
    no_libra_env.setenv("LIBRA_JUDGE", "libra")
    args = parse_serve_args([])
    assert (args.host, args.port, args.judge) == ("0.0.0.0", 9000, "libra")
    args = parse_serve_args(["--host", "::1", "--port", "1234", "--judge", "nano", "--judges-dir", "/p"])
    assert (args.host, args.port, args.judge, args.judges_dir) == ("::1", 1234, "nano", "/p")
    assert not hasattr(args, "admission_budget")  # a setting not given stays with Settings to resolve


def test_a_bad_setting_flag_is_argparses_one_line_error(no_libra_env, capsys):
    with pytest.raises(SystemExit):
        parse_serve_args(["--admission-budget", "0"])
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last == "libra-serve serve: error: argument --admission-budget: '0': Input should be greater than or " \
                   "equal to 1"
