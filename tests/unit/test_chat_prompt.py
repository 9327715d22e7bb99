"""The local chat model's prompt template and stop handling (pure; no model)."""

from __future__ import annotations

import pytest

from flow_memory.agent.chat_prompt import (
    TEMPLATE_STOPS,
    IncrementalText,
    PromptError,
    StopScanner,
    instruction_prompt,
    message_text,
    request_stops,
)


class TestInstructionPrompt:
    def test_a_question_ends_with_an_open_response(self) -> None:
        prompt = instruction_prompt([{"role": "user", "content": "What is 2 + 2?"}])
        assert prompt == "### Instruction:\nWhat is 2 + 2?\n\n### Response:\n"

    def test_system_text_comes_first_and_turns_keep_their_order(self) -> None:
        prompt = instruction_prompt(
            [
                {"role": "user", "content": "Hi."},
                {"role": "system", "content": "Be brief."},
                {"role": "assistant", "content": "Hello."},
                {"role": "developer", "content": " Answer in English. "},
                {"role": "user", "content": "Name a colour."},
            ]
        )
        assert prompt == (
            "Be brief.\n\nAnswer in English.\n\n"
            "### Instruction:\nHi.\n\n### Response:\nHello.\n\n"
            "### Instruction:\nName a colour.\n\n### Response:\n"
        )

    def test_text_parts_are_joined_and_empty_system_text_dropped(self) -> None:
        prompt = instruction_prompt(
            [
                {"role": "system", "content": None},
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "Say "}, {"type": "text", "text": "yes"}],
                },
            ]
        )
        assert prompt == "### Instruction:\nSay yes\n\n### Response:\n"

    @pytest.mark.parametrize(
        ("messages", "says"),
        [
            ([], "messages is empty"),
            ([{"role": "narrator", "content": "x"}], "unknown message role 'narrator'"),
            ([{"role": "user", "content": 42}], "a string or a list of parts"),
            (
                [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}],
                "text only",
            ),
        ],
    )
    def test_what_the_template_cannot_place_is_refused(
        self, messages: list[dict[str, object]], says: str
    ) -> None:
        with pytest.raises(PromptError, match=says):
            instruction_prompt(messages)

    def test_message_text_of_nothing_is_empty(self) -> None:
        assert message_text(None) == ""


class TestStopScanner:
    def test_the_answer_ends_before_the_next_heading(self) -> None:
        scanner = StopScanner(TEMPLATE_STOPS)
        out = [scanner.feed(piece) for piece in ("Paris", ".", "\n\n", "##", "# Instruction")]
        assert "".join(out) == "Paris."
        assert scanner.stopped
        assert scanner.feed("more") == "" and scanner.finish() == ""

    def test_a_possible_stop_is_held_until_it_is_not_one(self) -> None:
        scanner = StopScanner(("###",))
        assert scanner.feed("a #") == "a"  # " #" could begin "###"
        assert scanner.feed("1 b") == " #1 b"
        assert not scanner.stopped

    def test_trailing_whitespace_is_dropped_when_the_model_stops(self) -> None:
        scanner = StopScanner(TEMPLATE_STOPS)
        assert scanner.feed("Blue.\n") == "Blue."
        assert scanner.finish() == ""

    def test_a_request_stop_ends_the_answer_too(self) -> None:
        stops = request_stops(["three"])
        assert stops == (*TEMPLATE_STOPS, "three")
        scanner = StopScanner(stops)
        assert scanner.feed("one two thr") + scanner.feed("ee four") == "one two"


class TestRequestStops:
    def test_a_string_or_up_to_four_strings(self) -> None:
        assert request_stops(None) == TEMPLATE_STOPS
        assert request_stops("END") == (*TEMPLATE_STOPS, "END")
        assert request_stops(["a", "", "b"]) == (*TEMPLATE_STOPS, "a", "b")

    @pytest.mark.parametrize("stop", [["a", "b", "c", "d", "e"], [1], 5])
    def test_anything_else_is_refused(self, stop: object) -> None:
        with pytest.raises(PromptError, match="at most 4 strings"):
            request_stops(stop)


class TestIncrementalText:
    def test_half_a_character_waits_for_its_token(self) -> None:
        pieces = {1: b"caf", 2: b"\xc3", 3: b"\xa9!"}

        def detokenize(tokens: list[int]) -> str:
            return b"".join(pieces[t] for t in tokens).decode(errors="replace")

        text = IncrementalText(detokenize)
        assert [text.add(1), text.add(2), text.add(3)] == ["caf", "", "\u00e9!"]
        assert text.finish() == ""
