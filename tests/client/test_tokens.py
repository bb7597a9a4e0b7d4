"""``herald_client.mint_token``: the tokens the server accepts, made without PyJWT."""

from __future__ import annotations

import time

import jwt
import pytest

from herald_client import mint_token

SECRET = "s" * 40


def test_a_token_the_server_library_verifies() -> None:
    token = mint_token(SECRET, "alice", 120)
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], options={"require": ["exp", "sub"]})
    assert claims["sub"] == "alice"
    assert claims["exp"] - time.time() == pytest.approx(120, abs=3)
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, "t" * 40, algorithms=["HS256"])


def test_refuses_a_short_secret_and_no_lifetime() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        mint_token("short", "alice")
    with pytest.raises(ValueError, match="positive"):
        mint_token(SECRET, "alice", 0)
