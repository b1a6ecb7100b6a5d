"""RFC 3161 time-stamps of checkpoints (optional witness: ``DPI_AUDIT_TSA_URL``).

The time-stamped datum is the checkpoint's digest (already a SHA-256 of everything the checkpoint states and
of its signature), sent as the ``messageImprint`` with a random nonce and ``certReq`` so that the token
carries the authority's certificate. The token (a CMS ``SignedData`` over a ``TSTInfo``) is kept in the
witness file next to the checkpoint, and checked here: status granted, ``id-ct-TSTInfo`` content, imprint and
nonce as sent, ``messageDigest`` attribute, the signer's signature (RSA PKCS#1 v1.5 or ECDSA) and, when
``DPI_AUDIT_TSA_CA_FILE`` is set, that the signing certificate was issued by that CA and is for time-stamping.
The same token can be checked outside dpi (base64-decode the ``token`` field of the witness line into
``token.der``): ``openssl ts -verify -digest <checkpoint digest hex> -token_in -in token.der -CAfile tsa-ca.pem``.
"""

from __future__ import annotations

import hashlib
import secrets
import urllib.request
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from django.conf import settings
from pyasn1.codec.der import decoder, encoder
from pyasn1.error import PyAsn1Error
from pyasn1.type import univ
from pyasn1_modules import rfc3161, rfc5652

SHA256 = univ.ObjectIdentifier("2.16.840.1.101.3.4.2.1")
HASHES = {
    "1.3.14.3.2.26": (hashes.SHA1, hashlib.sha1),
    "2.16.840.1.101.3.4.2.1": (hashes.SHA256, hashlib.sha256),
    "2.16.840.1.101.3.4.2.2": (hashes.SHA384, hashlib.sha384),
    "2.16.840.1.101.3.4.2.3": (hashes.SHA512, hashlib.sha512),
}
MESSAGE_DIGEST = univ.ObjectIdentifier("1.2.840.113549.1.9.4")
TIME_STAMPING = x509.ObjectIdentifier("1.3.6.1.5.5.7.3.8")


class TimestampError(ValueError):
    pass


def build_request(digest: bytes, nonce: int) -> bytes:
    req = rfc3161.TimeStampReq()
    req["version"] = 1
    req["messageImprint"]["hashAlgorithm"]["algorithm"] = SHA256
    req["messageImprint"]["hashedMessage"] = digest
    req["nonce"] = nonce
    req["certReq"] = True
    return encoder.encode(req)


def request(digest: bytes, *, url: str | None = None, timeout: float = 10.0) -> bytes:
    """Ask the authority to time-stamp ``digest`` (32 bytes); returns the checked ``TimeStampToken`` (DER)."""
    url = url or settings.DPI_AUDIT_TSA_URL
    if not url.startswith(("https://", "http://")):
        raise TimestampError(f"DPI_AUDIT_TSA_URL must be an http(s) URL, got {url!r}")
    nonce = secrets.randbits(63)
    query = build_request(digest, nonce)
    headers = {"Content-Type": "application/timestamp-query", "Accept": "application/timestamp-reply"}
    http = urllib.request.Request(url, data=query, method="POST", headers=headers)  # noqa: S310 - http(s) only
    with urllib.request.urlopen(http, timeout=timeout) as response:  # noqa: S310 - http(s) only
        body = response.read()
    try:
        resp, _ = decoder.decode(body, asn1Spec=rfc3161.TimeStampResp())
    except PyAsn1Error as exc:
        raise TimestampError(f"not a time-stamp response: {exc}") from exc
    status = int(resp["status"]["status"])
    if status not in (0, 1):  # granted, grantedWithMods
        raise TimestampError(f"the time-stamping authority refused (status {status})")
    token = encoder.encode(resp["timeStampToken"])
    check(token, digest, nonce=nonce)
    return token


@dataclass
class Stamp:
    gen_time: datetime
    serial: int
    tsa_subject: str


