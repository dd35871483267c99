"""Ranges of the options whose value can exhaust the machine, in one place for every task.

Each bound is far above any meaningful use and far below what runs out of memory or time on a
laptop; a value outside is refused with one line before any work (``cli.common.check_range``
in the commands, :func:`check_batch_size` in the run configs).
"""

from __future__ import annotations

from particlegraph.errors import ConfigError

#: Most mean pile-up interactions per crossing (HL-LHC: 200; PU 1000 already holds ~10^5
#: particles per event; PU 100000 filled the memory of a 128 GB machine).
MAX_PILEUP = 1000.0
#: Most minimum-bias events in a pile-up pool (the default is 2000; the pool is held in memory).
MAX_POOL_EVENTS = 100_000
#: Most events one command generates (they are written as they come, but each costs time).
MAX_EVENTS = 10_000_000
#: Most events (graphs, rows) in one optimizer step or forward pass.
MAX_BATCH_SIZE = 65_536
#: Most grid points per axis of a heat map (bins^2 forward passes).
MAX_BINS = 2_000
#: Largest TrackML event id: file names hold nine digits (``event000001000-hits.csv``).
MAX_EVENT_ID = 999_999_999
#: Largest seed (hashed by numpy's SeedSequence; 32 bits are plenty and print short).
MAX_SEED = 2**32 - 1


def check_batch_size(key: str, value: int) -> None:
    """Raise :class:`ConfigError` unless ``1 <= value <= MAX_BATCH_SIZE`` (``key``: the config key)."""
    if not 1 <= value <= MAX_BATCH_SIZE:
        raise ConfigError(
            f"{key} must be between 1 and {MAX_BATCH_SIZE:,} (events per step), got {value:,}"
        )
