"""Server logs with every control character escaped.

Request lines, ACME identifiers, CSR names and the exceptions they cause all come from
whoever reaches the port; a log read on a terminal must not let them move the cursor,
set the title or write the clipboard (OSC 52), so every line goes through `printable`.
"""

from __future__ import annotations

import logging
from typing import Any

from uvicorn.logging import AccessFormatter, DefaultFormatter

from privca._text import printable


def _escaped_lines(text: str) -> str:
    # A traceback keeps its lines; anything else a line holds is escaped.
    return "\n".join(printable(line) for line in text.split("\n"))


class PrintableFormatter(logging.Formatter):
    def formatMessage(self, record: logging.LogRecord) -> str:
        return printable(super().formatMessage(record))

    def formatException(self, ei: Any) -> str:
        return _escaped_lines(super().formatException(ei))


class PrintableUvicornFormatter(DefaultFormatter):
    def formatMessage(self, record: logging.LogRecord) -> str:
        return printable(super().formatMessage(record))

    def formatException(self, ei: Any) -> str:
        return _escaped_lines(super().formatException(ei))


class PrintableAccessFormatter(AccessFormatter):
    def formatMessage(self, record: logging.LogRecord) -> str:
        return printable(super().formatMessage(record))


def uvicorn_log_config() -> dict[str, Any]:
    """uvicorn's own logging, escaped and without colours (escape codes of their own)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "default": {
                "()": f"{__name__}.PrintableUvicornFormatter",
                "fmt": "%(levelprefix)s %(message)s",
                "use_colors": False,
            },
            "access": {
                "()": f"{__name__}.PrintableAccessFormatter",
                "fmt": '%(levelprefix)s %(client_addr)s - "%(request_line)s" %(status_code)s',
                "use_colors": False,
            },
        },
        "handlers": {
            "default": {
                "formatter": "default",
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
            },
            "access": {
                "formatter": "access",
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stdout",
            },
        },
        "loggers": {
            "uvicorn": {"handlers": ["default"], "level": "INFO", "propagate": False},
            "uvicorn.error": {"level": "INFO"},
            "uvicorn.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
        },
    }


def privca_handler() -> logging.Handler:
    handler = logging.StreamHandler()
    handler.setFormatter(PrintableFormatter())
    return handler


__all__ = ["PrintableFormatter", "privca_handler", "uvicorn_log_config"]
