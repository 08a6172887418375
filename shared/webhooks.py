"""Webhooks: which URLs a job may call back, and how a delivery is signed.

SSRF guard. A ``webhook_url`` is an ``http`` or ``https`` URL of at most ``MAX_URL_LENGTH``
characters, without credentials. Its host is resolved (an IP literal, including the legacy
decimal, octal and hex IPv4 forms that C resolvers accept, is taken as it is) and *every*
address it resolves to must be public: loopback, private (RFC 1918, RFC 6598 shared space, IPv6
ULA), link-local (169.254.0.0/16 with the cloud metadata service, fe80::/10), multicast,
unspecified, reserved and other special-purpose addresses are refused, also when an IPv6 address
carries one of them (IPv4-mapped, NAT64, 6to4). Operators may allow them:
``webhook_allow_private`` allows every unicast address, ``webhook_allowed_hosts`` (comma-separated
host names and IP networks) allows the listed ones. The check runs at submission and again at
each delivery, which connects to the address it checked (the connection is pinned to it: a DNS
answer that changes in between cannot steer the POST elsewhere).

Signing. Each delivery carries ``ArtForge-Signature: t=<unix seconds>,v1=<hex>`` where ``v1`` is
HMAC-SHA256 over ``f"{t}." + body`` keyed with the tenant's webhook secret. A tenant's secret is
derived from the service's master secret (``webhook_secret``; when empty, a random one kept in
Redis) and shown to the tenant by ``GET /v1/webhooks/secret``; changing the master rotates every
tenant's secret. Receivers check the signature and that ``t`` is recent (``verify_signature``).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import ipaddress
import secrets
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import redis

from shared.jobs import PREFIX
from shared.settings import Settings

MAX_URL_LENGTH = 2048
SIGNATURE_HEADER = "ArtForge-Signature"
EVENT_HEADER = "ArtForge-Event"
DELIVERY_HEADER = "ArtForge-Delivery"
ATTEMPT_HEADER = "ArtForge-Attempt"
SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix that marks secrets, not one)
# How old a signature's timestamp may be before a receiver should refuse it (replays).
SIGNATURE_TOLERANCE_S = 300
MASTER_SECRET_KEY = f"{PREFIX}webhooks:master_secret"
DEFAULT_PORTS = {"http": 80, "https": 443}

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# (host, port) -> the addresses it resolves to, as text.
Resolver = Callable[[str, int], Sequence[str]]

# Refused unless an operator allows them; the rest of the special-purpose space is caught by
# ``is_global`` below. Order matters: the first match names the reason.
_PRIVATE_NETWORKS = tuple(ipaddress.ip_network(n) for n in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7"))
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
# Meaningless as the target of a TCP connection, whatever an operator allows.
_NEVER = ("unspecified", "multicast")


class WebhookUrlRefused(ValueError):
    """The URL may not be a webhook; the message says why, for the API's 422."""


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (IPv4-mapped, NAT64, 6to4), if any."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def address_refusal(address: IPAddress) -> str | None:
    """Why ``address`` may not receive webhooks by default ("loopback", "private", ...), or None."""
    embedded = _embedded_ipv4(address)
    if embedded is not None:
        return address_refusal(embedded)
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if any(address in network for network in _PRIVATE_NETWORKS if network.version == address.version):
        return "private"
    if address.is_reserved:
        return "reserved"
    if address.is_private or not address.is_global:
        return "special-purpose"
    return None


def parse_address(host: str) -> IPAddress | None:
    """``host`` as an IP address if it is one, in any form a C resolver would read as one
    ("127.0.0.1", "::1", "2130706433", "0177.0.0.1", "0x7f.1"); None for a host name."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if host[:1].isdigit():
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


@dataclass(frozen=True)
class WebhookPolicy:
    """What an operator allows beyond public addresses."""

    allow_private: bool = False
    hosts: frozenset[str] = frozenset()
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> WebhookPolicy:
        return _policy(settings.webhook_allow_private, settings.webhook_allowed_hosts)

    def refusal(self, host: str, address: IPAddress) -> str | None:
        reason = address_refusal(address)
        if reason is None or reason in _NEVER:
            return reason
        if self.allow_private or host in self.hosts or any(
                address in network for network in self.networks if network.version == address.version):
            return None
        return reason


@functools.lru_cache(maxsize=16)
def _policy(allow_private: bool, allowed_hosts: str) -> WebhookPolicy:
    hosts, networks = set(), []
    for entry in (e.strip().lower() for e in allowed_hosts.split(",")):
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            hosts.add(entry.rstrip("."))
    return WebhookPolicy(allow_private, frozenset(hosts), tuple(networks))


def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to, in the resolver's order, without duplicates."""
    found: list[str] = []
    for *_, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        text = str(sockaddr[0]).split("%", 1)[0]
        if text not in found:
            found.append(text)
    return found


