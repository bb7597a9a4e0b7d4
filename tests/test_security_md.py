"""SECURITY.md stays true: every OWASP API Top 10 (2023) row is there and every test it
names exists (a function of that name in that file)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "SECURITY.md"
NAMED = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")


def test_every_owasp_row_names_existing_tests() -> None:
    text = DOC.read_text(encoding="utf-8")
    rows = [line for line in text.splitlines() if line.startswith("| **API")]
    assert [re.search(r"API(\d+)", row).group(1) for row in rows] == [  # type: ignore[union-attr]
        str(n) for n in range(1, 11)]
    for row in rows:
        named = NAMED.findall(row)
        assert named, row[:40]
        for path, name in named:
            source = (REPO / path).read_text(encoding="utf-8")
            assert re.search(rf"^(async )?def {name}\(", source, re.M), f"{path}::{name}"


def test_reporting_and_threat_model_are_there() -> None:
    text = DOC.read_text(encoding="utf-8")
    for heading in ("## Reporting a vulnerability", "## Threat model",
                    "## OWASP API Security Top 10 (2023)"):
        assert heading in text
    for party in ("**Service**", "**End user**", "**Operator**", "**Network**"):
        assert party in text
