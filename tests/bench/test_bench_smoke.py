"""The benchmark suite's own arithmetic: percentiles, verdicts, and the request signer it loads the API with.

The suite itself (``python -m bench``) needs minutes and a quiet machine, so CI does not run it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

# bench/ sits beside src/ and is not installed: import it from the checkout.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.rpc import EMPTY_SHA256, v3_signature
from bench.stats import Figure, Goal, Row, Summary, format_table, percentile


@pytest.mark.parametrize("q", [0, 10, 50, 90, 99, 100])
@pytest.mark.parametrize(
    "samples", [[7.0], [3.0, 1.0], [5.0, 1.0, 4.0, 2.0, 3.0], list(np.linspace(0, 1, 37) ** 2)]
)
def test_percentile_interpolates_like_numpy(samples: list[float], q: float) -> None:
    assert percentile(samples, q) == pytest.approx(float(np.percentile(samples, q)))


def test_summary_of_one_to_a_hundred() -> None:
    summary = Summary.of(float(i) for i in range(1, 101))
    assert (summary.runs, summary.median, summary.min, summary.max) == (100, 50.5, 1.0, 100.0)
    assert summary.p90 == pytest.approx(90.1)
    assert summary.p99 == pytest.approx(99.01)


def test_percentile_refuses_nothing_and_out_of_range() -> None:
    with pytest.raises(ValueError, match="no samples"):
        percentile([], 50)
    with pytest.raises(ValueError, match="q must be"):
        percentile([1.0], 101)


def test_goals_give_verdicts_on_the_named_statistic() -> None:
    fast = Row("latency", "ms", [1.0, 2.0, 30.0], goal=Goal("median", "<=", 10))
    slow_tail = Row("latency", "ms", [1.0, 2.0, 30.0], goal=Goal("p99", "<=", 10))
    rate = Row("rate", "req/s", value=1400.0, goal=Goal("value", ">=", 1500))
    unmeasured = Row("rate", "req/s", goal=Goal("value", ">=", 1500))
    assert [fast.verdict, slow_tail.verdict, rate.verdict, unmeasured.verdict] == [
        "ok",
        "MISS",
        "MISS",
        "n/a",
    ]


def test_table_shows_every_row() -> None:
    figure = Figure("f", "A figure", "how")
    figure.add(Row("latency", "ms", [1.0, 2.0], goal=Goal("median", "<=", 10)))
    figure.add(Row("memory", "MB", value=12.5))
    table = format_table(figure)
    for expected in ("latency", "memory", "median ≤ 10", "12.5"):
        assert expected in table


def test_signer_matches_the_vendor_vector() -> None:
    headers = {
        "host": "ecs.cn-shanghai.aliyuncs.com",
        "x-acs-action": "RunInstances",
        "x-acs-content-sha256": EMPTY_SHA256,
        "x-acs-date": "2023-10-26T09:01:01Z",
        "x-acs-signature-nonce": "d410180a5abf7fe235dd9b74aca91fc0",
        "x-acs-version": "2014-05-26",
    }
    query = "ImageId=win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd&RegionId=cn-shanghai"
    signature = v3_signature("POST", "/", query, headers, EMPTY_SHA256, "YourAccessKeySecret")
    assert signature == "e521358f7776c97df52e6b2891a8bc73026794a071b50c3323388c4e0df64804"
