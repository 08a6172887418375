"""Webhook URL checks (the SSRF guard), signatures, and the pinned connection a delivery makes."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from shared.settings import Settings
from shared.webhooks import (
    MAX_URL_LENGTH,
    WebhookUrlRefused,
    address_refusal,
    check_webhook_url,
    derive_tenant_secret,
    parse_address,
    sign,
    verify_signature,
)
from tests.security.receiver import Receiver, closed_port
from workers.webhooks import attempt_delivery

DEFAULTS = Settings()
PRIVATE_OK = Settings(webhook_allow_private=True)


@pytest.mark.parametrize(("address", "reason"), [
    ("127.0.0.1", "loopback"), ("127.8.9.10", "loopback"), ("::1", "loopback"),
    ("10.0.0.1", "private"), ("172.16.5.4", "private"), ("192.168.1.1", "private"), ("100.64.0.1", "private"),
    ("fd12:3456::1", "private"), ("fc00::1", "private"),
    ("169.254.169.254", "link-local"), ("169.254.0.1", "link-local"), ("fe80::1", "link-local"),
    ("224.0.0.1", "multicast"), ("239.255.255.250", "multicast"), ("ff02::1", "multicast"),
    ("0.0.0.0", "unspecified"), ("::", "unspecified"),
    ("240.0.0.1", "reserved"), ("255.255.255.255", "reserved"),
    ("192.0.2.10", "special-purpose"), ("198.18.0.1", "special-purpose"), ("2001:db8::1", "special-purpose"),
    # IPv6 forms of IPv4 addresses: mapped, NAT64, 6to4.
    ("::ffff:127.0.0.1", "loopback"), ("::ffff:169.254.169.254", "link-local"), ("::ffff:10.1.2.3", "private"),
    ("64:ff9b::7f00:1", "loopback"), ("2002:a00:1::1", "private"),
    ("8.8.8.8", None), ("1.1.1.1", None), ("2606:4700:4700::1111", None), ("::ffff:8.8.8.8", None),
])
def test_addresses_are_classified(address: str, reason: str | None) -> None:
    assert address_refusal(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize(("host", "address"), [
    ("127.0.0.1", "127.0.0.1"), ("2130706433", "127.0.0.1"), ("0177.0.0.1", "127.0.0.1"), ("0x7f.1", "127.0.0.1"),
    ("127.1", "127.0.0.1"), ("017700000001", "127.0.0.1"), ("0xa9fea9fe", "169.254.169.254"), ("::1", "::1"),
    ("example.com", None), ("1password.com", None),
])
def test_legacy_ipv4_forms_are_read_as_the_address_a_resolver_would_use(host: str, address: str | None) -> None:
    parsed = parse_address(host)
    assert (str(parsed) if parsed else None) == address


@pytest.mark.parametrize("url", [
    "http://127.0.0.1/hook", "http://10.0.0.1/", "http://169.254.169.254/latest/meta-data/", "http://[::1]:8080/",
    "http://[::ffff:127.0.0.1]/", "http://2130706433/", "http://0177.0.0.1/", "http://0x7f.1/", "http://0.0.0.0:80/",
    "http://localhost/", "http://LOCALHOST./", "https://[fe80::1]/",
])
def test_non_public_hosts_are_refused_by_default(url: str) -> None:
    with pytest.raises(WebhookUrlRefused, match="address"):
        check_webhook_url(url, DEFAULTS)


@pytest.mark.parametrize(("url", "message"), [
    ("ftp://example.com/x", "http or https"), ("javascript:alert(1)", "http or https"), ("//example.com/", "http"),
    ("https://user:pw@example.com/", "credentials"), ("https:///path", "no host"),
    ("https://example.com:99999/", "port"), ("https://exa mple.com/", "spaces"), ("https://例子.测试/", "ASCII"),
    ("https://example.com/" + "a" * MAX_URL_LENGTH, "longer than"), ("", "non-empty"),
])
def test_malformed_urls_are_refused(url: str, message: str) -> None:
    with pytest.raises(WebhookUrlRefused, match=message):
        check_webhook_url(url, DEFAULTS, resolver=lambda host, port: ["93.184.215.14"])


def test_a_host_with_any_private_address_is_refused() -> None:
    def resolver(host: str, port: int) -> list[str]:
        return ["93.184.215.14", "10.0.0.7"]

    with pytest.raises(WebhookUrlRefused, match=r"hooks\.example\.com \(10\.0\.0\.7\) is a private address"):
        check_webhook_url("https://hooks.example.com/x", DEFAULTS, resolver)


def test_unresolvable_host_is_refused() -> None:
    def resolver(host: str, port: int) -> list[str]:
        raise OSError("Name or service not known")

    with pytest.raises(WebhookUrlRefused, match="does not resolve"):
        check_webhook_url("https://nowhere.invalid/", DEFAULTS, resolver)


def test_public_url_is_accepted_with_its_resolved_addresses() -> None:
    target = check_webhook_url("https://Hooks.Example.com:8443/in?x=1#frag", DEFAULTS,
                               lambda host, port: ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"])
    assert (target.scheme, target.host, target.port, target.path) == ("https", "hooks.example.com", 8443, "/in?x=1")
    assert target.addresses[0] == "93.184.215.14" and target.host_header == "hooks.example.com:8443"


def test_operators_can_allow_private_hosts_but_never_unspecified_or_multicast() -> None:
    assert check_webhook_url("http://127.0.0.1:9/", PRIVATE_OK).addresses == ("127.0.0.1",)
    assert check_webhook_url("http://169.254.169.254/", PRIVATE_OK).host == "169.254.169.254"
    for url in ("http://0.0.0.0/", "http://224.0.0.1/"):
        with pytest.raises(WebhookUrlRefused):
            check_webhook_url(url, PRIVATE_OK)
    listed = Settings(webhook_allowed_hosts="hooks.internal, 10.20.0.0/16")
    assert check_webhook_url("http://hooks.internal/", listed, lambda h, p: ["10.9.9.9"]).addresses == ("10.9.9.9",)
    assert check_webhook_url("http://10.20.3.4/", listed).host == "10.20.3.4"
    with pytest.raises(WebhookUrlRefused):
        check_webhook_url("http://10.21.3.4/", listed)
    with pytest.raises(WebhookUrlRefused):
        check_webhook_url("http://other.internal/", listed, lambda h, p: ["10.9.9.9"])


def test_signature_verifies_and_detects_tampering_and_old_timestamps() -> None:
    secret, body = derive_tenant_secret(b"master", "alice"), b'{"event":"job.finished"}'
    header = sign(secret, 1_700_000_000, body)
    assert header.startswith("t=1700000000,v1=")
    assert verify_signature(secret, header, body, now=1_700_000_010)
    assert not verify_signature(secret, header, body + b" ", now=1_700_000_010)
    assert not verify_signature(derive_tenant_secret(b"master", "bob"), header, body, now=1_700_000_010)
    assert not verify_signature(secret, header, body, now=1_700_000_000 + 301)
    assert not verify_signature(secret, "v1=abc", body)


def test_tenant_secrets_are_stable_distinct_and_follow_the_master() -> None:
    assert derive_tenant_secret(b"m", "alice") == derive_tenant_secret(b"m", "alice")
    assert derive_tenant_secret(b"m", "alice") != derive_tenant_secret(b"m", "bob")
    assert derive_tenant_secret(b"m", "alice") != derive_tenant_secret(b"n", "alice")


# -- the connection a delivery makes ---------------------------------------------------------


def to_loopback(host: str, port: int) -> list[str]:
    return ["127.0.0.1"]


def test_delivery_connects_to_the_checked_address_with_the_host_name_in_the_host_header() -> None:
    with Receiver() as receiver:
        entry = attempt_delivery(f"http://hooks.example.test:{receiver.port}/in?x=1", b"{}", "s", "job1", 1,
                                 PRIVATE_OK, resolver=to_loopback)
    assert entry["status_code"] == 200 and "error" not in entry and entry["duration_ms"] >= 0
    [request] = receiver.received
    assert request.path == "/in?x=1" and request.headers["Host"] == f"hooks.example.test:{receiver.port}"
    assert verify_signature("s", request.headers["ArtForge-Signature"], request.body)


def test_a_host_resolving_to_a_refused_address_is_not_contacted_at_delivery() -> None:
    with Receiver() as receiver:
        entry = attempt_delivery(f"http://hooks.example.test:{receiver.port}/", b"{}", "s", "job1", 1, DEFAULTS,
                                 resolver=to_loopback)
    assert "loopback" in entry["error"] and "status_code" not in entry
    assert receiver.received == []


def test_redirects_are_not_followed() -> None:
    with Receiver() as target, Receiver([(302, {"Location": ""})]) as redirector:
        redirector.responses = [(302, {"Location": target.url("/stolen")})]
        entry = attempt_delivery(redirector.url(), b"{}", "s", "job1", 1, PRIVATE_OK)
    assert entry["status_code"] == 302 and entry["error"] == "redirects are not followed"
    assert len(redirector.received) == 1 and target.received == []


def test_refused_connection_is_an_error_not_an_exception() -> None:
    entry = attempt_delivery(f"http://127.0.0.1:{closed_port()}/", b"{}", "s", "job1", 1, PRIVATE_OK)
    assert "status_code" not in entry and "refused" in entry["error"].lower()


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A local CA and a leaf certificate for hooks.example.test signed by it."""
    folder = tmp_path_factory.mktemp("tls")
    now = datetime.datetime.now(datetime.UTC)
    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test webhook CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hooks.example.test")]))
            .issuer_name(ca_name).public_key(leaf_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("hooks.example.test")]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    files = {"ca": folder / "ca.pem", "cert": folder / "leaf.pem", "key": folder / "leaf.key"}
    files["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files["cert"].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    files["key"].write_bytes(leaf_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                    serialization.NoEncryption()))
    return files


def tls_receiver(files: dict[str, Path]) -> Receiver:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(files["cert"], files["key"])
    return Receiver(tls=context)


def test_https_delivery_to_the_pinned_address_sends_sni_and_checks_the_certificate(tls_files: dict[str, Path]) -> None:
    settings = Settings(webhook_allow_private=True, webhook_ca_certs=str(tls_files["ca"]))
    with tls_receiver(tls_files) as receiver:
        entry = attempt_delivery(f"https://hooks.example.test:{receiver.port}/in", b"{}", "s", "job1", 1, settings,
                                 resolver=to_loopback)
        assert entry.get("status_code") == 200, entry
        assert receiver.server_names == ["hooks.example.test"]
        assert receiver.received[0].headers["Host"] == f"hooks.example.test:{receiver.port}"

        # The same address under a name the certificate does not carry: refused by the TLS check.
        wrong = attempt_delivery(f"https://other.example.test:{receiver.port}/in", b"{}", "s", "job1", 1, settings,
                                 resolver=to_loopback)
        assert "status_code" not in wrong and "TLS" in wrong["error"]
        # And without the CA, certifi's roots do not trust it.
        untrusted = attempt_delivery(f"https://hooks.example.test:{receiver.port}/in", b"{}", "s", "job1", 1,
                                     PRIVATE_OK, resolver=to_loopback)
        assert "status_code" not in untrusted and "TLS" in untrusted["error"]
    assert len(receiver.received) == 1
