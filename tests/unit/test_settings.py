"""Settings that name projections refuse names that are not registered, saying which are."""

from __future__ import annotations

import time

import pytest
from pydantic import ValidationError

from infra.bootstrap import runner
from infra.settings import Settings


@pytest.mark.parametrize(
    "setting", [{"poison_policies": {"order_sumaries": "skip"}}, {"catch_up_gaps_ms": {"order_sumaries": 500}}]
)
def test_a_misspelt_projection_is_refused_with_the_registered_names(setting):
    with pytest.raises(ValidationError, match=r"order_sumaries.*registered: order_summaries"):
        Settings(**setting)


def test_a_projection_keeps_its_own_gap_and_the_others_the_common_one():
    built = runner(Settings(catch_up_gap_ms=100, catch_up_gaps_ms={"order_analytics": 1000}))
    assert built.gaps == {"order_analytics": 1.0} and built.gap_seconds == 0.1


async def test_a_catch_up_waits_out_its_own_projection_gap():
    from workers.runner import ProjectionRunner

    paced = ProjectionRunner(None, 1, gap_seconds=0.0, gaps={"order_analytics": 0.2})
    await paced._pace("order_analytics")
    started = time.monotonic()
    await paced._pace("order_analytics")
    assert time.monotonic() - started >= 0.19
