"""HTTP plumbing: JSON rendering, the safety envelope on every response, error handlers,
the safety guard and the access log."""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import sys
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, unquote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flow_memory.kit import jsonenc
from flow_memory.kit.deps import authorize_route
from flow_memory.kit.errors import (
    DATABASE_RETRY_AFTER_SECONDS,
    DatabaseUnavailable,
    FlowMemoryError,
    ForbiddenMaterial,
    Invalid,
    PayloadTooLarge,
    Problem,
)
from flow_memory.kit.metrics import observe_request
from flow_memory.kit.outage import database_unavailable
from flow_memory.kit.safety import (
    SAFETY_ENVELOPE,
    field_segment,
    find_forbidden,
    find_forbidden_in_query,
    secret_kind_in_text,
)

log = logging.getLogger("flow_memory.http")


class ExactJSONRequest(Request):
    """A request whose JSON body keeps fractions as Decimal: a price of 38 digits arrives with
    every digit, where a float would keep about 17."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = json.loads(await self.body(), parse_float=Decimal)
        return self._json


class ExactJSONRoute(APIRoute):
    """The route class of every router: handlers see bodies parsed by ExactJSONRequest."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def exact(request: Request) -> Response:
            return await handler(ExactJSONRequest(request.scope, request.receive))

        return exact


