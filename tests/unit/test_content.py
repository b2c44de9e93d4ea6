"""What notifications say: job display helpers, digest ranking, status and time wording."""
# ruff: noqa: RUF001 - the en dash that joins a range is part of what these tests check

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from services.dispatcher.content import (
    JobItem,
    count_noun,
    reminder_lead,
    status_wording,
    time_range,
)
from services.dispatcher.ranking import company_key, rank_digest, title_key
from shared.events import ApplicationStatus


def job(job_id: str = "j1", **overrides: Any) -> JobItem:
    fields: dict[str, Any] = {
        "job_id": job_id,
        "title": "Backend Engineer",
        "company": "Acme",
        "location": "Berlin",
        "remote": False,
        "salary_min": None,
        "salary_max": None,
        "currency": None,
        "url": f"https://jobs.example.com/{job_id}",
        "score": 0.8,
    }
    fields.update(overrides)
    return JobItem(**fields)


# ---------------------------------------------------------------- salary


@pytest.mark.parametrize(
    ("low", "high", "currency", "expected"),
    [
        (60_000, 80_000, "EUR", "€60,000–80,000"),
        (60_000, 80_000, "eur", "€60,000–80,000"),
        (90_000, None, "USD", "from $90,000"),
        (None, 120_000, "CHF", "up to CHF 120,000"),
        (45_000, 55_000, "GBP", "£45,000–55,000"),
        (50_000, 50_000, "EUR", "€50,000"),
        (80_000, 60_000, "EUR", "€60,000–80,000"),
        (40_000, 50_000, None, "40,000–50,000"),
        (42.5, None, "USD", "from $42.50"),
    ],
)
def test_salary_reads_as_people_write_it(
    low: float | None, high: float | None, currency: str | None, expected: str
) -> None:
    assert job(salary_min=low, salary_max=high, currency=currency).salary_text == expected


def test_no_salary_says_nothing() -> None:
    assert job(salary_min=None, salary_max=None, currency="EUR").salary_text is None


# ---------------------------------------------------------------- score


@pytest.mark.parametrize(
    ("score", "percent"),
    [(0.876, 88), (0.875, 88), (0.874, 87), (1.0, 100), (0.0, 0), (0.004, 0), (1.2, 100)],
)
def test_score_is_a_whole_percent(score: float, percent: int) -> None:
    assert job(score=score).score_percent == percent


def test_unscored_job_has_no_percent() -> None:
    assert job(score=None).score_percent is None
    assert job(score=float("nan")).score_percent is None


# ---------------------------------------------------------------- location


@pytest.mark.parametrize(
    ("location", "remote", "expected"),
    [
        ("Berlin", True, "Berlin · remote OK"),
        ("Berlin", False, "Berlin"),
        ("  Berlin,   Germany ", False, "Berlin, Germany"),
        (None, True, "Remote"),
        ("Remote", True, "Remote"),
        ("remote", False, "Remote"),
        ("", True, "Remote"),
        (None, False, None),
    ],
)
def test_location_text(location: str | None, remote: bool, expected: str | None) -> None:
    assert job(location=location, remote=remote).location_text == expected


def test_facts_list_what_is_known_in_order() -> None:
    item = job(location="Berlin", remote=True, salary_min=60_000, salary_max=80_000, currency="EUR")
    assert item.facts == ("Berlin · remote OK", "€60,000–80,000", "80% match")
    assert job(location=None, remote=False, score=None).facts == ()


# ---------------------------------------------------------------- why it matched


def test_why_names_two_skills_counts_the_rest_and_the_strongest_part() -> None:
    item = job(
        matched_skills=("Python", "PostgreSQL", "Docker", "AWS", "Go"),
        score_parts={"vector": 0.82, "skills": 0.6},
    )
    assert item.why_matched == (
        "Matches Python, PostgreSQL and 3 more of your skills; strong fit with your experience"
    )


@pytest.mark.parametrize(
    ("skills", "start"),
    [
        (("Python",), "Matches Python from your skills"),
        (("Python", "SQL"), "Matches Python and SQL from your skills"),
        (("Python", "SQL", "Go"), "Matches Python, SQL and Go from your skills"),
        (("Python", "SQL", "Go", "Rust"), "Matches Python, SQL and 2 more of your skills"),
        (("Python", "python", " PYTHON "), "Matches Python from your skills"),
    ],
)
def test_why_lists_skills_without_repeats(skills: tuple[str, ...], start: str) -> None:
    assert job(matched_skills=skills).why_matched == start


def test_why_words_the_largest_part_by_its_strength() -> None:
    assert job(matched_skills=("Go",), score_parts={"skills": 0.9, "vector": 0.4}).why_matched == (
        "Matches Go from your skills; strong fit with your skills"
    )
    assert job(matched_skills=("Go",), score_parts={"vector": 0.6}).why_matched.endswith(
        "; good fit with your experience"
    )
    assert job(matched_skills=("Go",), score_parts={"similarity_score": 0.3}).why_matched.endswith(
        "; partial fit with your experience"
    )
    assert job(matched_skills=("Go",), score_parts={"team_size": 0.9}).why_matched.endswith(
        "; strong fit on team size"
    )


