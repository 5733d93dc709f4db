"""The licence holds together: LICENSE is the Apache-2.0 text, both packages declare Apache-2.0 and ship
the file, and NOTICE has an entry for every judge profile, so a profile cannot be added without one."""

from __future__ import annotations

import hashlib
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROFILES = sorted((ROOT / "service" / "judges").glob("*.toml"))
# SHA-256 of https://www.apache.org/licenses/LICENSE-2.0.txt, byte for byte (its appendix left as a template:
# our copyright line belongs in NOTICE).
APACHE_2_0_SHA256 = "cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30"
PACKAGES = {"libra-serve": ROOT, "libra-serve-client": ROOT / "client"}


def notice() -> str:
    return (ROOT / "NOTICE").read_text(encoding="utf-8")


@pytest.mark.parametrize("path", ["LICENSE", "client/LICENSE"])
def test_license_is_the_apache_2_0_text(path):
    text = (ROOT / path).read_bytes()
    assert b"Apache License\n                           Version 2.0, January 2004" in text
    assert hashlib.sha256(text).hexdigest() == APACHE_2_0_SHA256


@pytest.mark.parametrize("name", sorted(PACKAGES))
def test_both_packages_declare_apache_2_0_and_ship_the_file(name):
    folder = PACKAGES[name]
    config = tomllib.loads((folder / "pyproject.toml").read_text(encoding="utf-8"))
    project = config["project"]
    assert project["name"] == name
    assert project["license"] == "Apache-2.0"  # PEP 639: an SPDX expression, not a table
    assert "LICENSE" in project["license-files"]
    assert all((folder / pattern).is_file() for pattern in project["license-files"])
    assert not any(c.startswith("License ::") for c in project.get("classifiers", []))  # PEP 639 forbids both
    # The PEP 639 fields need setuptools 77 or newer to build.
    (setuptools,) = [r for r in config["build-system"]["requires"] if r.startswith("setuptools")]
    minimum = re.fullmatch(r"setuptools>=(\d+)(?:\.\d+)*", setuptools)
    assert minimum and int(minimum.group(1)) >= 77


def test_the_server_wheel_ships_notice_too():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert "NOTICE" in project["license-files"]


def test_there_are_profiles_to_check():
    assert len(PROFILES) >= 10


@pytest.mark.parametrize("profile", PROFILES, ids=[p.stem for p in PROFILES])
def test_notice_names_every_profile(profile):
    text = notice()
    assert f"service/judges/{profile.name}" in text, f"NOTICE has no entry for {profile.name}"
    origin = tomllib.loads(profile.read_text(encoding="utf-8"))["origin"]
    assert origin.startswith(("ours:", "published:"))
    if origin.startswith("published:"):
        # A published prompt's entry gives the source's licence as found (or says it was not found), and
        # the full commit the profile cites by its short form.
        entry = text[text.index(f"(service/judges/{profile.name}"):]
        entry = entry[: entry.index("\n\n")]
        assert "Licence:" in entry
        cited = re.search(r"@ ([0-9a-f]{7,40})\b", origin)
        if cited:
            assert re.search(rf"Commit:\s+{cited.group(1)}[0-9a-f]*\b", entry), entry
