"""Structured logs (JSON by default), with the request id bound to every line of a request.

The standard library's records (uvicorn's, SQLAlchemy's, Alembic's, any library's) leave
through the same renderer, so that one process writes one format: a JSON line each, with the
logger's name. Only their warnings and errors: a library's INFO and DEBUG lines (httpx logs
every request it sends) are its own business, and may name what MarketGate's logs keep out.
"""

import logging
import sys

import structlog

_HANDLER_NAME = "marketgate"


def configure_logging(*, level: str, fmt: str) -> None:
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False)
    )
    stamped: list[structlog.types.Processor] = [
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
    ]
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, structlog.processors.add_log_level, *stamped, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level]),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    libraries_level = max(logging.WARNING, logging.getLevelNamesMapping()[level])
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setLevel(libraries_level)  # also for a library logger whose own level lets INFO through
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.contextvars.merge_contextvars,
                structlog.stdlib.add_log_level,
                structlog.stdlib.add_logger_name,
                *stamped,
            ],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    # Configured again (a test, a second server in one process): the handler is replaced, not added.
    root.handlers = [existing for existing in root.handlers if existing.get_name() != _HANDLER_NAME]
    root.addHandler(handler)
    root.setLevel(libraries_level)
