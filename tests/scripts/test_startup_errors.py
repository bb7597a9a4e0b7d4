"""Start-up failures are one line and an exit code, never a traceback: the port in use,
bad TLS files; and a pod with Kubernetes' injected variables starts."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import aiohttp
import orjson
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from herald.streams.server import free_port
from herald.streams.settings import Settings
from tests.api.conftest import SERVICE_KEY
from tests.scripts.test_server_commands import base_env, wait_healthy

HERALD = str(Path(sys.executable).with_name("herald"))
KUBERNETES = {"HERALD_PORT": "tcp://10.0.0.7:8080", "HERALD_SERVICE_HOST": "10.0.0.7",
              "HERALD_SERVICE_PORT": "8080", "HERALD_PORT_8080_TCP": "tcp://10.0.0.7:8080",
              "HERALD_PORT_8080_TCP_PROTO": "tcp", "HERALD_PORT_8080_TCP_PORT": "8080",
              "HERALD_PORT_8080_TCP_ADDR": "10.0.0.7"}


def herald(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([HERALD, *args], env=env, capture_output=True, text=True, timeout=60)


def one_line_error(done: subprocess.CompletedProcess[str], code: int, *words: str) -> str:
    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr
    line = done.stderr.strip().splitlines()[-1]
    assert line.startswith("herald: error: "), done.stderr
    for word in words:
        assert word in line, line
    return line


def server_env(settings: Settings, **extra: str) -> dict[str, str]:
    return base_env(REDIS_URL=settings.redis_url or "", HERALD_PREFIX=settings.prefix,
                    HERALD_PARTITIONS="8", HERALD_API_KEYS=SERVICE_KEY,
                    HERALD_DATA_DIR=str(settings.data_dir), HERALD_LOG_FORMAT="json", **extra)


@pytest.mark.parametrize("command", ["api", "run"])
def test_port_in_use(settings: Settings, command: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for workers in (["--workers", "2"] if command == "api" else [], []):
            done = herald(command, "--port", str(port), *workers, env=server_env(settings))
            one_line_error(done, 1, f"cannot listen on 127.0.0.1:{port}", "already in use")


def _certificate(folder: Path) -> tuple[Path, Path, Path]:
    """A self-signed certificate, its key, and a key that does not match it."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1).not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))
    paths = folder / "cert.pem", folder / "key.pem", folder / "other.pem"
    paths[0].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    for path, k in ((paths[1], key), (paths[2], ec.generate_private_key(ec.SECP256R1()))):
        path.write_bytes(k.private_bytes(serialization.Encoding.PEM,
                                         serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption()))
    return paths


def test_bad_tls_settings(settings: Settings, tmp_path: Path) -> None:
    cert, key, other = _certificate(tmp_path)
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    cases = [
        ({"HERALD_TLS_CERT": str(cert)}, "HERALD_TLS_KEY"),
        ({"HERALD_TLS_CERT": str(tmp_path / "missing.pem"), "HERALD_TLS_KEY": str(key)},
         "No such file"),
        ({"HERALD_TLS_CERT": str(garbage), "HERALD_TLS_KEY": str(key)}, "HERALD_TLS_CERT"),
        ({"HERALD_TLS_CERT": str(cert), "HERALD_TLS_KEY": str(other)}, "HERALD_TLS_CERT"),
    ]
    for extra, word in cases:
        for command in ("api", "run"):
            done = herald(command, "--port", str(free_port()), env=server_env(settings, **extra))
            one_line_error(done, 2, word)


async def test_tls_serves_https(settings: Settings, tmp_path: Path) -> None:
    cert, key, _ = _certificate(tmp_path)
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        HERALD, "api", "--port", str(port),
        env=server_env(settings, HERALD_TLS_CERT=str(cert), HERALD_TLS_KEY=str(key)),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    context = ssl.create_default_context(cafile=str(cert))
    try:
        connector = aiohttp.TCPConnector(ssl=context)
        async with aiohttp.ClientSession(connector=connector) as session:
            await wait_healthy(session, f"https://127.0.0.1:{port}", proc)
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 30)


async def test_a_pod_with_kubernetes_variables_starts(settings: Settings) -> None:
    """`herald run` with what Kubernetes injects for a Service named `herald`: it starts
    (the service links noted and ignored), and `herald config` shows HERALD_PORT at its
    default."""
    env = server_env(settings, **KUBERNETES, HERALD_PARTITONS="8")
    shown = herald("config", "--json", env=env)
    assert shown.returncode == 0, shown.stderr
    doc = orjson.loads(shown.stdout)
    port_row = next(r for r in doc["settings"] if r["name"] == "HERALD_PORT")
    assert port_row == {"name": "HERALD_PORT", "value": "8080", "source": "default"}
    kinds = {n["name"]: n["kind"] for n in doc["ignored"]}
    assert kinds == {**dict.fromkeys(KUBERNETES, "service_link"), "HERALD_PARTITONS": "unknown"}
    assert SERVICE_KEY not in shown.stdout

    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        HERALD, "run", "--port", str(port), env=env, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    try:
        assert proc.stdout is not None
        first = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        assert first.startswith(f"Herald is running at http://127.0.0.1:{port}/"), first
    finally:
        proc.terminate()
        _, err = await asyncio.wait_for(proc.communicate(), 40)
    assert proc.returncode == 0, err.decode()[-2000:]
    lines = [orjson.loads(raw) for raw in err.splitlines() if raw.startswith(b"{")]
    [links] = [line for line in lines if line["event"] == "service_links_ignored"]
    assert set(links["variables"]) == set(KUBERNETES)
    [typo] = [line for line in lines if line["event"] == "setting_unknown"]
    assert typo["variable"] == "HERALD_PARTITONS" and typo["suggestion"] == "HERALD_PARTITIONS"
    assert typo["level"] == "warning"
