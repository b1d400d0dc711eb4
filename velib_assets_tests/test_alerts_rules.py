"""Alert rules on hand-built network-now tables, and the episodes the store keeps from them."""

import multiprocessing
import threading
import time as time_module
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import polars as pl
import pytest

from velib_assets import network_now
from velib_assets.alerts import messages, rules, store
from velib_assets.alerts.rules import AlertRules, ServiceHours, conditions
from velib_assets.alerts.store import AlertStore, reconcile

T0 = datetime(2025, 10, 18, 6, 0, tzinfo=UTC)  # 08:00 CEST
MINUTE = timedelta(minutes=1)
HOOK = "json://127.0.0.1:9/hook"


def station(code: str, state: str, since: datetime, district: str = "Paris 16e") -> dict:
    return {
        "station_code": code,
        "name": f"Station {code}",
        "district": district,
        "state": state,
        "since": since,
    }


def table(
    stations: list[dict], through: datetime, missing: tuple[str, ...] = (), missing_for: timedelta = MINUTE
) -> pl.DataFrame:
    """A network-now table at `through`; stations in `missing` were last seen `missing_for` earlier."""
    rows = []
    for s in stations:
        bikes = 0 if s["state"] == "empty" else 20 if s["state"] == "full" else 10
        latest = through - missing_for if s["station_code"] in missing else through
        rows.append(
            s
            | {
                "capacity": 20,
                "bikes": bikes,
                "mechanical": bikes,
                "ebike": 0,
                "docks": 20 - bikes,
                "since_at_least": False,
                "minutes_in_state": (latest - s["since"]).total_seconds() / 60,
                "latest_capture": latest,
                "in_latest_capture": s["station_code"] not in missing,
                "through": through,
            }
        )
    return pl.DataFrame(rows, schema=network_now.NOW_SCHEMA)


def kinds(found: list[rules.Condition]) -> set[tuple[str, str]]:
    return {(c.kind, c.subject) for c in found}


def districts(found: list[rules.Condition]) -> list[rules.Condition]:
    return [c for c in found if c.kind.startswith("district")]


def test_a_station_crosses_its_threshold_exactly_at_n_minutes():
    at_20 = table([station("A", "empty", T0), station("B", "full", T0 + 1e-3 * MINUTE)], T0 + 20 * MINUTE)
    found = conditions(at_20, T0 + 20 * MINUTE, T0 + 20 * MINUTE, AlertRules())
    (empty,) = found  # B, 19.999 min full, not yet; A, exactly 20 min (a 2-station district: no district)
    assert (empty.since, empty.minutes, empty.opens) == (T0, 20.0, True)
    assert empty.details == dict(
        station_code="A", name="Station A", district="Paris 16e", capacity=20, bikes=0, docks=20
    )
    later = table([station("B", "full", T0)], T0 + 20 * MINUTE)
    assert kinds(conditions(later, T0 + 20 * MINUTE, None, AlertRules(feed_down_minutes=60))) == {
        ("station_full", "B"),
        ("feed_down", "feed"),
    }


def test_stations_out_of_service_or_missing_past_max_gap_are_not_judged():
    through = T0 + 40 * MINUTE
    stations = [station("A", "closed", T0), station("B", "out_of_service", T0), station("C", "empty", T0)]
    gone = table(stations, through, missing=("C",), missing_for=16 * MINUTE)
    assert conditions(gone, through, through, AlertRules()) == []
    # Missing from the newest capture only (real exports drop a dozen stations now and then): judged.
    blip = table(stations, through, missing=("C",), missing_for=5 * MINUTE)
    assert kinds(conditions(blip, through, through, AlertRules())) == {(rules.STATION_EMPTY, "C")}


