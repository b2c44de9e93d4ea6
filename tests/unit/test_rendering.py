"""Templates: every kind renders subject, text and HTML; escaping; overrides; errors."""
# ruff: noqa: RUF001 - the en dash that joins a range is part of what these tests check

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from services.dispatcher.content import JobItem, status_wording
from services.dispatcher.rendering import Renderer, TemplateRenderError
from shared.errors import Permanent

PREFS = "https://herald.example.com/preferences?t=abc&u=1"
UNSUBSCRIBE = "https://herald.example.com/v1/unsubscribe/sig123"
START = datetime(2026, 11, 24, 13, 0, tzinfo=UTC)


def job(n: int, **overrides: Any) -> JobItem:
    fields: dict[str, Any] = {
        "job_id": f"job-{n}",
        "title": f"Backend Engineer {n}",
        "company": f"Company {n}",
        "location": "Berlin",
        "remote": True,
        "salary_min": 60_000,
        "salary_max": 80_000,
        "currency": "EUR",
        "url": f"https://jobs.example.com/{n}",
        "score": 0.9,
        "matched_skills": ("Python", "PostgreSQL", "Docker"),
        "missing_skills": ("Kubernetes",),
        "score_parts": {"vector": 0.85, "skills": 0.6},
    }
    fields.update(overrides)
    return JobItem(**fields)


CONTEXTS: dict[str, dict[str, Any]] = {
    "job_match": {"name": "Ada", "items": [job(1), job(2)]},
    "digest": {
        "name": "Ada",
        "frequency": "weekly",
        "new_jobs": 120,
        "new_matches": 7,
        "application_updates": 2,
        "items": [job(1), job(2), job(3)],
    },
    "application_status": {
        "name": "Ada",
        "new_status": "interview",
        "old_status": "screening",
        "job_title": "Data Engineer",
        "company": "Acme",
        "note": "The hiring manager will call you on Monday.",
        "job_url": "https://jobs.example.com/42",
    },
    "meeting_reminder": {
        "name": "Ada",
        "title": "Interview with Acme",
        "starts_at": START,
        "ends_at": START + timedelta(hours=1),
        "timezone": "Europe/Berlin",
        "lead": "24h",
        "join_url": "https://meet.example.com/abc-defg",
    },
    "welcome": {"name": "Ada", "preferences_url": PREFS, "digest_frequency": "daily"},
    "test": {"name": "Ada", "channel": "Telegram"},
    "generic": {
        "title": "Your profile is 80% complete",
        "body": "Add your skills to get better matches.\n\nIt takes two minutes.",
        "link": "https://app.example.com/profile",
    },
}

HTML_REMNANTS = re.compile(r"</?[a-zA-Z][^>]*>|&(amp|lt|gt|quot|nbsp|#\d+);")


@pytest.fixture
def renderer() -> Renderer:
    return Renderer()


@pytest.mark.parametrize("kind", sorted(CONTEXTS))
def test_every_kind_renders_subject_text_and_html(renderer: Renderer, kind: str) -> None:
    out = renderer.render(kind, **CONTEXTS[kind])
    assert out.title
    assert "\n" not in out.title
    assert out.title == out.title.strip()
    assert out.text.strip() == out.text
    assert len(out.text.splitlines()) >= 2
    assert not HTML_REMNANTS.search(out.text), out.text
    assert "\n\n\n" not in out.text
    assert out.html.startswith("<!DOCTYPE html>")
    assert out.html.endswith("</html>")
    assert f"<title>{out.title}</title>" in out.html


@pytest.mark.parametrize("kind", sorted(CONTEXTS))
def test_footer_links_appear_only_when_given(renderer: Renderer, kind: str) -> None:
    with_links = renderer.render(
        kind, **{**CONTEXTS[kind], "preferences_url": PREFS, "unsubscribe_url": UNSUBSCRIBE}
    )
    assert f'href="{UNSUBSCRIBE}"' in with_links.html
    assert "Unsubscribe</a>" in with_links.html
    assert 'href="https://herald.example.com/preferences?t=abc&amp;u=1"' in with_links.html
    assert "Manage preferences</a>" in with_links.html
    assert f"Unsubscribe: {UNSUBSCRIBE}" in with_links.text
    assert f"Manage your preferences: {PREFS}" in with_links.text

    if kind == "welcome":
        return  # the welcome message is about preferences: its link is always there
    without = renderer.render(kind, **CONTEXTS[kind])
    assert "Unsubscribe" not in without.html
    assert "Manage preferences" not in without.html
    assert "Unsubscribe" not in without.text
    assert "preferences:" not in without.text


