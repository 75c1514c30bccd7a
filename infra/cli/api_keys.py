"""``prism keys``: API keys in the write database."""

from __future__ import annotations

import argparse
import asyncio
import sys

from infra.cli.running import table
from infra.settings import Settings


def keys(settings: Settings, args: argparse.Namespace) -> int:
    """Create, list or revoke API keys in the write database."""
    from datetime import timedelta

    from infra import bootstrap
    from write import api_keys
    from write.errors import WriteError

    async def run() -> int:
        engine = bootstrap.write_engine(settings, pool_size=1)
        try:
            if args.action == "create":
                expires = timedelta(days=args.expires) if args.expires else None
                key, plain = await api_keys.issue(engine, args.tenant, args.scopes.split(","), args.name, expires)
                print(
                    f"created key {key.id} for {key.tenant_id or 'operators'} with scopes {','.join(key.scopes)}"
                    f"{f', expiring {key.expires_at:%Y-%m-%d %H:%M} UTC' if key.expires_at else ''}; "
                    "it is shown only now:",
                    file=sys.stderr,
                )
                print(plain)
            elif args.action == "list":
                rows = [
                    [
                        k.id,
                        k.tenant_id or "-",
                        ",".join(k.scopes),
                        k.name,
                        f"{k.created_at:%Y-%m-%d %H:%M}",
                        f"{k.expires_at:%Y-%m-%d %H:%M}" if k.expires_at else "-",
                        f"{k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "-",
                    ]
                    for k in await api_keys.listing(engine, args.tenant)
                ]
                print(table(["id", "tenant", "scopes", "name", "created", "expires", "revoked"], rows))
            else:
                key = await api_keys.revoke(engine, args.id)
                print(f"revoked key {key.id} ({key.tenant_id or 'operators'})")
        except WriteError as error:
            print(f"error: {error.message}", file=sys.stderr)
            return 1
        finally:
            await engine.dispose()
        return 0

    return asyncio.run(run())
