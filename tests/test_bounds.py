"""The option ranges of bounds.py at their ends: the bound itself passes, one step beyond is refused."""

from __future__ import annotations

import pytest

from particlegraph import bounds
from particlegraph.bounds import check_batch_size
from particlegraph.cli.common import check_range
from particlegraph.errors import ConfigError


def test_documented_values() -> None:
    assert (bounds.MAX_PILEUP, bounds.MAX_POOL_EVENTS, bounds.MAX_EVENTS) == (
        1000.0,
        100_000,
        10**7,
    )
    assert (bounds.MAX_BATCH_SIZE, bounds.MAX_BINS) == (65_536, 2_000)
    assert (bounds.MAX_EVENT_ID, bounds.MAX_SEED) == (999_999_999, 4_294_967_295)


@pytest.mark.parametrize("value", [1, 65_536])
def test_batch_size_at_its_ends_is_accepted(value: int) -> None:
    check_batch_size("data.batch_size", value)


@pytest.mark.parametrize("value", [0, -1, 65_537])
def test_batch_size_one_beyond_is_refused_in_one_line(value: int) -> None:
    with pytest.raises(ConfigError) as info:
        check_batch_size("data.batch_size", value)
    assert str(info.value) == (
        f"data.batch_size must be between 1 and 65,536 (events per step), got {value:,}"
    )


#: (option, low, bound, one step beyond the bound): how the commands check them.
RANGES = [
    ("--pileup", 0, bounds.MAX_PILEUP, 1000.001),
    ("--pool-size", 1, bounds.MAX_POOL_EVENTS, 100_001),
    ("--events", 1, bounds.MAX_EVENTS, 10_000_001),
    ("--bins", 2, bounds.MAX_BINS, 2_001),
    ("--first-event-id", 0, bounds.MAX_EVENT_ID, 1_000_000_000),
    ("--seed", 0, bounds.MAX_SEED, 2**32),
]


@pytest.mark.parametrize(("name", "low", "high", "beyond"), RANGES)
def test_ranges_at_their_ends(name: str, low: float, high: float, beyond: float) -> None:
    check_range(name, low, low, high)
    check_range(name, high, low, high)
    for bad in (beyond, low - 1):
        with pytest.raises(ConfigError, match=rf"^{name} must be between "):
            check_range(name, bad, low, high)
