"""docker-compose.yml: the services Prism needs, healthchecks, and the same PRISM_* settings as a local run."""

from pathlib import Path

import yaml

from infra.settings import Settings

COMPOSE = yaml.safe_load((Path(__file__).parents[2] / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
#: Every worker service: one per store, named `worker-...`.
WORKERS = tuple(name for name in SERVICES if name.startswith("worker-"))
APPS = ("api", "relay", *WORKERS)
STORES = ("postgres", "redis", "elasticsearch", "clickhouse")


def test_it_runs_the_four_stores_and_the_processes_serve_runs():
    assert set(STORES + APPS) <= set(SERVICES)


def test_each_store_has_a_worker_of_its_own_that_takes_every_projection_writing_to_it():
    from projections.registry import PROJECTIONS

    commands = [SERVICES[name]["command"] for name in WORKERS]
    assert all(command[:3] == ["prism", "worker", "--store"] and len(command) == 4 for command in commands), commands
    taken = sorted(command[3] for command in commands)
    assert taken == sorted({cls.store for cls in PROJECTIONS.values()}), taken


def test_every_store_and_the_api_have_a_healthcheck():
    assert all("healthcheck" in SERVICES[name] for name in (*STORES, "api"))


def test_the_apps_wait_for_healthy_stores_and_migrations():
    for name in APPS:
        needs = SERVICES[name]["depends_on"]
        assert needs["migrate"]["condition"] == "service_completed_successfully"
        assert all(needs[store]["condition"] == "service_healthy" for store in ("redis", "elasticsearch", "clickhouse"))


def test_apps_get_every_connection_setting_and_only_known_ones():
    known = {f"PRISM_{name.upper()}" for name in Settings.model_fields}
    needed = {
        "PRISM_WRITE_DATABASE_URL",
        "PRISM_DASHBOARDS_DATABASE_URL",
        "PRISM_REDIS_URL",
        "PRISM_BROKER_URL",
        "PRISM_ELASTICSEARCH_URL",
        "PRISM_CLICKHOUSE_URL",
    }
    for name in (*APPS, "migrate"):
        env = SERVICES[name]["environment"]
        assert needed <= set(env), name
        assert set(env) <= known, set(env) - known
    assert Settings(**{k.removeprefix("PRISM_").lower(): v for k, v in SERVICES["api"]["environment"].items()})


def test_the_elasticsearch_image_matches_the_client_major():
    import elasticsearch

    image = SERVICES["elasticsearch"]["image"]
    assert image.rsplit(":", 1)[1].split(".")[0] == str(elasticsearch.__versionstr__.split(".")[0])