def test_the_district_share_counts_in_service_stations_and_dates_the_kth(tmp_path: Path):
    through = T0 + 40 * MINUTE
    empties = [station(f"E{i}", "empty", T0 + i * 5 * MINUTE) for i in range(3)]  # since T0, +5, +10
    others = [station(f"O{i}", "ok", T0) for i in range(7)] + [station("X", "closed", T0)]
    found = conditions(table(empties + others, through), through, through, AlertRules(minutes=30))
    (district,) = districts(found)
    # 3 of 10 in service (the closed one does not count) is exactly 30 %: held since the 3rd emptied.
    assert (district.subject, district.since, district.minutes) == ("Paris 16e", T0 + 10 * MINUTE, 30.0)
    assert district.details == {"district": "Paris 16e", "stations": 3, "in_service": 10, "share": 0.3}
    assert {c.subject for c in found if c.kind == "station_empty"} == {"E0", "E1", "E2"}

    network = table(empties + others, through)
    assert (
        districts(conditions(network, through, through, AlertRules(minutes=30, district_min_stations=11)))
        == []
    )
    fewer = table(empties[:2] + others, through)
    assert districts(conditions(fewer, through, through, AlertRules(minutes=30))) == []  # 2 of 9: 22 %
    # The 3rd has been empty 30 min only.
    assert districts(conditions(network, through, through, AlertRules(minutes=31))) == []


def test_the_watch_list_keeps_named_stations_and_districts():
    through = T0 + 25 * MINUTE
    network = table(
        [
            station("A", "empty", T0),
            station("B", "empty", T0, "Paris 1er"),
            station("C", "full", T0, "Paris 2e"),
        ],
        through,
    )
    rule = AlertRules(district_min_stations=1)
    watched = conditions(network, through, through, replace(rule, watch=frozenset({"A", "Paris 2e"})))
    assert kinds(watched) == {("station_empty", "A"), ("station_full", "C"), ("district_full", "Paris 2e")}
    everything = conditions(network, through, through, rule)
    assert ("station_empty", "B") in kinds(everything) and ("district_empty", "Paris 1er") in kinds(
        everything
    )


def test_feed_down_from_the_newest_capture_and_frozen_from_the_content(tmp_path: Path):
    empty = pl.DataFrame(schema=network_now.NOW_SCHEMA)
    rule = AlertRules()
    assert kinds(conditions(empty, T0, None, rule)) == {("feed_down", "feed")}
    assert conditions(empty, T0 + 9 * MINUTE, T0, rule) == []
    (down,) = conditions(empty, T0 + 10 * MINUTE, T0, rule)
    assert (down.kind, down.since, down.minutes) == ("feed_down", T0, 10.0)

    with AlertStore(tmp_path / "alerts.sqlite") as db:
        frozen = []
        for minute in range(12):
            network = table([station("A", "ok", T0), station("B", "ok", T0)], T0 + minute * MINUTE)
            since = store.observe_content(db, rules.content_fingerprint(network), T0 + minute * MINUTE)
            found = conditions(network, T0 + minute * MINUTE, T0 + minute * MINUTE, rule, since)
            frozen.append([(c.since, c.minutes) for c in found if c.kind == "feed_frozen"])
        assert frozen[:10] == [[]] * 10 and frozen[10:] == [[(T0, 10.0)], [(T0, 11.0)]]
        changed = table([station("A", "ok", T0), station("B", "empty", T0 + 12 * MINUTE)], T0 + 12 * MINUTE)
        assert (
            store.observe_content(db, rules.content_fingerprint(changed), T0 + 12 * MINUTE)
            == T0 + 12 * MINUTE
        )


def evaluate(db: AlertStore, stations: list[dict], minute: float) -> store.Reconciled:
    at = T0 + minute * MINUTE
    return reconcile(db, conditions(table(stations, at), at, at, AlertRules()), at, [HOOK])


def episode_rows(db: AlertStore) -> list[tuple]:
    return [
        (r["kind"], r["subject"], r["opened_at"], r["resolved_at"])
        for r in db.connection.execute("SELECT * FROM episodes ORDER BY id")
    ]


def texts(db: AlertStore) -> list[str]:
    return [r[0] for r in db.connection.execute("SELECT text FROM messages ORDER BY id")]


