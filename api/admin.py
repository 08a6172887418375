"""Server-side admin commands (run where Redis is reachable): ``artforge admin create-key``,
``revoke-key``, ``set-retention``."""

from __future__ import annotations

import argparse
import sys

from api.auth import KeyStore
from shared.connections import redis_client
from shared.settings import Settings
from shared.tenants import TenantPolicyStore


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="artforge admin")
    sub = parser.add_subparsers(dest="command", required=True)
    create = sub.add_parser("create-key", help="print a new API key for a tenant")
    create.add_argument("--tenant", required=True)
    create.add_argument("--admin", action="store_true", help="the key may train and manage models")
    revoke = sub.add_parser("revoke-key", help="revoke a key by its id (the part after 'af_')")
    revoke.add_argument("key_id")
    retention = sub.add_parser("set-retention", help="delete a tenant's results this many days after their job "
                                                     "finished (0 = keep forever)")
    retention.add_argument("--tenant", required=True)
    retention.add_argument("--days", required=True, type=float, help="fractions allowed, e.g. 0.5")
    args = parser.parse_args(argv)

    client = redis_client(Settings.from_env())
    if args.command == "set-retention":
        try:
            policy = TenantPolicyStore(client).set_results_retention(args.tenant, args.days)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(f"{policy.tenant}: results_retention_days={policy.results_retention_days:g}")
        return 0
    keys = KeyStore(client)
    if args.command == "create-key":
        try:
            key, _ = keys.create(args.tenant, admin=args.admin)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(key)
        return 0
    if not keys.revoke(args.key_id):
        print(f"error: no key {args.key_id}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
