"""The event log's contract: what every event row holds and which event types exist.

Projections and readers depend on this module alone, never on the write model's
tables. Order events carry a full snapshot of the order (customer and product
names included) so a projection never reads the write tables and any single
order event is enough to rebuild that order's document.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

#: Aggregate types that write events.
CUSTOMER: Final = "customer"
PRODUCT: Final = "product"
ORDER: Final = "order"
TENANT: Final = "tenant"

TENANT_REGISTERED: Final = "TenantRegistered"
CUSTOMER_REGISTERED: Final = "CustomerRegistered"
CUSTOMER_EMAIL_CHANGED: Final = "CustomerEmailChanged"
CUSTOMER_RENAMED: Final = "CustomerRenamed"
PRODUCT_ADDED: Final = "ProductAdded"
PRODUCT_RENAMED: Final = "ProductRenamed"
PRODUCT_PRICE_CHANGED: Final = "ProductPriceChanged"
ORDER_PLACED: Final = "OrderPlaced"
ORDER_CONFIRMED: Final = "OrderConfirmed"
ORDER_SHIPPED: Final = "OrderShipped"
ORDER_CANCELLED: Final = "OrderCancelled"
DISCOUNT_APPLIED: Final = "DiscountApplied"

CUSTOMER_EVENTS: Final = frozenset({CUSTOMER_REGISTERED, CUSTOMER_EMAIL_CHANGED, CUSTOMER_RENAMED})
PRODUCT_EVENTS: Final = frozenset({PRODUCT_ADDED, PRODUCT_RENAMED, PRODUCT_PRICE_CHANGED})
ORDER_EVENTS: Final = frozenset({ORDER_PLACED, ORDER_CONFIRMED, ORDER_SHIPPED, ORDER_CANCELLED, DISCOUNT_APPLIED})

#: Schema version written today for every event type but those in ``SCHEMA_VERSIONS``; upcasters lift older ones.
CURRENT_SCHEMA_VERSION: Final = 1
#: Types written at a later schema. OrderPlaced 2: the payload has ``shipping_address`` beside ``order``, an object
#: ``{recipient, street_lines (1 to 3), city, postal_code (or null), country (ISO 3166-1 alpha-2)}`` or null.
SCHEMA_VERSIONS: Final = {ORDER_PLACED: 2}


def schema_version(event_type: str) -> int:
    """The schema version an event of this type is written at today."""
    return SCHEMA_VERSIONS.get(event_type, CURRENT_SCHEMA_VERSION)


@dataclass(frozen=True)
class NewEvent:
    """An event produced by a command, before the log gives it a position."""

    aggregate_type: str
    aggregate_id: uuid.UUID
    aggregate_version: int
    type: str
    payload: dict[str, Any]
    schema_version: int = CURRENT_SCHEMA_VERSION
    event_id: uuid.UUID = field(default_factory=uuid.uuid4)


@dataclass(frozen=True)
class StoredEvent:
    """An event as read back from the log, in log order."""

    position: int
    event_id: uuid.UUID
    tenant_id: str
    aggregate_type: str
    aggregate_id: uuid.UUID
    aggregate_version: int
    type: str
    schema_version: int
    occurred_at: datetime
    payload: dict[str, Any]
    correlation_id: uuid.UUID | None = None
    causation_id: uuid.UUID | None = None