def test_flapping_around_the_threshold_opens_one_episode_per_run(tmp_path: Path):
    with AlertStore(tmp_path / "alerts.sqlite") as db:
        assert evaluate(db, [station("A", "empty", T0)], 19).opened == []
        opened = evaluate(db, [station("A", "empty", T0)], 20).opened
        assert len(opened) == 1 and evaluate(db, [station("A", "empty", T0)], 21).opened == []
        assert evaluate(db, [station("A", "nearly_empty", T0 + 22 * MINUTE)], 22).resolved == opened
        for minute in (23, 30, 41):  # empty again since 23: below the threshold until 43
            assert evaluate(db, [station("A", "empty", T0 + 23 * MINUTE)], minute).opened == []
        # Empty, refilled and emptied again between two evaluations: the old episode ends, a new one opens.
        second = evaluate(db, [station("A", "empty", T0 + 23 * MINUTE)], 43)
        third = evaluate(db, [station("A", "empty", T0 + 45 * MINUTE)], 70)
        assert third.resolved == second.opened and len(third.opened) == 1
        iso = store.iso
        assert episode_rows(db) == [
            ("station_empty", "A", iso(T0 + 20 * MINUTE), iso(T0 + 22 * MINUTE)),
            ("station_empty", "A", iso(T0 + 43 * MINUTE), iso(T0 + 70 * MINUTE)),
            ("station_empty", "A", iso(T0 + 70 * MINUTE), None),
        ]
        assert len(texts(db)) == 5  # one message per event and channel


def test_a_station_leaving_service_resolves_its_episode(tmp_path: Path):
    with AlertStore(tmp_path / "alerts.sqlite") as db:
        evaluate(db, [station("16107", "full", T0)], 25)
        assert len(evaluate(db, [station("16107", "out_of_service", T0 + 30 * MINUTE)], 31).resolved) == 1
        opened, resolved = texts(db)
        assert opened == (
            "Vélib' alert: station 16107 Station 16107 (Paris 16e) FULL since 08:00 CEST (25 min):"
            " 20 bikes, 0 docks (capacity 20)"
        )
        assert resolved.startswith(
            "Vélib' resolved after 31 min: station 16107 Station 16107 (Paris 16e) FULL"
        )


def test_an_episode_across_midnight_and_the_autumn_dst_change(tmp_path: Path):
    since = datetime(2025, 10, 25, 21, 50, tzinfo=UTC)  # 23:50 CEST, Saturday
    ended = datetime(2025, 10, 26, 1, 10, tzinfo=UTC)  # 02:10 CET, after 03:00 CEST became 02:00 CET
    with AlertStore(tmp_path / "alerts.sqlite") as db:
        for at in (since + 20 * MINUTE, since + 100 * MINUTE, ended - MINUTE):
            reconcile(
                db, conditions(table([station("A", "empty", since)], at), at, at, AlertRules()), at, [HOOK]
            )
        reconcile(db, [], ended, [HOOK])
        opened, resolved = texts(db)
    assert "EMPTY since 2025-10-25 23:50 CEST (20 min)" in opened  # another local day: dated
    # 3 h 20 min of UTC time, though the local clocks read 23:50 and 02:10.
    assert resolved.startswith("Vélib' resolved after 200 min")
    assert resolved.endswith("since 2025-10-25 23:50 CEST, over at 02:10 CET")


def test_service_hours_gate_opening_only(tmp_path: Path):
    hours = ServiceHours(time(7), time(22))
    rule = AlertRules(service_hours=hours)
    night = datetime(2025, 10, 18, 4, 30, tzinfo=UTC)  # 06:30 CEST
    with AlertStore(tmp_path / "alerts.sqlite") as db:

        def at(when: datetime, stations: list[dict]) -> store.Reconciled:
            return reconcile(db, conditions(table(stations, when), when, when, rule), when, [HOOK])

        assert at(night, [station("A", "empty", night - 30 * MINUTE)]).opened == []
        assert len(at(night + 35 * MINUTE, [station("A", "empty", night - 30 * MINUTE)]).opened) == 1
        late = datetime(2025, 10, 18, 20, 30, tzinfo=UTC)  # 22:30 CEST: open episodes go on...
        assert at(
            late, [station("A", "empty", night - 30 * MINUTE), station("B", "full", late - 40 * MINUTE)]
        ) == (store.Reconciled([], []))
        assert len(at(late + MINUTE, [station("A", "ok", late)]).resolved) == 1  # ...and resolve
    assert hours.contain(datetime(2025, 10, 18, 5, 0, tzinfo=UTC)) and not hours.contain(late)
    assert ServiceHours.parse("22:00-06:00").contain(late)


