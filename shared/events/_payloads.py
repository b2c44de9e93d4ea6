"""Payload models for every event type of DESIGN §8. These models *are* the schemas.

Facts are past tense (``JobPosted``), requests imperative (``RequestNotification``).
Unknown extra fields are tolerated so producers can add fields before we read them;
missing required fields are not. Every time carries its UTC offset (RFC 3339): a
naive time is refused rather than guessed. Bump ``schema_version`` on a breaking change.
"""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Any, ClassVar, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AnyHttpUrl, AwareDatetime, BaseModel, ConfigDict, Field, field_validator

NonEmpty = Field(min_length=1, max_length=256)


def example(**data: Any) -> ConfigDict:
    """A model's example ``data``: in its JSON schema and in docs/asyncapi.yaml, and
    checked by a test to validate against the model."""
    return ConfigDict(json_schema_extra={"examples": [data]})


class Payload(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    event_type: ClassVar[str]
    schema_version: ClassVar[int] = 1

    def event_type_name(self) -> str:
        return self.event_type

    @classmethod
    def schema_urn(cls) -> str:
        return f"urn:herald:{cls.event_type}:v{cls.schema_version}"


def _iana(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"{value!r} is not an IANA time zone") from exc
    return value


class JobType(StrEnum):
    FULL_TIME = "full_time"
    PART_TIME = "part_time"
    CONTRACT = "contract"
    INTERNSHIP = "internship"
    TEMPORARY = "temporary"


class ApplicationStatus(StrEnum):
    APPLIED = "applied"
    SCREENING = "screening"
    INTERVIEW = "interview"
    OFFER = "offer"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"
    HIRED = "hired"


class Priority(StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


class UserSignedUp(Payload):
    event_type = "user.signed_up"
    model_config = example(
        user_id="u-amara",
        email="amara.okafor@example.org",
        name="Amara Okafor",
        timezone="Europe/London",
        locale="en-GB",
    )
    user_id: str = NonEmpty
    email: str = Field(min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")
    name: str = Field(default="", max_length=256)
    timezone: str = "UTC"
    locale: str = Field(default="en", max_length=35)

    _tz = field_validator("timezone")(_iana)


class UserDeleted(Payload):
    event_type = "user.deleted"
    model_config = example(user_id="u-amara")
    user_id: str = NonEmpty


class ResumeUpserted(Payload):
    event_type = "resume.upserted"
    model_config = example(
        user_id="u-amara",
        title="Registered Nurse, adult intensive care",
        text="Registered nurse with seven years in adult intensive care at a 900-bed "
        "teaching hospital: ventilated and post-operative patients, sepsis pathways, "
        "mentoring newly qualified nurses.",
        skills=["patient assessment", "ventilator care", "BLS", "ALS"],
        location="Manchester, UK",
        remote_ok=False,
        desired_salary=40000,
    )
    user_id: str = NonEmpty
    text: str = Field(min_length=1, max_length=200_000)
    title: str | None = None
    skills: list[str] = Field(default_factory=list)
    location: str | None = None
    remote_ok: bool | None = None
    desired_salary: float | None = Field(default=None, ge=0)
    # the seeker's hard wishes: only these job types; only titles with one of these
    # words or phrases (empty: any)
    job_types: list[JobType] = Field(default_factory=list)
    title_keywords: list[str] = Field(default_factory=list, max_length=20)


class ResumeDeleted(Payload):
    event_type = "resume.deleted"
    model_config = example(user_id="u-amara")
    user_id: str = NonEmpty


class JobPosted(Payload):
    event_type = "job.posted"
    model_config = example(
        job_id="job-4711",
        title="Critical Care Staff Nurse",
        company="Northgate General Hospital",
        description="Join our 24-bed adult ICU. You will care for ventilated patients, "
        "work with the outreach team and mentor students. NMC registration required.",
        location="Manchester, UK",
        remote=False,
        salary_min=38000,
        salary_max=46000,
        currency="GBP",
        job_type="full_time",
        url="https://jobs.example.org/jobs/4711",
        posted_at="2026-11-23T08:00:00Z",
        expires_at="2026-12-23T00:00:00Z",
        skills=["patient assessment", "ventilator care", "BLS"],
    )
    job_id: str = NonEmpty
    title: str = Field(min_length=1, max_length=512)
    company: str = Field(min_length=1, max_length=512)
    description: str = Field(max_length=200_000)
    # nullable fields default to null: events travel without their null fields
    location: str | None = None
    remote: bool
    salary_min: float | None = Field(default=None, ge=0)
    salary_max: float | None = Field(default=None, ge=0)
    currency: str | None = Field(default=None, max_length=3)
    job_type: JobType
    url: AnyHttpUrl
    posted_at: AwareDatetime
    expires_at: AwareDatetime | None = None
    skills: list[str] = Field(default_factory=list)


class JobUpdated(JobPosted):
    event_type = "job.updated"


class JobClosed(Payload):
    event_type = "job.closed"
    model_config = example(job_id="job-4711")
    job_id: str = NonEmpty


class JobExpired(Payload):
    """Published by the matcher (the owner of the job catalogue) when it closes a job
    whose ``expires_at`` passed; checked on ``tick.hourly``, so up to an hour late."""

    event_type = "job.expired"
    model_config = example(job_id="job-4711", expires_at="2026-12-23T00:00:00Z")
    job_id: str = NonEmpty
    expires_at: AwareDatetime


class AlertSaved(Payload):
    """A saved search ("job alert"): re-run on its tick, each job announced once."""

    event_type = "alert.saved"
    model_config = example(
        alert_id="alert-17",
        user_id="u-amara",
        keywords=["nurse", "ICU"],
        location="Manchester",
        salary_floor=38000,
        job_types=["full_time"],
        frequency="daily",
    )
    alert_id: str = NonEmpty
    user_id: str = NonEmpty
    keywords: list[str] = Field(default_factory=list, max_length=20)
    location: str | None = Field(default=None, max_length=256)
    remote: bool | None = None
    salary_floor: float | None = Field(default=None, ge=0)
    job_types: list[JobType] = Field(default_factory=list)
    frequency: Literal["daily", "weekly"] = "daily"


class AlertDeleted(Payload):
    event_type = "alert.deleted"
    model_config = example(alert_id="alert-17", user_id="u-amara")
    alert_id: str = NonEmpty
    user_id: str = NonEmpty


class ApplicationStatusChanged(Payload):
    event_type = "application.status_changed"
    model_config = example(
        application_id="app-981",
        user_id="u-amara",
        job_id="job-4711",
        old_status="screening",
        new_status="interview",
        note="The ward manager would like to meet you on Friday.",
        interview_at="2026-11-27T10:00:00Z",
    )
    application_id: str = NonEmpty
    user_id: str = NonEmpty
    job_id: str = NonEmpty
    new_status: ApplicationStatus
    old_status: ApplicationStatus | None = None
    note: str | None = Field(default=None, max_length=10_000)
    # when the interview is (with new_status interview): the scheduler reminds of it
    interview_at: AwareDatetime | None = None


class MeetingScheduled(Payload):
    event_type = "meeting.scheduled"
    model_config = example(
        meeting_id="mtg-301",
        user_id="u-amara",
        title="Interview: Critical Care Staff Nurse",
        starts_at="2026-11-27T10:00:00Z",
        ends_at="2026-11-27T10:45:00Z",
        join_url="https://meet.example.org/mtg-301",
    )
    meeting_id: str = NonEmpty
    user_id: str = NonEmpty
    title: str = Field(min_length=1, max_length=512)
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    join_url: AnyHttpUrl | None = None


class MeetingCancelled(MeetingScheduled):
    event_type = "meeting.cancelled"


class MeetingStarted(MeetingScheduled):
    """Published by the scheduler when a meeting's start time comes (scheduled → active)."""

    event_type = "meeting.started"


class MeetingCompleted(MeetingScheduled):
    """Published by the scheduler when a meeting's end time comes (active → completed)."""

    event_type = "meeting.completed"


class RequestNotification(Payload):
    event_type = "notification.requested"
    model_config = example(
        user_id="u-amara",
        type="profile.reminder",
        title="Your profile is almost complete",
        body="Add your registration number so hospitals can verify it.",
        data={"url": "https://jobs.example.org/profile"},
        priority="normal",
        dedup_key="profile-completion",
    )
    user_id: str = NonEmpty
    type: str = Field(min_length=1, max_length=128)
    title: str = Field(min_length=1, max_length=1024)
    body: str = Field(max_length=100_000)
    data: dict[str, Any] = Field(default_factory=dict)
    priority: Priority = Priority.NORMAL
    channels: list[str] | None = None
    # only these of the user's channel endpoints (ids as /v1/me/channels lists them),
    # e.g. a test send to one of two webhooks; with ``channels``, both must allow it
    endpoint_ids: list[uuid.UUID] | None = Field(default=None, max_length=100)
    deliver_at: AwareDatetime | None = None
    dedup_key: str | None = Field(default=None, max_length=256)


class CancelNotification(Payload):
    """Cancel a delayed ``notification.requested`` (one with ``deliver_at``) before it
    goes out; ``request_id`` is that event's id."""

    event_type = "notification.cancel_requested"
    model_config = example(request_id="evt-5f2c9a", user_id="u-amara")
    request_id: str = NonEmpty
    user_id: str = NonEmpty


class JobSummary(BaseModel):
    """What a notification about a job shows, as the matcher held it when it matched:
    the consumer of a match needs no table of the matcher's to word it."""

    model_config = ConfigDict(extra="allow", frozen=True)

    title: str = Field(min_length=1, max_length=512)
    company: str = Field(min_length=1, max_length=512)
    location: str | None = None
    remote: bool = False
    salary_min: float | None = Field(default=None, ge=0)
    salary_max: float | None = Field(default=None, ge=0)
    currency: str | None = Field(default=None, max_length=3)
    url: AnyHttpUrl
    posted_at: AwareDatetime
    expires_at: AwareDatetime | None = None
    # "closed" once the job was closed or expired before the match was announced
    state: Literal["open", "closed"] = "open"


class MatchFound(Payload):
    event_type = "match.found"
    # v2: the job travels with the match (``job``), so a v1 message is refused
    schema_version = 2
    model_config = example(
        match_id="b1f0c3e2-5d7a-5c1e-9a51-2f3e4d5c6b7a",
        user_id="u-amara",
        job_id="job-4711",
        score=0.74,
        score_parts={"vector": 0.54, "skills": 0.2},
        matched_skills=["patient assessment", "ventilator care"],
        missing_skills=["bls"],
        reason="new_match",
        job={
            "title": "Critical Care Staff Nurse",
            "company": "Northgate General Hospital",
            "location": "Manchester, UK",
            "remote": False,
            "salary_min": 38000,
            "salary_max": 46000,
            "currency": "GBP",
            "url": "https://jobs.example.org/jobs/4711",
            "posted_at": "2026-11-23T08:00:00Z",
            "expires_at": "2026-12-23T00:00:00Z",
            "state": "open",
        },
    )
    match_id: str = NonEmpty
    user_id: str = NonEmpty
    job_id: str = NonEmpty
    score: float = Field(ge=0, le=1)
    score_parts: dict[str, float] = Field(default_factory=dict)
    matched_skills: list[str] = Field(default_factory=list)
    missing_skills: list[str] = Field(default_factory=list)
    reason: Literal["new_match", "score_improved", "alert"]
    job: JobSummary


class NotificationDelivered(Payload):
    event_type = "notification.delivered"
    model_config = example(
        notification_id="0c8e3f4a-6b2d-5e1f-8a9b-7c6d5e4f3a2b",
        user_id="u-amara",
        channel="email",
        attempts=1,
    )
    notification_id: str = NonEmpty
    user_id: str = NonEmpty
    channel: str = NonEmpty
    attempts: int = Field(ge=1)


class NotificationFailed(NotificationDelivered):
    event_type = "notification.failed"
    model_config = example(
        notification_id="0c8e3f4a-6b2d-5e1f-8a9b-7c6d5e4f3a2b",
        user_id="u-amara",
        channel="webhook",
        attempts=7,
        error="HTTP 503 from the receiver, retries exhausted",
    )
    error: str


class Tick(Payload):
    """``tick.<schedule>``: one per schedule slot; the id derives from both."""

    event_type = "tick.*"
    model_config = example(schedule="daily", slot="2026-11-23T09:00:00Z")
    schedule: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9_]+$")
    slot: AwareDatetime

    def event_type_name(self) -> str:
        return f"tick.{self.schedule}"


class ReminderDue(Payload):
    event_type = "reminder.due"
    model_config = example(
        reminder_id="9d8c7b6a-5f4e-5d3c-8b2a-1f0e9d8c7b6a",
        user_id="u-amara",
        kind="meeting_1h",
        subject_id="mtg-301",
        due_at="2026-11-27T09:00:00Z",
    )
    reminder_id: str = NonEmpty
    user_id: str = NonEmpty
    kind: str = NonEmpty
    subject_id: str = NonEmpty
    due_at: AwareDatetime


class DigestDue(Payload):
    event_type = "digest.due"
    model_config = example(
        user_id="u-amara",
        frequency="daily",
        window_start="2026-11-22T09:00:00Z",
        window_end="2026-11-23T09:00:00Z",
    )
    user_id: str = NonEmpty
    frequency: Literal["daily", "weekly"]
    window_start: AwareDatetime
    window_end: AwareDatetime


class DeliveryDue(Payload):
    """Internal to the dispatcher: one delivery (a notification on one endpoint) is
    due. Travels with its notification's priority, so urgent ones overtake."""

    event_type = "delivery.due"
    model_config = example(
        delivery_id="5a4b3c2d-1e0f-5a9b-8c7d-6e5f4a3b2c1d",
        notification_id="0c8e3f4a-6b2d-5e1f-8a9b-7c6d5e4f3a2b",
        user_id="u-amara",
        channel="webhook",
    )
    delivery_id: str = NonEmpty
    notification_id: str = NonEmpty
    user_id: str = NonEmpty
    channel: str = NonEmpty
    priority: Priority = Priority.NORMAL


class UrgentDeliveryDue(DeliveryDue):
    """An urgent delivery: on a queue and consumers of its own, so it never waits
    for a free slot behind slow sends to other endpoints."""

    event_type = "delivery.urgent"
    model_config = example(
        delivery_id="5a4b3c2d-1e0f-5a9b-8c7d-6e5f4a3b2c1d",
        notification_id="0c8e3f4a-6b2d-5e1f-8a9b-7c6d5e4f3a2b",
        user_id="u-amara",
        channel="discord",
        priority="urgent",
    )


ALL_PAYLOADS: tuple[type[Payload], ...] = (
    UserSignedUp,
    UserDeleted,
    ResumeUpserted,
    ResumeDeleted,
    JobPosted,
    JobUpdated,
    JobClosed,
    JobExpired,
    AlertSaved,
    AlertDeleted,
    ApplicationStatusChanged,
    MeetingScheduled,
    MeetingCancelled,
    MeetingStarted,
    MeetingCompleted,
    RequestNotification,
    CancelNotification,
    MatchFound,
    NotificationDelivered,
    NotificationFailed,
    Tick,
    ReminderDue,
    DigestDue,
    DeliveryDue,
    UrgentDeliveryDue,
)
_BY_TYPE = {model.event_type: model for model in ALL_PAYLOADS}

# What the systems around Herald publish (a job board, an ATS, a calendar). The rest
# are Herald's own business (matches, ticks, reminders, deliveries, outcomes): the
# gateway refuses them, since one would make Herald notify or send on a stranger's say.
INTEGRATOR_TYPES: frozenset[str] = frozenset(
    model.event_type
    for model in (
        UserSignedUp,
        UserDeleted,
        ResumeUpserted,
        ResumeDeleted,
        JobPosted,
        JobUpdated,
        JobClosed,
        ApplicationStatusChanged,
        MeetingScheduled,
        MeetingCancelled,
        RequestNotification,
        CancelNotification,
    )
)


def payload_model(event_type: str) -> type[Payload] | None:
    if event_type.startswith("tick."):
        return Tick
    return _BY_TYPE.get(event_type)
