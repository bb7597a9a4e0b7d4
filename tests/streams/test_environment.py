"""The environment: unknown names are warnings with a did-you-mean, Kubernetes service
links are recognised and ignored (also where they collide with a real setting)."""

from __future__ import annotations

from herald.streams.environment import SERVICE_LINK, UNKNOWN, Note, audit, is_service_link
from herald.streams.settings import Settings

# What Kubernetes injects for a Service named "herald" (port 8080) and one named
# "herald-smtp" (port 25) in the same namespace.
KUBERNETES = {
    "HERALD_PORT": "tcp://10.0.0.7:8080",
    "HERALD_SERVICE_HOST": "10.0.0.7",
    "HERALD_SERVICE_PORT": "8080",
    "HERALD_SERVICE_PORT_HTTP": "8080",
    "HERALD_PORT_8080_TCP": "tcp://10.0.0.7:8080",
    "HERALD_PORT_8080_TCP_PROTO": "tcp",
    "HERALD_PORT_8080_TCP_PORT": "8080",
    "HERALD_PORT_8080_TCP_ADDR": "10.0.0.7",
    "HERALD_SMTP_PORT": "tcp://10.0.0.9:25",
    "HERALD_SMTP_SERVICE_HOST": "10.0.0.9",
}


def test_kubernetes_service_links_are_ignored_and_the_defaults_kept() -> None:
    settings = Settings.from_env({**KUBERNETES, "HERALD_PARTITIONS": "16"})
    assert settings.port == 8080 and settings.smtp_port == 25  # defaults, not a crash
    assert settings.partitions == 16
    notes = audit(KUBERNETES, Settings.variables())
    assert {n.name for n in notes} == set(KUBERNETES)
    assert {n.kind for n in notes} == {SERVICE_LINK}


def test_a_real_port_value_is_still_read() -> None:
    settings = Settings.from_env({"HERALD_PORT": "9090", "HERALD_SMTP_PORT": "2525"})
    assert (settings.port, settings.smtp_port) == (9090, 2525)
    assert audit({"HERALD_PORT": "9090"}, Settings.variables()) == []


def test_unknown_names_are_notes_with_a_did_you_mean() -> None:
    env = {"HERALD_PARTITONS": "8", "HERALD_FROBNICATE": "1", "HERALD_TEST_REDIS_URL": "x",
           "OTHER": "y"}
    settings = Settings.from_env(env)
    assert settings.partitions == 64  # the typo is not read
    assert audit(env, Settings.variables()) == [
        Note(UNKNOWN, "HERALD_FROBNICATE", None),
        Note(UNKNOWN, "HERALD_PARTITONS", "HERALD_PARTITIONS"),
    ]


def test_service_link_shapes() -> None:
    assert is_service_link("HERALD_API_PORT", "udp://10.1.2.3:53")
    assert is_service_link("HERALD_PORT_53_UDP_ADDR", "10.1.2.3")
    assert not is_service_link("HERALD_PORT", "8080")
    assert not is_service_link("HERALD_PORT", "tcp://10.0.0.7")  # no port: not a link
    assert not is_service_link("HERALD_HOST", "tcp://10.0.0.7:80")  # not a *_PORT name
