"""Mask OctoPerf's path token wherever a request line is logged (Django, runserver, gunicorn).

No Django import here: gunicorn's logger loads this before Django is set up.
"""

import logging
import re

# The contract's resources; a token can never be one of these words (settings refuse it).
RESOURCES = r"(?:instances|static-ips)"

# Every segment under /octoperf that may be logged as it is: the contract's own words. Anything else
# may be a token, wherever it sits: OctoPerf's base URL typed with a trailing slash
# (`/octoperf/<token>//instances`) or a doubled one (`/octoperf//<token>/instances`), in capitals
# (`/OCTOPERF/<token>/…`, which Django answers 404 and logs), a typo after the token, the bare base URL.
_CONTRACT_WORDS = frozenset(
    {
        "instances",
        "static-ips",
        "state",
        "allocate",
        "associate",
        "dissociate",
        "release",
        "openapi.json",
        "***",
    }
)
# The segment after `instances` is an instance id; ours are `i-` and hex digits, which no token can be
# told from, but a token of that shape would have to be chosen so by an operator.
_INSTANCE_ID = re.compile(r"i-[0-9a-f]{1,32}")


def _encoded(text: str) -> str:
    """Return a pattern for `text` in any case, each character maybe percent-encoded (`%6Fctoperf`)."""
    return "".join(f"(?:{re.escape(c)}|%{ord(c):02x})" for c in text)


# A slash, maybe percent-encoded: Django decodes `%2F` in the path it routes, gunicorn logs it raw.
_SLASH = r"(?:/|%2f)"
# `/octoperf` then every segment up to the end of the path (a query, a fragment, a quote, a space, or
# anything the logging layers put around a path). Control characters end no segment: a malformed
# request line logged by gunicorn (`repr`'d) keeps its `\x01` inside the segment, which is masked whole.
_PATH_UNDER_OCTOPERF = re.compile(
    rf"""(?P<base>/{_encoded("octoperf")})(?P<rest>(?:{_SLASH}[^/?#\x20\t\r\n"'<>]*)*)""",
    re.IGNORECASE,
)
_SEGMENTS = re.compile(rf"({_SLASH})", re.IGNORECASE)


def _mask_segments(rest: str) -> str:
    parts = _SEGMENTS.split(rest)  # [before the first slash (""), slash, segment, slash, segment, ...]
    previous = ""
    for index in range(2, len(parts), 2):
        segment = parts[index]
        kept = (
            not segment or segment in _CONTRACT_WORDS or (previous == "instances" and _INSTANCE_ID.fullmatch(segment))
        )
        if not kept:
            parts[index] = "***"
        if segment:
            previous = segment
    return "".join(parts)


def mask_path(text: str) -> str:
    """Replace with `***` every segment under `/octoperf` (any case, any slashes) but the contract's words."""
    return _PATH_UNDER_OCTOPERF.sub(lambda match: match["base"] + _mask_segments(match["rest"]), text)


class MaskTokensFilter(logging.Filter):
    """Mask path tokens in every log record that passes through a handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_path(message)
        if masked != message:
            record.msg = masked
            record.args = ()
        if record.exc_info or record.exc_text:
            # A traceback can carry the request line too (gunicorn's "Error handling request").
            record.exc_text = mask_path(record.exc_text or logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True
