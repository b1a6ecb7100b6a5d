"""A small OpenID Connect provider for the tests, run in a thread on 127.0.0.1: discovery, JWKS, authorize
(auto-approves the configured user), token (checks the client secret and PKCE), userinfo. RS256 keys from
``cryptography``. ``mode`` makes it misbehave (wrong signing key, wrong audience, wrong nonce, expired)."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from urllib.parse import parse_qs, urlencode
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _int(value: int) -> str:
    return b64(value.to_bytes((value.bit_length() + 7) // 8, "big"))


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


class Provider:
    client_id = "dpi-test-client"
    client_secret = "s3cret-for-tests"  # noqa: S105

    def __init__(self):
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = "k1"
        self.subject = "f:550e8400-e29b:899700000001"
        self.claims: dict = {"acr": "eidas1"}
        self.userinfo: dict = {"SubjectNameID": "899700000001"}
        self.mode = ""
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
    def sign(self, claims: dict) -> str:
        key = self.other_key if self.mode == "bad_signature" else self.key
        header = b64(json.dumps({"alg": "RS256", "kid": self.kid, "typ": "JWT"}).encode())
        payload = b64(json.dumps(claims).encode())
        signature = key.sign(f"{header}.{payload}".encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{header}.{payload}.{b64(signature)}"

    def jwks(self) -> dict:
        numbers = self.key.public_key().public_numbers()
        return {"keys": [{"kty": "RSA", "kid": self.kid, "use": "sig", "alg": "RS256",
                          "n": _int(numbers.n), "e": _int(numbers.e)}]}

    def public_pem(self) -> bytes:
        return self.key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo)

    # --- WSGI ---------------------------------------------------------------------------------------------
    def app(self, environ, start_response):
        path = environ["PATH_INFO"]
        query = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        if path == "/.well-known/openid-configuration":
            return self._json(start_response, {
                "issuer": self.issuer, "authorization_endpoint": self.issuer + "/authorize",
                "token_endpoint": self.issuer + "/token", "jwks_uri": self.issuer + "/jwks",
                "userinfo_endpoint": self.issuer + "/userinfo", "response_types_supported": ["code"],
                "id_token_signing_alg_values_supported": ["RS256"], "code_challenge_methods_supported": ["S256"]})
        if path == "/jwks":
            return self._json(start_response, self.jwks())
        if path == "/authorize":
            assert query["response_type"] == "code" and query["client_id"] == self.client_id
            assert query["code_challenge_method"] == "S256"
            code = secrets.token_urlsafe(16)
            self.codes[code] = query
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
            return self._json(start_response, {"sub": self.subject, **self.userinfo})
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found"]

    @staticmethod
    def _json(start_response, body, status="200 OK"):
        start_response(status, [("Content-Type", "application/json")])
        return [json.dumps(body).encode()]