# ---------------------------------------------------------------- job match


def test_job_match_shows_everything_about_each_job(renderer: Renderer) -> None:
    out = renderer.render("job_match", **CONTEXTS["job_match"])
    assert out.title == "2 new jobs match your profile"
    for text in (out.text, out.html):
        assert "Backend Engineer 1" in text
        assert "Company 2" in text
        assert "Berlin · remote OK" in text
        assert "€60,000–80,000" in text
        assert "90% match" in text
        assert "Matches Python, PostgreSQL and Docker from your skills" in text
        assert "strong fit with your experience" in text
    assert "Apply: https://jobs.example.com/1" in out.text
    assert 'href="https://jobs.example.com/2"' in out.html
    assert "Hi Ada," in out.text
    assert "more" not in out.text


def test_single_job_match_names_it_in_the_subject(renderer: Renderer) -> None:
    out = renderer.render("job_match", items=[job(7, company="Acme")])
    assert out.title == "New match: Backend Engineer 7 at Acme"
    assert out.text.startswith("Hi,\n")


def test_job_match_shows_five_and_counts_the_rest(renderer: Renderer) -> None:
    items = [job(n) for n in range(1, 9)]
    out = renderer.render("job_match", items=items)
    assert out.title == "8 new jobs match your profile"
    assert out.text.count("Apply: ") == 5
    assert out.html.count("View and apply</a>") == 5
    assert "Backend Engineer 5" in out.text
    assert "Backend Engineer 6" not in out.text
    assert "Backend Engineer 6" not in out.html
    assert "…and 3 more." in out.text
    assert "…and 3 more." in out.html


def test_exactly_five_matches_have_no_remainder(renderer: Renderer) -> None:
    out = renderer.render("job_match", items=[job(n) for n in range(5)])
    assert out.text.count("Apply: ") == 5
    assert "more" not in out.text
    assert "more." not in out.html


def test_the_remainder_links_to_all_matches_when_a_link_is_given(renderer: Renderer) -> None:
    more = "https://app.example.com/matches"
    out = renderer.render("job_match", items=[job(n) for n in range(6)], more_url=more)
    assert f"…and 1 more: {more}" in out.text
    assert f'href="{more}"' in out.html


def test_job_without_salary_location_or_score_leaves_them_out(renderer: Renderer) -> None:
    bare = job(1, location=None, remote=False, salary_min=None, salary_max=None, score=None)
    out = renderer.render("job_match", items=[bare])
    assert "match\n" not in out.text
    assert " · " not in out.text
    assert "%" not in out.text
    assert "Backend Engineer 1 at Company 1\n   Matches Python" in out.text


# ---------------------------------------------------------------- digest


def test_weekly_digest_counts_and_top_items(renderer: Renderer) -> None:
    out = renderer.render("digest", **CONTEXTS["digest"])
    assert out.title == "Your weekly digest: 7 new matches, 2 application updates"
    assert "In the past week:" in out.text
    assert "- 120 new jobs posted" in out.text
    assert "- 7 new matches for you" in out.text
    assert "- 2 application updates" in out.text
    assert out.text.count("Matches Python, PostgreSQL and Docker from your skills") == 3
    assert "1. Backend Engineer 1 at Company 1" in out.text
    assert "3. Backend Engineer 3 at Company 3" in out.text
    assert "the past week" in out.html
    assert ">120</div>" in out.html
    assert out.html.count("View and apply</a>") == 3


def test_daily_digest_wording_and_singulars(renderer: Renderer) -> None:
    out = renderer.render(
        "digest",
        frequency="daily",
        new_jobs=1,
        new_matches=1,
        application_updates=0,
        items=[job(1)],
    )
    assert out.title == "Your daily digest: 1 new match"
    assert "In the last 24 hours:" in out.text
    assert "- 1 new job posted" in out.text
    assert "- 1 new match for you" in out.text
    assert "- 0 application updates" in out.text
    assert ">new match</div>" in out.html


def test_quiet_digest_says_so(renderer: Renderer) -> None:
    out = renderer.render(
        "digest", frequency="daily", new_jobs=0, new_matches=0, application_updates=0, items=[]
    )
    assert out.title == "Your daily digest: nothing new"
    assert "No new matches worth your time in the last 24 hours" in out.text
    assert "Top matches" not in out.text
    assert "Top matches" not in out.html


def test_digest_with_only_new_jobs_mentions_them_in_the_subject(renderer: Renderer) -> None:
    out = renderer.render(
        "digest", frequency="weekly", new_jobs=40, new_matches=0, application_updates=0, items=[]
    )
    assert out.title == "Your weekly digest: 40 new jobs"


