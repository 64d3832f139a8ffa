"""Mask OctoPerf's path token wherever a request line is logged (Django, runserver, gunicorn).

No Django import here: gunicorn's logger loads this before Django is set up.
"""

import logging
import re

# The contract's resources; a token can never be one of these words (settings refuse it).
RESOURCES = r"(?:instances|static-ips)"
_TOKEN_ANYWHERE = re.compile(rf"/octoperf/(?!{RESOURCES}(?:[/?\s]|$))[^/\s?]+(?=/{RESOURCES})")


def mask_path(text: str) -> str:
    """Replace the token segment of every contract path in `text` with `***`."""
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
