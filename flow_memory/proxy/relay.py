"""One answered upstream call, relayed: the client's answer (whole or streamed), and the
call's usage record and charge."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator
from typing import Any

import anyio
import orjson
from starlette.datastructures import State

from flow_memory.deployments.limits import latencies_of
from flow_memory.kit.http import error_body
from flow_memory.proxy import sse, translate
from flow_memory.proxy.client import BODY_ERRORS, Opened, UpstreamUnavailable
from flow_memory.proxy.metrics import call_ended
from flow_memory.proxy.recorder import UsageRecorder
from flow_memory.proxy.service import (
    Kind,
    Plan,
    metadata,
    usage_record,
)
from flow_memory.proxy.translate import Json, Usage
from flow_memory.proxy.wire import WireResponse, read_within


async def read_answer(response: Any, limit: int) -> bytes | None:
    """A whole answer's bytes, or None once it goes past ``limit`` (a provider must not make
    the proxy hold an answer of any size)."""
    if isinstance(response, WireResponse):
        return await response.aread_within(limit)
    return await read_within(response.aiter_bytes(), limit)  # a test's injected transport


class Call:
    """One answered upstream call: turned into the client's answer and a usage record."""

    def __init__(
        self,
        state: State,
        plan: Plan,
        kind: Kind,
        body: Json,
        opened: Opened,
        started: float,
        *,
        asked: float,
    ) -> None:
        self.state = state
        self.plan = plan
        self.kind = kind
        self.body = body
        self.opened = opened
        self.target = opened.target
        self.started = started
        self.asked = asked  # when the first upstream attempt began
        self.answered = time.perf_counter()  # made as soon as a provider's answer began
        self.warnings: list[str] = []
        self.recorded = False

    # -- usage ---------------------------------------------------------------------------

    def _usage(self, reported: Usage | None, output_text: str) -> Usage:
        if reported is not None:
            return reported
        self.warnings.append("the provider reported no usage; tokens were estimated")
        return Usage(
            translate.estimate_tokens(translate.prompt_text(self.body)),
            translate.estimate_tokens(output_text),
            estimated=True,
        )

    async def abandon(self) -> None:
        """The client went away: end the upstream answer and record the call (both once)."""
        with anyio.CancelScope(shield=True):
            await self.opened.response.aclose()
        if not self.recorded:
            self._finish(Usage(0, 0), "client_disconnected")

    def _finish(self, usage: Usage, decision: str) -> Json:
        """Record the usage (once) and build the flow_memory object."""
        record = None
        if not self.recorded:
            self.recorded = True
            call_ended(
                provider_id=self.target.provider_id,
                api=self.kind,
                outcome=decision,
                asked=self.asked,
                answered=self.answered,
            )
            if decision == "selected":
                # What a deployment's latency ceiling is measured by.
                latencies_of(self.state).observe(
                    self.target.provider_id, (self.answered - self.asked) * 1000
                )
            record = usage_record(
                self.plan,
                self.target,
                usage=usage,
                decision=decision,
                latency_ms=(time.perf_counter() - self.started) * 1000,
                now=self.state.clock.now(),
            )
            recorder: UsageRecorder = self.state.usage_recorder
            recorder.add(record, hold_id=self.plan.hold_id)
        return metadata(
            self.plan,
            self.target,
            record=record,
            usage=usage,
            warnings=self.warnings,
            attempts=self.opened.attempts,
        )

    def _decision(self) -> str:
        return "fallback" if len(self.opened.attempts) > 1 else "selected"

    # -- a whole answer --------------------------------------------------------------------

    async def answer_whole(self) -> tuple[int, bytes]:
        """The status and JSON body for the client."""
        response = self.opened.response
        limit = self.state.settings.proxy_max_answer_bytes
        try:
            raw = await read_answer(response, limit)
        except BODY_ERRORS:
            self._finish(Usage(0, 0), "upstream_failed")
            raise UpstreamUnavailable(
                f"{self.target.provider_id} stopped answering mid-body",
                hint="retry; the call was not completed",
            ) from None
        finally:
            await response.aclose()
        if raw is None:
            self._finish(Usage(0, 0), "upstream_invalid")
            raise UpstreamUnavailable(
                f"{self.target.provider_id} answered with more than {limit} bytes",
                code="upstream_invalid_response",
                hint="ask for less, or stream the answer",
            )
        raw = self.opened.redactor.bytes(raw)
        try:
            document = orjson.loads(raw)
        except orjson.JSONDecodeError:
            document = None
        if response.status_code >= 400:
            return self._upstream_error(response.status_code, document)
        if not isinstance(document, dict):
            self._finish(Usage(0, 0), "upstream_invalid")
            raise UpstreamUnavailable(
                f"{self.target.provider_id} answered with something that is not a JSON object",
                code="upstream_invalid_response",
                hint="retry; if it persists the provider is misconfigured",
            )
        document = self._translate_whole(document)
        usage = self._usage(translate.usage_from(document), _output_text(self.kind, document))
        document["flow_memory"] = self._finish(usage, self._decision())
        return 200, sse.dumps(document)

    def _translate_whole(self, document: Json) -> Json:
        translation = self.target.translation
        if translation == "messages":
            document = translate.messages_to_chat_response(document, model=self.plan.model)
        if translation is not None and self.kind == "responses":
            document = translate.chat_to_responses_response(document, model=self.plan.model)
        return document

    def _upstream_error(self, status: int, document: Any) -> tuple[int, bytes]:
        """A provider's 4xx goes back as it is, with the flow_memory object beside it."""
        meta = self._finish(Usage(0, 0), "upstream_rejected")
        if isinstance(document, dict) and "error" in document:
            body: Json = {"error": document["error"], "flow_memory": meta}
        else:
            body = {
                **error_body(
                    "upstream_rejected",
                    f"{self.target.provider_id} refused the request with status {status}",
                    hint="check the request against the provider's model and limits",
                ),
                "flow_memory": meta,
            }
        return status, sse.dumps(body)

    # -- a stream -------------------------------------------------------------------------

    async def stream(self) -> AsyncGenerator[bytes]:
        relay = Relay(self)
        response = self.opened.response
        parser = sse.EventParser()
        try:
            try:
                async for chunk in response.aiter_bytes():
                    for event in parser.feed(chunk):
                        for piece in relay.feed(event):
                            yield piece
                        if relay.ended:
                            break
                    if relay.ended:
                        break
            except (*BODY_ERRORS, sse.EventTooLarge) as error:
                relay.cut = f"the provider's stream failed ({type(error).__name__})"
            for piece in relay.close():
                yield piece
        finally:
            # Shielded: after a client disconnect this runs inside a cancelled scope.
            with anyio.CancelScope(shield=True):
                await response.aclose()
            if not self.recorded:
                # The client went away mid-stream: record what was delivered.
                self._finish(relay.usage(), "client_disconnected")


