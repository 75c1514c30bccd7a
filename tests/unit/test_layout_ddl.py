"""Every statement of the dashboards' DDL that takes a table lock is one ``apply_ddl`` can tell is already done."""

from __future__ import annotations

import pytest

from projections.layouts import customer_dashboards, postgres_views, shipping_dashboard


@pytest.mark.parametrize("layout", [customer_dashboards.Tables, shipping_dashboard.Tables])
@pytest.mark.parametrize("version", [1, 2])
def test_each_locking_statement_is_recognized(layout, version):
    locking = [sql for sql in layout("ns", version).ddl() if sql.startswith(("ALTER TABLE", "CREATE INDEX"))]
    assert locking
    for sql in locking:
        column, index = postgres_views._ADD_COLUMN.match(sql), postgres_views._CREATE_INDEX.match(sql)
        assert index or (column and postgres_views._one_clause(sql)), sql


def test_a_statement_of_several_clauses_is_not_taken_for_one():
    assert postgres_views._one_clause("ALTER TABLE t ADD COLUMN IF NOT EXISTS a numeric(20, 2)")
    assert not postgres_views._one_clause("ALTER TABLE t ADD COLUMN IF NOT EXISTS a int, ADD COLUMN b int")
