"""Auth: service keys, user tokens, 401 vs 403, `me`, and no leak across users."""

from __future__ import annotations

import time

import jwt
import pytest

from herald.api.auth import Authenticator, Principal, act_for, fingerprint, mint_token
from herald.api.errors import Forbidden, Unauthorized, Unprocessable
from herald.streams.settings import Settings
from tests.api.conftest import OTHER_KEY, SECRET, SERVICE_KEY, ApiClient

ITEM = "01ARZ3NDEKTSV4RRFFQ69G5FAV"


@pytest.fixture
def auth(api_settings: Settings) -> Authenticator:
    return Authenticator(api_settings)


def test_service_keys_resolve_to_their_fingerprint(auth: Authenticator) -> None:
    expected = Principal("service", fingerprint(SERVICE_KEY),
                         frozenset({"publish", "read", "manage", "admin"}))
    assert auth.authenticate(f"Bearer {SERVICE_KEY}") == expected
    assert auth.authenticate(f"bearer   {OTHER_KEY}").subject == fingerprint(OTHER_KEY)
    assert fingerprint(SERVICE_KEY) != fingerprint(OTHER_KEY)
    assert SERVICE_KEY not in fingerprint(SERVICE_KEY)


def test_user_token_resolves_to_its_subject(auth: Authenticator) -> None:
    token = mint_token(SECRET, "alice", 60)
    claims = jwt.decode(token, SECRET, algorithms=["HS256"])
    assert auth.authenticate(f"Bearer {token}") == Principal("user", "alice",
                                                             issued_at=claims["iat"])
    assert claims["sub"] == "alice" and claims["exp"] - time.time() == pytest.approx(60, abs=2)


def _token(payload: dict[str, object], key: str = SECRET, alg: str = "HS256") -> str:
    return jwt.encode(payload, key, algorithm=alg)


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "missing"),
        ("", "missing"),
        ("Basic dXNlcjpwYXNz", "Bearer"),
        ("Bearer", "Bearer"),
        ("Bearer wrong-key", "neither"),
        (f"Bearer {SERVICE_KEY}x", "neither"),
        (f"Bearer {_token({'sub': 'alice', 'exp': int(time.time()) - 10})}", "expired"),
        (f"Bearer {_token({'sub': 'alice'})}", "exp"),
        (f"Bearer {_token({'exp': int(time.time()) + 3600})}", "sub"),
        (f"Bearer {_token({'sub': 'alice', 'exp': int(time.time()) + 3600}, 'x' * 40)}",
         "Signature"),
        (f"Bearer {_token({'sub': 'bad' + chr(9) + 'user', 'exp': int(time.time()) + 3600})}",
         "sub"),
        (f"Bearer {_token({'sub': 'me', 'exp': int(time.time()) + 3600})}", "reserved"),
        (f"Bearer {_token({'sub': 'alice', 'exp': int(time.time()) + 3600}, SECRET, 'HS512')}",
         "alg value"),
        ("Bearer a.b.c", "invalid"),
    ],
)
def test_bad_credentials_are_unauthorized(auth: Authenticator, header: str | None,
                                          reason: str) -> None:
    with pytest.raises(Unauthorized, match=reason):
        auth.authenticate(header)


def test_unsigned_token_is_refused(auth: Authenticator) -> None:
    unsigned = jwt.encode({"sub": "alice", "exp": int(time.time()) + 60}, None, algorithm="none")
    with pytest.raises(Unauthorized):
        auth.authenticate(f"Bearer {unsigned}")


def test_tokens_refused_when_no_secret_is_configured(settings: Settings) -> None:
    auth = Authenticator(settings.replace(api_keys=(SERVICE_KEY,)))
    with pytest.raises(Unauthorized):
        auth.authenticate(f"Bearer {mint_token(SECRET, 'alice', 60)}")


def test_act_for_rules() -> None:
    alice = Principal("user", "alice")
    service = Principal("service", "abc")
    assert act_for(alice, "me") == "alice"
    assert act_for(alice, "alice") == "alice"
    with pytest.raises(Forbidden):
        act_for(alice, "bob")
    with pytest.raises(Forbidden):
        act_for(alice, "bad user!")  # refused as another user's, not validated
    assert act_for(service, "bob") == "bob"
    with pytest.raises(Forbidden, match="me"):
        act_for(service, "me")
    with pytest.raises(Unprocessable):
        act_for(service, "alice\n")


async def test_http_401_for_missing_and_bad_credentials(api: ApiClient) -> None:
    for auth in (None, "nope", mint_token("y" * 40, "alice", 60)):
        answer = await api.get("/v1/users/alice/unread_count", auth=auth)
        assert answer.status == 401, answer.body
        assert answer.content_type == "application/problem+json"
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    expired = mint_token(SECRET, "alice", 1, now=time.time() - 120)
    answer = await api.get("/v1/users/me/inbox", auth=expired)
    assert answer.status == 401 and "expired" in answer.body["detail"]


async def test_user_token_cannot_call_service_routes(api: ApiClient) -> None:
    token = api.token("alice")
    answer = await api.post("/v1/notifications", auth=token, json={"user": "alice", "title": "x"})
    assert answer.status == 403
    answer = await api.post("/v1/notifications/batch", auth=token,
                            json={"notifications": [{"user": "alice", "title": "x"}]})
    assert answer.status == 403
    answer = await api.delete("/v1/scheduled/k1?user=alice", auth=token)
    assert answer.status == 403


async def test_cross_user_attempts_are_refused_without_leaking(api: ApiClient) -> None:
    """Every user route answers 403 for another user's path, item present or not."""
    published = await api.publish("bob", "bob's secret")
    real = published.body["id"]
    token = api.token("alice")
    for item in (real, ITEM):
        attempts = [
            ("GET", "/v1/users/bob/inbox"),
            ("GET", "/v1/users/bob/inbox?status=unread&limit=5"),
            ("GET", "/v1/users/bob/unread_count"),
            ("POST", f"/v1/users/bob/inbox/{item}/read"),
            ("POST", f"/v1/users/bob/inbox/{item}/unread"),
            ("POST", f"/v1/users/bob/inbox/{item}/archive"),
            ("POST", "/v1/users/bob/inbox/read_all"),
            ("DELETE", f"/v1/users/bob/inbox/{item}"),
        ]
        bodies = set()
        for method, path in attempts:
            answer = await api.call(method, path, auth=token)
            assert answer.status == 403, (method, path, answer.body)
            bodies.add(answer.body["detail"])
            assert "bob's secret" not in answer.raw.decode()
        assert bodies == {"a user token may act only for its own user"}
