"""The installed distribution: two top-level names (the server ``herald`` and the HTTP
client ``herald_client``), every module in them, the README's example working from a
wheel installed into a fresh virtual environment."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
SETUPTOOLS = PYPROJECT["tool"]["setuptools"]
ROOMS = {"herald": "scripts", "herald.streams": "streams", "herald.consumers": "consumers",
         "herald.api": "api"}
CLIENT = "herald_client"  # its own folder at the top level, its own name
TOP_LEVEL = {"herald", CLIENT}


def _package_folders() -> dict[str, Path]:
    """Every package folder of the rooms, under its installed name."""
    out = {}
    for name, folder in ROOMS.items():
        root = REPO / folder
        for init in root.rglob("__init__.py"):
            rel = init.parent.relative_to(root)
            if name == "herald" and rel.parts and f"herald.{rel.parts[0]}" in ROOMS:
                continue
            out[".".join([name, *rel.parts])] = init.parent
    out[CLIENT] = REPO / CLIENT
    return out


def test_the_package_list_names_every_package_folder() -> None:
    assert SETUPTOOLS["package-dir"] == ROOMS
    assert sorted(SETUPTOOLS["packages"]) == sorted(_package_folders())


def test_nothing_imports_a_room_by_its_folder_name() -> None:
    bare = re.compile(r"^\s*(from|import) (streams|consumers|api|scripts)\b", re.M)
    offenders = [str(path.relative_to(REPO))
                 for folder in [*ROOMS.values(), "tests"]
                 for path in (REPO / folder).rglob("*.py")
                 if bare.search(path.read_text(encoding="utf-8"))]
    assert offenders == []


def test_the_client_imports_nothing_of_the_server() -> None:
    server = re.compile(r"^\s*(from|import) herald(\.|\s|$)", re.M)
    offenders = [path.name for path in (REPO / CLIENT).rglob("*.py")
                 if server.search(path.read_text(encoding="utf-8"))]
    assert offenders == []


def _readme_example() -> str:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    example = next(b for b in blocks if "from herald import" in b)
    assert "herald." not in example.replace("from herald import", "")  # public names only
    return example


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_wheel_installs_herald_only_and_the_readme_example_runs(
        tmp_path: Path, redis_url: str) -> None:
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--no-build-isolation", "--wheel-dir", str(dist), str(REPO)],
                   check=True, capture_output=True)
    (wheel,) = dist.glob("herald-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert {t for t in tops if not t.endswith((".dist-info", ".data"))} == TOP_LEVEL
    for name, folder in _package_folders().items():  # every module and script file
        for path in folder.iterdir():
            if path.suffix in {".py", ".lua"}:
                assert f"{name.replace('.', '/')}/{path.name}" in names
    assert "herald/streams/lua/producer_append.lua" in names
    assert "herald/api/pages/index.html" in names
    assert "herald_client/py.typed" in names

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", str(wheel)],
                   check=True, capture_output=True)
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()"
                           "['purelib'])"], check=True, capture_output=True, text=True)
    installed = {p.name for p in Path(site.stdout.strip()).iterdir()}
    assert TOP_LEVEL <= installed
    assert not installed & set(ROOMS.values())  # no streams/, consumers/, api/, scripts/

    env = {k: v for k, v in os.environ.items() if not k.startswith(("HERALD_", "REDIS_"))}
    env.update(REDIS_URL=redis_url, HERALD_PREFIX=f"wheel{os.getpid()}", HERALD_PARTITIONS="8")
    helped = subprocess.run([str(env_dir / "bin" / "herald"), "--help"], env=env, cwd=tmp_path,
                            capture_output=True, text=True, check=True)
    assert "publish" in helped.stdout
    ran = subprocess.run([str(python), "-c", _readme_example()], env=env, cwd=tmp_path,
                         capture_output=True, text=True)
    assert ran.returncode == 0, ran.stderr
    event_id, position, duplicate = ran.stdout.split()
    assert len(event_id) == 26 and "-" in position and duplicate == "False"
    again = subprocess.run([str(python), "-c", _readme_example()], env=env, cwd=tmp_path,
                           capture_output=True, text=True, check=True)
    assert again.stdout.split() == [event_id, position, "True"]  # the idempotency key held
    where = subprocess.run([str(python), "-c", "import herald; print(herald.__file__)"],
                           env=env, cwd=tmp_path, capture_output=True, text=True, check=True)
    assert where.stdout.startswith(str(env_dir))
