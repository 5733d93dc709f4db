"""Logging: with JSON logs on, vLLM's lines are JSON too, in this process and in the processes vLLM starts
(which apply the logging config vLLM hands them, here the one setup_logging points VLLM_LOGGING_CONFIG_PATH at)."""

from __future__ import annotations

import json
import logging
import logging.config
import os
import subprocess
import sys

import pytest

from service.logs import setup_logging
from tests.helpers import ROOT

LOGGERS = ("", "vllm", "uvicorn", "uvicorn.error", "uvicorn.access")


@pytest.fixture(autouse=True)
def restore_logging(monkeypatch):
    """setup_logging reconfigures the process; put back what the other tests' loggers had."""
    for name in ("VLLM_LOGGING_CONFIG_PATH", "VLLM_CONFIGURE_LOGGING", "VLLM_LOGGING_LEVEL"):
        monkeypatch.delenv(name, raising=False)
    saved = {name: (lg.handlers[:], lg.level, lg.propagate, lg.disabled)
             for name in LOGGERS for lg in [logging.getLogger(name)]}
    yield
    path = os.environ.get("VLLM_LOGGING_CONFIG_PATH")
    if path and os.path.basename(path).startswith("libra-vllm-logging-"):
        os.unlink(path)  # removed at exit anyway; a test run need not leave them until then
    for name, (handlers, level, propagate, disabled) in saved.items():
        lg = logging.getLogger(name)
        lg.handlers[:], lg.propagate, lg.disabled = handlers, propagate, disabled
        lg.setLevel(level)


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_vllm_records_come_out_as_our_json(capsys):
    # What vLLM leaves behind when it configured itself first: its own text handler, not propagating.
    vllm = logging.getLogger("vllm")
    own = logging.StreamHandler(sys.stdout)
    own.setFormatter(logging.Formatter("INFO vllm says %(message)s"))
    vllm.handlers[:], vllm.propagate = [own], False

    setup_logging("info", json_logs=True)
    logging.getLogger("vllm.v1.engine.core").info("loaded %d layers\nin %.1f s", 4, 1.5)
    out = capsys.readouterr()
    assert out.out == ""  # vLLM's handler is gone
    [line] = json_lines(out.err)
    assert line["logger"] == "vllm.v1.engine.core" and line["level"] == "info"
    assert line["message"] == "loaded 4 layers\nin 1.5 s"  # one JSON line, the newline escaped
    assert len(out.err.strip().splitlines()) == 1


def test_the_config_vllm_applies_in_its_processes_writes_json(capsys):
    setup_logging("info", json_logs=True)
    path = os.environ["VLLM_LOGGING_CONFIG_PATH"]
    with open(path, encoding="utf-8") as f:
        config = json.load(f)
    # What vLLM does with it, here at engine start and in each child it starts.
    logging.config.dictConfig(config)
    logging.getLogger("vllm.worker").warning("child says hi")
    logging.getLogger("some.library").warning("a library's warning")  # (torch keeps its own handler once imported)
    logging.getLogger("uvicorn.access").info("GET / 200")  # re-enabled by dictConfig, still silent
    [vllm_line, library_line] = json_lines(capsys.readouterr().err)
    assert vllm_line["logger"] == "vllm.worker" and vllm_line["message"] == "child says hi"
    assert library_line["logger"] == "some.library"


def test_vllm_keeps_its_own_level_unless_told(capsys, monkeypatch):
    setup_logging("warning", json_logs=True)
    logging.getLogger("vllm.engine").info("vLLM's INFO lines, as in text mode")
    logging.getLogger("libra").info("below the service's level")
    assert [line["logger"] for line in json_lines(capsys.readouterr().err)] == ["vllm.engine"]
    setup_logging("info", json_logs=True, vllm_level="warning")  # vLLM's --log-level
    logging.getLogger("vllm.engine").info("now hidden")
    assert capsys.readouterr().err == ""
    with open(os.environ["VLLM_LOGGING_CONFIG_PATH"], encoding="utf-8") as f:
        assert json.load(f)["loggers"]["vllm"]["level"] == "WARNING"


def test_a_second_call_reuses_this_process_file():
    setup_logging("info", json_logs=True)
    first = os.environ["VLLM_LOGGING_CONFIG_PATH"]
    setup_logging("debug", json_logs=True)
    assert os.environ["VLLM_LOGGING_CONFIG_PATH"] == first
    with open(first, encoding="utf-8") as f:
        assert json.load(f)["root"]["level"] == "DEBUG"


def test_an_operators_vllm_logging_choice_is_kept(monkeypatch, tmp_path):
    theirs = tmp_path / "logging.json"
    monkeypatch.setenv("VLLM_LOGGING_CONFIG_PATH", str(theirs))
    setup_logging("info", json_logs=True)
    assert os.environ["VLLM_LOGGING_CONFIG_PATH"] == str(theirs)
    monkeypatch.delenv("VLLM_LOGGING_CONFIG_PATH")
    monkeypatch.setenv("VLLM_CONFIGURE_LOGGING", "0")  # vLLM refuses a config file then
    setup_logging("info", json_logs=True)
    assert "VLLM_LOGGING_CONFIG_PATH" not in os.environ


def test_text_logs_leave_vllm_its_own_format():
    setup_logging("info", json_logs=True)
    setup_logging("info", json_logs=False)
    assert "VLLM_LOGGING_CONFIG_PATH" not in os.environ


# A fresh interpreter: our logging first, then vLLM's logger module and vLLM's own logging setup, as the
# server runs them (no engine). Then, as a spawned engine core starts: nothing configured, only the
# environment inherited and vLLM's LoggingConfig, which vLLM applies before the core logs.
VLLM_SCRIPT = """
import logging, os, sys
from service.logs import setup_logging
setup_logging("info", json_logs=True)
from vllm.logger import configure_logging, init_logger
from vllm.config.logging import LoggingConfig
config = LoggingConfig()  # what EngineArgs.create_logging_config builds without logging flags
assert config.pylogging_config_file == os.environ["VLLM_LOGGING_CONFIG_PATH"], config
configure_logging(config)  # AsyncLLM's and the engine core's first step
init_logger("vllm.v1.engine.async_llm").info("parent: %s", "ready\\nsecond line")
root = logging.getLogger()
root.handlers[:] = []  # a spawned child starts with nothing configured
vllm = logging.getLogger("vllm")
vllm.handlers[:], vllm.propagate = [logging.StreamHandler(sys.stdout)], False
configure_logging(LoggingConfig())
init_logger("vllm.v1.engine.core").warning("child: engine core up")
"""


def test_vllm_lines_are_json_in_a_fresh_interpreter():
    env = {k: v for k, v in os.environ.items() if not k.startswith("VLLM_LOGGING") and k != "VLLM_CONFIGURE_LOGGING"}
    run = subprocess.run([sys.executable, "-c", VLLM_SCRIPT], capture_output=True, text=True, timeout=300,
                         cwd=ROOT, env=env)
    assert run.returncode == 0, run.stderr
    assert run.stdout == ""  # nothing on vLLM's own stream (its handler writes to stdout)
    lines = [json.loads(line) for line in run.stderr.splitlines()]  # every line one JSON object
    by_message = {line["message"]: line for line in lines}
    assert by_message["parent: ready\nsecond line"]["logger"] == "vllm.v1.engine.async_llm"
    assert by_message["child: engine core up"]["level"] == "warning"
