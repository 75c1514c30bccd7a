"""``prism sql``: an analyst's query, scoped to one tenant."""

from __future__ import annotations

import argparse
import asyncio
import re
import sys

from infra.cli.running import local_key, table
from infra.settings import Settings


def sql(settings: Settings, args: argparse.Namespace) -> int:
    """An analyst's query: through a running Prism if one answers (it holds the embedded engine), else directly."""
    import httpx

    from readers.analytics_sql import AnalystSql, Limits, Result
    from readers.errors import ReaderError
    from write.api import TENANT_PATTERN

    if not re.match(TENANT_PATTERN, args.tenant):
        print(f"error: tenant {args.tenant!r} must match {TENANT_PATTERN}", file=sys.stderr)
        return 2
    body = {"sql": args.query, "format": "csv" if args.format == "csv" else "json"}
    base = f"http://{settings.api_host}:{settings.api_port}"
    try:
        httpx.get(f"{base}/health", timeout=2)
        with local_key(settings, args.tenant, ["analytics"]) as headers:
            answer = httpx.post(
                f"{base}/analytics/sql", json=body, headers=headers, timeout=settings.sql_max_seconds + 30
            )
    except httpx.HTTPError:
        answer = None
    if answer is not None:
        if answer.status_code != 200:
            print(f"error: {answer.json().get('message', answer.text)}", file=sys.stderr)
            return 1
        print(answer.text if args.format == "csv" else table(answer.json()["columns"], answer.json()["rows"]))
        return 0

    async def direct() -> int:
        from infra import bootstrap

        stores = await bootstrap.open_stores(settings)
        try:
            analyst = AnalystSql(stores, settings.clickhouse_url, str(settings.chdb_path), Limits.of(settings))
            try:
                found = await analyst.run(args.tenant, args.query, csv=args.format == "csv")
            finally:
                analyst.close()
        except ReaderError as error:
            print(f"error: {error.message}", file=sys.stderr)
            return 1
        finally:
            await bootstrap.close_stores(stores)
        print(table(found.columns, found.rows) if isinstance(found, Result) else found.decode())
        return 0

    return asyncio.run(direct())
