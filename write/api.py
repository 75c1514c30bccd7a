"""The command API: one route per command, answering ``{id, version, position}``."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, JsonValue, field_validator

from write import addresses, api_keys
from write import commands as c
from write.bus import CommandBus, Idempotency, Result

TENANT_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
#: What ``str.strip`` (and so the domain) takes for whitespace, spelled out: ``\s`` differs between Python (which
#: adds \x1c-\x1f), pydantic's Rust engine and ECMA (which adds \ufeff), and the schema must mean one thing.
_WS = r"\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
#: Postgres text cannot hold NUL: every free text of the schema says so, and the ``Body`` check refuses it too.
_NUL = r"\x00"
#: Any text without NUL.
TEXT_PATTERN = f"^[^{_NUL}]*$"
#: ``domain.check_name``: something left after stripping whitespace (its 200 cap is each field's max_length).
NAME_PATTERN = f"^[^{_NUL}]*[^{_WS}{_NUL}][^{_NUL}]*$"
#: ``domain.check_email``: stripped, lowercased, ``^[^@\s]+@[^@\s]+\.[^@\s]+$``. U+0130 is left out because
#: lowercasing makes it two characters, which could take a 254-character address past the domain's 254.
EMAIL_PATTERN = rf"^[{_WS}]*[^@{_WS}\u0130{_NUL}]+@[^@{_WS}\u0130{_NUL}]+\.[^@{_WS}\u0130{_NUL}]+[{_WS}]*$"
#: Money as the domain takes it (``domain.check_price``): a decimal string (like the domain, the API takes no
#: floats, which cannot hold cents), above 0 and below 10,000,000,000, at most 2 decimal places.
PRICE_PATTERN = r"^([1-9][0-9]{0,9}(\.[0-9]{1,2})?|0\.(0[1-9]|[1-9][0-9]?))$"
#: ``addresses``: one line of a label, no control characters (tabs and newlines among them), not all whitespace.
_CONTROL = r"\x00-\x1f\x7f-\x9f"
LABEL_LINE_PATTERN = f"^[^{_CONTROL}]*[^{_CONTROL}{_WS}][^{_CONTROL}]*$"
#: ``Order.apply_discount``: above 0, at most 100, at most 2 decimal places; a decimal string too.
PERCENT_PATTERN = r"^(100(\.00?)?|[1-9][0-9]?(\.[0-9]{1,2})?|0\.(0[1-9]|[1-9][0-9]?))$"

Name = Annotated[
    str,
    Field(min_length=1, max_length=200, pattern=NAME_PATTERN, description="1 to 200 characters, not all whitespace"),
]
Email = Annotated[
    str,
    Field(
        min_length=5,
        max_length=254,
        pattern=EMAIL_PATTERN,
        description="An address like name@example.com; stored trimmed and lowercased",
    ),
]
Price = Annotated[
    str,
    Field(
        pattern=PRICE_PATTERN,
        description="Unit price as a decimal string: above 0, below 10,000,000,000, at most 2 decimal places",
        examples=["19.99"],
    ),
    AfterValidator(Decimal),
]
Percent = Annotated[
    str,
    Field(
        pattern=PERCENT_PATTERN,
        description="Decimal string: 0 < percent <= 100, at most 2 decimal places",
        examples=["10"],
    ),
    AfterValidator(Decimal),
]

#: The assigned codes, documented as the field's enum (the check below refuses the others with a shorter message).
_COUNTRY_CODES: list[JsonValue] = [*sorted(addresses.COUNTRIES)]


def _label_line(cap: int, example: str) -> Any:
    return Field(
        min_length=1,
        max_length=cap,
        pattern=LABEL_LINE_PATTERN,
        description=f"1 to {cap} characters, not all whitespace, no control characters; stored trimmed",
        examples=[example],
    )


router = APIRouter(tags=["commands"])
#: Registering tenants spans them all: the application guards this router with an operator credential.
tenants_router = APIRouter(tags=["tenants"])


def storable(value: object) -> object:
    """Postgres text cannot hold NUL, and lone surrogates cannot be encoded: refuse them here, as a 422."""
    if isinstance(value, str) and ("\x00" in value or any("\ud800" <= ch <= "\udfff" for ch in value)):
        raise ValueError("text must not contain NUL characters or unpaired surrogates")
    return value


class Body(BaseModel):
    """A command's body. Every text and list has a cap (the domain's own limits where it has them, so OpenAPI
    documents them): without one, a few megabytes of sku or note would go into the event log and every store."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*")
    @classmethod
    def _storable_text(cls, value: object) -> object:
        return storable(value)


class Versioned(Body):
    expected_version: int = Field(ge=1, description="The aggregate version this command was decided on")


