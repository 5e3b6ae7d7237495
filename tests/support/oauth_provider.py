"""A real OAuth 2 / OpenID Connect provider on a loopback port, for sign-in tests.

One Starlette app served by uvicorn in a thread speaks three dialects over real HTTP:

- OpenID Connect: discovery document, JWKS, `/authorize`, `/token` (RS256 `id_token`),
  `/userinfo`;
- GitHub: `/login/oauth/authorize`, `/login/oauth/access_token`, `/user`, `/user/emails`;
- Discord: `/oauth2/authorize`, `/api/oauth2/token`, `/api/users/@me`.

Authorization auto-approves as `provider.person`. Codes are single use and bound to the
client, redirect URI and PKCE challenge (S256), as a real provider binds them. Switches make
it misbehave: `deny` (error redirect), `token_error` (refused exchange), `id_token_fault`
("bad_signature", "wrong_audience", "wrong_nonce").
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import jwt
import uvicorn
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from tests.support.services import free_port

__all__ = ["CLIENT_ID", "CLIENT_SECRET", "OAuthProvider", "Person", "start_oauth_provider"]

CLIENT_ID = "stellar-test-client"
CLIENT_SECRET = "stellar-test-secret"


@dataclass
class Person:
    """Who signs in at the provider."""

    subject: str = "1001"
    email: str | None = "grace@example.test"
    email_verified: bool = True
    name: str = "Grace Hopper"


@dataclass
class _Grant:
    client_id: str
    redirect_uri: str
    challenge: str
    nonce: str | None
    person: Person


@dataclass
class OAuthProvider:
    """The running provider, its switches and what it saw."""

    url: str = ""
    person: Person = field(default_factory=Person)
    deny: str | None = None
    token_error: bool = False
    id_token_fault: str | None = None
    authorize_requests: list[dict[str, str]] = field(default_factory=list)
    _codes: dict[str, _Grant] = field(default_factory=dict)
    _tokens: dict[str, Person] = field(default_factory=dict)
    _key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = None

    def reset(self) -> None:
        """Back to a well-behaved provider signing in the default person."""
        self.person, self.deny, self.token_error, self.id_token_fault = Person(), None, False, None
        self.authorize_requests.clear()

    # ---- endpoints -------------------------------------------------------------------

    async def discovery(self, request: Request) -> Response:
        """The OpenID Connect discovery document."""
        return JSONResponse(
            {
                "issuer": self.url,
                "authorization_endpoint": f"{self.url}/authorize",
                "token_endpoint": f"{self.url}/token",
                "userinfo_endpoint": f"{self.url}/userinfo",
                "jwks_uri": f"{self.url}/jwks",
                "response_types_supported": ["code"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256"],
            }
        )

    async def jwks(self, request: Request) -> Response:
        """The public signing key."""
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self._key.public_key()))
        return JSONResponse({"keys": [{**jwk, "kid": "test-key", "use": "sig", "alg": "RS256"}]})

    async def authorize(self, request: Request) -> Response:
        """Auto-approve and send the browser back with a code (or the configured error)."""
        params = dict(request.query_params)
        self.authorize_requests.append(params)
        redirect_uri, state = params.get("redirect_uri", ""), params.get("state", "")
        if params.get("client_id") != CLIENT_ID or not redirect_uri:
            return JSONResponse({"error": "invalid_client"}, status_code=400)
        if self.deny:
            return RedirectResponse(
                f"{redirect_uri}?{urlencode({'error': self.deny, 'state': state})}"
            )
        if params.get("code_challenge_method") != "S256" or not params.get("code_challenge"):
            return JSONResponse({"error": "invalid_request"}, status_code=400)
        code = secrets.token_urlsafe(16)
        self._codes[code] = _Grant(
            CLIENT_ID, redirect_uri, params["code_challenge"], params.get("nonce"), self.person
        )
        return RedirectResponse(f"{redirect_uri}?{urlencode({'code': code, 'state': state})}")

    async def token(self, request: Request) -> Response:
        """Exchange a code (once) for tokens, checking client, redirect URI and PKCE."""
        form = await request.form()
        grant = self._codes.pop(str(form.get("code", "")), None)
        verifier = str(form.get("code_verifier", ""))
        digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
        if (
            self.token_error
            or grant is None
            or form.get("client_id") != CLIENT_ID
            or form.get("client_secret") != CLIENT_SECRET
            or form.get("redirect_uri") != grant.redirect_uri
            or digest.decode() != grant.challenge
        ):
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        access = secrets.token_urlsafe(16)
        self._tokens[access] = grant.person
        body: dict[str, Any] = {"access_token": access, "token_type": "Bearer", "expires_in": 3600}
        if grant.nonce is not None:
            body["id_token"] = self._id_token(grant)
        return JSONResponse(body)

    def _id_token(self, grant: _Grant) -> str:
        now = int(time.time())
        person = grant.person
        claims: dict[str, Any] = {
            "iss": self.url,
            "sub": person.subject,
            "aud": "someone-else" if self.id_token_fault == "wrong_audience" else CLIENT_ID,
            "iat": now,
            "exp": now + 300,
            "nonce": "another-nonce" if self.id_token_fault == "wrong_nonce" else grant.nonce,
            "email": person.email,
            "email_verified": person.email_verified,
            "name": person.name,
        }
        key: Any = self._key
        if self.id_token_fault == "bad_signature":
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": "test-key"})

    def _person(self, request: Request) -> Person | None:
        auth = request.headers.get("authorization", "")
        return self._tokens.get(auth.removeprefix("Bearer ").strip())

    async def userinfo(self, request: Request) -> Response:
        """OIDC userinfo."""
        person = self._person(request)
        if person is None:
            return JSONResponse({"error": "invalid_token"}, status_code=401)
        return JSONResponse({"sub": person.subject, "email": person.email, "name": person.name})

    async def github_user(self, request: Request) -> Response:
        """GitHub's /user."""
        person = self._person(request)
        if person is None:
            return JSONResponse({"message": "Bad credentials"}, status_code=401)
        login = person.name.split()[0].lower()
        return JSONResponse({"id": int(person.subject), "login": login, "name": person.name})

    async def github_emails(self, request: Request) -> Response:
        """GitHub's /user/emails."""
        person = self._person(request)
        if person is None:
            return JSONResponse({"message": "Bad credentials"}, status_code=401)
        emails = [{"email": person.email, "primary": True, "verified": person.email_verified}]
        return JSONResponse(emails if person.email else [])

    async def discord_user(self, request: Request) -> Response:
        """Discord's /users/@me."""
        person = self._person(request)
        if person is None:
            return JSONResponse({"message": "401: Unauthorized"}, status_code=401)
        return JSONResponse(
            {
                "id": person.subject,
                "username": person.name.split()[0].lower(),
                "global_name": person.name,
                "email": person.email,
                "verified": person.email_verified,
            }
        )

    # ---- lifecycle -------------------------------------------------------------------

    def app(self) -> Starlette:
        """The Starlette app with every dialect's routes."""
        return Starlette(
            routes=[
                Route("/.well-known/openid-configuration", self.discovery),
                Route("/jwks", self.jwks),
                Route("/authorize", self.authorize),
                Route("/login/oauth/authorize", self.authorize),
                Route("/oauth2/authorize", self.authorize),
                Route("/token", self.token, methods=["POST"]),
                Route("/login/oauth/access_token", self.token, methods=["POST"]),
                Route("/api/oauth2/token", self.token, methods=["POST"]),
                Route("/userinfo", self.userinfo),
                Route("/user", self.github_user),
                Route("/user/emails", self.github_emails),
                Route("/api/users/@me", self.discord_user),
            ]
        )

    def stop(self) -> None:
        """Stop the server thread."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)


def start_oauth_provider() -> OAuthProvider:
    """Serve a provider on a free loopback port and wait until it answers."""
    provider = OAuthProvider()
    port = free_port()
    provider.url = f"http://127.0.0.1:{port}"
    config = uvicorn.Config(provider.app(), host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    provider._server = server
    provider._thread = threading.Thread(target=server.run, daemon=True)
    provider._thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the OAuth test provider did not start")
        time.sleep(0.02)
    return provider
