"""The self-signed certificate of ``harlite serve``: made on first use, kept, re-issued for new addresses.

Browsers give motion sensors only to secure pages, and a phone reaches the computer by its address on
the local network, so the server speaks HTTPS with a certificate of its own. The key and certificate live
in harlite's cache folder (``serve/key.pem``, ``serve/cert.pem``, readable by the user only); deleting
them costs only a new certificate (the phone asks to trust it again). When the server is reached under an
address the certificate does not name, a new certificate is issued with the same key, naming all of them.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from harlite.errors import HarliteError

VALID_DAYS = 825  # the longest a browser accepts for a server certificate
COMMON_NAME = "harlite serve"


@dataclass(frozen=True)
class Certificate:
    """Where the certificate and key are, and the base64 sha256 of the public key (SPKI pin)."""

    cert: Path
    key: Path
    spki_sha256: str
    names: tuple[str, ...]


def server_certificate(folder: Path, hosts: list[str]) -> Certificate:
    """The kept certificate in ``folder``, made or re-issued so that it names ``hosts`` (IPs or names)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    folder.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    try:
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None) if key_path.exists() else None
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes()) if cert_path.exists() and key else None
    except ValueError:
        key = cert = None  # unreadable: make new ones
    wanted = sorted({"localhost", "127.0.0.1", *hosts})
    if key is None:
        key = ec.generate_private_key(ec.SECP256R1())
        _write_private(key_path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                   serialization.NoEncryption()))  # fmt: skip
    names = _names(cert) if cert is not None else set()
    if cert is None or not set(wanted) <= names or _expires_soon(cert) or cert.public_key() != key.public_key():
        cert = _issue(key, sorted(names | set(wanted)))
        _write_private(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return Certificate(
        cert_path, key_path, base64.b64encode(hashlib.sha256(spki).digest()).decode(), tuple(_names(cert))
    )


def _issue(key, names: list[str]):  # type: ignore[no-untyped-def]
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    alternatives: list[x509.GeneralName] = []
    for name in names:
        try:
            alternatives.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alternatives.append(x509.DNSName(name))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, COMMON_NAME)])
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(alternatives), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )


def _names(cert) -> set[str]:  # type: ignore[no-untyped-def]
    from cryptography import x509

    try:
        alternatives = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return {str(n) for n in alternatives.get_values_for_type(x509.IPAddress)} | set(
        alternatives.get_values_for_type(x509.DNSName)
    )


def _expires_soon(cert) -> bool:  # type: ignore[no-untyped-def]
    left = cert.not_valid_after_utc - datetime.datetime.now(datetime.UTC)
    return left < datetime.timedelta(days=30)


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` readable by the user only, atomically."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise HarliteError(f"cannot write {path} ({e.strerror}): set HARLITE_CACHE to a writable folder.") from None
