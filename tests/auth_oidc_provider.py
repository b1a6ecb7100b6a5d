"""A small OpenID Connect provider for the tests, run in a thread on 127.0.0.1: discovery, JWKS, authorize
(auto-approves the configured user), token (checks the client secret and PKCE), userinfo (JSON, or a signed JWT
as Pro Santé Connect sends). RS256 keys and signatures from joserfc. ``mode`` makes it misbehave (wrong signing
key, wrong audience, wrong nonce, expired, HMAC keyed with the client secret, ``alg: none``). The discovery
document is also served at Pro Santé Connect's path (``PSC_DISCOVERY``)."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from urllib.parse import parse_qs, urlencode
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from joserfc import jwt
from joserfc.jwk import OctKey, RSAKey
from joserfc.jws import JWSRegistry

PSC_DISCOVERY = "/realms/esante-wallet/.well-known/wallet-openid-configuration"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


class Provider:
    client_id = "dpi-test-client"
    client_secret = "s3cret-for-tests"  # noqa: S105

    def __init__(self):
        self.kid = "k1"
        self.key = RSAKey.generate_key(2048, parameters={"kid": self.kid, "use": "sig", "alg": "RS256"})
        self.other_key = RSAKey.generate_key(2048, parameters={"kid": self.kid})
        self.subject = "f:550e8400-e29b:899700000001"
        self.claims: dict = {"acr": "eidas1"}
        self.userinfo: dict = {"SubjectNameID": "899700000001"}
        self.mode = ""
        self.userinfo_as_jwt = False
        self.authorize_requests: list[dict] = []
        self.codes: dict[str, dict] = {}
        self.token_requests: list[dict] = []
        self.server: WSGIServer = make_server("127.0.0.1", 0, self.app, handler_class=_Quiet)
        self.issuer = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    # --- signing ----------------------------------------------------------------------------------------
    def sign(self, claims: dict, *, forged: bool = False) -> str:
        if self.mode == "alg_none":  # an attacker's unsigned token
            header = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
            return f"{header}.{b64(json.dumps(claims).encode())}."
        if self.mode == "hs256":  # an attacker who knows (or guesses) the client secret
            key = OctKey.import_key(self.client_secret.encode())
            return jwt.encode({"alg": "HS256", "kid": self.kid}, claims, key,
                              registry=JWSRegistry(algorithms=["HS256"]))
        key = self.other_key if forged or self.mode == "bad_signature" else self.key
        return jwt.encode({"alg": "RS256", "kid": self.kid, "typ": "JWT"}, claims, key)

    def jwks(self) -> dict:
        return {"keys": [self.key.as_dict(private=False)]}

    # --- WSGI ---------------------------------------------------------------------------------------------
    def app(self, environ, start_response):
        path = environ["PATH_INFO"]
        query = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        if path in ("/.well-known/openid-configuration", PSC_DISCOVERY):
            algorithms = ["RS256", "HS256", "none"] if self.mode in ("hs256", "alg_none") else ["RS256"]
            return self._json(start_response, {
                "issuer": self.issuer, "authorization_endpoint": self.issuer + "/authorize",
                "token_endpoint": self.issuer + "/token", "jwks_uri": self.issuer + "/jwks",
                "userinfo_endpoint": self.issuer + "/userinfo", "response_types_supported": ["code"],
                "id_token_signing_alg_values_supported": algorithms, "code_challenge_methods_supported": ["S256"]})
        if path == "/jwks":
            return self._json(start_response, self.jwks())
        if path == "/authorize":
            assert query["response_type"] == "code" and query["client_id"] == self.client_id
            assert query["code_challenge_method"] == "S256"
            code = secrets.token_urlsafe(16)
            self.codes[code] = query
            self.authorize_requests.append(query)
            location = query["redirect_uri"] + "?" + urlencode({"code": code, "state": query["state"]})
            start_response("302 Found", [("Location", location)])
            return [b""]
        if path == "/token":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            form = {k: v[-1] for k, v in parse_qs(environ["wsgi.input"].read(length).decode()).items()}
            self.token_requests.append(form)
            expected = "Basic " + base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
            if environ.get("HTTP_AUTHORIZATION") != expected:
                return self._json(start_response, {"error": "invalid_client"}, "401 Unauthorized")
            request = self.codes.pop(form.get("code", ""), None)
            challenge = b64(hashlib.sha256(form.get("code_verifier", "").encode()).digest())
            if (request is None or challenge != request["code_challenge"]
                    or form["redirect_uri"] != request["redirect_uri"]):
                return self._json(start_response, {"error": "invalid_grant"}, "400 Bad Request")
            now = int(time.time())
            claims = {"iss": self.issuer, "sub": self.subject, "aud": self.client_id, "iat": now,
                      "exp": now + 300, "nonce": request["nonce"], **self.claims}
            if self.mode == "wrong_audience":
                claims["aud"] = "someone-else"
            if self.mode == "wrong_nonce":
                claims["nonce"] = "replayed"
            if self.mode == "expired":
                claims["exp"] = now - 3600
            return self._json(start_response, {"access_token": "at-" + secrets.token_urlsafe(8), "token_type": "Bearer",
                                               "id_token": self.sign(claims)})
        if path == "/userinfo":
            info = {"sub": self.subject, **self.userinfo}
            if self.userinfo_as_jwt:
                info.update({"iss": self.issuer, "aud": self.client_id})
                start_response("200 OK", [("Content-Type", "application/jwt")])
                return [self.sign(info, forged=self.mode == "bad_userinfo_signature").encode()]
            return self._json(start_response, info)
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found"]

    @staticmethod
    def _json(start_response, body, status="200 OK"):
        start_response(status, [("Content-Type", "application/json")])
        return [json.dumps(body).encode()]