class TenantIn(Body):
    id: str = Field(pattern=TENANT_PATTERN, description="The new tenant's id", examples=["acme"])
    name: Name
    issue_key: bool = Field(
        True,
        description="Also issue the tenant's first API key (scopes commands, read, "
        "analytics), shown once in the answer",
    )


class CustomerIn(Body):
    name: Name
    email: Email


class EmailIn(Versioned):
    email: Email


class NameIn(Versioned):
    name: Name


class ProductIn(Body):
    name: Name
    price: Price
    sku: str | None = Field(None, max_length=64, pattern=TEXT_PATTERN)


class PriceIn(Versioned):
    price: Price


class LineIn(Body):
    product_id: uuid.UUID
    quantity: int = Field(ge=1, le=10_000)


class ShippingAddressIn(Body):
    """Where the order goes, as printed on its label."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "recipient": "Zoë Dupré",
                    "street_lines": ["12 rue des Lilas", "Bâtiment B"],
                    "city": "Lyon",
                    "postal_code": "69003",
                    "country": "FR",
                }
            ]
        }
    )

    recipient: Annotated[str, _label_line(addresses.RECIPIENT_MAX, "Zoë Dupré")]
    street_lines: list[Annotated[str, _label_line(addresses.STREET_LINE_MAX, "12 rue des Lilas")]] = Field(
        min_length=1, max_length=addresses.STREET_LINES_MAX, description="1 to 3 lines"
    )
    city: Annotated[str, _label_line(addresses.CITY_MAX, "Lyon")]
    postal_code: str | None = Field(
        None,
        max_length=addresses.POSTAL_CODE_MAX,
        pattern=addresses.POSTAL_CODE_PATTERN,
        description="Letters, digits, inner spaces and hyphens; leave out where the country has none",
        examples=["69003"],
    )
    country: str = Field(
        pattern=r"^[A-Z]{2}$",
        description="ISO 3166-1 alpha-2 code, upper case, one of the assigned ones",
        examples=["FR"],
        json_schema_extra={"enum": _COUNTRY_CODES},
    )

    @field_validator("street_lines")
    @classmethod
    def _storable_lines(cls, lines: list[str]) -> list[str]:
        for line in lines:  # the model's check of every text field sees the list, not its lines
            storable(line)
        return lines

    @field_validator("country")
    @classmethod
    def _assigned(cls, code: str) -> str:
        if code not in addresses.COUNTRIES:
            raise ValueError(f"{code!r} is not an assigned ISO 3166-1 alpha-2 code")
        return code

    def command(self) -> addresses.ShippingAddress:
        """The domain's address."""
        return addresses.ShippingAddress(
            recipient=self.recipient,
            street_lines=tuple(self.street_lines),
            city=self.city,
            country=self.country,
            postal_code=self.postal_code,
        )


class OrderIn(Body):
    customer_id: uuid.UUID
    items: list[LineIn] = Field(min_length=1, max_length=100, description="1 to 100 lines")
    note: str | None = Field(None, max_length=1000, pattern=TEXT_PATTERN)
    shipping_address: ShippingAddressIn | None = Field(
        None, description="Where the order ships to; leave out when it has no address (collected, digital)"
    )


class CancelIn(Versioned):
    reason: str = Field("", max_length=500, pattern=TEXT_PATTERN)


class DiscountIn(Versioned):
    percent: Percent
    authorised_by: Name


class Accepted(BaseModel):
    """Where the change went: the aggregate, its new version and the log position of its last event."""

    id: str
    version: int
    position: int = Field(description="Pass as min_position to any reader to read your write")

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"id": "0b6f8f3e-4a58-4f0e-9a0e-2b1f9b7d2c11", "version": 1, "position": 1042}]}
    )


class IssuedKey(BaseModel):
    """A new API key: its plain text is in this answer only, and never stored."""

    id: str
    key: str = Field(description="Send as 'Authorization: Bearer <key>'; keep it secret, it is not shown again")
    tenant: str | None
    scopes: list[str]
    expires_at: datetime | None


class TenantRegistered(Accepted):
    key: IssuedKey | None = None


async def _bus(request: Request) -> CommandBus:
    return request.app.state.bus


async def _tenant(request: Request) -> str:
    """The caller's tenant, as the credential that the application checked before this route proved it."""
    tenant = getattr(request.state, "tenant", None)
    if tenant is None:  # fail closed: a route reached without the credential check is a wiring error
        raise RuntimeError("command route reached without an authenticated tenant")
    return tenant


Bus = Annotated[CommandBus, Depends(_bus)]
Tenant = Annotated[str, Depends(_tenant)]
IdemKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)]


async def _run(bus: CommandBus, request: Request, key: str | None, command: c.Command) -> Accepted:
    idem = None
    if key is not None:
        body = json.dumps(json.loads(await request.body() or b"null"), sort_keys=True)
        digest = hashlib.sha256(f"{request.method} {request.url.path} {body}".encode()).hexdigest()
        idem = Idempotency(key, digest)
    result: Result = await bus.execute(command, idem)
    return Accepted(id=result.id, version=result.version, position=result.position)


