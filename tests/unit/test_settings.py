"""Settings that name projections refuse names that are not registered, saying which are."""

from __future__ import annotations

import time

import pytest
from pydantic import ValidationError

from infra.bootstrap import runner
from infra.settings import Settings


@pytest.mark.parametrize(
    "setting", [{"poison_policies": {"order_sumaries": "skip"}}, {"freshness_ms": {"order_sumaries": 500}}]
)
def test_a_misspelt_projection_is_refused_with_the_registered_names(setting):
    with pytest.raises(ValidationError, match=r"order_sumaries.*registered: order_summaries"):
        Settings(**setting)


def test_a_projection_takes_its_budget_from_the_settings_else_its_own():
    built = runner(Settings(freshness_ms={"order_analytics": 2500}))
    assert built.budgets["order_analytics"] == 2.5
    assert built.budgets["order_search"] == 0.5 and built.budgets["order_summaries"] == 0.0


async def test_a_catch_up_waits_out_its_own_projection_budget():
    from workers.runner import ProjectionRunner

    paced = ProjectionRunner(None, 1, budgets={"order_analytics": 0.2})
    await paced._pace("order_analytics")
    started = time.monotonic()
    await paced._pace("order_analytics")
    assert time.monotonic() - started >= 0.19
