"""Hours parsed apart and stitched in order measure frozen spells exactly as one pass over the day."""

import random
from datetime import UTC, datetime, timedelta

from velib_assets.snapshots import Unchanged, spells_of

START = datetime(2025, 10, 18, tzinfo=UTC)


def one_pass(
    contents: list[tuple[datetime, str]], carried: Unchanged | None
) -> tuple[float, Unchanged | None]:
    """The spells measured capture by capture across window edges (how a single parser sees them)."""
    previous, since = (carried.content, carried.since) if carried else (None, None)
    longest = 0.0
    for at, content in contents:
        if previous is None or content != previous:
            since = at
        else:
            longest = max(longest, (at - since).total_seconds())
        previous = content
    return longest, Unchanged(previous, since) if previous is not None else None


def test_stitched_windows_equal_one_pass_over_random_days():
    rng = random.Random(20251018)
    for _ in range(3000):
        times = sorted(rng.sample(range(0, 6 * 3600, 30), rng.randint(0, 40)))
        contents = [(START + timedelta(seconds=t), rng.choice("aab")) for t in times]
        carried = rng.choice([None, Unchanged("a", START - timedelta(minutes=7)), Unchanged("b", START)])
        edges = sorted(rng.sample(range(1, 6), rng.randint(0, 4)))
        windows, longest, tail = [], 0.0, carried
        for first, last in zip([0, *edges], [*edges, 6], strict=True):
            window = (START + timedelta(hours=first), START + timedelta(hours=last))
            windows.append([c for c in contents if window[0] <= c[0] < window[1]])
        for window in windows:
            spells = spells_of(window)
            if spells is None:
                continue
            hour_longest, tail = spells.carry(tail)
            longest = max(longest, hour_longest)
        assert (longest, tail) == one_pass(contents, carried), (contents, carried, edges)


def test_a_spell_across_an_hour_edge_is_measured_from_its_true_start():
    hour = [(START + timedelta(minutes=m), "same") for m in range(60, 120)]
    spells = spells_of(hour)
    assert spells.carry(Unchanged("same", START + timedelta(minutes=50)))[0] == 69 * 60
    assert spells.carry(Unchanged("other", START + timedelta(minutes=50)))[0] == 59 * 60
    assert spells.carry(None)[1] == Unchanged("same", START + timedelta(minutes=60))