def test_why_is_honest_without_matched_skills() -> None:
    with_part = job(missing_skills=("Kubernetes",), score_parts={"vector": 0.77})
    assert (
        with_part.why_matched == "No listed skills in common, but a strong fit with your experience"
    )
    bare = job(matched_skills=(), score_parts={})
    assert "no listed skills in common" in bare.why_matched
    assert "Matches" not in bare.why_matched


def test_zero_parts_are_not_called_a_fit() -> None:
    assert job(matched_skills=("Go",), score_parts={"vector": 0.0}).why_matched == (
        "Matches Go from your skills"
    )


# ---------------------------------------------------------------- digest ranking


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Senior Backend Engineer (Python)", "Backend Engineer, Python - Senior"),
        ("Sr. Data Engineer", "data engineer"),
        ("Backend Engineer (m/w/d)", "Backend-Engineer"),
        ("Lead Platform Engineer II", "Platform Engineer"),
        ("Développeur Backend", "Backend developpeur"),
        ("Node.js Developer (Remote)", "NodeJS Developer"),
    ],
)
def test_near_duplicate_titles_share_a_key(a: str, b: str) -> None:
    assert title_key(a) == title_key(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Backend Engineer", "Frontend Engineer"),
        ("C++ Developer", "C Developer"),
        ("C# Developer", "C Developer"),
        ("Data Engineer", "Data Scientist"),
        ("Engineering Manager", "Software Engineer"),
    ],
)
def test_different_roles_keep_different_keys(a: str, b: str) -> None:
    assert title_key(a) != title_key(b)


def test_a_title_of_only_level_words_still_has_a_key() -> None:
    assert title_key("Senior") == ("senior",)


def test_company_names_compare_without_case_punctuation_or_legal_form() -> None:
    assert company_key("Acme GmbH") == company_key("ACME") == company_key("Acme, Inc.")
    assert company_key("Acme") != company_key("Acme Labs")
    assert company_key("Co") == "co"


def test_digest_leaves_out_jobs_already_read() -> None:
    items = [job("a", score=0.9), job("b", title="Data Engineer", score=0.8)]
    assert [i.job_id for i in rank_digest(items, read_job_ids={"a"})] == ["b"]


def test_digest_caps_each_company_keeping_its_best() -> None:
    items = [
        job("a1", title="Backend Engineer", company="Acme", score=0.70),
        job("a2", title="Data Engineer", company="Acme", score=0.95),
        job("a3", title="Frontend Engineer", company="ACME GmbH", score=0.85),
        job("b1", title="Backend Engineer", company="Beta", score=0.60),
    ]
    ranked = rank_digest(items, read_job_ids=set(), per_company=2)
    assert [i.job_id for i in ranked] == ["a2", "a3", "b1"]
    assert [i.job_id for i in rank_digest(items, read_job_ids=set(), per_company=1)] == [
        "a2",
        "b1",
    ]


def test_digest_collapses_near_duplicates_keeping_the_better_score() -> None:
    items = [
        job("low", title="Senior Backend Engineer (Python)", score=0.71),
        job("other", title="Data Engineer", company="Beta", score=0.75),
        job("high", title="Backend Engineer, Python - Senior", score=0.88),
    ]
    ranked = rank_digest(items, read_job_ids=set())
    assert [i.job_id for i in ranked] == ["high", "other"]


def test_a_collapsed_duplicate_does_not_use_a_company_place() -> None:
    items = [
        job("a", title="Backend Engineer", score=0.9),
        job("a-dup", title="Sr. Backend Engineer", score=0.8),
        job("b", title="Data Engineer", score=0.7),
    ]
    ranked = rank_digest(items, read_job_ids=set(), per_company=2)
    assert [i.job_id for i in ranked] == ["a", "b"]


def test_same_title_at_different_companies_is_not_a_duplicate() -> None:
    items = [job("a", company="Acme", score=0.9), job("b", company="Beta", score=0.8)]
    assert [i.job_id for i in rank_digest(items, read_job_ids=set())] == ["a", "b"]


def test_digest_orders_by_score_and_keeps_input_order_for_ties() -> None:
    items = [
        job("t1", company="A", score=0.5),
        job("top", company="B", score=0.9),
        job("t2", company="C", score=0.5),
        job("none", company="D", score=None),
        job("t3", company="E", score=0.5),
    ]
    ranked = rank_digest(items, read_job_ids=set())
    assert [i.job_id for i in ranked] == ["top", "t1", "t2", "t3", "none"]


def test_equal_scored_duplicates_keep_the_first() -> None:
    items = [job("first", score=0.8), job("second", title="Backend Engineer (Senior)", score=0.8)]
    assert [i.job_id for i in rank_digest(items, read_job_ids=set())] == ["first"]


def test_digest_stops_at_the_limit() -> None:
    items = [job(f"j{n}", company=f"Company {n}", score=n / 100) for n in range(30)]
    ranked = rank_digest(items, read_job_ids=set(), limit=10)
    assert len(ranked) == 10
    assert ranked[0].job_id == "j29"
    assert ranked[-1].job_id == "j20"
    assert rank_digest(items, read_job_ids=set(), limit=0) == []