def test_unknown_digest_frequency_is_an_error(renderer: Renderer) -> None:
    context = {**CONTEXTS["digest"], "frequency": "monthly"}
    with pytest.raises(TemplateRenderError, match=r"digest\.subject\.j2"):
        renderer.render("digest", **context)


# ---------------------------------------------------------------- application status


@pytest.mark.parametrize("status", ["applied", "screening", "interview", "offer", "rejected"])
def test_application_status_uses_the_status_wording(renderer: Renderer, status: str) -> None:
    title, body = status_wording(status, None, "Data Engineer", "Acme")
    out = renderer.render(
        "application_status", new_status=status, job_title="Data Engineer", company="Acme"
    )
    assert out.title == title
    assert body in out.text
    assert body.replace("'", "&#39;") in out.html
    assert "Role: Data Engineer" in out.text
    assert "Company: Acme" in out.text
    assert "Note" not in out.text
    assert "Note</div>" not in out.html


def test_application_status_carries_the_note_and_the_job_link(renderer: Renderer) -> None:
    out = renderer.render("application_status", **CONTEXTS["application_status"])
    assert out.title == "Interview stage: Data Engineer at Acme"
    assert "Note:\nThe hiring manager will call you on Monday." in out.text
    assert "The hiring manager will call you on Monday." in out.html
    assert "View the job: https://jobs.example.com/42" in out.text
    assert 'href="https://jobs.example.com/42"' in out.html


def test_a_note_keeps_its_paragraphs_in_html(renderer: Renderer) -> None:
    out = renderer.render(
        "application_status",
        new_status="offer",
        job_title="Data Engineer",
        company="Acme",
        note="Salary: 70k.\nStart: March.\n\nPlease reply by Friday.",
    )
    assert "Salary: 70k.<br>\nStart: March.</p>" in out.html
    assert ">Please reply by Friday.</p>" in out.html
    assert "Salary: 70k.\nStart: March.\n\nPlease reply by Friday." in out.text


# ---------------------------------------------------------------- meeting reminder


def test_meeting_reminder_a_day_ahead(renderer: Renderer) -> None:
    out = renderer.render("meeting_reminder", **CONTEXTS["meeting_reminder"])
    assert out.title == "Reminder: Interview with Acme starts in 24 hours"
    when = "Tuesday 24 November, 14:00–15:00 (Europe/Berlin)"
    assert f"When: {when}" in out.text
    assert when in out.html
    assert "Join: https://meet.example.com/abc-defg" in out.text
    assert 'href="https://meet.example.com/abc-defg"' in out.html


def test_meeting_reminder_an_hour_ahead_without_a_link(renderer: Renderer) -> None:
    context = {**CONTEXTS["meeting_reminder"], "lead": "1h", "join_url": None}
    out = renderer.render("meeting_reminder", **context)
    assert out.title == "Reminder: Interview with Acme starts in 1 hour"
    assert '"Interview with Acme" starts in 1 hour.' in out.text
    assert "Join:" not in out.text
    assert "No join link was given" in out.text
    assert "Join the meeting" not in out.html


def test_unknown_reminder_lead_names_the_template(renderer: Renderer) -> None:
    context = {**CONTEXTS["meeting_reminder"], "lead": "15m"}
    with pytest.raises(TemplateRenderError, match=r"meeting_reminder\.subject\.j2.*15m"):
        renderer.render("meeting_reminder", **context)


# ---------------------------------------------------------------- welcome, test, generic


def test_welcome_greets_and_explains(renderer: Renderer) -> None:
    out = renderer.render("welcome", **CONTEXTS["welcome"])
    assert out.title == "Welcome, Ada: your job-search notifications are on"
    assert out.text.startswith("Hi Ada,")
    assert "new jobs that match your résumé and saved searches, gathered in a daily digest" in (
        out.text
    )
    assert "changes in your applications" in out.text
    assert "interviews and meetings" in out.text
    assert PREFS in out.text
    assert "Choose your preferences</a>" in out.html


def test_welcome_without_a_name(renderer: Renderer) -> None:
    out = renderer.render("welcome", name="", preferences_url=PREFS)
    assert out.title == "Welcome: your job-search notifications are on"
    assert out.text.startswith("Hi,")
    assert "digest" not in out.text.split("\n\n")[2]


def test_welcome_without_a_preferences_link_still_says_where_to_look(renderer: Renderer) -> None:
    out = renderer.render("welcome", name="Ada")
    assert "in your notification settings." in out.text
    assert "in your notification settings." in out.html
    assert "href=" not in out.html
    assert "http" not in out.text


