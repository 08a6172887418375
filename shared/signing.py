"""The key material that signs provenance: a local CA, a signing certificate it issued, trust anchors.

At first start ``SigningKeys.load_or_create(directory)`` makes a self-signed ECDSA P-256 CA and a
signing certificate with the profile C2PA asks of a claim signer (digitalSignature key usage,
extended key usage emailProtection + documentSigning, not a CA, subject and authority key
identifiers). Creation runs under an exclusive lock file and every PEM is written through a
temporary file and an atomic rename, so two workers starting at once end up with one CA.

Operators bring their own material with environment variables (read by ``from_env``, and by
``from_settings`` through ``shared.settings.Settings``, which reads the same names):

- ``ARTFORGE_SIGNING_DIR``: where the generated CA and signing key live (default ``./signing``).
- ``ARTFORGE_SIGNING_CERT`` and ``ARTFORGE_SIGNING_KEY``: PEM paths of an operator's signing
  certificate chain (end entity first, then intermediates) and its private key; both or neither.
- ``ARTFORGE_TRUST_ANCHORS``: PEM bundle of the roots a verifier trusts; defaults to the local CA
  when the CA is ours, to nothing when the operator brings a certificate without anchors.

Private keys are stored with mode 0600 and never appear in ``repr``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import os
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from shared.settings import Settings

CA_CERT_FILE = "ca.pem"
CA_KEY_FILE = "ca.key"
SIGNER_CERT_FILE = "signer.pem"  # signing certificate followed by the CA certificate
SIGNER_KEY_FILE = "signer.key"
LOCK_FILE = ".lock"

CA_VALIDITY = dt.timedelta(days=3650)
SIGNER_VALIDITY = dt.timedelta(days=730)
# A signing certificate this close to expiry is re-issued at start when the CA is ours.
RENEW_BEFORE = dt.timedelta(days=30)
# id-kp-documentSigning (RFC 9336); cryptography has no constant for it in every version.
DOCUMENT_SIGNING_OID = ObjectIdentifier("1.3.6.1.5.5.7.3.36")

ENV_SIGNING_DIR = "ARTFORGE_SIGNING_DIR"
ENV_SIGNING_CERT = "ARTFORGE_SIGNING_CERT"
ENV_SIGNING_KEY = "ARTFORGE_SIGNING_KEY"
ENV_TRUST_ANCHORS = "ARTFORGE_TRUST_ANCHORS"
DEFAULT_SIGNING_DIR = "signing"


class SigningMaterialError(Exception):
    """The configured certificate, key or anchors are missing, unreadable or do not match."""


@dataclass(frozen=True)
class SigningKeys:
    """A signing certificate chain (PEM, end entity first), its private key, and the trust anchors."""

    cert_chain_pem: bytes = field(repr=False)
    private_key_pem: bytes = field(repr=False)
    trust_anchors_pem: bytes = field(repr=False)
    generated: bool  # True when the CA is the local one made at first start

    @classmethod
    def load_or_create(cls, directory: str | os.PathLike[str], *, organization: str = "ArtForge") -> SigningKeys:
        """The local CA and signing key in ``directory``, made there under a lock if absent."""
        root = Path(directory)
        root.mkdir(parents=True, exist_ok=True)
        # Reads too run under the lock: a renewal swaps key and certificate in two renames.
        with _exclusive_lock(root / LOCK_FILE):
            if not (root / CA_CERT_FILE).exists():
                _create_ca(root, organization)
            signer_missing = not (root / SIGNER_KEY_FILE).exists() or not (root / SIGNER_CERT_FILE).exists()
            # An operator may move the CA key offline after the first start; then nothing is renewed.
            if signer_missing or ((root / CA_KEY_FILE).exists() and _needs_renewal(root)):
                _issue_signer(root, organization)
            ca_pem = (root / CA_CERT_FILE).read_bytes()
            chain_pem, key_pem = (root / SIGNER_CERT_FILE).read_bytes(), (root / SIGNER_KEY_FILE).read_bytes()
        return cls(cert_chain_pem=chain_pem, private_key_pem=key_pem, trust_anchors_pem=ca_pem, generated=True)

    @classmethod
    def from_files(cls, cert_path: str | os.PathLike[str], key_path: str | os.PathLike[str],
                   trust_anchors_path: str | os.PathLike[str] | None = None) -> SigningKeys:
        """An operator's own chain and key; the key must belong to the first certificate."""
        try:
            chain = Path(cert_path).read_bytes()
            key = Path(key_path).read_bytes()
            anchors = Path(trust_anchors_path).read_bytes() if trust_anchors_path else b""
        except OSError as exc:
            raise SigningMaterialError(f"cannot read signing material: {exc}") from None
        keys = cls(cert_chain_pem=chain, private_key_pem=key, trust_anchors_pem=anchors, generated=False)
        keys.check()
        return keys

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SigningKeys:
        """Operator files when ``ARTFORGE_SIGNING_CERT``/``_KEY`` are set, else the local CA."""
        env = os.environ if environ is None else environ
        cert, key, anchors = env.get(ENV_SIGNING_CERT), env.get(ENV_SIGNING_KEY), env.get(ENV_TRUST_ANCHORS)
        if bool(cert) != bool(key):
            raise SigningMaterialError(f"set both {ENV_SIGNING_CERT} and {ENV_SIGNING_KEY}, or neither")
        if cert and key:
            return cls.from_files(cert, key, anchors or None)
        keys = cls.load_or_create(env.get(ENV_SIGNING_DIR, DEFAULT_SIGNING_DIR))
        if anchors:
            return cls(keys.cert_chain_pem, keys.private_key_pem, Path(anchors).read_bytes(), keys.generated)
        return keys

    @classmethod
    def from_settings(cls, settings: Settings) -> SigningKeys:
        return cls.from_env(signing_environ(settings))

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificates(self.cert_chain_pem)[0]

    @property
    def private_key(self) -> ec.EllipticCurvePrivateKey:
        key = serialization.load_pem_private_key(self.private_key_pem, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
            raise SigningMaterialError("the signing key must be ECDSA P-256 (ES256)")
        return key

    @property
    def signer_certificate_pem(self) -> bytes:
        """The signing certificate alone: what a verifier of records needs."""
        return _first_certificate_pem(self.cert_chain_pem)

    @property
    def key_id(self) -> str:
        public_key = self.certificate.public_key()
        if not isinstance(public_key, ec.EllipticCurvePublicKey):
            raise SigningMaterialError("the signing certificate must hold an ECDSA P-256 key")
        return public_key_id(public_key)

    def check(self) -> None:
        """Raise ``SigningMaterialError`` unless the key is P-256 and matches the first certificate."""
        try:
            certificate, key = self.certificate, self.private_key
        except (ValueError, IndexError) as exc:
            raise SigningMaterialError(f"unreadable certificate or key: {exc}") from None
        public_key = certificate.public_key()
        if not isinstance(public_key, ec.EllipticCurvePublicKey) \
                or public_key.public_numbers() != key.public_key().public_numbers():
            raise SigningMaterialError("the private key does not belong to the signing certificate")


@dataclass(frozen=True)
class VerificationKeys:
    """What a verifier (the API) needs: the signing certificate chain and the trust anchors; no private key."""

    cert_chain_pem: bytes
    trust_anchors_pem: bytes

    @property
    def signer_certificate_pem(self) -> bytes:
        return _first_certificate_pem(self.cert_chain_pem)

    @classmethod
    def from_settings(cls, settings: Settings) -> VerificationKeys:
        return cls.from_env(signing_environ(settings))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> VerificationKeys:
        """The same files ``SigningKeys.from_env`` uses, read only; nothing is created."""
        env = os.environ if environ is None else environ
        root = Path(env.get(ENV_SIGNING_DIR, DEFAULT_SIGNING_DIR))
        chain_path = Path(env[ENV_SIGNING_CERT]) if env.get(ENV_SIGNING_CERT) else root / SIGNER_CERT_FILE
        anchors = env.get(ENV_TRUST_ANCHORS)
        anchors_path = Path(anchors) if anchors else (None if env.get(ENV_SIGNING_CERT) else root / CA_CERT_FILE)
        try:
            return cls(chain_path.read_bytes(), anchors_path.read_bytes() if anchors_path else b"")
        except OSError as exc:
            raise SigningMaterialError(f"cannot read verification material (has a worker started?): {exc}") from None


def issued_under(chain_pem: bytes, anchors_pem: bytes, max_depth: int = 4) -> bool:
    """True when the chain's first certificate was issued, directly or through the chain's other
    certificates, by one of the trust anchors (signatures and names checked, not dates: a record
    signed while a certificate was valid stays verifiable after it expires)."""
    if not anchors_pem:
        return False
    chain = x509.load_pem_x509_certificates(chain_pem)
    anchors = x509.load_pem_x509_certificates(anchors_pem)
    current = chain[0]
    for _ in range(max_depth):
        if any(current == anchor or _issued_by(current, anchor) for anchor in anchors):
            return True
        issuer = next((c for c in chain[1:] if c != current and _issued_by(current, c)), None)
        if issuer is None:
            return False
        current = issuer
    return False


def _issued_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        certificate.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def read_trust_anchors(settings: Settings) -> bytes:
    """The anchors a verifier trusts: ``trust_anchors`` when set, else the local CA certificate in
    ``signing_dir`` (there once a worker has started), else none (b"")."""
    if settings.trust_anchors:
        return Path(settings.trust_anchors).read_bytes()  # configured: a missing file is an error
    if settings.signing_cert:
        return b""
    try:
        return (Path(settings.signing_dir) / CA_CERT_FILE).read_bytes()
    except FileNotFoundError:
        return b""


def signing_environ(settings: Settings) -> dict[str, str]:
    """The ``from_env`` variables as ``settings`` holds them (empty ones left out)."""
    values = {ENV_SIGNING_DIR: settings.signing_dir, ENV_SIGNING_CERT: settings.signing_cert,
              ENV_SIGNING_KEY: settings.signing_key, ENV_TRUST_ANCHORS: settings.trust_anchors}
    return {name: value for name, value in values.items() if value}


def public_key_id(public_key: ec.EllipticCurvePublicKey) -> str:
    """sha256 of the DER SubjectPublicKeyInfo, hex: names the key that signed a record."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def _first_certificate_pem(chain_pem: bytes) -> bytes:
    return x509.load_pem_x509_certificates(chain_pem)[0].public_bytes(serialization.Encoding.PEM)


def _needs_renewal(root: Path) -> bool:
    certificate = x509.load_pem_x509_certificates((root / SIGNER_CERT_FILE).read_bytes())[0]
    return certificate.not_valid_after_utc - dt.datetime.now(dt.UTC) < RENEW_BEFORE


@contextlib.contextmanager
def _exclusive_lock(path: Path) -> Iterator[None]:
    # flock excludes other processes and other open descriptions in this process, i.e. threads too.
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _write_atomically(path: Path, data: bytes, mode: int) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _name(organization: str, common_name: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])


def _create_ca(root: Path, organization: str) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(organization, f"{organization} Local Provenance CA")
    now = dt.datetime.now(dt.UTC)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .sign(key, hashes.SHA256())
    )
    # The key first: a CA certificate without its key is never left behind as "complete".
    _write_atomically(root / CA_KEY_FILE, _key_pem(key), 0o600)
    _write_atomically(root / CA_CERT_FILE, certificate.public_bytes(serialization.Encoding.PEM), 0o644)


def _issue_signer(root: Path, organization: str) -> None:
    if not (root / CA_KEY_FILE).exists():
        raise SigningMaterialError(f"no signing certificate in {root} and no CA key there to issue one")
    ca_key = serialization.load_pem_private_key((root / CA_KEY_FILE).read_bytes(), password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise SigningMaterialError("the local CA key is not an EC key")
    ca_cert = x509.load_pem_x509_certificate((root / CA_CERT_FILE).read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_name(organization, f"{organization} Provenance Signer"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(min(now + SIGNER_VALIDITY, ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION, DOCUMENT_SIGNING_OID]),
                       critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    chain = certificate.public_bytes(serialization.Encoding.PEM) + ca_cert.public_bytes(serialization.Encoding.PEM)
    _write_atomically(root / SIGNER_KEY_FILE, _key_pem(key), 0o600)
    _write_atomically(root / SIGNER_CERT_FILE, chain, 0o644)
