"""Property: any delivery of batches, with duplicates, late and reordered ones, folds to the in-order documents."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from projections import documents
from tests.unit.test_documents import CUSTOMER, PRODUCT, event, order_event
from write import events as e


def history() -> list:
    """Orders placed, renamed customers and products, orders changing status, interleaved."""
    rows, position = [], 0

    def nxt() -> int:
        nonlocal position
        position += 1
        return position

    for n in range(4):
        rows.append(order_event(nxt(), f"o{n}", "pending", name=f"Ana {n}"))
        rows.append(
            event(nxt(), e.CUSTOMER_RENAMED, {"customer_id": CUSTOMER, "name": f"Ana {n + 1}", "email": f"a{n}@x.io"})
        )
        rows.append(
            event(
                nxt(), e.PRODUCT_RENAMED, {"product_id": PRODUCT, "name": f"Widget {n}", "price": "1.00", "sku": None}
            )
        )
        rows.append(order_event(nxt(), f"o{n}", "shipped", name=f"Ana {n + 1}"))
    return rows


EVENTS = history()


def batches(size: int) -> list[list]:
    return [EVENTS[i : i + size] for i in range(0, len(EVENTS), size)]


@st.composite
def deliveries(draw) -> list[list]:
    size = draw(st.integers(1, 5))
    chunks = batches(size)
    order = draw(st.permutations(range(len(chunks))))
    duplicates = draw(st.lists(st.integers(0, len(chunks) - 1), max_size=len(chunks)))
    slots = list(order)
    for dup in duplicates:
        slots.insert(draw(st.integers(0, len(slots))), dup)
    return [chunks[i] for i in slots]


@settings(max_examples=300, deadline=None)
@given(deliveries())
def test_every_delivery_order_ends_in_the_in_order_documents(delivered):
    expected, _ = documents.fold({}, EVENTS)
    state: dict = {}
    dims: dict = {}
    for batch in delivered:
        docs, new_dims = documents.fold(state, batch, dims)
        state |= docs
        dims |= new_dims
    assert state == expected
