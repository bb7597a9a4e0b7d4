"""The README's ``herald_client`` example, copied as it is, runs against a real
``herald run`` (only its URL and the service key are filled in)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.client.conftest import Running

README = Path(__file__).resolve().parents[2] / "README.md"
pytestmark = pytest.mark.slow


def example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    return next(b for b in blocks if "from herald_client import" in b)


def test_the_readme_example_runs(herald_server: Running, tmp_path: Path) -> None:
    code = example()
    assert "http://127.0.0.1:8080" in code and "hk_your_service_key" in code
    code = code.replace("http://127.0.0.1:8080", herald_server.url)
    code = code.replace("hk_your_service_key", herald_server.api_key)
    ran = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, timeout=60)
    assert ran.returncode == 0, ran.stderr
    first, second, third = ran.stdout.splitlines()
    event_id, duplicate = first.split()
    assert len(event_id) == 26 and duplicate == "False"
    assert second.startswith("1 ") and "Your order has shipped" in second
    assert third == "422 title"
    again = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                           text=True, timeout=60, check=True)
    assert again.stdout.splitlines()[0] == f"{event_id} True"  # the idempotency key held
