"""Log lines: the request id every line carries, and the text and JSON formats, tokens masked.

`request_id` is set by the request-log middleware and the reconciler; the formatters read it. Both
formatters mask path tokens in the finished line, on top of `MaskTokensFilter` on the handlers, so
that a token in an exception text is masked too.
"""

import contextvars
import io
import json
import logging
from datetime import UTC, datetime

from octoprovider.core.logmask import mask_path

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


class RequestIdFilter(logging.Filter):
    """Stamp every record with the id of the request being served ("-" outside any request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        rid = request_id.get()
        if rid == "-":
            # Django logs 4xx and 5xx ("Not Found: ...") after the middleware has returned; it passes
            # the request along, which carries its id.
            rid = getattr(getattr(record, "request", None), "request_id", "-")
        record.request_id = rid
        return True


class OneLineWarning(logging.Filter):
    """Turn a record into a one-line WARNING: no traceback (for what is the client's mistake, not ours)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.exc_info = record.exc_text = None
        return True


class TextFormatter(logging.Formatter):
    """The plain text line, with the request id, path tokens masked in the finished line."""

    def __init__(self, fmt: str | None = None, **kwargs):
        super().__init__(fmt or "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s", **kwargs)

    def format(self, record: logging.LogRecord) -> str:
        if not hasattr(record, "request_id"):
            RequestIdFilter().filter(record)
        return mask_path(super().format(record))


# Attributes every LogRecord has; anything else on a record came through `extra=`.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "request_id",
    "taskName",
}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id and the record's extras.

    Only plain values among the extras are kept: Django passes the request object itself, whose
    text would carry the query string.
    """

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
        }
        if line["request_id"] is None:
            RequestIdFilter().filter(record)
            line["request_id"] = record.request_id
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRIBUTES and key not in line and isinstance(value, (str, int, float, bool)):
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return mask_path(json.dumps(line, ensure_ascii=False, default=str))


class JsonLines(io.TextIOBase):
    """A stream that turns every plain line written to it into one JSON log line on `target`.

    With LOG_FORMAT=json, `manage.py` puts it in place of stdout and stderr, so that what commands
    print (Django's included: migrate, system checks) reaches a log shipper as JSON like the log
    records. Lines that already are JSON objects (the log handlers write through it) pass unchanged.
    """

    def __init__(self, target, *, level: str, logger: str):
        super().__init__()
        self.target, self.level, self.logger = target, level, logger
        self._pending = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._pending += text
        *lines, self._pending = self._pending.split("\n")
        for line in lines:
            self._emit(line)
        return len(text)

    def flush(self) -> None:
        if self._pending:
            self._emit(self._pending)
            self._pending = ""
        self.target.flush()

    def _emit(self, line: str) -> None:
        if not line.strip():
            return
        if not (line.startswith("{") and line.endswith("}")):
            line = json.dumps(
                {
                    "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
                    "level": self.level,
                    "logger": self.logger,
                    "message": mask_path(line.rstrip()),
                    "request_id": request_id.get(),
                },
                ensure_ascii=False,
            )
        self.target.write(line + "\n")
        self.target.flush()
