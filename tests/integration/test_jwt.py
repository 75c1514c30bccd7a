"""Signed tokens of an identity provider: verified with PyJWT against one public key or the provider's JWKS."""

from __future__ import annotations

import http.server
import json
import threading
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from infra.http.auth import Authenticator, Unauthenticated

ISSUER, AUDIENCE = "https://id.example", "prism"


@pytest.fixture(scope="module")
def signing_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem(key) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def _token(key, kid: str = "k1", **claims) -> str:
    body = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "exp": int(time.time()) + 300,
        "sub": "ann",
        "tenant": "acme",
        "scope": "read analytics",
    } | claims
    return jwt.encode({k: v for k, v in body.items() if v is not None}, key, algorithm="RS256", headers={"kid": kid})


def _authenticator(settings, write_engine, **jwt_settings) -> Authenticator:
    return Authenticator(
        write_engine, settings.model_copy(update={"jwt_issuer": ISSUER, "jwt_audience": AUDIENCE, **jwt_settings})
    )


async def test_a_valid_token_proves_its_tenant_and_scopes(settings, write_engine, signing_key):
    auth = _authenticator(settings, write_engine, jwt_public_key=_pem(signing_key))
    found = await auth.principal(_token(signing_key))
    assert (found.tenant, found.scopes) == ("acme", frozenset({"read", "analytics"}))
    listed = await auth.principal(_token(signing_key, scope=None, scp=["commands", "admin"]))
    assert listed.scopes == frozenset({"commands"})  # unknown scopes grant nothing


@pytest.mark.parametrize(
    "claims, words",
    [
        ({"aud": "someone-else"}, "audience"),
        ({"iss": "https://evil.example"}, "issuer"),
        ({"exp": int(time.time()) - 10}, "expired"),
        ({"exp": None}, "exp"),
        ({"tenant": None}, "tenant"),
        ({"tenant": "Not A Tenant!"}, "tenant"),
    ],
)
async def test_tokens_with_wrong_claims_are_refused(settings, write_engine, signing_key, claims, words):
    auth = _authenticator(settings, write_engine, jwt_public_key=_pem(signing_key))
    with pytest.raises(Unauthenticated, match=f"(?i){words}"):
        await auth.principal(_token(signing_key, **claims))


async def test_a_token_signed_by_another_key_or_unsigned_is_refused(settings, write_engine, signing_key):
    auth = _authenticator(settings, write_engine, jwt_public_key=_pem(signing_key))
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(Unauthenticated, match=r"(?i)signature"):
        await auth.principal(_token(stranger))
    unsigned = jwt.encode(
        {"iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 60, "tenant": "acme", "scope": "read"},
        None,
        algorithm="none",
    )
    with pytest.raises(Unauthenticated):
        await auth.principal(unsigned)


async def test_the_providers_jwks_is_fetched_and_used(settings, write_engine, signing_key):
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(signing_key.public_key())) | {"kid": "k1", "use": "sig"}
    with _serving(json.dumps({"keys": [jwk]}).encode()) as url:
        auth = _authenticator(settings, write_engine, jwt_jwks_url=url)
        assert (await auth.principal(_token(signing_key))).tenant == "acme"
        with pytest.raises(Unauthenticated):
            await auth.principal(_token(signing_key, kid="unknown"))


class _Serving:
    def __init__(self, body: bytes) -> None:
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)

    def __enter__(self) -> str:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_port}/jwks.json"

    def __exit__(self, *_) -> None:
        self.server.shutdown()


def _serving(body: bytes) -> _Serving:
    return _Serving(body)