class Relay:
    """Passes a provider's stream to the client event by event, translating where needed, and
    closes it with an event that carries the flow_memory object (or an error event)."""

    def __init__(self, call: Call) -> None:
        self.call = call
        self.kind = call.kind
        self.translation = call.target.translation
        self.redact = call.opened.redactor.text
        self.ended = False
        self.cut: str | None = None
        self.reported: Usage | None = None
        self.text: list[str] = []
        self.chunk_id = "chatcmpl-stream"
        self.created = int(time.time())
        self.from_messages = (
            translate.MessagesToChatStream(model=call.plan.model)
            if self.translation == "messages"
            else None
        )
        self.to_responses = (
            translate.ChatToResponsesStream(model=call.plan.model)
            if self.translation is not None and self.kind == "responses"
            else None
        )
        self.held_completion: Json | None = None

    def feed(self, event: sse.Event) -> list[bytes]:
        if event.done:
            self.ended = True
            return []
        try:
            document = orjson.loads(self.redact(event.data))
        except orjson.JSONDecodeError:
            self.cut = "the provider sent an event that is not JSON"
            self.ended = True
            return []
        if not isinstance(document, dict):
            self.cut = "the provider sent an event that is not a JSON object"
            self.ended = True
            return []
        if document.get("type") == "error" or ("error" in document and "type" not in document):
            self.cut = "the provider reported an error mid-stream"
            self.ended = True
            return []
        if self.translation is None:
            return self._pass(event, document)
        return self._translated(document)

    def _pass(self, event: sse.Event, document: Json) -> list[bytes]:
        if self.kind == "chat":
            usage = translate.usage_from(document)
            if usage is not None:
                self.reported = usage
            self.text.append(translate.chat_output_text(document))
            self.chunk_id = str(document.get("id") or self.chunk_id)
            self.created = int(document.get("created") or self.created)
            if not document.get("choices") and usage is not None:
                return []  # the usage chunk: its numbers travel in the closing event
            return [sse.encode(self.redact(event.data), event.event)]
        kind = document.get("type")
        self.text.append(translate.responses_output_text(document))
        if kind in ("response.completed", "response.incomplete", "response.failed"):
            # Held back to carry the flow_memory object; it is the stream's last event.
            self.reported = translate.usage_from(document.get("response") or {})
            self.held_completion = document
            self.ended = True
            return []
        return [sse.encode(self.redact(event.data), event.event)]

    def _translated(self, document: Json) -> list[bytes]:
        chunks = [document]
        if self.from_messages is not None:
            chunks = self.from_messages.feed(document)
            if self.from_messages.finished:
                self.reported = self.from_messages.usage()
                self.ended = True
        else:
            usage = translate.usage_from(document)
            if usage is not None:
                self.reported = usage
        out: list[bytes] = []
        for chunk in chunks:
            self.text.append(translate.chat_output_text(chunk))
            if self.to_responses is not None:
                for item in self.to_responses.feed(chunk):
                    out.append(sse.encode(item, item["type"]))
            elif chunk.get("choices"):
                self.chunk_id = str(chunk.get("id") or self.chunk_id)
                out.append(sse.encode(chunk))
        return out

    def usage(self) -> Usage:
        return self.call._usage(self.reported, "".join(self.text))

    def close(self) -> list[bytes]:
        if not self.ended and self.cut is None:
            self.cut = "the provider's stream ended before its last event"
        if self.cut is not None:
            usage = self.usage()
            meta = self.call._finish(usage, "stream_cut")
            error = {
                "error": {
                    "code": "upstream_stream_cut",
                    "message": self.cut + "; the answer is incomplete",
                    "type": "upstream_error",
                },
                "flow_memory": meta,
            }
            if self.kind == "responses":
                return [sse.encode({"type": "error", **error}, "error")]
            return [sse.encode(error)]
        usage = self.usage()
        meta = self.call._finish(usage, self.call._decision())
        if self.kind == "responses":
            if self.held_completion is not None:
                last = self.held_completion
            else:
                assert self.to_responses is not None
                *rest, last = self.to_responses.finish(usage)
                return [sse.encode(item, item["type"]) for item in rest] + [
                    sse.encode({**last, "flow_memory": meta}, last["type"])
                ]
            return [sse.encode({**last, "flow_memory": meta}, str(last.get("type")))]
        closing = {
            "id": self.chunk_id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.call.plan.model,
            "choices": [],
            "usage": usage.as_chat(),
            "flow_memory": meta,
        }
        return [sse.encode(closing), sse.DONE]


def _output_text(kind: Kind, document: Json) -> str:
    if kind == "embeddings":
        return ""
    if kind == "chat":
        choices = document.get("choices") or [{}]
        return translate.text_of((choices[0].get("message") or {}).get("content"))
    return "".join(
        translate.text_of(item.get("content"))
        for item in document.get("output") or []
        if isinstance(item, dict)
    )
