"""What notifications say: the data templates render, and the pure rules behind it.

Nothing here does I/O. ``JobItem`` carries one job as a message shows it, with the
display helpers templates call (salary range, score percent, location, why it
matched); ``status_wording`` words an application status change; ``time_range`` and
``reminder_lead`` word a meeting's time. ``ranking.py`` picks which jobs a digest
shows.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shared.events import ApplicationStatus

__all__ = ["JobItem", "count_noun", "reminder_lead", "status_wording", "time_range"]

_EN_DASH = "\u2013"  # joins the ends of a range: salaries, meeting times
_CURRENCY_SYMBOLS = {"EUR": "€", "USD": "$", "GBP": "£", "JPY": "¥", "INR": "₹"}


@dataclass(frozen=True)
class JobItem:
    """One job as a notification shows it, with what the matcher said about it.

    ``score`` and each of ``score_parts`` are read on a scale from 0 to 1.
    """

    job_id: str
    title: str
    company: str
    location: str | None
    remote: bool
    salary_min: float | None
    salary_max: float | None
    currency: str | None
    url: str
    score: float | None
    matched_skills: tuple[str, ...] = ()
    missing_skills: tuple[str, ...] = ()
    score_parts: dict[str, float] = field(default_factory=dict, hash=False)

    @property
    def salary_text(self) -> str | None:
        """The pay as people read it: a range with an en dash ("€60,000" to "80,000"),
        "from $90,000", "up to CHF 120,000", or None when neither end is known."""
        low, high = self.salary_min, self.salary_max
        if low is not None and high is not None and low > high:
            low, high = high, low
        if low is not None and high is not None:
            if low == high:
                return _money(low, self.currency)
            return f"{_money(low, self.currency)}{_EN_DASH}{_amount(high)}"
        if low is not None:
            return f"from {_money(low, self.currency)}"
        if high is not None:
            return f"up to {_money(high, self.currency)}"
        return None

    @property
    def score_percent(self) -> int | None:
        """The score as a whole percent (0.876 → 88), or None when unscored."""
        if self.score is None or math.isnan(self.score):
            return None
        return min(100, max(0, math.floor(self.score * 100 + 0.5)))

    @property
    def location_text(self) -> str | None:
        """ "Berlin · remote OK", "Berlin", "Remote", or None when nothing is known."""
        place = " ".join(self.location.split()) if self.location else ""
        if place.casefold() in {"remote", "anywhere", "worldwide"}:
            return "Remote"
        if place and self.remote:
            return f"{place} · remote OK"
        if place:
            return place
        return "Remote" if self.remote else None

    @property
    def facts(self) -> tuple[str, ...]:
        """What a one-line summary shows, in order: location, salary, "92% match"."""
        facts = [self.location_text, self.salary_text]
        if self.score_percent is not None:
            facts.append(f"{self.score_percent}% match")
        return tuple(fact for fact in facts if fact)

    @property
    def why_matched(self) -> str:
        """One line on why this job was picked, from matched skills and the largest
        score part, e.g. "Matches Python, PostgreSQL and 3 more of your skills;
        strong fit with your experience"."""
        skills = _unique(self.matched_skills)
        driver = _biggest_part(self.score_parts)
        if skills:
            line = f"Matches {_skill_list(skills)}"
            return f"{line}; {driver}" if driver else line
        if driver:
            return f"No listed skills in common, but a {driver}"
        return "Suggested from your profile as a whole; no listed skills in common"


def _amount(value: float) -> str:
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.2f}"


def _money(value: float, currency: str | None) -> str:
    code = (currency or "").strip().upper()
    if not code:
        return _amount(value)
    symbol = _CURRENCY_SYMBOLS.get(code)
    return f"{symbol}{_amount(value)}" if symbol else f"{code} {_amount(value)}"


