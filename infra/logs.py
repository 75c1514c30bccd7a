"""How a Prism process writes its log to stderr: plain lines for a terminal, or one JSON object per line for a log
pipeline (``PRISM_LOG_FORMAT=json``).

A JSON line carries the time (ISO 8601, UTC), level, logger and message, the host and
the process's role (``api-1``, ``worker-redis``, ``serve``...), what the work at hand is
about where a block named it (``write.log_context``: projection, partition, position,
tenant, correlation id) and a traceback under ``exc_info``. The libraries' loggers
(uvicorn's, Dramatiq's, Python's warnings) go through the same handler, so no plain
line slips in between.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from types import TracebackType
from typing import Final

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

from infra.settings import Settings
from write import log_context

#: Set by ``prism serve`` in each child's environment: the child's name, its role in the log.
ROLE_ENV: Final = "PRISM_PROCESS_ROLE"
#: The present plain format (the host name goes in at configuration).
TEXT_FORMAT: Final = "%(asctime)s {host} %(levelname)s %(name)s: %(message)s"
#: Attributes of a record that are no field of a JSON line: logging's own, and uvicorn's coloured copy of its
#: message.
_NOT_FIELDS: Final = (*RESERVED_ATTRS, "color_message")


def role(command: str) -> str:
    """This process's role: the name ``prism serve`` gave it, else the ``prism`` command it runs."""
    return os.environ.get(ROLE_ENV) or command


def configure(settings: Settings, process_role: str) -> None:
    """The root logger's one handler, on stderr, at WARNING, in ``settings.log_format``."""
    if settings.log_format == "text":
        logging.basicConfig(level=logging.WARNING, format=TEXT_FORMAT.format(host=settings.host_name))
        return
    handler = logging.StreamHandler()
    handler.setFormatter(json_formatter(settings.host_name, process_role))
    handler.addFilter(WorkContext())
    logging.basicConfig(level=logging.WARNING, handlers=[handler])
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught
    threading.excepthook = lambda hook: _log_uncaught(hook.exc_type, hook.exc_value, hook.exc_traceback)


def json_formatter(host: str, process_role: str) -> JsonFormatter:
    """One JSON object per record, with the host and role of this process."""
    return JsonFormatter(
        ["levelname", "name", "message"],
        rename_fields={"levelname": "level", "name": "logger"},
        static_fields={"host": host, "role": process_role},
        reserved_attrs=_NOT_FIELDS,
        timestamp="time",
    )


def writes_json() -> bool:
    """Whether this process's root handler writes JSON: libraries with a handler of their own (uvicorn) then leave
    their records to it."""
    return any(isinstance(handler.formatter, JsonFormatter) for handler in logging.getLogger().handlers)


class WorkContext(logging.Filter):
    """Copies the fields of ``write.log_context`` onto each record the handler writes (a handler's filter: it sees
    the records of every logger, as they propagate)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in log_context.current().items():
            setattr(record, name, value)
        return True


def _log_uncaught(kind: type[BaseException], error: BaseException | None, traceback: TracebackType | None) -> None:
    """An exception nothing caught, as a line of the log rather than a bare traceback."""
    if error is None or issubclass(kind, (KeyboardInterrupt, SystemExit)):  # a stop asked for, not a failure
        return
    logging.getLogger("prism").critical("uncaught %s", kind.__name__, exc_info=(kind, error, traceback))
