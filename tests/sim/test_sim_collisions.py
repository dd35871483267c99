"""The generation skeleton: crossings in a fixed random order, the shard plan, option ranges."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from numpy.random import SeedSequence

from particlegraph.errors import ConfigError
from particlegraph.sim.collisions import (
    MAX_PILEUP,
    check_generation,
    collisions,
    file_sizes,
    run_units,
    shard_plan,
    unit_collisions,
    unit_seeds,
)
from particlegraph.sim.particles import Particles
from particlegraph.sim.pileup import MinBiasPool
from particlegraph.sim.pythia import pythia_seed


def _particles(n: int, vz: float = 0.0) -> Particles:
    ones = np.ones(n)
    return Particles(
        np.full(n, 211, np.int32),
        ones,
        ones,
        ones,
        ones,
        2 * ones,
        0 * ones,
        0 * ones,
        vz + 0 * ones,
    )


class _FakePythia:
    """Stands in for Pythia: ``nextBatch`` is not needed because next_events is patched."""


@pytest.fixture
def fake_events(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []

    def next_events(_pythia: object, n: int) -> list[Particles]:
        calls.append(n)
        return [_particles(3) for _ in range(n)]

    monkeypatch.setattr("particlegraph.sim.collisions.next_events", next_events)
    return calls


def test_collisions_draw_vertex_then_pileup_in_order(fake_events: list[int]) -> None:
    pool = MinBiasPool(particles=_particles(8), offsets=np.array([0, 2, 4, 6, 8]))
    rng = np.random.default_rng(5)
    got = list(collisions(_FakePythia(), rng, pileup=3.0, pool=pool, vertex_sigma_z=50.0, n=12))
    assert len(got) == 12 and fake_events == [10, 2]  # batches of 10, the rest
    ref = np.random.default_rng(5)
    dz = ref.normal(0.0, 50.0)  # the hard vertex first ...
    n_pu = ref.poisson(3.0)  # ... then the pile-up count of the same crossing
    assert got[0].vz[:3] == pytest.approx(np.full(3, dz))
    assert len(got[0].pid) == 3 + 2 * n_pu


def test_collisions_without_pileup_and_endless(fake_events: list[int]) -> None:
    rng = np.random.default_rng(1)
    stream = collisions(_FakePythia(), rng, pileup=0.0, pool=None, vertex_sigma_z=10.0, chunk=4)
    first = [next(stream) for _ in range(9)]
    assert [len(p.pid) for p in first] == [3] * 9 and fake_events == [4, 4, 4]
    with pytest.raises(ConfigError, match="needs a minimum-bias pool"):
        next(collisions(_FakePythia(), rng, pileup=1.0, pool=None, vertex_sigma_z=1.0))


def test_shard_plan_and_file_sizes() -> None:
    assert shard_plan(7, 1, 3) == [1, 4]
    assert sorted(j for s in range(3) for j in shard_plan(7, s, 3)) == list(range(7))
    assert file_sizes(12, 5) == [5, 5, 2] and file_sizes(10, 5) == [5, 5]


@pytest.mark.parametrize(
    ("events", "pileup", "seed", "shard", "shards", "match"),
    [
        (0, 0, 0, 0, 1, "--events"),
        (1, -1, 0, 0, 1, "--pileup"),
        (1, float("nan"), 0, 0, 1, "--pileup"),
        (1, MAX_PILEUP + 1, 0, 0, 1, "--pileup"),
        (1, 0, -5, 0, 1, "--seed"),
        (1, 0, 0, 0, 0, "--num-shards"),
        (1, 0, 0, 2, 2, "--shard"),
    ],
)
def test_check_generation_refuses(
    events: int, pileup: float, seed: int, shard: int, shards: int, match: str
) -> None:
    with pytest.raises(ConfigError, match=match):
        check_generation(events, pileup, seed, shard, shards)


def test_check_generation_accepts_its_boundaries() -> None:
    check_generation(1, 0.0, 0, 0, 1)
    check_generation(1, MAX_PILEUP, 0, 1, 2)


def test_unit_seeds_depend_on_the_seed_and_unit_only() -> None:
    hard, event = unit_seeds(7, 3)
    # the documented derivation (the seeds of every MLPF file and TrackML chunk made so far)
    assert hard.generate_state(2).tolist() == SeedSequence([7, 0, 3]).generate_state(2).tolist()
    assert event.generate_state(2).tolist() == SeedSequence([7, 1, 3]).generate_state(2).tolist()
    keyed = unit_seeds(7, 3, stream=99)
    ref = SeedSequence([7, 99, 3]).spawn(2)
    for got, want in zip(keyed, ref, strict=True):
        assert got.generate_state(2).tolist() == want.generate_state(2).tolist()
    states = {tuple(s.generate_state(2).tolist()) for j in range(4) for s in unit_seeds(7, j)}
    assert len(states) == 8  # two streams per unit, none shared


def test_unit_collisions_seed_pythia_and_the_event_stream(
    fake_events: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[tuple[list[str], int]] = []

    def make_pythia(settings: list[str], seed: int) -> _FakePythia:
        made.append((list(settings), seed))
        return _FakePythia()

    monkeypatch.setattr("particlegraph.sim.collisions.make_pythia", make_pythia)
    rng, crossings = unit_collisions(
        ["A = 1"], 7, 3, pileup=0.0, pool=None, vertex_sigma_z=40.0, n=3, chunk=2
    )
    first = next(crossings)
    assert made == [(["A = 1"], pythia_seed(SeedSequence([7, 0, 3])))]
    ref = np.random.default_rng(SeedSequence([7, 1, 3]))
    assert first.vz == pytest.approx(np.full(3, ref.normal(0.0, 40.0)))
    # the caller's draws interleave with the crossings' in the stream's order
    assert rng.uniform() == ref.uniform()
    assert next(crossings).vz[0] == pytest.approx(ref.normal(0.0, 40.0))
    assert len(list(crossings)) == 1 and fake_events == [2, 1]


def test_run_units_makes_each_unit_in_order_and_stops_at_a_failure() -> None:
    done: list[int] = []

    def make(unit: int, tick: Callable[[], None]) -> None:
        if unit == 3:
            raise OSError(28, "No space left on device")
        done.append(unit)
        tick()

    run_units([5, 1], make, total=2, desc="x", progress=False)
    assert done == [5, 1]
    with pytest.raises(OSError, match="No space"):
        run_units([2, 3, 4], make, total=3, desc="x", progress=False)
    assert done == [5, 1, 2]  # unit 4 is never started
