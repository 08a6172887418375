"""Per-tenant policies that operators set (admin API, ``artforge policy set``, ``flask --app api tenants``).

Keys (under ``af:``):
  tenant:{t}:policy   hash; results_retention_days: days after a job finished that its results
                      are deleted (fractions allowed; 0 = kept forever). Absent: the service
                      default, ``Settings.results_expire_days``, applies.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import cast

import redis

from shared.jobs import PREFIX

# A century: beyond it "forever" (0) says what is meant.
MAX_RETENTION_DAYS = 36500.0


def valid_tenant_name(name: str) -> bool:
    """The rule API keys follow (``api.auth.KeyStore.create``): letters, digits, '-' and '_'."""
    return bool(name) and len(name) <= 64 and name.replace("-", "").replace("_", "").isalnum()


def check_retention_days(days: float) -> float:
    if isinstance(days, bool) or not isinstance(days, int | float) or not math.isfinite(days):
        raise ValueError("results_retention_days must be a number")
    if not 0 <= days <= MAX_RETENTION_DAYS:
        raise ValueError(f"results_retention_days must be between 0 (keep forever) and {MAX_RETENTION_DAYS:g}")
    return float(days)


@dataclass(frozen=True)
class TenantPolicy:
    tenant: str
    results_retention_days: float | None  # None: the service default applies

    def effective_results_retention_days(self, default: float) -> float:
        """Days results are kept; 0 = forever."""
        return default if self.results_retention_days is None else self.results_retention_days


class TenantPolicyStore:
    def __init__(self, client: redis.Redis):
        self.redis = client

    @staticmethod
    def key(tenant: str) -> str:
        return f"{PREFIX}tenant:{tenant}:policy"

    def get(self, tenant: str) -> TenantPolicy:
        raw = cast(str | None, self.redis.hget(self.key(tenant), "results_retention_days"))
        return TenantPolicy(tenant, float(raw) if raw is not None else None)

    def set_results_retention(self, tenant: str, days: float | None) -> TenantPolicy:
        """Set the tenant's retention in days (0 = keep forever); None returns it to the service default."""
        if not valid_tenant_name(tenant):
            raise ValueError("a tenant name is letters, digits, '-' and '_'")
        if days is None:
            self.redis.hdel(self.key(tenant), "results_retention_days")
        else:
            self.redis.hset(self.key(tenant), "results_retention_days", repr(check_retention_days(days)))
        return self.get(tenant)
