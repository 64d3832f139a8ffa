"""Mask OctoPerf's path token wherever a request line is logged (Django, runserver, gunicorn).

No Django import here: gunicorn's logger loads this before Django is set up.
"""

import logging
import re

# The contract's resources; a token can never be one of these words (settings refuse it).
RESOURCES = r"(?:instances|static-ips)"
# Every first segment after /octoperf/ that may be logged as it is. Anything else may be a token:
# OctoPerf's base URL with a trailing slash (`/octoperf/<token>//instances`), a typo after the token
# (`/octoperf/<token>/instance/…`) or the bare base URL (`/octoperf/<token>`) carry it there too.
_CONTRACT_WORDS = r"(?:instances|static-ips|openapi\.json|\*\*\*)"
_END_OF_SEGMENT = r"""(?=[/?#\s"'<>]|$)"""
_TOKEN_ANYWHERE = re.compile(
    rf"""/octoperf/(?!{_CONTRACT_WORDS}{_END_OF_SEGMENT})[^/?#\s"'<>]+{_END_OF_SEGMENT}"""
)


def mask_path(text: str) -> str:
    """Replace with `***` the first segment after `/octoperf/` of every path in `text`, unless a contract word."""
    return _TOKEN_ANYWHERE.sub("/octoperf/***", text)


class MaskTokensFilter(logging.Filter):
    """Mask path tokens in every log record that passes through a handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_path(message)
        if masked != message:
            record.msg = masked
            record.args = ()
        return True