class FlowJSONResponse(Response):
    """JSON with Decimal rendered as plain numbers."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return jsonenc.render(content)


def respond(payload: BaseModel | Mapping[str, Any], status_code: int = 200) -> FlowJSONResponse:
    """Render a success body with ``ok`` first and the safety envelope last."""
    body = payload.model_dump(mode="python") if isinstance(payload, BaseModel) else payload
    return FlowJSONResponse(success_body(body), status_code=status_code)


def success_body(payload: Mapping[str, Any]) -> dict[str, Any]:
    return {"ok": True, **payload, **SAFETY_ENVELOPE}


async def send_json(
    send: Send, status_code: int, content: bytes, headers: Mapping[str, str] | None = None
) -> None:
    """Send rendered JSON as the two messages a FlowJSONResponse sends, with the same headers,
    without building one: for the order edge, where building it costs more than the rest.
    ``headers`` are sent besides (an error's ``error_headers``)."""
    head = [
        (b"content-length", str(len(content)).encode()),
        (b"content-type", b"application/json"),
    ]
    if headers:
        head += [
            (name.encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()
        ]
    await send({"type": "http.response.start", "status": status_code, "headers": head})
    await send({"type": "http.response.body", "body": content})


def error_body(
    code: str,
    message: str,
    field: str | None = None,
    hint: str | None = None,
    problems: Sequence[Problem] = (),
) -> dict[str, Any]:
    """The one error shape; ``problems``, when the request had any, lists every one of them
    (the first is the error's own code, message and field)."""
    error: dict[str, Any] = {"code": code, "message": message, "field": field, "hint": hint}
    if problems:
        error["problems"] = [problem.read() for problem in problems]
    return {"ok": False, "error": error, **SAFETY_ENVELOPE}


def error_response(error: FlowMemoryError) -> FlowJSONResponse:
    return FlowJSONResponse(
        error_body(error.code, error.message, error.field, error.hint, error.problems),
        status_code=error.status_code,
        headers=error_headers(error),
    )


def problems_error(
    problems: Sequence[Problem], *, hint: str | None = None, status_code: int | None = None
) -> Invalid:
    """One error for every problem found in a request: the first one's code, field and
    message (saying how many more there are), and all of them in ``problems``."""
    first = problems[0]
    message = first.message
    if len(problems) > 1:
        more = len(problems) - 1
        message += f" ({more} more problem{'s' if more > 1 else ''} listed in problems)"
    return Invalid(
        message,
        field=first.field,
        hint=hint,
        code=first.code,
        status_code=status_code,
        problems=tuple(problems),
    )


def error_headers(error: FlowMemoryError) -> dict[str, str] | None:
    """The headers an error is answered with besides the body: ``retry-after`` when the client
    should try again later. Decided by the code too, for an error that crossed from the market
    process as a plain FlowMemoryError with its code and status."""
    seconds = error.retry_after
    if seconds is None and error.code == DatabaseUnavailable.code:
        seconds = DATABASE_RETRY_AFTER_SECONDS
    return None if seconds is None else {"retry-after": str(seconds)}


# Requests that change nothing: a database error answering one says nothing about applying it.
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _as_read(request: Request, error: FlowMemoryError) -> FlowMemoryError:
    """A read's outage error without the write's statement about what was applied."""
    if error.code == DatabaseUnavailable.code and request.method in READ_METHODS:
        return DatabaseUnavailable(retry_after=error.retry_after or DATABASE_RETRY_AFTER_SECONDS)
    return error


def database_error_classes() -> tuple[type[Exception], ...]:
    """The errors SQLAlchemy and the loaded database drivers raise."""
    classes: list[type[Exception]] = [SQLAlchemyError, sqlite3.Error]
    psycopg = sys.modules.get("psycopg")
    if psycopg is not None:
        classes.append(psycopg.Error)
    return tuple(classes)


_VALIDATION_CODES = {
    "extra_forbidden": "unknown_field",
    "missing": "missing_field",
    "json_invalid": "invalid_json",
}


def _field_path(loc: tuple[Any, ...]) -> str:
    parts = [p for p in loc if p not in ("body",)]
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "body"


def validation_problems(errors: Sequence[Any], document: Any = None) -> list[Problem]:
    """Every problem pydantic found, in its order, with pydantic's own messages and never its
    ``input`` echo (a refused value stays unseen). An error that concerns several fields names
    them in its context (``fields``, relative to its location): one problem for each."""
    problems: list[Problem] = []
    for error in errors:
        kind = str(error.get("type"))
        code = _VALIDATION_CODES.get(kind, "invalid_request")
        loc = tuple(error.get("loc", ()))
        context = error.get("ctx") or {}
        if kind == "json_invalid":
            problems.append(Problem(None, json_problem(context.get("error"), loc, document), code))
            continue
        message = str(error.get("msg") or "invalid value").removeprefix("Value error, ")
        fields = context.get("fields")
        if isinstance(fields, tuple | list) and fields:
            problems.extend(
                Problem(path, f"{path}: {message}", code)
                for path in (_field_path((*loc, name)) for name in fields)
            )
            continue
        field = _field_path(loc)
        problems.append(Problem(field, f"{field}: {message}", code))
    return problems


def json_problem(reason: Any, loc: tuple[Any, ...], document: Any) -> str:
    """What is wrong with a body that is not JSON, and where (line and column), from the
    decoder's own reason: never the text around it, which is the caller's."""
    what = str(reason or "invalid JSON")
    what = what[:1].lower() + what[1:]
    position = loc[-1] if loc and isinstance(loc[-1], int) else None
    if position is None or not isinstance(document, str | bytes):
        return f"the body is not valid JSON: {what}"
    text = document.decode("utf-8", "replace") if isinstance(document, bytes) else document
    line, column = position_of(text, position)
    return f"the body is not valid JSON: {what} at line {line}, column {column}"


def position_of(text: str, position: int) -> tuple[int, int]:
    """The line and column (both from 1) of a character offset in ``text``."""
    position = max(0, min(position, len(text)))
    line = text.count("\n", 0, position) + 1
    return line, position - (text.rfind("\n", 0, position) + 1) + 1


# The methods a 405's allow header may name: every method some route of the app declares.
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(request: Request) -> list[str]:
    """The methods some route of the app answers at the request's path: a 405's ``allow``.
    Starlette names only those of the first route whose path matched, though other routes may
    serve the path with other methods (GET and POST /inference/credential-refs)."""
    routes = request.app.router.routes
    return [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] == Match.FULL for route in routes
        )
    ]


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(FlowMemoryError)
    async def _flow_error(request: Request, exc: FlowMemoryError) -> Response:
        return error_response(_as_read(request, exc))

    async def _database_error(request: Request, exc: Exception) -> Response:
        # A database error that no transaction turned into DatabaseUnavailable: a write it
        # answers may have got as far as committing.
        unavailable = database_unavailable(
            exc,
            applied=None if request.method in READ_METHODS else "may_have_applied",
            bind=getattr(request.app.state, "engine", None),
        )
        if unavailable is None:
            raise exc  # a bug: answered 500 and logged with its traceback, as any other
        return error_response(unavailable)

    # Registered apart from Exception's handler: Starlette re-raises whatever reaches that one,
    # for the server to log with a traceback, where an outage is logged once by DATABASE.
    # The app's engine is made first, so its driver is loaded by now.
    for error_class in database_error_classes():
        app.add_exception_handler(error_class, _database_error)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        # A body that is not JSON is refused before any dependency runs: the caller is
        # authenticated here first, so no key still answers 401 (and a missing scope 403).
        try:
            await authorize_route(request)
        except FlowMemoryError as error:
            return error_response(error)
        problems = validation_problems(exc.errors(), exc.body)
        if not problems:
            problems = [Problem("body", "body: invalid request", "invalid_request")]
        return error_response(problems_error(problems))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        codes = {404: "not_found", 405: "method_not_allowed"}
        code = codes.get(exc.status_code, "http_error")
        message = "no such route" if exc.status_code == 404 else str(exc.detail)
        headers = {k: v for k, v in (exc.headers or {}).items() if k.lower() != "allow"}
        if exc.status_code == 405:
            headers["allow"] = ", ".join(allowed_methods(request))
        return FlowJSONResponse(
            error_body(code, message), status_code=exc.status_code, headers=headers or None
        )

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> Response:
        log.error("unhandled error: %s", type(exc).__name__)
        return FlowJSONResponse(
            error_body("internal_error", "the server could not complete the request"),
            status_code=500,
        )


