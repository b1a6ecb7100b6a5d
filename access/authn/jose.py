"""The little of JOSE an OpenID Connect client needs: check a signed JWT (ID token) against a JWKS.

Built on ``cryptography`` (already a dependency) rather than a JWT library: asymmetric algorithms only
(RS*, PS*, ES*), never ``none`` nor HMAC (a client secret must not be able to forge an identity).
"""

from __future__ import annotations

import base64
import hmac
import json
import time
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

HASHES = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}
CURVES = {"P-256": (ec.SECP256R1, 32), "P-384": (ec.SECP384R1, 48), "P-521": (ec.SECP521R1, 66)}
ALLOWED_ALGS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"})
LEEWAY_SECONDS = 60


class TokenError(Exception):
    """The token is malformed, badly signed, or its claims do not hold."""


def b64url_decode(data: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
    except (ValueError, TypeError) as exc:
        raise TokenError("bad base64url") from exc


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _int(data: str) -> int:
    return int.from_bytes(b64url_decode(data), "big")


def split(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenError("not a compact JWS")
    try:
        header = json.loads(b64url_decode(parts[0]))
        payload = json.loads(b64url_decode(parts[1]))
    except ValueError as exc:
        raise TokenError("bad JSON") from exc
    if not isinstance(header, dict) or not isinstance(payload, dict):
        raise TokenError("bad JWT")
    return header, payload, f"{parts[0]}.{parts[1]}".encode(), b64url_decode(parts[2])


def public_key(jwk: dict[str, Any]) -> Any:
    kty = jwk.get("kty")
    if kty == "RSA":
        return rsa.RSAPublicNumbers(_int(jwk["e"]), _int(jwk["n"])).public_key()
    if kty == "EC" and jwk.get("crv") in CURVES:
        curve, _size = CURVES[jwk["crv"]]
        return ec.EllipticCurvePublicNumbers(_int(jwk["x"]), _int(jwk["y"]), curve()).public_key()
    raise TokenError(f"unsupported key type {kty!r}")


def _check_signature(alg: str, key: Any, signing_input: bytes, signature: bytes) -> None:
    digest = HASHES[alg[2:]]()
    try:
        if alg.startswith("RS") and isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, signing_input, padding.PKCS1v15(), digest)
        elif alg.startswith("PS") and isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, signing_input, padding.PSS(padding.MGF1(digest), digest.digest_size), digest)
        elif alg.startswith("ES") and isinstance(key, ec.EllipticCurvePublicKey):
            size = (key.curve.key_size + 7) // 8
            if len(signature) != 2 * size:
                raise TokenError("bad ECDSA signature length")
            der = encode_dss_signature(int.from_bytes(signature[:size], "big"),
                                       int.from_bytes(signature[size:], "big"))
            key.verify(der, signing_input, ec.ECDSA(digest))
        else:
            raise TokenError("key does not fit the algorithm")
    except InvalidSignature as exc:
        raise TokenError("bad signature") from exc


def verify_signature(token: str, jwks: dict[str, Any]) -> dict[str, Any]:
    """The token's claims if one key of the set signed it; raises TokenError otherwise."""
    header, payload, signing_input, signature = split(token)
    alg = header.get("alg")
    if alg not in ALLOWED_ALGS:
        raise TokenError(f"algorithm {alg!r} not accepted")
    kty = "RSA" if alg.startswith(("RS", "PS")) else "EC"
    keys = [k for k in jwks.get("keys", []) if isinstance(k, dict) and k.get("kty") == kty
            and k.get("use", "sig") == "sig" and k.get("alg", alg) == alg]
    if header.get("kid") is not None:
        keys = [k for k in keys if k.get("kid") == header["kid"]]
    if not keys:
        raise TokenError("no key for this token")
    last: TokenError | None = None
    for jwk in keys:
        try:
            _check_signature(alg, public_key(jwk), signing_input, signature)
            return payload
        except (TokenError, KeyError, ValueError) as exc:
            last = exc if isinstance(exc, TokenError) else TokenError(str(exc))
    raise last or TokenError("bad signature")


def validate_claims(claims: dict[str, Any], *, issuer: str, audience: str, nonce: str | None,
                    now: float | None = None) -> dict[str, Any]:
    """OpenID Connect Core 3.1.3.7: issuer, audience (and azp), expiry, issue time, nonce, subject."""
    now = time.time() if now is None else now
    if claims.get("iss") != issuer:
        raise TokenError("wrong issuer")
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    if audience not in audiences:
        raise TokenError("wrong audience")
    if len(audiences) > 1 and claims.get("azp") != audience:
        raise TokenError("wrong authorized party")
    if "azp" in claims and claims["azp"] != audience:
        raise TokenError("wrong authorized party")
    exp, iat, nbf = claims.get("exp"), claims.get("iat"), claims.get("nbf")
    if not isinstance(exp, int | float) or exp < now - LEEWAY_SECONDS:
        raise TokenError("expired")
    if not isinstance(iat, int | float) or iat > now + LEEWAY_SECONDS:
        raise TokenError("issued in the future")
    if isinstance(nbf, int | float) and nbf > now + LEEWAY_SECONDS:
        raise TokenError("not yet valid")
    if nonce is not None and not hmac.compare_digest(str(claims.get("nonce", "")), nonce):
        raise TokenError("wrong nonce")
    if not isinstance(claims.get("sub"), str) or not claims["sub"]:
        raise TokenError("no subject")
    return claims
