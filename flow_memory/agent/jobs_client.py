"""The job board as a bidder reaches it: jobs, bids, assignments, results, and the live stream
of job events (server-sent events, resumed from the last event id after a drop)."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx

from flow_memory.agent.clients import FlowMemoryClient, FlowMemoryRefused, FlowMemoryUnavailable
from flow_memory.agent.jobs_pricing import OpenJob

STREAM_PATH = "/inference/jobs/stream"
OPEN_JOBS_PAGE = 200  # the most GET /inference/jobs answers at a time


@dataclass(frozen=True)
class StreamEvent:
    """One server-sent event: its id (None when the block set none), name and data."""

    event_id: str | None
    kind: str | None
    data: str


def parse_events(lines: Iterable[str]) -> Iterator[StreamEvent]:
    """Server-sent events from the stream's lines (line ends already removed): comments are
    skipped, ``data`` lines joined, and an event is yielded at the blank line that ends it."""
    event_id: str | None = None
    kind: str | None = None
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                yield StreamEvent(event_id, kind, "\n".join(data))
            event_id, kind, data = None, None, []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            data.append(value)
        elif name == "event":
            kind = value
        elif name == "id" and "\0" not in value:
            event_id = value


def decode_event(event: StreamEvent) -> tuple[str, str, dict[str, Any]]:
    """A job event's kind, job id and payload (``ValueError`` when it is not one)."""
    try:
        document = json.loads(event.data, parse_float=Decimal)
        payload = document.get("payload") or {}
        if not isinstance(payload, dict):
            raise TypeError
        return event.kind or str(document["kind"]), str(document["job_id"]), payload
    except (KeyError, TypeError, AttributeError):
        raise ValueError("not a job event") from None


