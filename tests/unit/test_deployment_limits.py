"""A deployment's calls at once and its providers' measured times to first byte
(``flow_memory.deployments.limits``)."""

from __future__ import annotations

import pytest

from flow_memory.deployments.limits import (
    LATENCY_SAMPLES,
    CallsAtOnce,
    DeploymentBusy,
    ProviderLatencies,
)


class TestCallsAtOnce:
    def test_a_call_beyond_the_limit_is_refused_and_one_ending_frees_its_place(self) -> None:
        at_once = CallsAtOnce()
        at_once.enter("dep_a", 2)
        at_once.enter("dep_a", 2)
        with pytest.raises(DeploymentBusy) as refused:
            at_once.enter("dep_a", 2)
        assert (refused.value.status_code, refused.value.code) == (
            429,
            "deployment_concurrency_exceeded",
        )
        assert at_once.open("dep_a") == 2  # the refused call was not counted
        at_once.enter("dep_b", 2)  # deployments count apart
        at_once.leave("dep_a")
        at_once.enter("dep_a", 2)
        assert at_once.open("dep_a") == 2

    def test_no_limit_counts_without_refusing_and_leaving_everything_forgets_it(self) -> None:
        at_once = CallsAtOnce()
        for _ in range(100):
            at_once.enter("dep_a", None)
        for _ in range(100):
            at_once.leave("dep_a")
        assert at_once.open("dep_a") == 0
        at_once.enter("dep_a", 1)


class TestProviderLatencies:
    def test_the_median_of_the_last_samples_is_measured_against_the_ceiling(self) -> None:
        latencies = ProviderLatencies()
        assert latencies.measured("prov_a") is None
        assert latencies.fits("prov_a", 1)  # not measured yet: tried
        for ms in (100.0, 5000.0, 120.0):
            latencies.observe("prov_a", ms)
        assert latencies.measured("prov_a") == 120.0  # one slow call does not exclude it
        assert latencies.fits("prov_a", 120) and not latencies.fits("prov_a", 119)
        for _ in range(LATENCY_SAMPLES):
            latencies.observe("prov_a", 900.0)
        assert latencies.measured("prov_a") == 900.0  # only the last samples count
        for _ in range(LATENCY_SAMPLES // 2 + 1):
            latencies.observe("prov_a", 50.0)
        assert latencies.measured("prov_a") == 50.0  # a provider that got faster fits again
