"""Preferences, score routing, channel choice, quiet hours and de-duplication keys:
the dispatcher's pure policy (services/dispatcher/policy.py)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.dispatcher.policy import (
    ANY_CONTENT,
    EMAIL,
    INAPP,
    REPEAT_AFTER,
    DedupRule,
    DedupStrategy,
    Preferences,
    QuietHours,
    ScoreRoute,
    choose_channels,
    content_hash,
    dedup_rule,
    quiet_until,
    route_match,
)

BERLIN = "Europe/Berlin"
NEW_YORK = "America/New_York"
NIGHT = QuietHours(time(22, 0), time(7, 0))
OFFICE = QuietHours(time(9, 0), time(17, 0))


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def local(zone: str, year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(zone))


# -- quiet hours: plain windows ---------------------------------------------------


def test_no_quiet_hours_never_hold() -> None:
    assert quiet_until(utc(2026, 6, 1, 3), "UTC", None) is None


@pytest.mark.parametrize("at", [time(0, 0), time(9, 0), time(22, 0)])
def test_a_window_that_starts_where_it_ends_is_no_window(at: time) -> None:
    same = QuietHours(at, at)
    for hour in (0, 9, 12, 22, 23):
        assert quiet_until(utc(2026, 6, 1, hour), "UTC", same) is None


@pytest.mark.parametrize(
    ("now", "end"),
    [
        (utc(2026, 6, 1, 9, 0), utc(2026, 6, 1, 17, 0)),  # the start belongs to the window
        (utc(2026, 6, 1, 12, 30), utc(2026, 6, 1, 17, 0)),
        (utc(2026, 6, 1, 16, 59, 59), utc(2026, 6, 1, 17, 0)),
    ],
)
def test_inside_a_same_day_window_holds_until_its_end_that_day(
    now: datetime, end: datetime
) -> None:
    assert quiet_until(now, "UTC", OFFICE) == end


@pytest.mark.parametrize(
    "now",
    [
        utc(2026, 6, 1, 8, 59, 59),
        utc(2026, 6, 1, 17, 0),  # the end does not belong to the window
        utc(2026, 6, 1, 23, 0),
        utc(2026, 6, 1, 0, 0),
    ],
)
def test_outside_a_same_day_window_nothing_is_held(now: datetime) -> None:
    assert quiet_until(now, "UTC", OFFICE) is None


@pytest.mark.parametrize(
    ("now", "end"),
    [
        # before midnight: the window ends tomorrow morning
        (utc(2026, 6, 1, 22, 0), utc(2026, 6, 2, 7, 0)),
        (utc(2026, 6, 1, 23, 30), utc(2026, 6, 2, 7, 0)),
        # after midnight: it ends this morning
        (utc(2026, 6, 2, 0, 0), utc(2026, 6, 2, 7, 0)),
        (utc(2026, 6, 2, 3, 15), utc(2026, 6, 2, 7, 0)),
        (utc(2026, 6, 2, 6, 59, 59), utc(2026, 6, 2, 7, 0)),
        # across a month and a year boundary
        (utc(2026, 12, 31, 23, 0), utc(2027, 1, 1, 7, 0)),
    ],
)
def test_an_overnight_window_holds_until_the_next_morning(now: datetime, end: datetime) -> None:
    assert quiet_until(now, "UTC", NIGHT) == end


@pytest.mark.parametrize(
    "now", [utc(2026, 6, 2, 7, 0), utc(2026, 6, 2, 12, 0), utc(2026, 6, 2, 21, 59, 59)]
)
def test_outside_an_overnight_window_nothing_is_held(now: datetime) -> None:
    assert quiet_until(now, "UTC", NIGHT) is None


def test_quiet_hours_are_read_on_the_users_wall_clock() -> None:
    # 21:30 UTC is 23:30 in Berlin in summer: quiet there, not in UTC
    now = utc(2026, 6, 1, 21, 30)
    assert quiet_until(now, "UTC", NIGHT) is None
    assert quiet_until(now, BERLIN, NIGHT) == local(BERLIN, 2026, 6, 2, 7, 0)
    # 03:00 UTC is 23:00 the day before in New York
    now = utc(2026, 6, 2, 3, 0)
    assert quiet_until(now, NEW_YORK, NIGHT) == local(NEW_YORK, 2026, 6, 2, 7, 0)


def test_the_end_is_given_in_utc_whatever_zone_now_is_in() -> None:
    now = local(NEW_YORK, 2026, 6, 1, 23, 0)
    end = quiet_until(now, BERLIN, OFFICE)  # 23:00 New York is 05:00 Berlin: outside
    assert end is None
    end = quiet_until(now, NEW_YORK, NIGHT)
    assert end is not None
    assert end.utcoffset() == timedelta(0)
    assert end == utc(2026, 6, 2, 11, 0)  # 07:00 EDT


# -- quiet hours across the 2026 daylight-saving changes --------------------------

# Europe/Berlin: 29 March 02:00 CET → 03:00 CEST; 25 October 03:00 CEST → 02:00 CET.
# America/New_York: 8 March 02:00 EST → 03:00 EDT; 1 November 02:00 EDT → 01:00 EST.


@pytest.mark.parametrize(
    ("zone", "now", "end"),
    [
        # the evening before spring-forward: still winter time, the end is summer time
        (BERLIN, utc(2026, 3, 28, 22, 0), utc(2026, 3, 29, 5, 0)),  # 23:00 CET → 07:00 CEST
        (BERLIN, utc(2026, 3, 29, 0, 30), utc(2026, 3, 29, 5, 0)),  # 01:30 CET
        (BERLIN, utc(2026, 3, 29, 2, 0), utc(2026, 3, 29, 5, 0)),  # 04:00 CEST
        (NEW_YORK, utc(2026, 3, 8, 4, 0), utc(2026, 3, 8, 11, 0)),  # 23:00 EST → 07:00 EDT
        (NEW_YORK, utc(2026, 3, 8, 6, 30), utc(2026, 3, 8, 11, 0)),  # 01:30 EST
        (NEW_YORK, utc(2026, 3, 8, 8, 0), utc(2026, 3, 8, 11, 0)),  # 04:00 EDT
        # the evening before fall-back: summer time, the end is winter time
        (BERLIN, utc(2026, 10, 24, 21, 0), utc(2026, 10, 25, 6, 0)),  # 23:00 CEST → 07:00 CET
        (BERLIN, utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 6, 0)),  # 02:30 CEST (first)
        (BERLIN, utc(2026, 10, 25, 1, 30), utc(2026, 10, 25, 6, 0)),  # 02:30 CET (second)
        (NEW_YORK, utc(2026, 11, 1, 3, 0), utc(2026, 11, 1, 12, 0)),  # 23:00 EDT → 07:00 EST
        (NEW_YORK, utc(2026, 11, 1, 5, 30), utc(2026, 11, 1, 12, 0)),  # 01:30 EDT (first)
        (NEW_YORK, utc(2026, 11, 1, 6, 30), utc(2026, 11, 1, 12, 0)),  # 01:30 EST (second)
    ],
)
def test_overnight_window_across_a_dst_change_ends_at_seven_local(
    zone: str, now: datetime, end: datetime
) -> None:
    got = quiet_until(now, zone, NIGHT)
    assert got == end
    assert got is not None
    assert got.astimezone(ZoneInfo(zone)).time() == time(7, 0)


@pytest.mark.parametrize(
    ("zone", "now"),
    [
        (BERLIN, utc(2026, 3, 29, 5, 0)),  # 07:00 CEST, the window just ended
        (BERLIN, utc(2026, 3, 29, 19, 59)),  # 21:59 CEST
        (BERLIN, utc(2026, 10, 25, 6, 0)),  # 07:00 CET
        (NEW_YORK, utc(2026, 3, 8, 11, 0)),  # 07:00 EDT
        (NEW_YORK, utc(2026, 11, 1, 12, 0)),  # 07:00 EST
        (NEW_YORK, utc(2026, 11, 2, 2, 59)),  # 21:59 EST
    ],
)
def test_outside_an_overnight_window_on_a_dst_day_nothing_is_held(zone: str, now: datetime) -> None:
    assert quiet_until(now, zone, NIGHT) is None


def test_the_day_after_a_dst_change_uses_the_new_offset() -> None:
    # Monday 30 March, 23:00 CEST (21:00 UTC) → Tuesday 07:00 CEST (05:00 UTC)
    assert quiet_until(utc(2026, 3, 30, 21, 0), BERLIN, NIGHT) == utc(2026, 3, 31, 5, 0)
    # Sunday 1 November, 23:00 EST (04:00 UTC Monday) → Monday 07:00 EST (12:00 UTC)
    assert quiet_until(utc(2026, 11, 2, 4, 0), NEW_YORK, NIGHT) == utc(2026, 11, 2, 12, 0)


def test_a_start_inside_the_spring_forward_gap_still_opens_the_window() -> None:
    # 02:30-07:00 in Berlin: on 29 March there is no 02:30, so the window opens at 03:00
    window = QuietHours(time(2, 30), time(7, 0))
    assert quiet_until(utc(2026, 3, 29, 0, 59), BERLIN, window) is None  # 01:59 CET
    assert quiet_until(utc(2026, 3, 29, 1, 0), BERLIN, window) == utc(2026, 3, 29, 5, 0)


# 22:00-02:30: the end falls in the hour that does not exist on spring-forward night
GAP_END = QuietHours(time(22, 0), time(2, 30))


@pytest.mark.parametrize(
    ("zone", "now", "transition"),
    [
        (BERLIN, utc(2026, 3, 28, 22, 0), utc(2026, 3, 29, 1, 0)),  # 03:00 CEST
        (NEW_YORK, utc(2026, 3, 8, 4, 0), utc(2026, 3, 8, 7, 0)),  # 03:00 EDT
    ],
)
def test_an_end_inside_the_spring_forward_gap_ends_after_the_gap(
    zone: str, now: datetime, transition: datetime
) -> None:
    got = quiet_until(now, zone, GAP_END)
    assert got is not None
    # never while the wall clock still reads before 02:30, and not an hour late
    assert got >= transition
    assert got.astimezone(ZoneInfo(zone)).time() >= time(2, 30)
    assert got - transition <= timedelta(minutes=30)


@pytest.mark.parametrize(
    ("zone", "now", "transition"),
    [
        (BERLIN, utc(2026, 3, 28, 22, 0), utc(2026, 3, 29, 1, 0)),
        (NEW_YORK, utc(2026, 3, 8, 4, 0), utc(2026, 3, 8, 7, 0)),
    ],
)
def test_an_end_inside_the_gap_is_the_first_instant_after_it(
    zone: str, now: datetime, transition: datetime
) -> None:
    assert quiet_until(now, zone, GAP_END) == transition


def test_an_ambiguous_end_on_fall_back_night_is_its_first_occurrence() -> None:
    # 22:00-02:30 on 25 October in Berlin: 02:30 happens twice; at 02:15 CEST the
    # window ends at the first 02:30 (CEST, 00:30 UTC)
    assert quiet_until(utc(2026, 10, 25, 0, 15), BERLIN, GAP_END) == utc(2026, 10, 25, 0, 30)


def test_inside_the_repeated_hour_the_end_is_still_ahead() -> None:
    now = utc(2026, 10, 25, 1, 15)  # 02:15 CET, the second 02:15 of the night
    end = quiet_until(now, BERLIN, GAP_END)
    assert end is not None
    assert end > now
    assert end == utc(2026, 10, 25, 1, 30)  # 02:30 CET


# -- preferences and score routing ------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "switch"),
    [
        ("job_match", "notify_new_matches"),
        ("application_status", "notify_application_updates"),
        ("meeting_reminder", "notify_reminders"),
        ("reminder", "notify_reminders"),
        ("digest", "notify_digests"),
    ],
)
def test_each_kind_is_silenced_by_its_own_switch(kind: str, switch: str) -> None:
    assert Preferences().wants(kind) is True
    off = Preferences(**{switch: False})  # type: ignore[arg-type]
    assert off.wants(kind) is False
    # and only by its own: every other switch off leaves it on
    others = {
        s: False
        for s in (
            "notify_new_matches",
            "notify_application_updates",
            "notify_reminders",
            "notify_digests",
        )
        if s != switch
    }
    assert Preferences(**others).wants(kind) is True  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["generic", "welcome", "test", "channel_disabled"])
def test_kinds_without_a_switch_always_go(kind: str) -> None:
    everything_off = Preferences(
        notify_new_matches=False,
        notify_application_updates=False,
        notify_reminders=False,
        notify_digests=False,
    )
    assert everything_off.wants(kind) is True


def test_matches_switched_off_route_nowhere() -> None:
    assert route_match(Preferences(notify_new_matches=False), 0.99) is None


def test_a_match_below_the_minimum_score_routes_nowhere() -> None:
    prefs = Preferences(min_match_score=0.7)
    assert route_match(prefs, 0.69) is None
    assert route_match(prefs, 0.7) is not None  # the minimum itself is enough


def test_instant_matches_go_everywhere_at_once() -> None:
    route = route_match(Preferences(digest_frequency="instant"), 0.5)
    assert route == ScoreRoute(0.0, None, digest=False)


@pytest.mark.parametrize("frequency", ["daily", "weekly"])
def test_digest_users_get_matches_in_the_inbox_and_the_digest(frequency: str) -> None:
    route = route_match(Preferences(digest_frequency=frequency), 0.5)
    assert route is not None
    assert route.channels == (INAPP,)
    assert route.digest is True


def test_digest_off_keeps_matches_in_the_inbox_only() -> None:
    route = route_match(Preferences(digest_frequency="off"), 0.5)
    assert route is not None
    assert route.channels == (INAPP,)
    assert route.digest is False


ROUTES = (
    # deliberately out of order: the highest threshold must win
    ScoreRoute(0.75, (EMAIL,), digest=True),
    ScoreRoute(0.9, ("telegram",)),
    ScoreRoute(0.5, (INAPP,)),
)


@pytest.mark.parametrize(
    ("score", "expected"),
    [
        (1.0, ROUTES[1]),
        (0.9, ROUTES[1]),
        (0.899, ROUTES[0]),
        (0.75, ROUTES[0]),
        (0.6, ROUTES[2]),
        (0.5, ROUTES[2]),
    ],
)
def test_score_routes_pick_the_highest_threshold_reached(
    score: float, expected: ScoreRoute
) -> None:
    assert route_match(Preferences(score_routes=ROUTES), score) == expected


def test_below_every_score_route_routes_nowhere() -> None:
    assert route_match(Preferences(score_routes=ROUTES), 0.49) is None


def test_score_routes_override_the_digest_frequency_but_not_the_switches() -> None:
    prefs = Preferences(digest_frequency="off", score_routes=ROUTES)
    assert route_match(prefs, 0.95) == ROUTES[1]
    assert route_match(Preferences(score_routes=ROUTES, min_match_score=0.95), 0.92) is None
    assert route_match(Preferences(score_routes=ROUTES, notify_new_matches=False), 0.95) is None


def test_score_route_parse_reads_the_stored_json_shape() -> None:
    assert ScoreRoute.parse({"min_score": 0.9, "channels": ["telegram"]}) == ScoreRoute(
        0.9, ("telegram",), False
    )
    assert ScoreRoute.parse({"min_score": "0.75", "digest": True}) == ScoreRoute(0.75, None, True)
    assert ScoreRoute.parse({}) == ScoreRoute(0.0, None, False)


# -- channel choice ---------------------------------------------------------------

AVAILABLE = [EMAIL, INAPP, "slack", "telegram", "webhook"]


def test_every_available_channel_by_default_in_order() -> None:
    assert choose_channels(AVAILABLE, Preferences(), None) == AVAILABLE


def test_the_email_switch_turns_email_off() -> None:
    chosen = choose_channels(AVAILABLE, Preferences(email_enabled=False), None)
    assert chosen == [INAPP, "slack", "telegram", "webhook"]


def test_the_email_switch_wins_over_a_per_channel_on() -> None:
    prefs = Preferences(email_enabled=False, channels={EMAIL: True})
    assert EMAIL not in choose_channels(AVAILABLE, prefs, None)
    assert prefs.channel_on(EMAIL) is False


def test_a_channel_switched_off_is_left_out_and_the_others_stay() -> None:
    prefs = Preferences(channels={"slack": False, "telegram": True})
    assert choose_channels(AVAILABLE, prefs, None) == [EMAIL, INAPP, "telegram", "webhook"]


def test_only_restricts_to_the_named_channels() -> None:
    assert choose_channels(AVAILABLE, Preferences(), ["telegram", INAPP]) == [INAPP, "telegram"]


def test_only_cannot_bring_back_a_channel_the_user_switched_off() -> None:
    prefs = Preferences(email_enabled=False, channels={"slack": False})
    assert choose_channels(AVAILABLE, prefs, [EMAIL, "slack", INAPP]) == [INAPP]


def test_only_naming_nothing_available_chooses_nothing() -> None:
    assert choose_channels(AVAILABLE, Preferences(), ["discord"]) == []
    assert choose_channels(AVAILABLE, Preferences(), []) == []


# -- de-duplication ---------------------------------------------------------------


def test_default_dedup_keys_on_content_and_never_repeats() -> None:
    assert dedup_rule(DedupStrategy.DEFAULT, "abc", repeatable=False) == DedupRule("abc", None)


def test_default_dedup_lets_repeatable_updates_go_again_after_a_day() -> None:
    rule = dedup_rule(DedupStrategy.DEFAULT, "abc", repeatable=True)
    assert rule == DedupRule("abc", timedelta(hours=24))
    assert timedelta(hours=24) == REPEAT_AFTER


@pytest.mark.parametrize("repeatable", [False, True])
def test_aggressive_dedup_ignores_content_and_never_repeats(repeatable: bool) -> None:
    one = dedup_rule(DedupStrategy.AGGRESSIVE, "abc", repeatable=repeatable)
    other = dedup_rule(DedupStrategy.AGGRESSIVE, "xyz", repeatable=repeatable)
    assert one == other == DedupRule(ANY_CONTENT, None)


@pytest.mark.parametrize("repeatable", [False, True])
def test_dedup_off_has_no_rule(repeatable: bool) -> None:
    assert dedup_rule(DedupStrategy.OFF, "abc", repeatable=repeatable) is None


def test_strategies_parse_from_their_setting_names() -> None:
    assert [DedupStrategy(s) for s in ("default", "aggressive", "off")] == [
        DedupStrategy.DEFAULT,
        DedupStrategy.AGGRESSIVE,
        DedupStrategy.OFF,
    ]
    with pytest.raises(ValueError, match="sometimes"):
        DedupStrategy("sometimes")


def test_content_hash_is_stable() -> None:
    one = content_hash("New job", "Python developer", {"job_id": "j1", "score": 0.9})
    assert one == content_hash("New job", "Python developer", {"job_id": "j1", "score": 0.9})
    assert len(one) == 32
    int(one, 16)  # hexadecimal
    # pinned: hashes are stored in dedup_marks, so a new formula would re-send old content
    assert one == "9097a0761005610daf615d78c0a4c6ed"
    assert content_hash("t", "b") == "44dcfbb505ed11126397c6f4f091f476"
    assert content_hash("t", "b", {}) == content_hash("t", "b", None) == content_hash("t", "b")


def test_content_hash_ignores_the_order_of_data_keys() -> None:
    a = {"job_id": "j1", "score": 0.9, "nested": {"x": 1, "y": [1, 2]}}
    b = {"nested": {"y": [1, 2], "x": 1}, "score": 0.9, "job_id": "j1"}
    assert content_hash("t", "b", a) == content_hash("t", "b", b)


@pytest.mark.parametrize(
    "other",
    [
        ("T", "b", {"k": 1}),
        ("t", "B", {"k": 1}),
        ("t", "b", {"k": 2}),
        ("t", "b", {"K": 1}),
        ("t", "b", {"k": 1, "extra": None}),
        ("t", "b", {}),
        # the parts are kept apart: moving text between title and body changes it
        ("tb", "", {"k": 1}),
        ("", "tb", {"k": 1}),
    ],
)
def test_content_hash_differs_for_different_content(
    other: tuple[str, str, dict[str, int | None]],
) -> None:
    assert content_hash("t", "b", {"k": 1}) != content_hash(*other)
