"""The deployment rules in plain Python: royalty arithmetic and rounding, the configuration a
revision pins, and how a call's body takes it."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from flow_memory.deployments.domain import (
    QUANTUM,
    configured_body,
    exact_royalty,
    merged_configuration,
    royalty_of,
)

costs = st.decimals(min_value=Decimal(0), max_value=Decimal(10) ** 9, places=18, allow_nan=False)
bps = st.integers(min_value=0, max_value=5000)


@given(costs, bps)
def test_a_line_is_the_exact_royalty_rounded_half_even_to_18_places(
    cost: Decimal, royalty_bps: int
) -> None:
    line = royalty_of(cost, royalty_bps)
    exact = exact_royalty(cost, royalty_bps)
    assert line == line.quantize(QUANTUM)
    assert abs(line - exact) <= QUANTUM / 2
    if exact == exact.quantize(QUANTUM):
        assert line == exact


@given(st.lists(costs, min_size=1, max_size=50), bps)
def test_a_days_lines_are_within_half_an_atto_a_call_of_the_days_royalty(
    day: list[Decimal], royalty_bps: int
) -> None:
    lines = sum((royalty_of(cost, royalty_bps) for cost in day), Decimal(0))
    exact = exact_royalty(sum(day, Decimal(0)), royalty_bps)
    assert abs(lines - exact) <= len(day) * QUANTUM / 2


def test_half_an_atto_rounds_to_even() -> None:
    # 0.000000000000000005 * 1000 / 10000 = 5e-19: half an atto, rounded to the even 0.
    assert royalty_of(Decimal("0.000000000000000005"), 1000) == 0
    assert royalty_of(Decimal("0.000000000000000015"), 1000) == Decimal("2E-18")
    assert royalty_of(Decimal("0.00001125"), 500) == Decimal("0.0000005625")


TEMPLATE = {"system_prompt": "Be kind.", "parameters": {"temperature": 0.2, "style": "terse"}}


def test_overrides_may_set_only_what_the_template_names_with_its_type() -> None:
    merged, problems = merged_configuration(
        TEMPLATE, None, {"system_prompt": None, "parameters": {"temperature": 0.1}}
    )
    assert problems == []
    assert merged["parameters"] == {"temperature": 0.1, "style": "terse"}
    assert merged["system_prompt"] == "Be kind."
    _, problems = merged_configuration(
        TEMPLATE, None, {"parameters": {"top_k": 3, "temperature": "hot"}}
    )
    assert [(p.field, p.code) for p in problems] == [
        ("configuration.parameters.temperature", "parameter_type"),
        ("configuration.parameters.top_k", "unknown_parameter"),
    ]


def test_a_solution_configuration_sits_between_the_template_and_the_overrides() -> None:
    merged, problems = merged_configuration(
        TEMPLATE,
        {"system_prompt": "Be brief.", "parameters": {"seed": 1}},
        {"parameters": {"seed": 2}},
    )
    assert problems == []
    assert merged["system_prompt"] == "Be brief."
    assert merged["parameters"] == {"temperature": 0.2, "style": "terse", "seed": 2}


def test_a_call_takes_defaults_ceilings_and_fixed_values() -> None:
    configuration = {**TEMPLATE, "parameters": {**TEMPLATE["parameters"], "model": "x"}}
    body = {"model": "dep/a/b", "messages": [{"role": "user", "content": "hi"}]}
    out, problems = configured_body("chat", body, configuration, "served-name")
    assert problems == []
    assert out["model"] == "served-name"
    assert out["messages"][0] == {"role": "system", "content": "Be kind."}
    assert (out["temperature"], out["style"]) == (0.2, "terse")
    again, _ = configured_body("chat", {**out, "model": "dep/a/b"}, configuration, "served-name")
    assert again["messages"] == out["messages"]  # the agent's system message, once
    _, problems = configured_body(
        "chat", {**body, "temperature": 0.5, "style": "long"}, configuration, "m"
    )
    assert [(p.field, p.code) for p in problems] == [
        ("temperature", "deployment_parameter_exceeded"),
        ("style", "deployment_parameter_fixed"),
    ]
    out, _ = configured_body("responses", {"model": "d", "input": "x"}, configuration, "m")
    assert out["instructions"] == "Be kind."