def test_the_same_job_twice_is_shown_once() -> None:
    item = job("a")
    assert rank_digest([item, replace(item, title="Other title")], read_job_ids=set()) == [item]


def test_digest_refuses_meaningless_limits() -> None:
    with pytest.raises(ValueError, match="per_company"):
        rank_digest([], read_job_ids=set(), per_company=0)
    with pytest.raises(ValueError, match="limit"):
        rank_digest([], read_job_ids=set(), limit=-1)


def test_job_items_are_hashable_despite_score_parts() -> None:
    assert len({job("a", score_parts={"vector": 0.5}), job("a", score_parts={"vector": 0.5})}) == 1


# ---------------------------------------------------------------- application status


def test_every_status_has_its_own_wording_naming_job_and_company() -> None:
    wordings = {
        status: status_wording(status, None, "Data Engineer", "Acme")
        for status in ApplicationStatus
    }
    titles = [title for title, _ in wordings.values()]
    bodies = [body for _, body in wordings.values()]
    assert len(set(titles)) == len(ApplicationStatus)
    assert len(set(bodies)) == len(ApplicationStatus)
    for title, body in wordings.values():
        assert "Acme" in title
        assert "Data Engineer" in body
        assert "Acme" in body
        assert "\n" not in title


@pytest.mark.parametrize(
    ("status", "words"),
    [
        ("applied", "is in"),
        ("screening", "reviewing"),
        ("interview", "wants to talk"),
        ("offer", "Congratulations"),
        ("rejected", "not to go ahead"),
        ("withdrawn", "You withdrew"),
        ("hired", "new role"),
    ],
)
def test_status_wording_says_what_happened(status: str, words: str) -> None:
    title, body = status_wording(status, None, "Data Engineer", "Acme")
    assert words in title + " " + body


def test_rejection_is_kind_and_says_where_it_ended() -> None:
    _, early = status_wording("rejected", "applied", "Data Engineer", "Acme")
    _, late = status_wording("rejected", "interview", "Data Engineer", "Acme")
    assert "after your interviews" not in early
    assert "after your interviews" in late
    assert "no verdict on your worth" in late


def test_another_interview_round_is_worded_as_such() -> None:
    first, _ = status_wording("interview", "screening", "Data Engineer", "Acme")
    again, _ = status_wording(
        ApplicationStatus.INTERVIEW, ApplicationStatus.INTERVIEW, "Data Engineer", "Acme"
    )
    assert first == "Interview stage: Data Engineer at Acme"
    assert again == "Next interview round: Data Engineer at Acme"


def test_status_wording_keeps_titles_on_one_line() -> None:
    title, _ = status_wording("offer", None, "Data\nEngineer  ", " Acme\t")
    assert title == "Offer from Acme for Data Engineer"


def test_unknown_status_is_refused() -> None:
    with pytest.raises(ValueError, match="promoted"):
        status_wording("promoted", None, "Data Engineer", "Acme")


# ---------------------------------------------------------------- meetings and counts


def test_meeting_time_in_the_readers_zone() -> None:
    start = datetime(2026, 11, 24, 13, 0, tzinfo=UTC)
    assert time_range(start, start + timedelta(hours=1), "Europe/Berlin") == (
        "Tuesday 24 November, 14:00–15:00 (Europe/Berlin)"
    )


def test_meeting_time_follows_daylight_saving() -> None:
    start = datetime(2026, 7, 7, 13, 30, tzinfo=UTC)
    assert time_range(start, start + timedelta(minutes=45), "Europe/Berlin") == (
        "Tuesday 7 July, 15:30–16:15 (Europe/Berlin)"
    )


def test_meeting_across_midnight_names_both_days() -> None:
    start = datetime(2026, 11, 24, 22, 30, tzinfo=timezone(timedelta(hours=-5)))
    assert time_range(start, start + timedelta(hours=2), "America/New_York") == (
        "Tuesday 24 November, 22:30 – Wednesday 25 November, 00:30 (America/New_York)"
    )


def test_naive_meeting_times_are_utc() -> None:
    start = datetime(2026, 1, 5, 9, 0)
    assert time_range(start, start + timedelta(hours=1), "Asia/Tokyo") == (
        "Monday 5 January, 18:00–19:00 (Asia/Tokyo)"
    )


def test_unknown_time_zone_is_refused() -> None:
    start = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    with pytest.raises(ValueError, match="Mars/Olympus"):
        time_range(start, start, "Mars/Olympus")


def test_reminder_leads() -> None:
    assert reminder_lead("24h") == "in 24 hours"
    assert reminder_lead("1h") == "in 1 hour"
    with pytest.raises(ValueError, match="15m"):
        reminder_lead("15m")


def test_count_noun() -> None:
    assert count_noun(1, "job") == "1 job"
    assert count_noun(0, "job") == "0 jobs"
    assert count_noun(2, "new match", "new matches") == "2 new matches"
    assert count_noun(12_000, "job") == "12,000 jobs"
