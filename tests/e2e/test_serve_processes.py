"""``prism serve``'s processes: a worker per store, the relay in the supervisor, and a store's builder only while a
rebuild needs one; idle, the whole tree holds far less memory than an interpreter per projection and queue did.

``prism serve`` runs as a child on this slot's settings (a ``builder_linger_seconds`` of a few seconds), idle
first, then while the workers rebuild one projection over HTTP, then idle again.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from infra import sandbox
from infra.processes.supervisor import running_processes, running_supervisor, serving
from tests.conftest import OPERATOR, apart, eventually
from tests.faults.test_faults import children_of

#: Idle PSS of serve's whole process tree (``/proc/PID/smaps_rollup``), in MB: 1,555 with a worker and a builder
#: per projection and the relay alone (13 processes), ~750 since. A bound that a process or a library loaded back
#: into every interpreter would cross.
IDLE_PSS_MB = 850
LINGER_SECONDS = 3.0


def pss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        total += next(int(line.split()[1]) for line in rollup.splitlines() if line.startswith("Pss:"))
    return total / 1024


@pytest.mark.timeout(300)
async def test_serve_runs_a_worker_per_store_and_a_builder_only_while_a_rebuild_needs_it(fresh_services, tmp_path):
    # A sandbox of its own: the session's in-process workers would otherwise build the version before its builder
    # starts.
    settings = apart(fresh_services, tmp_path, "procs", api_processes=2, builder_linger_seconds=LINGER_SECONDS)
    await sandbox.reset(settings, beside=True)
    async with serving(settings, tmp_path / "serve.log") as supervisor:
        roles = sorted(children_of(supervisor.pid).values())
        assert roles == [
            "api",
            "api",
            "clickhouse-owner",
            "worker dashboards live",
            "worker elasticsearch live",
            "worker redis live",
        ], roles
        listed = {p["name"]: p for p in running_processes(settings) or []}
        builders = {name for name in listed if name.startswith("builder-")}
        assert builders == {"builder-redis", "builder-elasticsearch", "builder-dashboards"}, listed
        assert all(listed[name]["state"] == "idle" and listed[name]["pid"] is None for name in builders), listed
        assert running_supervisor(settings)["name"] == "serve (relay)"
        idle = pss_mb([supervisor.pid, *children_of(supervisor.pid)])
        print(f"\nidle PSS of prism serve: {idle:.0f} MB")
        assert idle < IDLE_PSS_MB, idle

        def builder() -> list[int]:
            return [pid for pid, role in children_of(supervisor.pid).items() if role.endswith(" builds")]

        def states() -> dict[str, str]:
            return {p["name"]: p["state"] for p in running_processes(settings) or [] if p["name"] in builders}

        base = f"http://{settings.api_host}:{settings.api_port}"
        async with httpx.AsyncClient(base_url=base, timeout=10) as http:
            before = await live_version(http)
            asked = await http.post("/projections/customer_dashboards/rebuild", headers=OPERATOR)
            assert asked.status_code == 202, asked.text
            version = asked.json()["version"]

            async def builder_started() -> bool:
                return len(builder()) == 1

            await eventually(builder_started, 60, "the builder started for the rebuild")
            started = builder()[0]
            assert children_of(supervisor.pid)[started] == "worker dashboards builds"  # that store's builder alone
            assert states() == {name: "running" if name == "builder-dashboards" else "idle" for name in builders}

            async def switched() -> bool:
                return await live_version(http) == version

            await eventually(switched, 90, "readers switched to the rebuilt version")

        async def builder_stopped() -> bool:
            return not builder() and set(states().values()) == {"idle"}

        await eventually(builder_stopped, LINGER_SECONDS + 30, "the builder stopped once no rebuild was left")
        listed = {p["name"]: p for p in running_processes(settings) or []}
        assert listed["builder-dashboards"]["restarts"] == 0, listed  # stopped on purpose: not counted as a crash
        assert started not in children_of(supervisor.pid)
        async with httpx.AsyncClient(base_url=base, timeout=10) as http:  # the session's tests read the version before
            rolled = await http.post("/projections/customer_dashboards/rollback", headers=OPERATOR)
            assert rolled.status_code == 202, rolled.text

            async def rolled_back() -> bool:
                return await live_version(http) == before

            await eventually(rolled_back, 90, "readers back on the version they read before")


async def live_version(http: httpx.AsyncClient) -> int | None:
    """The customer dashboards' live version, as the operations API lists it."""
    rows = (await http.get("/projections", headers=OPERATOR)).json()
    return next(
        (r["version"] for r in rows if r["projection"].split("@")[0] == "customer_dashboards" and r["state"] == "live"),
        None,
    )
