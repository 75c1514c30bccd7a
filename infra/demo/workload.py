"""The demo: a realistic workload through the command API, then every reader's answer and a reconciliation."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import random
import secrets
import signal
import tempfile
import time
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

import httpx

from infra import bootstrap
from infra.demo import addresses
from infra.ops.status import ProjectionStatus, table
from infra.processes.supervisor import serving
from infra.settings import Settings
from write import api_keys

FIRST = [
    "José",
    "Zoë",
    "Amélie",
    "Liam",
    "Noah",
    "Olivia",
    "Mateo",
    "Sofía",
    "Björn",
    "Chloé",
    "Ava",
    "Lucas",
    "Mia",
    "Ethan",
    "Léa",
    "Hugo",
    "Emma",
    "Jonas",
    "Inès",
    "Oscar",
    "Nora",
    "Felix",
    "Ida",
    "Malik",
]
LAST = [
    "García",
    "Müller",
    "Smith",
    "Dubois",
    "Rossi",
    "Nowak",
    "Jensen",
    "Silva",
    "O'Brien",
    "Novák",
    "Kim",
    "Bernard",
    "Costa",
    "Fischer",
    "Lopez",
    "Martin",
    "Okafor",
    "Sato",
    "Weber",
    "Andersson",
]
ADJ = ["Widget", "Gadget", "Gizmo", "Sprocket", "Doohickey", "Flange", "Bracket", "Lamp", "Kettle", "Chair"]
KIND = ["Pro", "Mini", "Max", "Lite", "Plus", "Classic", "Deluxe", "Ultra", "Eco", "Air", "One"]


@dataclass
class Tenant:
    id: str
    key: str = ""
    customers: list[dict[str, Any]] = field(default_factory=list)
    products: list[dict[str, Any]] = field(default_factory=list)
    orders: list[dict[str, Any]] = field(default_factory=list)


class Seeder:
    """Drives the command API with bounded concurrency and prints progress."""

    def __init__(
        self, client: httpx.AsyncClient, concurrency: int, rng: random.Random, operator: dict[str, str]
    ) -> None:
        self.client, self.rng, self.operator = client, rng, operator
        self.keys: dict[str, dict[str, str]] = {}
        self.gate = asyncio.Semaphore(concurrency)
        self.sent = 0
        self.head = 0
        self.started = time.monotonic()

    async def register(self, tenant: Tenant) -> None:
        """Register the tenant as the operator; the answer carries the tenant's first API key."""
        body = {"id": tenant.id, "name": tenant.id.split("-")[0].title() + " Ltd"}
        response = await self.client.post("/tenants", json=body, headers=self.operator)
        if response.status_code != 201:
            raise RuntimeError(f"POST /tenants answered {response.status_code}: {response.text}")
        issued = response.json()["key"]
        tenant.key = issued["key"]
        self.keys[tenant.id] = {"Authorization": f"Bearer {tenant.key}"}
        print(
            f"  {tenant.id}: API key {issued['id']} ({tenant.key[:10]}…, scopes {','.join(issued['scopes'])})",
            flush=True,
        )

    async def post(self, tenant: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        async with self.gate:
            response = await self.client.post(path, json=body, headers=self.keys[tenant])
        if response.status_code >= 300:
            raise RuntimeError(f"POST {path} answered {response.status_code}: {response.text}")
        answer = response.json()
        self.sent += 1
        self.head = max(self.head, answer["position"])
        if self.sent % 1000 == 0:
            rate = self.sent / (time.monotonic() - self.started)
            print(f"  {self.sent:>6} commands sent ({rate:,.0f}/s), log position {self.head}", flush=True)
        return answer

    async def each(self, jobs: list) -> list[Any]:
        return await asyncio.gather(*jobs)


async def seed(seeder: Seeder, tenants: list[Tenant], customers: int, products: int, orders: int) -> None:
    rng = seeder.rng
    print(f"registering {len(tenants)} tenants as the operator, each with an API key of its own", flush=True)
    await seeder.each([seeder.register(t) for t in tenants])

    async def customer(t: Tenant, n: int) -> None:
        name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
        email = f"{name.split()[0].lower()}.{n}@{t.id}.example"
        answer = await seeder.post(t.id, "/customers", {"name": name, "email": email})
        t.customers.append({"id": answer["id"], "version": answer["version"], "name": name})

    async def product(t: Tenant, n: int) -> None:
        name = f"{rng.choice(ADJ)} {rng.choice(KIND)} {n}"
        price = str(Decimal(rng.randint(199, 19999)) / 100)
        answer = await seeder.post(t.id, "/products", {"name": name, "price": price, "sku": f"SKU-{n:05d}"})
        t.products.append({"id": answer["id"], "version": answer["version"], "name": name})

    print(f"registering {customers * len(tenants)} customers and {products * len(tenants)} products", flush=True)
    await seeder.each(
        [customer(t, n) for t in tenants for n in range(customers)]
        + [product(t, n) for t in tenants for n in range(products)]
    )

    async def order(t: Tenant) -> None:
        buyer = rng.choice(t.customers)
        items = [
            {"product_id": p["id"], "quantity": rng.randint(1, 5)} for p in rng.sample(t.products, rng.randint(1, 4))
        ]
        body = {"customer_id": buyer["id"], "items": items} | addresses.body_field(rng, buyer["name"])
        answer = await seeder.post(t.id, "/orders", body)
        t.orders.append({"id": answer["id"], "version": answer["version"], "status": "pending"})

    print(f"placing {orders * len(tenants)} orders", flush=True)
    await seeder.each([order(t) for t in tenants for _ in range(orders)])
    await lifecycle(seeder, tenants)
    await renames(seeder, tenants)


async def lifecycle(seeder: Seeder, tenants: list[Tenant]) -> None:
    """Discounts, confirmations, shipments and cancellations, each with its expected version."""
    rng = seeder.rng

    async def step(t: Tenant, o: dict[str, Any], action: str, body: dict[str, Any], status: str | None) -> None:
        answer = await seeder.post(t.id, f"/orders/{o['id']}/{action}", body | {"expected_version": o["version"]})
        o["version"] = answer["version"]
        o["status"] = status or o["status"]

    async def story(t: Tenant, o: dict[str, Any]) -> None:
        roll = rng.random()
        if roll < 0.15:
            await step(t, o, "discount", {"percent": str(rng.choice([5, 10, 12.5, 20])), "authorised_by": "Dana"}, None)
        if roll < 0.08:
            await step(t, o, "cancel", {"reason": rng.choice(["customer changed mind", "out of stock"])}, "cancelled")
            return
        if roll < 0.75:
            await step(t, o, "confirm", {}, "confirmed")
        if roll < 0.45:
            await step(t, o, "ship", {}, "shipped")
        elif 0.70 < roll < 0.75:
            await step(t, o, "cancel", {"reason": "payment failed"}, "cancelled")

    print("confirming, shipping, discounting and cancelling", flush=True)
    await seeder.each([story(t, o) for t in tenants for o in t.orders])


async def renames(seeder: Seeder, tenants: list[Tenant]) -> None:
    rng = seeder.rng

    async def rename_customer(t: Tenant, c: dict[str, Any]) -> None:
        name = f"{rng.choice(FIRST)} {rng.choice(LAST)}-{rng.choice(LAST)}"
        answer = await seeder.post(t.id, f"/customers/{c['id']}/name", {"name": name, "expected_version": c["version"]})
        c.update(version=answer["version"], name=name)

    async def change_email(t: Tenant, c: dict[str, Any]) -> None:
        email = f"{secrets.token_hex(4)}@{t.id}.example"
        answer = await seeder.post(
            t.id, f"/customers/{c['id']}/email", {"email": email, "expected_version": c["version"]}
        )
        c["version"] = answer["version"]

    async def rename_product(t: Tenant, p: dict[str, Any]) -> None:
        name = p["name"].replace(p["name"].split()[1], rng.choice(KIND) + " II", 1)
        answer = await seeder.post(t.id, f"/products/{p['id']}/name", {"name": name, "expected_version": p["version"]})
        p.update(version=answer["version"], name=name)

    print("renaming customers and products, changing emails", flush=True)
    for t in tenants:
        picked = rng.sample(t.customers, 20)
        await seeder.each([rename_customer(t, c) for c in picked[:12]])
        await seeder.each([change_email(t, c) for c in picked[8:]])
        await seeder.each([rename_product(t, p) for p in rng.sample(t.products, 8)])


async def wait_for_lag_zero(client: httpx.AsyncClient, timeout: float, headers: dict[str, str]) -> list[dict[str, Any]]:
    """Until every running version has applied the whole log (a previous version stays frozen until a rollback)."""
    deadline = time.monotonic() + timeout
    while True:
        rows = [r for r in (await client.get("/projections", headers=headers)).json() if r["state"] != "previous"]
        if all(r["lag_events"] == 0 for r in rows):
            return rows
        if time.monotonic() > deadline:
            raise RuntimeError(f"projections still lag after {timeout:.0f}s: {rows}")
        print("  waiting: " + ", ".join(f"{r['projection']} lag {r['lag_events']}" for r in rows), flush=True)
        await asyncio.sleep(1.0)


async def show_readers(client: httpx.AsyncClient, tenant: Tenant, head: int) -> None:
    order = next(o for o in tenant.orders if o["status"] == "shipped")
    customer = tenant.customers[0]
    word = tenant.products[0]["name"].split()[0]
    typo = word[:-2] + word[-1] + word[-2]
    headers = {"Authorization": f"Bearer {tenant.key}"}
    print(f"\nreading back as {tenant.id}, with its API key {tenant.key[:10]}…")
    calls = [
        ("Redis order summary", f"/orders/{order['id']}", {}),
        (f"Elasticsearch search q={typo!r} (a typo of {word!r})", "/search", {"q": typo}),
        ("ClickHouse revenue by day", "/analytics/revenue", {"granularity": "day"}),
        ("ClickHouse top products", "/analytics/top-products", {"limit": 3}),
        ("Postgres customer dashboard", f"/customers/{customer['id']}/dashboard", {}),
        ("Postgres shipping summary (per country: waiting, oldest waiting, shipped today)", "/shipping/summary", {}),
    ]
    for title, path, params in calls:
        response = await client.get(path, params=params | {"min_position": head}, headers=headers)
        body = response.json()
        if path == "/search":
            body = {"total": body["total"], "hits": body["hits"][:2], "consistency": body["consistency"]}
        print(
            f"\n== {title}: GET {path} -> {response.status_code}, X-Prism-Position "
            f"{response.headers.get('x-prism-position')}"
        )
        print(json.dumps(body, indent=1, ensure_ascii=False)[:1500])


async def reconcile(settings: Settings, stores, client: httpx.AsyncClient, tenants: list[Tenant]) -> bool:
    """Per tenant: orders in the write model against documents in each store, and dashboard rows that differ from
    the write model's, through the projections' own fingerprints (what the audit compares).

    ClickHouse is asked through the API, as the tenant's analyst: under ``serve`` one process holds the engine.
    """
    from infra.ops.audit import served
    from write.facts import tenant_facts

    engine = bootstrap.write_engine(settings, pool_size=1)
    projections = await served(engine, stores)
    summaries, search, dashboards = (
        projections["order_summaries"],
        projections["order_search"],
        projections["customer_dashboards"],
    )
    ok = True
    print(f"\n{'tenant':<18}{'write db':>9}{'redis':>8}{'elastic':>9}{'clickhouse':>11}{'dash mismatches':>16}")
    for t in tenants:
        async with engine.connect() as conn:
            facts = await tenant_facts(conn, t.id)
        ch = await client.post(
            "/analytics/sql",
            json={"sql": "SELECT count(DISTINCT order_id) FROM orders"},
            headers={"Authorization": f"Bearer {t.key}"},
        )
        rows = await dashboards.of_tenant(t.id).fingerprints(t.id)
        mismatches = sum(1 for cid, row in dashboards.expected(facts).items() if rows.get(cid) != row)
        counts = (
            len(facts.orders),
            len(await summaries.of_tenant(t.id).fingerprints(t.id)),
            len(await search.of_tenant(t.id).fingerprints(t.id)),
            ch.json()["rows"][0][0] if ch.status_code == 200 else ch.text,
        )
        ok = ok and len(set(counts)) == 1 and mismatches == 0
        print(f"{t.id:<18}{counts[0]:>9}{counts[1]:>8}{counts[2]:>9}{counts[3]:>11}{mismatches:>16}")
    await engine.dispose()
    return ok


#: Exit status of a process stopped by Ctrl-C (128 + SIGINT), as a shell reports it.
INTERRUPTED = 130


def _seed_process(
    base: str, tenant_ids: list[str], sizes: dict[str, int], concurrency: int, out: str, operator: dict[str, str]
) -> None:
    """The load generator runs in a process of its own so it does not share the server's interpreter."""

    async def run() -> None:
        tenants = [Tenant(tid) for tid in tenant_ids]
        async with httpx.AsyncClient(
            base_url=base, timeout=60, limits=httpx.Limits(max_connections=concurrency)
        ) as client:
            seeder = Seeder(client, concurrency, random.Random(tenant_ids[0]), operator)
            await seed(seeder, tenants, **sizes)
            took = time.monotonic() - seeder.started
            print(f"{seeder.sent} commands in {took:.1f}s ({seeder.sent / took:,.0f}/s)", flush=True)
        with open(out, "w") as f:  # noqa: ASYNC230  # a few kB, once, after the load
            json.dump({"head": seeder.head, "tenants": [t.__dict__ for t in tenants]}, f)

    try:
        asyncio.run(run())
    except KeyboardInterrupt:  # Ctrl-C reaches the whole process group: the parent says so, once
        raise SystemExit(INTERRUPTED) from None


async def _seed(
    base: str, tenant_ids: list[str], sizes: dict[str, int], concurrency: int, operator: dict[str, str]
) -> tuple[int, list[Tenant]]:
    with tempfile.TemporaryDirectory() as folder:
        out = f"{folder}/seeded.json"
        child = multiprocessing.get_context("spawn").Process(
            target=_seed_process, args=(base, tenant_ids, sizes, concurrency, out, operator), name="prism-demo-load"
        )
        child.start()
        await asyncio.to_thread(child.join)
        if child.exitcode in (INTERRUPTED, -signal.SIGINT):
            raise KeyboardInterrupt
        if child.exitcode != 0:
            raise RuntimeError(f"the demo's load generator failed (exit code {child.exitcode}); see above")
        with open(out) as f:  # noqa: ASYNC230  # a few kB, once
            seeded = json.load(f)
    return seeded["head"], [Tenant(**t) for t in seeded["tenants"]]


#: How long the key the demo prints for the console lasts.
CONSOLE_KEY_HOURS = 24


async def _show_console(engine, base: str) -> None:
    """The console's address and an operator key to sign in with: it shows this demo as it runs, and any later
    ``prism serve`` (``make serve``) on the same address."""
    key, plain = await api_keys.issue(
        engine, None, [api_keys.OPERATOR], "console (demo)", timedelta(hours=CONSOLE_KEY_HOURS)
    )
    print(
        f"\nthe operator console: {base}/console\n  sign in with the operator key {plain}\n"
        f"  (valid {CONSOLE_KEY_HOURS} h; `prism keys revoke {key.id}` ends it sooner)\n",
        flush=True,
    )


async def run_demo(
    settings: Settings,
    tenants: int = 3,
    customers: int = 70,
    products: int = 35,
    orders: int = 1700,
    concurrency: int = 32,
) -> bool:
    """``prism serve`` as a child (its processes in ``ps``), load from another process, then read back and
    reconcile every store."""
    run = secrets.token_hex(2)
    names = ["acme", "globex", "initech", "umbrella", "hooli"]
    tenant_ids = [f"{names[n % len(names)]}-{run}" for n in range(tenants)]
    base = f"http://{settings.api_host}:{settings.api_port}"
    log_path = settings.chdb_path.resolve().parent / "demo-serve.log"
    print(f"starting prism serve (its processes' log: {log_path})", flush=True)
    async with serving(settings, log_path) as child:
        print(f"prism serve is ready (pid {child.pid})", flush=True)
        stores = await bootstrap.open_stores(settings, only=("redis", "elasticsearch", "dashboards"))
        engine = bootstrap.write_engine(settings, pool_size=1)
        # The demo acts as the operator who registers tenants: a key of its own, revoked when it ends.
        key, plain = await api_keys.issue(engine, None, [api_keys.OPERATOR], "demo", timedelta(hours=1))
        operator = {"Authorization": f"Bearer {plain}"}
        print(f"operator key {key.id} issued for the demo (revoked at its end)", flush=True)
        await _show_console(engine, base)
        try:
            head, seeded = await _seed(
                base,
                tenant_ids,
                {"customers": customers, "products": products, "orders": orders},
                concurrency,
                operator,
            )
            async with httpx.AsyncClient(base_url=base, timeout=60) as client:
                print("waiting for every projection to reach the log's head", flush=True)
                rows = await wait_for_lag_zero(client, 300, operator)
                await show_readers(client, seeded[0], head)
                print("\n" + table([ProjectionStatus(**row) for row in rows]))
                return await reconcile(settings, stores, client, seeded)
        finally:
            await api_keys.revoke(engine, key.id)
            await engine.dispose()
            await bootstrap.close_stores(stores)