def test_test_message_names_the_channel(renderer: Renderer) -> None:
    out = renderer.render("test", channel="Telegram")
    assert out.title == "Test notification: Telegram works"
    assert "notifications through Telegram reach you" in out.text
    assert renderer.render("test").title == "Test notification: this channel works"


def test_generic_passes_title_and_body_through(renderer: Renderer) -> None:
    out = renderer.render("generic", **CONTEXTS["generic"])
    assert out.title == "Your profile is 80% complete"
    assert out.text.startswith("Add your skills to get better matches.\n\nIt takes two minutes.")
    assert "Open: https://app.example.com/profile" in out.text
    assert ">Add your skills to get better matches.</p>" in out.html
    assert ">It takes two minutes.</p>" in out.html


def test_generic_subject_is_one_line(renderer: Renderer) -> None:
    out = renderer.render("generic", title="  Interview\n moved  ", body="New time: 15:00.")
    assert out.title == "Interview moved"
    assert out.text == "New time: 15:00."


# ---------------------------------------------------------------- escaping


def test_user_text_is_escaped_in_html_and_intact_in_text(renderer: Renderer) -> None:
    evil = 'Engineer <script>alert("x")</script> & Co'
    out = renderer.render("job_match", items=[job(1, title=evil, company="R&D <Labs>")])
    assert "<script>" not in out.html
    assert "Engineer &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; Co" in out.html
    assert "R&amp;D &lt;Labs&gt;" in out.html
    assert evil in out.text
    assert "R&D <Labs>" in out.text
    assert out.title == f"New match: {evil} at R&D <Labs>"


def test_generic_body_is_escaped_in_html(renderer: Renderer) -> None:
    out = renderer.render("generic", title="<b>Hi</b>", body="<img src=x onerror=alert(1)>")
    assert "<img" not in out.html
    assert "&lt;img src=x onerror=alert(1)&gt;" in out.html
    assert "<title>&lt;b&gt;Hi&lt;/b&gt;</title>" in out.html
    assert out.text == "<img src=x onerror=alert(1)>"


def test_links_other_than_web_and_mail_are_not_made_clickable(renderer: Renderer) -> None:
    out = renderer.render("job_match", items=[job(1, url="javascript:alert(1)")])
    assert "javascript:" not in out.html
    assert "View and apply" not in out.html


# ---------------------------------------------------------------- overrides and errors


def test_an_override_replaces_one_file_and_the_rest_fall_back(tmp_path: Path) -> None:
    (tmp_path / "job_match.subject.j2").write_text(
        "{{ items|length }} jobs picked for {{ name }}", encoding="utf-8"
    )
    packaged = Renderer().render("job_match", **CONTEXTS["job_match"])
    out = Renderer(tmp_path).render("job_match", **CONTEXTS["job_match"])
    assert out.title == "2 jobs picked for Ada"
    assert out.text == packaged.text
    assert out.html == packaged.html.replace(packaged.title, out.title)


def test_an_overridden_layout_frames_every_html_message(tmp_path: Path) -> None:
    (tmp_path / "_layout.html.j2").write_text(
        "<html><body>ACME MAIL {{ subject }}{% block content %}{% endblock %}</body></html>",
        encoding="utf-8",
    )
    renderer = Renderer(tmp_path)
    for kind, context in CONTEXTS.items():
        out = renderer.render(kind, **context)
        assert out.html.startswith(f"<html><body>ACME MAIL {out.title.replace('&', '&amp;')}")


def test_an_override_directory_that_does_not_exist_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        Renderer(tmp_path / "missing")


def test_a_syntax_error_names_the_template_and_line(tmp_path: Path) -> None:
    (tmp_path / "test.txt.j2").write_text("fine\n{% if %}\n", encoding="utf-8")
    with pytest.raises(TemplateRenderError, match=r"test\.txt\.j2.*line 2") as caught:
        Renderer(tmp_path).render("test")
    assert caught.value.template == "test.txt.j2"
    assert isinstance(caught.value, Permanent)


def test_a_missing_context_value_names_the_template_and_the_value(renderer: Renderer) -> None:
    with pytest.raises(TemplateRenderError, match=r"job_match\.subject\.j2.*'items' is undefined"):
        renderer.render("job_match", name="Ada")


def test_an_unknown_kind_is_an_error(renderer: Renderer) -> None:
    with pytest.raises(TemplateRenderError, match=r"newsletter\.subject\.j2.*not found"):
        renderer.render("newsletter")
    with pytest.raises(TemplateRenderError, match="not a template kind"):
        renderer.render("../secrets")
