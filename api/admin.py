"""Server-side admin commands, for operators who have no API key yet: ``flask --app api keys ...``
and ``flask --app api tenants ...``, run where the API runs, with its settings (its environment;
the dev stack's with ``python -m deploy.devstack flask keys ...``).

    flask --app api keys create --tenant ops --operator   # prints a new key, once
    flask --app api keys list --tenant studio
    flask --app api keys revoke KEY_ID
    flask --app api tenants set-retention --tenant studio --days 30

With a key, the same is done over HTTP (``artforge admin ...``, ``routes/keys.py``).
"""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup

from api.auth import KeyStore
from shared.tenants import TenantPolicyStore


def _keys() -> KeyStore:
    keys: KeyStore = current_app.extensions["artforge"].keys
    return keys


keys_cli = AppGroup("keys", help="API keys: create, list, revoke.")
tenants_cli = AppGroup("tenants", help="Tenant policies.")


@keys_cli.command("create")
@click.option("--tenant", required=True)
@click.option("--admin", is_flag=True, help="the key may train and manage models, schedules and its tenant's keys")
@click.option("--operator", is_flag=True, help="the key may manage every tenant's keys (implies --admin)")
def create_key(tenant: str, admin: bool, operator: bool) -> None:
    """Print a new API key for TENANT (shown once: only its hash is stored)."""
    try:
        key, _ = _keys().create(tenant, admin=admin, operator=operator)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    click.echo(key)


@keys_cli.command("list")
@click.option("--tenant", required=True)
def list_keys(tenant: str) -> None:
    """The tenant's key ids and roles, oldest first (never a secret)."""
    for info in _keys().of_tenant(tenant):
        role = "operator" if info.operator else "admin" if info.admin else "user"
        click.echo(f"{info.id}  {info.tenant}  {role}  created {info.created_at:.0f}")


@keys_cli.command("revoke")
@click.argument("key_id")
def revoke_key(key_id: str) -> None:
    """Revoke a key by its id (the part after 'af_'): its next request answers 401."""
    if not _keys().revoke(key_id):
        raise click.ClickException(f"no key {key_id}")


@tenants_cli.command("set-retention")
@click.option("--tenant", required=True)
@click.option("--days", required=True, type=float,
              help="delete the tenant's results this many days after their job finished (0 = keep forever)")
def set_retention(tenant: str, days: float) -> None:
    try:
        policy = TenantPolicyStore(_keys().redis).set_results_retention(tenant, days)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    click.echo(f"{policy.tenant}: results_retention_days={policy.results_retention_days:g}")
