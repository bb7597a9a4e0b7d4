"""The README stays true: every setting is documented, the two commands come first."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from herald.streams.settings import Settings

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def test_every_setting_is_in_the_readme() -> None:
    missing = [f.metadata["env"] for f in dataclasses.fields(Settings)
               if f"`{f.metadata['env']}`" not in README]
    assert missing == []


def test_the_two_commands_come_first() -> None:
    head = README[:1500]
    assert "make run" in head and "make test" in head
