"""The files the package metadata names are in the checkout (hatch puts LICENSE in the wheel
and the sdist by default: ``License-File: LICENSE``)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_license_the_metadata_names_is_there() -> None:
    assert 'license = { text = "MIT" }' in (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License\n")
    assert "Copyright (c) 2026 the chanjing-async authors" in text