@tenants_router.post("/tenants", status_code=201, response_model=TenantRegistered)
async def register_tenant(body: TenantIn, bus: Bus) -> TenantRegistered:
    """Register a tenant (operators only) and, unless ``issue_key`` is false, issue its first API key."""
    result = await bus.execute(c.RegisterTenant(body.id, body.name))
    answer = TenantRegistered(id=result.id, version=result.version, position=result.position)
    if body.issue_key:
        issued, plain = await api_keys.issue(bus.engine, body.id, list(api_keys.TENANT_SCOPES), "first key")
        answer.key = IssuedKey(
            id=issued.id, key=plain, tenant=issued.tenant_id, scopes=list(issued.scopes), expires_at=issued.expires_at
        )
    return answer


@router.post("/customers", status_code=201, response_model=Accepted)
async def register_customer(body: CustomerIn, tenant: Tenant, bus: Bus, request: Request, key: IdemKey = None):
    return await _run(bus, request, key, c.RegisterCustomer(tenant, body.name, body.email))


@router.post("/customers/{customer_id}/email", response_model=Accepted)
async def change_customer_email(
    customer_id: uuid.UUID, body: EmailIn, tenant: Tenant, bus: Bus, request: Request, key: IdemKey = None
):
    command = c.ChangeCustomerEmail(tenant, customer_id, body.email, body.expected_version)
    return await _run(bus, request, key, command)


@router.post("/customers/{customer_id}/name", response_model=Accepted)
async def change_customer_name(
    customer_id: uuid.UUID, body: NameIn, tenant: Tenant, bus: Bus, request: Request, key: IdemKey = None
):
    command = c.ChangeCustomerName(tenant, customer_id, body.name, body.expected_version)
    return await _run(bus, request, key, command)


@router.post("/products", status_code=201, response_model=Accepted)
async def add_product(body: ProductIn, tenant: Tenant, bus: Bus, request: Request, key: IdemKey = None):
    return await _run(bus, request, key, c.AddProduct(tenant, body.name, Decimal(body.price), body.sku))


@router.post("/products/{product_id}/name", response_model=Accepted)
async def rename_product(
    product_id: uuid.UUID, body: NameIn, tenant: Tenant, bus: Bus, request: Request, key: IdemKey = None
):
    return await _run(bus, request, key, c.RenameProduct(tenant, product_id, body.name, body.expected_version))


@router.post("/products/{product_id}/price", response_model=Accepted)
async def change_product_price(
    product_id: uuid.UUID, body: PriceIn, tenant: Tenant, bus: Bus, request: Request, key: IdemKey = None
):
    command = c.ChangeProductPrice(tenant, product_id, Decimal(body.price), body.expected_version)
    return await _run(bus, request, key, command)


@router.post("/orders", status_code=201, response_model=Accepted)
async def place_order(body: OrderIn, tenant: Tenant, bus: Bus, request: Request, key: IdemKey = None):
    lines = tuple(c.OrderLine(line.product_id, line.quantity) for line in body.items)
    address = body.shipping_address.command() if body.shipping_address is not None else None
    return await _run(bus, request, key, c.PlaceOrder(tenant, body.customer_id, lines, body.note, address))


@router.post("/orders/{order_id}/confirm", response_model=Accepted)
async def confirm_order(
    order_id: uuid.UUID, body: Versioned, tenant: Tenant, bus: Bus, request: Request, key: IdemKey = None
):
    return await _run(bus, request, key, c.ConfirmOrder(tenant, order_id, body.expected_version))


@router.post("/orders/{order_id}/ship", response_model=Accepted)
async def ship_order(
    order_id: uuid.UUID, body: Versioned, tenant: Tenant, bus: Bus, request: Request, key: IdemKey = None
):
    return await _run(bus, request, key, c.ShipOrder(tenant, order_id, body.expected_version))


@router.post("/orders/{order_id}/cancel", response_model=Accepted)
async def cancel_order(
    order_id: uuid.UUID, body: CancelIn, tenant: Tenant, bus: Bus, request: Request, key: IdemKey = None
):
    return await _run(bus, request, key, c.CancelOrder(tenant, order_id, body.expected_version, body.reason))


@router.post("/orders/{order_id}/discount", response_model=Accepted)
async def apply_discount(
    order_id: uuid.UUID, body: DiscountIn, tenant: Tenant, bus: Bus, request: Request, key: IdemKey = None
):
    command = c.ApplyDiscount(tenant, order_id, body.expected_version, Decimal(body.percent), body.authorised_by)
    return await _run(bus, request, key, command)