def error_code(data: str) -> str:
    """The code of an error event's body."""
    try:
        return str(json.loads(data)["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return "unreadable"


class JobBoardClient(FlowMemoryClient):
    """The job board routes a bidder uses, for one API key."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, api_key, timeout=timeout, transport=transport)
        self._streaming: httpx.Response | None = None
        self._stream_lock = threading.Lock()

    def open_jobs(self, *, page: int = OPEN_JOBS_PAGE) -> list[dict[str, Any]]:
        """Every job open for bids now, newest first, read ``page`` at a time."""
        jobs: list[dict[str, Any]] = []
        params: dict[str, Any] = {"status": "open", "limit": page}
        seen: set[str] = set()
        while True:
            body = self._call("GET", "/inference/jobs", params=params)
            jobs += body["jobs"]
            cursor = body.get("next_cursor")
            if not cursor or cursor in seen:  # the last page (or a server repeating itself)
                return jobs
            seen.add(cursor)
            params = {**params, "cursor": cursor}

    def job(self, job_id: str) -> dict[str, Any]:
        body = self._call("GET", f"/inference/jobs/{job_id}")
        job: dict[str, Any] = body["job"]
        return job

    def loss_reason(self, job_id: str, bid_id: str | None) -> str | None:
        """Why a bid lost, as the job shows every bidder once awarded (None: not known)."""
        try:
            bids = self.job(job_id).get("bids") or []
            return next(str(b["reason"]) for b in bids if b.get("bid_id") == bid_id)
        except (FlowMemoryUnavailable, FlowMemoryRefused, StopIteration, KeyError, TypeError):
            return None

    def place_bid(self, job_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """Bid (or revise this bidder's bid); the answer holds ``bid`` and ``job``."""
        return self._call("POST", f"/inference/jobs/{job_id}/bids", payload=body)

    def bid_stakes(self, identity_id: str | None) -> list[dict[str, Any]]:
        """The bid stakes of the bidder (the key's owner when None) still active."""
        params: dict[str, Any] = {"limit": 200}
        if identity_id is not None:
            params["identity_id"] = identity_id
        stakes = self._call("GET", "/inference/stakes", params=params)["stakes"]
        return [s for s in stakes if s.get("purpose") == "bid" and s.get("status") == "active"]

    def place_stake(self, amount: Decimal, identity_id: str | None) -> dict[str, Any]:
        """Stake ``amount`` credits to bid, held on the bidder's paying account; the stake."""
        body: dict[str, Any] = {"amount": amount}
        if identity_id is not None:
            body["identity_id"] = identity_id
        stake: dict[str, Any] = self._call("POST", "/inference/stakes", payload=body)["stake"]
        return stake

    def assignment(self, job_id: str) -> dict[str, Any]:
        """The full request of a job this bidder won."""
        body = self._call("GET", f"/inference/jobs/{job_id}/assignment")
        assignment: dict[str, Any] = body["assignment"]
        return assignment

    def submit_result(self, job_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """Upload the result; the answer holds ``result`` (with its hash) and ``job``."""
        return self._call("POST", f"/inference/jobs/{job_id}/result", payload=body)

    @contextmanager
    def stream(
        self,
        *,
        last_event_id: str | None,
        idle_seconds: float,
        kinds: Collection[str] = (),
    ) -> Iterator[Iterator[StreamEvent]]:
        """Connect to the stream, resuming after ``last_event_id`` (from now when None), and
        give its events (of ``kinds`` only, if given) until it ends, fails
        (``FlowMemoryUnavailable``) or ``interrupt`` is called. A stream quiet for
        ``idle_seconds`` counts as dropped."""
        headers = {"accept": "text/event-stream"}
        if last_event_id is not None:
            headers["last-event-id"] = last_event_id
        timeout = httpx.Timeout(self._http.timeout.connect or 10.0, read=idle_seconds)
        params = {"kind": sorted(kinds)} if kinds else None
        request = self._http.build_request(
            "GET", STREAM_PATH, params=params, headers=headers, timeout=timeout
        )
        try:
            response = self._http.send(request, stream=True)
        except httpx.TransportError as error:
            raise FlowMemoryUnavailable(f"GET {STREAM_PATH}: {type(error).__name__}") from None
        try:
            if response.status_code >= 400:
                response.read()
                self._refuse(response)
            with self._stream_lock:
                self._streaming = response
            yield self._events(response)
        finally:
            with self._stream_lock:
                self._streaming = None
            response.close()

    @staticmethod
    def _events(response: httpx.Response) -> Iterator[StreamEvent]:
        try:
            yield from parse_events(response.iter_lines())
        except httpx.HTTPError as error:
            raise FlowMemoryUnavailable(f"GET {STREAM_PATH}: {type(error).__name__}") from None

    def interrupt(self) -> None:
        """End the stream being followed, from another thread (to stop). Closing a response
        does not wake a thread blocked reading it; shutting its socket down does."""
        with self._stream_lock:
            response = self._streaming
        if response is None:
            return
        stream = response.extensions.get("network_stream")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    @staticmethod
    def _refuse(response: httpx.Response) -> None:
        if response.status_code >= 500:
            raise FlowMemoryUnavailable(f"GET {STREAM_PATH}: HTTP {response.status_code}")
        try:
            problem = response.json().get("error", {})
        except (ValueError, AttributeError):
            problem = {}
        raise FlowMemoryRefused(
            response.status_code,
            str(problem.get("code", "http_error")),
            str(problem.get("message", response.reason_phrase)),
        )


def open_job_from_event(job_id: str, payload: Mapping[str, Any]) -> OpenJob:
    """A job as its ``job.posted`` event describes it."""
    return OpenJob(
        job_id=job_id,
        model_hint=str(payload["model_hint"]),
        input_tokens=int(payload["size"]["estimated_input_tokens"]),
        max_tokens=int(payload["max_tokens"]),
        quality=str(payload.get("quality_threshold", "standard")),
        deadline_seconds=int(payload["deadline_seconds"]),
        max_price=_decimal(payload["max_price"]),
    )


def open_job_from_read(job: Mapping[str, Any]) -> OpenJob:
    """A job as ``GET /inference/jobs`` lists it."""
    request = job["request"]
    return OpenJob(
        job_id=str(job["job_id"]),
        model_hint=str(request["model_hint"]),
        input_tokens=int(request["size"]["estimated_input_tokens"]),
        max_tokens=int(request["max_tokens"]),
        quality=str(request.get("quality_threshold", "standard")),
        deadline_seconds=int(job["deadline_seconds"]),
        max_price=_decimal(job["economics"]["max_price"]),
    )


def messages_of(request: Mapping[str, Any]) -> list[dict[str, str]]:
    """The assignment's messages, or its prompt as one user message."""
    if request.get("messages"):
        return [{"role": str(m["role"]), "content": str(m["content"])} for m in request["messages"]]
    return [{"role": "user", "content": str(request["prompt"])}]


def _decimal(value: Any) -> Decimal:
    # A float from a JSON reader goes through its shortest text, so 0.0005 stays exactly that.
    return value if isinstance(value, Decimal) else Decimal(str(value))