@dataclass(frozen=True)
class WebhookTarget:
    """A checked webhook URL: where to connect (``addresses[0]``) and what to ask for."""

    url: str
    scheme: str
    host: str
    port: int
    path: str
    addresses: tuple[str, ...]

    @property
    def host_header(self) -> str:
        name = f"[{self.host}]" if ":" in self.host else self.host
        return name if self.port == DEFAULT_PORTS[self.scheme] else f"{name}:{self.port}"


def check_webhook_url(url: object, settings: Settings, resolver: Resolver = resolve) -> WebhookTarget:
    """The URL's target, if a webhook may call it; raises WebhookUrlRefused otherwise."""
    if not isinstance(url, str) or not url:
        raise WebhookUrlRefused("webhook_url must be a non-empty string")
    if len(url) > MAX_URL_LENGTH:
        raise WebhookUrlRefused(f"webhook_url is longer than {MAX_URL_LENGTH} characters")
    if not url.isascii() or not url.isprintable() or any(c.isspace() for c in url):
        raise WebhookUrlRefused("webhook_url must be printable ASCII without spaces (percent-encode the rest)")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise WebhookUrlRefused("webhook_url must be an http or https URL")
    if parts.username is not None or parts.password is not None:
        raise WebhookUrlRefused("webhook_url must not carry credentials; check the signature instead")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise WebhookUrlRefused("webhook_url has no host")
    try:
        port = parts.port or DEFAULT_PORTS[scheme]
    except ValueError:
        raise WebhookUrlRefused("webhook_url has an invalid port") from None
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")

    policy = WebhookPolicy.from_settings(settings)
    literal = parse_address(host)
    if literal is not None:
        host = str(literal)
        addresses: Sequence[str] = [host]
    else:
        try:
            addresses = resolver(host, port)
        except (OSError, UnicodeError):
            raise WebhookUrlRefused(f"webhook_url's host {host!r} does not resolve") from None
        if not addresses:
            raise WebhookUrlRefused(f"webhook_url's host {host!r} does not resolve")
    for text in addresses:
        reason = policy.refusal(host, ipaddress.ip_address(text))
        if reason is not None:
            shown = host if literal is not None else f"{host} ({text})"
            raise WebhookUrlRefused(
                f"webhook_url's host {shown} is {'an' if reason[0] in 'aeiou' else 'a'} {reason} address; "
                "webhooks are only delivered to public addresses unless the operator allows others")
    return WebhookTarget(url=url, scheme=scheme, host=host, port=port, path=path, addresses=tuple(addresses))


# -- signing ---------------------------------------------------------------------------------


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``ArtForge-Signature`` header's value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify_signature(secret: str, header: str, body: bytes, tolerance_s: float = SIGNATURE_TOLERANCE_S,
                     now: float | None = None) -> bool:
    """What a receiver does: the header names a recent timestamp and a matching v1 signature."""
    fields: dict[str, list[str]] = {}
    for item in header.split(","):
        name, _, value = item.strip().partition("=")
        fields.setdefault(name, []).append(value)
    try:
        timestamp = int(fields["t"][0])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        return False
    expected = sign(secret, timestamp, body).rpartition("v1=")[2]
    return any(hmac.compare_digest(expected, given) for given in fields.get("v1", []))


def derive_tenant_secret(master: bytes, tenant: str) -> str:
    return SECRET_PREFIX + hmac.new(master, b"artforge-webhook-tenant:" + tenant.encode(), hashlib.sha256).hexdigest()


class WebhookSecrets:
    """Per-tenant signing secrets, derived from the master secret (settings, else Redis)."""

    def __init__(self, client: redis.Redis, settings: Settings):
        self.redis, self.settings = client, settings
        self._master: bytes | None = settings.webhook_secret.encode() if settings.webhook_secret else None

    def master(self) -> bytes:
        if self._master is None:
            # The first process to ask makes it; every API and worker process then reads the same one.
            self.redis.set(MASTER_SECRET_KEY, secrets.token_hex(32), nx=True)
            stored = self.redis.get(MASTER_SECRET_KEY)
            if not stored:
                raise RuntimeError("the webhook master secret vanished from Redis")
            self._master = str(stored).encode()
        return self._master

    def for_tenant(self, tenant: str) -> str:
        return derive_tenant_secret(self.master(), tenant)