def check(token: bytes, digest: bytes, *, nonce: int | None = None, ca_file: str | None = None) -> Stamp:
    """Check a token against ``digest``; raises TimestampError, returns what it states."""
    ca_file = ca_file if ca_file is not None else getattr(settings, "DPI_AUDIT_TSA_CA_FILE", "")
    try:
        info, _ = decoder.decode(token, asn1Spec=rfc5652.ContentInfo())
        if info["contentType"] != rfc5652.id_signedData:
            raise TimestampError("the token is not a CMS SignedData")
        sd, _ = decoder.decode(info["content"], asn1Spec=rfc5652.SignedData())
        encap = sd["encapContentInfo"]
        if encap["eContentType"] != rfc3161.id_ct_TSTInfo:
            raise TimestampError("the token does not hold a TSTInfo")
        content = bytes(encap["eContent"])
        tst, _ = decoder.decode(content, asn1Spec=rfc3161.TSTInfo())
    except PyAsn1Error as exc:
        raise TimestampError(f"unreadable token: {exc}") from exc
    if bytes(tst["messageImprint"]["hashedMessage"]) != digest:
        raise TimestampError("the token time-stamps another datum")
    if nonce is not None and (not tst["nonce"].isValue or int(tst["nonce"]) != nonce):
        raise TimestampError("the token's nonce is not the one sent")
    if len(sd["signerInfos"]) != 1:
        raise TimestampError("the token must have exactly one signer")
    signer = sd["signerInfos"][0]
    algorithm = str(signer["digestAlgorithm"]["algorithm"])
    if algorithm not in HASHES:
        raise TimestampError(f"unsupported digest algorithm {algorithm}")
    hash_cls, hash_fn = HASHES[algorithm]
    if not signer["signedAttrs"].isValue:
        raise TimestampError("the signer has no signed attributes")
    message_digest = None
    for attr in signer["signedAttrs"]:
        if attr["attrType"] == MESSAGE_DIGEST:
            message_digest = bytes(decoder.decode(attr["attrValues"][0], asn1Spec=univ.OctetString())[0])
    if message_digest != hash_fn(content).digest():
        raise TimestampError("the token's messageDigest does not match its content")
    cert = _signer_certificate(sd, signer)
    signed = bytearray(encoder.encode(signer["signedAttrs"]))
    signed[0] = 0x31  # signed over the attributes as a DER SET OF, not with their [0] tag (RFC 5652, 5.4)
    key = cert.public_key()
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(bytes(signer["signature"]), bytes(signed), padding.PKCS1v15(), hash_cls())
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(bytes(signer["signature"]), bytes(signed), ec.ECDSA(hash_cls()))
        else:
            raise TimestampError("unsupported signing key")
    except InvalidSignature as exc:
        raise TimestampError("the token's signature is not valid") from exc
    if ca_file:
        with open(ca_file, "rb") as fh:
            ca = x509.load_pem_x509_certificate(fh.read())
        if cert.fingerprint(hashes.SHA256()) != ca.fingerprint(hashes.SHA256()):
            try:
                cert.verify_directly_issued_by(ca)
            except (ValueError, TypeError, InvalidSignature) as exc:
                raise TimestampError("the token's certificate was not issued by DPI_AUDIT_TSA_CA_FILE") from exc
        try:
            usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except x509.ExtensionNotFound as exc:
            raise TimestampError("the token's certificate is not for time-stamping") from exc
        if TIME_STAMPING not in usage:
            raise TimestampError("the token's certificate is not for time-stamping")
    return Stamp(gen_time=tst["genTime"].asDateTime, serial=int(tst["serialNumber"]),
                 tsa_subject=cert.subject.rfc4514_string())


def _signer_certificate(sd, signer) -> x509.Certificate:
    sid = signer["sid"]
    serial = int(sid["issuerAndSerialNumber"]["serialNumber"]) if sid.getName() == "issuerAndSerialNumber" else None
    for choice in sd["certificates"] if sd["certificates"].isValue else []:
        if choice.getName() != "certificate":
            continue
        cert = x509.load_der_x509_certificate(encoder.encode(choice["certificate"]))
        if serial is None or cert.serial_number == serial:
            return cert
    raise TimestampError("the token does not carry its signer's certificate (certReq)")