class SafetyGuardMiddleware:
    """Refuses forbidden material, oversized bodies and unbounded structures before the app
    sees the request: nothing refused here reaches a handler, a table or a log line."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        max_string_length: int,
        max_list_length: int,
        max_depth: int = 16,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_string_length = max_string_length
        self.max_list_length = max_list_length
        self.max_depth = max_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        try:
            kind = secret_kind_in_text(unquote(scope.get("path", "")))
            if kind is not None:
                raise _forbidden("path", kind)
            query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), True)
            found = find_forbidden_in_query(query)
            if found is not None:
                raise _forbidden(found.field, found.kind)
            body = await self._read_body(scope, receive)
            if body:
                self._check_body(body)
        except FlowMemoryError as error:
            await error_response(error)(scope, receive, send)
            # Counted, never logged: the access log is behind the guard (see the class).
            seconds = time.perf_counter() - started
            observe_request(scope["method"], _template_of(scope), error.status_code, seconds)
            return

        await self.app(scope, replay_body(body, receive), send)

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes:
        headers = dict(scope.get("headers", []))
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            raise _too_large(self.max_body_bytes)
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise _too_large(self.max_body_bytes)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    def _check_body(self, body: bytes) -> None:
        try:
            document = json.loads(body)
        except RecursionError:
            # json gives up on nesting far beyond max_depth; it is the same refusal.
            raise _too_deep("body", self.max_depth) from None
        except (json.JSONDecodeError, UnicodeDecodeError):
            return  # not JSON: the route's own validation answers it
        except ValueError:
            # Valid JSON that Python refuses to convert: an integer of thousands of digits.
            raise Invalid(
                "body holds a number that is too long",
                field="body",
                code="value_too_long",
                hint="send numbers of at most 4300 digits",
            ) from None
        self.check_document(document)

    def check_document(self, document: Any) -> None:
        """Refuse a parsed body that is unbounded or holds forbidden material."""
        if not self._within_bounds(document, 0):
            self._check_bounds(document, "", 0)  # walked again to name the first problem
        found = find_forbidden(document)
        if found is not None:
            raise _forbidden(found.field, found.kind)

    def _within_bounds(self, value: Any, depth: int) -> bool:
        """Whether ``_check_bounds`` passes ``value``, without building the field paths it needs
        only to report a problem."""
        if depth > self.max_depth:
            return False
        if isinstance(value, str):
            return len(value) <= self.max_string_length
        if isinstance(value, list):
            return len(value) <= self.max_list_length and all(
                self._within_bounds(item, depth + 1) for item in value
            )
        if isinstance(value, dict):
            return len(value) <= self.max_list_length and all(
                len(str(key)) <= self.max_string_length and self._within_bounds(item, depth + 1)
                for key, item in value.items()
            )
        return True

    def _check_bounds(self, value: Any, path: str, depth: int) -> None:
        # Paths are built with field_segment: a key not yet scanned may itself be a secret.
        if depth > self.max_depth:
            raise _too_deep(path or "body", self.max_depth)
        if isinstance(value, str) and len(value) > self.max_string_length:
            raise Invalid(
                f"{path or 'body'} is too long",
                field=path or "body",
                code="value_too_long",
                hint=f"at most {self.max_string_length} characters",
            )
        if isinstance(value, list):
            if len(value) > self.max_list_length:
                raise Invalid(
                    f"{path or 'body'} has too many items",
                    field=path or "body",
                    code="list_too_long",
                    hint=f"at most {self.max_list_length} items",
                )
            for index, item in enumerate(value):
                self._check_bounds(item, f"{path}[{index}]", depth + 1)
        elif isinstance(value, dict):
            if len(value) > self.max_list_length:
                raise Invalid(
                    f"{path or 'body'} has too many fields",
                    field=path or "body",
                    code="object_too_large",
                )
            for key, item in value.items():
                key_text = str(key)
                if len(key_text) > self.max_string_length:
                    raise Invalid(
                        f"{path or 'body'} has a field name that is too long",
                        field=path or "body",
                        code="value_too_long",
                        hint=f"at most {self.max_string_length} characters",
                    )
                segment = field_segment(key_text)
                self._check_bounds(item, f"{path}.{segment}" if path else segment, depth + 1)


def _forbidden(field: str, kind: str) -> ForbiddenMaterial:
    return ForbiddenMaterial(
        f"{field} holds forbidden material ({kind.replace('_', ' ')}); the request was refused "
        "and nothing was stored",
        field=field,
        hint="send only opaque credential references such as secret://inference/provider-alpha "
        "and leave every safety flag at its dry-run value",
    )


def _too_deep(field: str, limit: int) -> Invalid:
    return Invalid(
        f"{field} is nested too deeply",
        field=field,
        code="too_deep",
        hint=f"at most {limit} levels",
    )


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"request body exceeds {limit} bytes", field="body", hint="send a smaller body"
    )


class AccessLogMiddleware:
    """Logs method, route template, status and duration (``log_access``)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record)
        finally:
            log_access(scope, status, started)


