"""docs/configuration.md is what service/config_doc.py writes from Settings: a setting added, renamed or
redescribed without regenerating the page fails here."""

from __future__ import annotations

from pathlib import Path

from service.config import Settings
from service.config_doc import COMMAND, render
from service.launch import setting_env

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_configuration_doc_is_up_to_date():
    assert DOC.read_text(encoding="utf-8") == render(), f"docs/configuration.md is stale; regenerate it: {COMMAND}"


def test_configuration_doc_has_a_row_per_setting():
    rows = [line for line in render().splitlines() if line.startswith("| `")]
    assert [row.split("|")[1].strip() for row in rows] == [f"`{name}`" for name in Settings.model_fields]
    assert all(f"`{setting_env(name)}`" in row for name, row in zip(Settings.model_fields, rows, strict=True))
