"""How the dashboards projection sends a batch's columns: typed arrays Postgres can take back exactly."""

from __future__ import annotations

import pytest

from projections.dashboard_sql import sent as _sent


def test_ids_numbers_and_times_go_comma_joined_and_text_as_a_list():
    assert (
        _sent("order_id", ["6f1c5a52-0000-4000-8000-000000000001", "6f1c5a52-0000-4000-8000-000000000002"])
        == "6f1c5a52-0000-4000-8000-000000000001,6f1c5a52-0000-4000-8000-000000000002"
    )
    assert _sent("quantity", [3, 12]) == "3,12"
    assert _sent("total", []) == ""
    assert _sent("name", ["Doe, Jane", "Ana"]) == ["Doe, Jane", "Ana"]


def test_a_value_holding_a_comma_is_refused_rather_than_split():
    with pytest.raises(ValueError, match="total value holds a comma"):
        _sent("total", ["12.50", "1,200.00"])