def _unique(names: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    out: list[str] = []
    for name in names:
        clean = " ".join(name.split())
        if clean and clean.casefold() not in seen:
            seen.add(clean.casefold())
            out.append(clean)
    return out


def _skill_list(skills: Sequence[str]) -> str:
    if len(skills) == 1:
        return f"{skills[0]} from your skills"
    if len(skills) <= 3:
        return f"{', '.join(skills[:-1])} and {skills[-1]} from your skills"
    return f"{skills[0]}, {skills[1]} and {len(skills) - 2} more of your skills"


# what each score part measures, worded as "<strength> fit with ..."
_PART_WORDING = {
    "vector": "your experience",
    "similarity": "your experience",
    "semantic": "your experience",
    "embedding": "your experience",
    "text": "your experience",
    "resume": "your experience",
    "experience": "your experience",
    "skills": "your skills",
    "skill": "your skills",
    "skill_overlap": "your skills",
    "title": "the roles you look for",
    "keywords": "the roles you look for",
    "location": "where you want to work",
    "remote": "where you want to work",
    "salary": "your salary expectations",
    "job_type": "the kind of contract you want",
}


def _biggest_part(parts: Mapping[str, float]) -> str | None:
    scored = [(value, name) for name, value in parts.items() if not math.isnan(value)]
    if not scored:
        return None
    value, name = max(scored, key=lambda pair: pair[0])
    if value <= 0:
        return None
    strength = "strong" if value >= 0.75 else "good" if value >= 0.5 else "partial"
    key = name.strip().lower().replace("-", "_").replace(" ", "_")
    about = _PART_WORDING.get(key) or _PART_WORDING.get(key.removesuffix("_score"))
    if about is None:
        return f"{strength} fit on {name.replace('_', ' ').strip()}"
    return f"{strength} fit with {about}"


# ---------------------------------------------------------------- application status


def status_wording(
    new_status: ApplicationStatus | str,
    old_status: ApplicationStatus | str | None,
    job_title: str,
    company: str,
) -> tuple[str, str]:
    """(title, body) telling someone their application moved to ``new_status``;
    ``old_status`` shades the wording (a second interview round, a late rejection).
    An unknown status raises ValueError."""
    new = ApplicationStatus(new_status)
    old = ApplicationStatus(old_status) if old_status else None
    job = " ".join(job_title.split())
    org = " ".join(company.split())
    match new:
        case ApplicationStatus.APPLIED:
            return (
                f"Application sent: {job} at {org}",
                f"Your application for {job} at {org} is in. We'll let you know as "
                "soon as it moves.",
            )
        case ApplicationStatus.SCREENING:
            return (
                f"{org} is reviewing your application",
                f"Your application for {job} has reached screening: someone at {org} "
                "is looking at it now.",
            )
        case ApplicationStatus.INTERVIEW if old is ApplicationStatus.INTERVIEW:
            return (
                f"Next interview round: {job} at {org}",
                f"{org} would like to continue the conversation about {job} with "
                "another interview. You are clearly making an impression.",
            )
        case ApplicationStatus.INTERVIEW:
            return (
                f"Interview stage: {job} at {org}",
                f"Good news: {org} wants to talk with you about {job}. Look out for "
                "an invitation, and take a moment to prepare.",
            )
        case ApplicationStatus.OFFER:
            return (
                f"Offer from {org} for {job}",
                f"Congratulations: {org} has made you an offer for {job}. Take the "
                "time you need to read it through before you answer.",
            )
        case ApplicationStatus.REJECTED:
            stage = (
                " after your interviews"
                if old in {ApplicationStatus.INTERVIEW, ApplicationStatus.OFFER}
                else ""
            )
            return (
                f"Update on your application to {org}",
                f"{org} has decided not to go ahead with your application for {job}"
                f"{stage}. That is disappointing to hear, and it is no verdict on "
                "your worth: we will keep looking for roles that fit you.",
            )
        case ApplicationStatus.WITHDRAWN:
            return (
                f"Application withdrawn: {job} at {org}",
                f"You withdrew your application for {job} at {org}. We won't send "
                "further updates or reminders about it.",
            )
        case ApplicationStatus.HIRED:
            return (
                f"You're hired at {org}!",
                f"Congratulations on your new role as {job} at {org}. We'll stop "
                "sending updates about this application. Have a great start!",
            )
    raise ValueError(f"no wording for status {new!r}")  # pragma: no cover


# ---------------------------------------------------------------- meetings

_LEADS = {"24h": "in 24 hours", "1h": "in 1 hour"}


def reminder_lead(lead: str) -> str:
    """ "24h" → "in 24 hours", "1h" → "in 1 hour"."""
    try:
        return _LEADS[lead]
    except KeyError:
        raise ValueError(
            f"unknown reminder lead {lead!r}; expected one of {sorted(_LEADS)}"
        ) from None


def time_range(starts_at: datetime, ends_at: datetime, timezone: str) -> str:
    """A meeting's time in the reader's zone: "Tuesday 24 November, 14:00" to "15:00
    (Europe/Berlin)" joined by an en dash; a meeting that crosses midnight names both
    days. Naive times are read as UTC."""
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"{timezone!r} is not an IANA time zone") from exc
    start = _aware(starts_at).astimezone(zone)
    end = _aware(ends_at).astimezone(zone)
    if end.date() == start.date():
        return f"{_day(start)}, {start:%H:%M}{_EN_DASH}{end:%H:%M} ({timezone})"
    return f"{_day(start)}, {start:%H:%M} {_EN_DASH} {_day(end)}, {end:%H:%M} ({timezone})"


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip


def _day(moment: datetime) -> str:
    # spelled out here rather than with %A/%B, which follow the process locale
    return f"{_WEEKDAYS[moment.weekday()]} {moment.day} {_MONTHS[moment.month - 1]}"


# ---------------------------------------------------------------- small wording


def count_noun(count: int, singular: str, plural: str | None = None) -> str:
    """ "1 job", "3 jobs", "0 matches" (with ``plural="matches"``)."""
    noun = singular if count == 1 else (plural or f"{singular}s")
    return f"{count:,} {noun}"
