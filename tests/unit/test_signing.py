"""Signing material: the local CA and signing certificate made at first start, their C2PA profile,
file modes, concurrent first starts, renewal, and an operator's own certificate."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import multiprocessing.synchronize
import os
import stat
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from shared import signing
from shared.settings import Settings
from shared.signing import (
    CA_CERT_FILE,
    CA_KEY_FILE,
    DOCUMENT_SIGNING_OID,
    SIGNER_CERT_FILE,
    SIGNER_KEY_FILE,
    SigningKeys,
    SigningMaterialError,
    VerificationKeys,
    issued_under,
    read_trust_anchors,
)


def test_first_start_makes_a_ca_and_a_signing_certificate_it_issued(tmp_path: Path) -> None:
    keys = SigningKeys.load_or_create(tmp_path)
    leaf, ca_in_chain = x509.load_pem_x509_certificates(keys.cert_chain_pem)
    ca = x509.load_pem_x509_certificate(keys.trust_anchors_pem)
    assert ca_in_chain == ca and keys.generated
    assert leaf.issuer == ca.subject and ca.issuer == ca.subject
    ca_key = ca.public_key()
    assert isinstance(ca_key, ec.EllipticCurvePublicKey) and ca_key.curve.name == "secp256r1"
    ca_key.verify(leaf.signature, leaf.tbs_certificate_bytes, ec.ECDSA(hashes.SHA256()))
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    keys.check()


def test_signing_certificate_has_the_profile_c2pa_requires(tmp_path: Path) -> None:
    keys = SigningKeys.load_or_create(tmp_path)
    leaf = keys.certificate
    ca = x509.load_pem_x509_certificate(keys.trust_anchors_pem)
    ext = leaf.extensions
    assert ext.get_extension_for_class(x509.BasicConstraints).value.ca is False
    usage = ext.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and not usage.value.key_cert_sign
    eku = ext.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.EMAIL_PROTECTION in eku and DOCUMENT_SIGNING_OID in eku
    assert ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE not in eku
    ski = ext.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert ski.digest == x509.SubjectKeyIdentifier.from_public_key(leaf.public_key()).digest
    aki = ext.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    assert leaf.not_valid_after_utc <= ca.not_valid_after_utc


def test_private_keys_are_readable_by_the_owner_only(tmp_path: Path) -> None:
    SigningKeys.load_or_create(tmp_path)
    for name in (CA_KEY_FILE, SIGNER_KEY_FILE):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o600
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".") and p.name != ".lock"]  # no temp files left


def test_private_key_is_kept_out_of_repr(tmp_path: Path) -> None:
    keys = SigningKeys.load_or_create(tmp_path)
    assert "PRIVATE" not in repr(keys) and "PRIVATE" in keys.private_key_pem.decode()


def test_second_start_loads_the_same_material(tmp_path: Path) -> None:
    assert SigningKeys.load_or_create(tmp_path) == SigningKeys.load_or_create(tmp_path)


def _start(directory: str, barrier: multiprocessing.synchronize.Barrier, out: multiprocessing.Queue) -> None:
    barrier.wait()
    out.put(SigningKeys.load_or_create(directory).trust_anchors_pem)


def test_workers_starting_at_once_make_one_ca(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    processes, barrier, out = 4, ctx.Barrier(4 + 3), ctx.Queue()
    children = [ctx.Process(target=_start, args=(str(tmp_path), barrier, out)) for _ in range(processes)]
    thread_results: list[bytes] = []

    def in_thread() -> None:
        barrier.wait()
        thread_results.append(SigningKeys.load_or_create(tmp_path).trust_anchors_pem)

    threads = [threading.Thread(target=in_thread) for _ in range(3)]
    for worker in [*children, *threads]:
        worker.start()
    anchors = [out.get(timeout=60) for _ in range(processes)]
    for child in children:
        child.join(timeout=60)
        assert child.exitcode == 0
    for thread in threads:
        thread.join(timeout=60)
    assert len(set(anchors + thread_results)) == 1
    assert (tmp_path / CA_CERT_FILE).read_bytes() == anchors[0]


def test_a_signing_certificate_near_expiry_is_reissued_by_the_same_ca(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(signing, "SIGNER_VALIDITY", dt.timedelta(days=10))
    first = SigningKeys.load_or_create(tmp_path)
    monkeypatch.setattr(signing, "SIGNER_VALIDITY", dt.timedelta(days=730))
    second = SigningKeys.load_or_create(tmp_path)
    assert second.trust_anchors_pem == first.trust_anchors_pem
    assert second.certificate.serial_number != first.certificate.serial_number
    assert second.certificate.not_valid_after_utc - dt.datetime.now(dt.UTC) > dt.timedelta(days=700)


def test_without_the_ca_key_the_signing_certificate_is_kept(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(signing, "SIGNER_VALIDITY", dt.timedelta(days=10))
    first = SigningKeys.load_or_create(tmp_path)
    (tmp_path / CA_KEY_FILE).unlink()  # an operator moved the CA key offline
    assert SigningKeys.load_or_create(tmp_path) == first
    (tmp_path / SIGNER_KEY_FILE).unlink()
    with pytest.raises(SigningMaterialError, match="no CA key"):
        SigningKeys.load_or_create(tmp_path)


def test_an_operator_brings_their_own_certificate_and_anchors(tmp_path: Path) -> None:
    theirs = SigningKeys.load_or_create(tmp_path / "operator-ca")
    (tmp_path / "chain.pem").write_bytes(theirs.cert_chain_pem)
    (tmp_path / "key.pem").write_bytes(theirs.private_key_pem)
    (tmp_path / "anchors.pem").write_bytes(theirs.trust_anchors_pem)
    env = {"ARTFORGE_SIGNING_CERT": str(tmp_path / "chain.pem"), "ARTFORGE_SIGNING_KEY": str(tmp_path / "key.pem"),
           "ARTFORGE_TRUST_ANCHORS": str(tmp_path / "anchors.pem"), "ARTFORGE_SIGNING_DIR": str(tmp_path / "unused")}
    keys = SigningKeys.from_env(env)
    assert not keys.generated and keys.cert_chain_pem == theirs.cert_chain_pem
    assert keys.trust_anchors_pem == theirs.trust_anchors_pem
    assert not (tmp_path / "unused").exists()


def test_default_environment_makes_the_local_ca_in_the_signing_dir(tmp_path: Path) -> None:
    keys = SigningKeys.from_env({"ARTFORGE_SIGNING_DIR": str(tmp_path / "keys")})
    assert keys.generated and (tmp_path / "keys" / SIGNER_CERT_FILE).exists()


def test_operator_material_must_be_complete_and_match(tmp_path: Path) -> None:
    one, other = SigningKeys.load_or_create(tmp_path / "a"), SigningKeys.load_or_create(tmp_path / "b")
    (tmp_path / "chain.pem").write_bytes(one.cert_chain_pem)
    (tmp_path / "key.pem").write_bytes(other.private_key_pem)
    with pytest.raises(SigningMaterialError, match="both"):
        SigningKeys.from_env({"ARTFORGE_SIGNING_CERT": str(tmp_path / "chain.pem")})
    with pytest.raises(SigningMaterialError, match="does not belong"):
        SigningKeys.from_files(tmp_path / "chain.pem", tmp_path / "key.pem")
    with pytest.raises(SigningMaterialError, match="cannot read"):
        SigningKeys.from_files(tmp_path / "missing.pem", tmp_path / "key.pem")


def test_operator_key_must_be_p256(tmp_path: Path) -> None:
    one = SigningKeys.load_or_create(tmp_path / "a")
    p384 = ec.generate_private_key(ec.SECP384R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    (tmp_path / "chain.pem").write_bytes(one.cert_chain_pem)
    (tmp_path / "key.pem").write_bytes(p384)
    with pytest.raises(SigningMaterialError, match="P-256"):
        SigningKeys.from_files(tmp_path / "chain.pem", tmp_path / "key.pem")


def test_a_verifier_reads_certificates_and_anchors_but_no_private_key(tmp_path: Path) -> None:
    env = {"ARTFORGE_SIGNING_DIR": str(tmp_path / "keys")}
    with pytest.raises(SigningMaterialError, match="has a worker started"):
        VerificationKeys.from_env(env)
    keys = SigningKeys.from_env(env)
    public = VerificationKeys.from_env(env)
    assert public.cert_chain_pem == keys.cert_chain_pem and public.trust_anchors_pem == keys.trust_anchors_pem
    assert public.signer_certificate_pem == keys.signer_certificate_pem
    assert b"PRIVATE" not in public.cert_chain_pem + public.trust_anchors_pem


def test_settings_name_the_same_material_as_the_environment(tmp_path: Path) -> None:
    settings = Settings.from_env({"ARTFORGE_SIGNING_DIR": str(tmp_path / "keys")})
    assert read_trust_anchors(settings) == b""  # no worker has made the CA yet
    keys = SigningKeys.from_settings(settings)
    assert read_trust_anchors(settings) == keys.trust_anchors_pem
    assert VerificationKeys.from_settings(settings).cert_chain_pem == keys.cert_chain_pem
    (tmp_path / "roots.pem").write_bytes(keys.trust_anchors_pem)
    operator = Settings.from_env({"ARTFORGE_SIGNING_CERT": "c.pem", "ARTFORGE_SIGNING_KEY": "k.pem",
                                  "ARTFORGE_TRUST_ANCHORS": str(tmp_path / "roots.pem")})
    assert read_trust_anchors(operator) == keys.trust_anchors_pem
    assert "k.pem" not in repr(operator)


def test_a_signing_certificate_is_recognised_under_its_own_ca_only(tmp_path: Path) -> None:
    ours, theirs = SigningKeys.load_or_create(tmp_path / "a"), SigningKeys.load_or_create(tmp_path / "b")
    assert issued_under(ours.cert_chain_pem, ours.trust_anchors_pem)
    assert issued_under(ours.signer_certificate_pem, ours.trust_anchors_pem)
    assert not issued_under(ours.cert_chain_pem, theirs.trust_anchors_pem)
    # A chain that carries the foreign CA itself does not make it an anchor.
    assert not issued_under(ours.signer_certificate_pem + theirs.trust_anchors_pem, theirs.trust_anchors_pem)
    assert not issued_under(ours.cert_chain_pem, b"")