def log_access(scope: Scope, status: int, started: float, *, route: str | None = None) -> None:
    """The access-log line of one request: method, route template (never the path a caller
    wrote, which may hold anything, nor the query string), status and duration since
    ``started`` (``time.perf_counter``). ``route`` is for answers given before routing.
    The request is counted in /metrics with the same labels."""
    if route is None:
        route = getattr(scope.get("route"), "path", None) or _template_of(scope)
    seconds = time.perf_counter() - started
    observe_request(scope["method"], route, status, seconds)
    log.info("%s %s %d %.1fms", scope["method"], route, status, seconds * 1000)


_PARAMETER = re.compile(r"\{[^/]+?\}")


def _template_of(scope: Scope) -> str:
    """The template of the documented route a path matches, for a request answered before
    routing (refused by the guard) or by no route at all ("(no route)")."""
    app = scope.get("app")
    if app is None or not hasattr(app, "openapi"):
        return "(no route)"
    templates: list[tuple[re.Pattern[str], str]] | None = getattr(
        app.state, "route_templates", None
    )
    if templates is None:
        templates = app.state.route_templates = [
            (re.compile("^" + "[^/]+".join(map(re.escape, _PARAMETER.split(path))) + "$"), path)
            for path in app.openapi().get("paths", {})
        ]
    path = scope.get("path", "")
    return next((template for pattern, template in templates if pattern.match(path)), "(no route)")


def replay_body(body: bytes, receive: Receive, *, more: bool = False) -> Receive:
    """A receive that gives ``body`` first (with ``more`` of it still to come), then the rest."""
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": more}
        return await receive()

    return replay
