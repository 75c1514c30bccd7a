"""The unit of work: one transaction per command for its state, its events and its idempotency key."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from opentelemetry import trace
from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from write import log_context
from write.commands import Command
from write.errors import IdempotencyMismatch
from write.event_log import EventLog, committed_position
from write.handlers import EMAIL_KEY, HANDLERS, email_taken
from write.schema import events, idempotency_keys

IDEMPOTENCY_KEY = "idempotency_keys_pkey"
#: A span per command; the API's no-op tracer until the process installs tracing (``infra.telemetry``), which this
#: proxy then follows.
_TRACER = trace.get_tracer("prism.write")


def constraint(error: IntegrityError) -> str | None:
    """The violated constraint's name, wherever the driver adapter put it."""
    for candidate in (error.orig, getattr(error.orig, "__cause__", None)):
        name = getattr(candidate, "constraint_name", None)
        if name:
            return name
    return None


@dataclass(frozen=True)
class Result:
    """What a command answers: never state, only where to find it."""

    id: str
    version: int
    position: int


@dataclass(frozen=True)
class Idempotency:
    key: str
    request_hash: str


@dataclass(frozen=True)
class Cause:
    """What a command's events record of it: the correlation id they share, and the span that wrote them."""

    correlation_id: uuid.UUID
    causation_id: uuid.UUID | None = None


def _cause(span: trace.Span) -> Cause:
    """A command's correlation and causation ids. A traced command's are its trace's and its span's, so the batch
    that applies its events links back to its span (``workers.batch_spans``); an untraced one gets a fresh
    correlation id and no causation."""
    if not span.is_recording():
        return Cause(uuid.uuid4())
    context = span.get_span_context()
    return Cause(uuid.UUID(int=context.trace_id), uuid.UUID(int=context.span_id))


class CommandBus:
    """Runs commands; the same idempotency key with the same request returns the first result."""

    def __init__(self, engine: AsyncEngine, log: EventLog | None = None) -> None:
        self.engine = engine
        self.log = log or EventLog()

    async def execute(self, command: Command, idempotency: Idempotency | None = None) -> Result:
        """Run ``command`` in one transaction, under a span of its own and with its tenant and correlation id in
        every log line written meanwhile."""
        name = f"command {type(command).__name__}"
        with _TRACER.start_as_current_span(name, attributes={"prism.tenant": command.tenant_id}) as span:
            cause = _cause(span)
            span.set_attribute("prism.correlation_id", str(cause.correlation_id))
            with log_context.about(tenant=command.tenant_id, correlation_id=cause.correlation_id):
                result = await self._execute(command, idempotency, cause)
            span.set_attribute("prism.position", result.position)
            return result

    async def _execute(self, command: Command, idempotency: Idempotency | None, cause: Cause) -> Result:
        if idempotency is not None:
            remembered = await self._remembered(command.tenant_id, idempotency)
            if remembered is not None:
                return remembered
        try:
            return await self._run(command, idempotency, cause)
        except IntegrityError as error:
            if constraint(error) == EMAIL_KEY:
                raise email_taken(getattr(command, "email", "")) from None
            if idempotency is None or constraint(error) != IDEMPOTENCY_KEY:
                raise
            # A concurrent request with the same key committed first.
            remembered = await self._remembered(command.tenant_id, idempotency)
            if remembered is None:
                raise
            return remembered

    async def _run(self, command: Command, idempotency: Idempotency | None, cause: Cause) -> Result:
        async with self.engine.connect() as conn:
            async with conn.begin():
                if idempotency is not None:
                    # Claimed first, so that a racing duplicate waits here, before doing the command's work.
                    await conn.execute(
                        insert(idempotency_keys),
                        {
                            "tenant_id": command.tenant_id,
                            "key": idempotency.key,
                            "request_hash": idempotency.request_hash,
                            "response": {},
                        },
                    )
                ident, version, new_events = await HANDLERS[type(command)](conn, command)
                if idempotency is not None:
                    # The position is not known before COMMIT: it is found later from the last event's id.
                    answer = {"id": str(ident), "version": version, "event_id": str(new_events[-1].event_id)}
                    await self._remember(conn, command.tenant_id, idempotency, answer)
                await self.log.append(conn, command.tenant_id, new_events, cause.correlation_id, cause.causation_id)
            position = await committed_position(conn, new_events[-1].event_id)
        return Result(str(ident), version, position)

    async def _remembered(self, tenant_id: str, idempotency: Idempotency) -> Result | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(_REMEMBERED, {"tenant_id": tenant_id, "key": idempotency.key})).first()
        if row is None:
            return None
        if row.request_hash != idempotency.request_hash:
            raise IdempotencyMismatch(
                f"Idempotency-Key {idempotency.key!r} was already used with a different request", "Idempotency-Key"
            )
        answer = row.response
        return Result(answer["id"], answer["version"], answer.get("position", row.position))

    @staticmethod
    async def _remember(conn: AsyncConnection, tenant_id: str, idempotency: Idempotency, answer: dict) -> None:
        await conn.execute(
            update(idempotency_keys)
            .where(
                idempotency_keys.c.tenant_id == tenant_id,
                idempotency_keys.c.key == idempotency.key,
            )
            .values(response=answer)
        )


#: A remembered answer with the position of its last event (answers stored whole, with a position, still read).
_REMEMBERED = (
    select(idempotency_keys.c.request_hash, idempotency_keys.c.response, events.c.position)
    .select_from(
        idempotency_keys.outerjoin(
            events, events.c.event_id == idempotency_keys.c.response["event_id"].astext.cast(UUID(as_uuid=True))
        )
    )
    .where(idempotency_keys.c.tenant_id == bindparam("tenant_id"), idempotency_keys.c.key == bindparam("key"))
)