def test_rules_from_the_environment(monkeypatch):
    assert AlertRules.from_env() == AlertRules()
    monkeypatch.setenv("VELIB_ALERT_MINUTES", "15")
    monkeypatch.setenv("VELIB_ALERT_DISTRICT_SHARE", "0.5")
    monkeypatch.setenv("VELIB_ALERT_DISTRICT_MIN_STATIONS", "3")
    monkeypatch.setenv("VELIB_ALERT_SERVICE_HOURS", "07:00-22:00")
    monkeypatch.setenv("VELIB_ALERT_WATCH", "16107, Paris 16e,")
    monkeypatch.setenv("VELIB_FEED_DOWN_MINUTES", "5")
    assert AlertRules.from_env() == AlertRules(
        15.0, 0.5, 3, ServiceHours(time(7), time(22)), frozenset({"16107", "Paris 16e"}), 5.0
    )
    for name, value in [
        ("VELIB_ALERT_MINUTES", "-3"),
        ("VELIB_ALERT_DISTRICT_SHARE", "30"),
        ("VELIB_ALERT_DISTRICT_MIN_STATIONS", "0"),
        ("VELIB_ALERT_SERVICE_HOURS", "7h-22h"),
        ("VELIB_FEED_DOWN_MINUTES", "ten"),
    ]:
        with monkeypatch.context() as env:
            env.setenv(name, value)
            with pytest.raises(ValueError, match=f"^{name}='{value}' is invalid") as error:
                AlertRules.from_env()
            assert "\n" not in str(error.value)


def test_reconciling_again_or_after_a_restart_changes_nothing(tmp_path: Path):
    path = tmp_path / "ops" / "alerts.sqlite"
    stations = [station("A", "empty", T0), station("B", "full", T0)]
    with AlertStore(path) as db:
        first = evaluate(db, stations, 25)
        assert len(first.opened) == 2
        assert evaluate(db, stations, 26) == store.Reconciled([], [])
        before = (episode_rows(db), texts(db))
    with AlertStore(path) as restarted:  # a new process opening the same file
        assert evaluate(restarted, stations, 27) == store.Reconciled([], [])
        assert (episode_rows(restarted), texts(restarted)) == before
        assert len(evaluate(restarted, stations[:1], 28).resolved) == 1


def _reconcile_many(path: Path, start: threading.Barrier, rounds: int) -> int:
    """The same evaluation, repeated, by processes released together once each has the file open;
    composing a message takes 0.2 s, so each evaluation would read before the others commit."""
    compose = messages.opened

    def slowly(*args: object) -> str:
        time_module.sleep(0.2)
        return compose(*args)  # type: ignore[arg-type]

    messages.opened = slowly  # type: ignore[assignment]  # this worker process only
    opened = 0
    stations = [station(f"S{k}", "empty", T0, district=f"D{k}") for k in range(3)]
    with AlertStore(path) as db:
        start.wait()
        for minute in range(rounds):
            opened += len(evaluate(db, stations, 25 + minute).opened)
    return opened


def test_concurrent_evaluations_in_several_processes_open_each_episode_once(tmp_path: Path):
    path = tmp_path / "alerts.sqlite"
    AlertStore(path).close()
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, context.Pool(3) as pool:
        start = manager.Barrier(3)
        results = [pool.apply_async(_reconcile_many, (path, start, 3)) for _ in range(3)]
        opened = [result.get(timeout=120) for result in results]
    assert sorted(opened) == [0, 0, 3]
    with AlertStore(path) as db:
        assert [r[1] for r in episode_rows(db)] == ["S0", "S1", "S2"]
        assert len(texts(db)) == 3


def test_no_capture_at_all_is_one_feed_down_episode_across_ticks(tmp_path: Path):
    empty = pl.DataFrame(schema=network_now.NOW_SCHEMA)
    with AlertStore(tmp_path / "alerts.sqlite") as store:
        for minute in (0, 1, 2):
            now = T0 + minute * MINUTE
            reconcile(store, conditions(empty, now, None, AlertRules()), now, ["json://127.0.0.1:1/hook"])
        episodes = store.connection.execute("SELECT kind, resolved_at FROM episodes").fetchall()
    assert [tuple(row) for row in episodes] == [(rules.FEED_DOWN, None)]
