"""What gunicorn answers itself, before Django sees a request: JSON, the path never echoed, the logs masked.

gunicorn answers a malformed request line, a URL over its limit or an application that failed before
answering with an HTML page that quotes the request line, OctoPerf's path token included, and logs
that line too (`gunicorn/workers/base.py`, `Worker.handle_error`). `gunicorn.conf.py` puts
`handle_error` below in its place in every worker, whatever the worker class.

No Django import here: it runs in gunicorn's worker, outside any request Django handles.
"""

import json
import ssl
from dataclasses import dataclass
from datetime import datetime

from gunicorn import util
from gunicorn.http import errors
from gunicorn.http.wsgi import Response, default_environ

from octoprovider.core.logmask import mask_path


@dataclass(frozen=True)
class Answer:
    status: int
    reason: str
    code: str
    message: str


# gunicorn's own mapping (Worker.handle_error), in the contract's words. The first that matches wins.
_CLIENT_ERRORS: list[tuple[tuple[type[BaseException], ...], Answer]] = [
    (
        (errors.LimitRequestLine,),
        Answer(414, "URI Too Long", "uri_too_long", "The request line is over the server's limit."),
    ),
    (
        (errors.LimitRequestHeaders,),
        Answer(
            431,
            "Request Header Fields Too Large",
            "headers_too_large",
            "The request headers are over the server's limit.",
        ),
    ),
    (
        (errors.ExpectationFailed,),
        Answer(417, "Expectation Failed", "expectation_failed", "The Expect header cannot be met."),
    ),
    (
        (errors.UnsupportedTransferCoding,),
        Answer(501, "Not Implemented", "unsupported_transfer_coding", "The transfer coding is not supported."),
    ),
    ((errors.ForbiddenProxyRequest, ssl.SSLError), Answer(403, "Forbidden", "forbidden", "The request is forbidden.")),
    (
        (errors.ConfigurationProblem,),
        Answer(500, "Internal Server Error", "internal_error", "The server is misconfigured; the error was logged."),
    ),
    (
        (
            errors.InvalidRequestLine,
            errors.InvalidRequestMethod,
            errors.InvalidHTTPVersion,
            errors.InvalidHeader,
            errors.InvalidHeaderName,
            errors.InvalidProxyLine,
            errors.InvalidSchemeHeaders,
            errors.ObsoleteFolding,
            errors.InvalidH2CPreface,
            errors.InvalidChunkSize,
            errors.ChunkMissingTerminator,
            errors.InvalidChunkExtension,
        ),
        Answer(400, "Bad Request", "bad_request", "The request is not valid HTTP/1.x."),
    ),
]
_SERVER_ERROR = Answer(
    500, "Internal Server Error", "internal_error", "octoprovider failed to handle this request; the error was logged."
)


def answer_for(exc: BaseException) -> Answer:
    """Say how gunicorn must answer `exc`: its status, in the contract's error shape."""
    if isinstance(exc, (errors.InvalidResponseHeader, errors.InvalidResponseHeaderName)):
        return _SERVER_ERROR  # a header the application tried to send: our fault, not the client's
    for kinds, answer in _CLIENT_ERRORS:
        if isinstance(exc, kinds):
            return answer
    return _SERVER_ERROR


def handle_error(worker, req, client, addr, exc: BaseException) -> None:
    """Log `exc` masked, write one access line as gunicorn would, and answer the contract's JSON error."""
    started = datetime.now()
    addr = addr or ("", -1)  # a unix socket
    answer = answer_for(exc)
    if answer is _SERVER_ERROR:
        uri = getattr(req, "uri", None)
        worker.log.exception("Error handling request %s", mask_path(uri) if uri else "(no URI read)")
    else:
        worker.log.warning("Invalid request from ip=%s: %s: %s", addr[0], type(exc).__name__, mask_path(str(exc)))
        if req is None and isinstance(exc, (errors.InvalidHeader, errors.InvalidHeaderName)):
            req = getattr(exc, "req", None)  # for the access line, as gunicorn does
    body = json.dumps({"error": {"code": answer.code, "message": answer.message}}).encode()
    if req is not None:
        environ = default_environ(req, client, worker.cfg)
        environ["REMOTE_ADDR"], environ["REMOTE_PORT"] = addr[0], str(addr[1])
        response = Response(req, client, worker.cfg)
        response.status = f"{answer.status} {answer.reason}"
        response.response_length = len(body)
        worker.log.access(response, req, environ, datetime.now() - started)
    head = (
        f"HTTP/1.1 {answer.status} {answer.reason}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/json; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    try:
        util.write_nonblock(client, head.encode("latin-1") + body)
    except Exception:
        worker.log.debug("Failed to send error message.")
