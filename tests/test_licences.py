"""transship is proprietary (pyproject.toml): every package a run installs (requirements.lock) must carry a
licence that allows that. A copyleft licence fails the test unless it is listed below with why it is fine."""

from __future__ import annotations

import importlib.metadata as md
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Copyleft licences the project lives with, and why.
ACCEPTED = {
    "pycountry": "LGPL-2.1: used as an unmodified library (its country names), which the LGPL allows",
    "text-unidecode": "dual-licensed, Artistic License or GPL-2.0+: used under the Artistic License (via Prefect's "
                      "python-slugify)",
    "certifi": "MPL-2.0: file-level copyleft, used unmodified",
    "pathspec": "MPL-2.0: file-level copyleft, used unmodified",
    "orjson": "Apache-2.0 OR MIT, with MPL-2.0 parts: file-level copyleft, used unmodified (via Prefect)",
}
COPYLEFT = re.compile(r"\b(A?GPL|LGPL|GNU|MPL|Mozilla|EUPL|CDDL|SSPL|Commons Clause)\b", re.IGNORECASE)


def _runtime_packages() -> list[str]:
    return [line.split("==")[0].strip() for line in (ROOT / "requirements.lock").read_text().splitlines()
            if "==" in line and not line.lstrip().startswith("#")]


def _licence(name: str) -> str:
    meta = md.metadata(name)
    classifiers = [c for c in meta.get_all("Classifier") or [] if c.startswith("License")]
    return " | ".join([meta.get("License-Expression") or (meta.get("License") or "").split("\n")[0], *classifiers])


def test_the_project_states_its_licence():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == {"text": "Proprietary"}
    assert "## Licence" in (ROOT / "README.md").read_text()


def test_no_runtime_dependency_is_copyleft_unless_accepted():
    packages = _runtime_packages()
    assert len(packages) > 50 and "duckdb" in packages
    copyleft = {name: _licence(name) for name in packages if COPYLEFT.search(_licence(name))}
    assert set(copyleft) - set(ACCEPTED) == set(), copyleft


def test_the_removed_gpl_dependency_stays_out():
    """country_converter (GPL-3.0) was replaced by warehouse/partners.py's own tables; pandas came with it."""
    packages = set(_runtime_packages())
    assert not packages & {"country-converter", "pandas"}
    assert "prefect-dask" not in packages  # an extra: `pip install transship[dask]` for --dask-address
