"""The demo's job board: three people in three fields, and five jobs.

Fictional people and companies. Each seeker has one job that fits (a nurse, a
backend engineer, an accountant) and the rest do not, so the matcher has something
to decide. Ids are stable, so a second run updates the same users, résumés and jobs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SOURCE = "https://jobs.example.org/demo"


@dataclass(frozen=True)
class Person:
    user_id: str
    name: str
    email: str
    timezone: str
    resume: dict[str, Any]

    def signed_up(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "email": self.email,
            "name": self.name,
            "timezone": self.timezone,
        }


AMARA = Person(
    "demo-amara",
    "Amara Okafor",
    "amara.okafor@example.org",
    "Europe/London",
    {
        "title": "Registered Nurse, adult intensive care",
        "text": (
            "Registered nurse with seven years in adult intensive care at a 900-bed "
            "teaching hospital. I look after ventilated and post-operative patients, "
            "run sepsis and early-warning pathways, titrate infusions, and mentor "
            "newly qualified nurses and students on placement. Band 6 since 2022; "
            "NMC registered; Advanced Life Support certified."
        ),
        "skills": ["patient assessment", "ventilator care", "ALS", "mentoring"],
        "location": "Manchester, UK",
        "remote_ok": False,
        "desired_salary": 38000,
    },
)
JONAS = Person(
    "demo-jonas",
    "Jonas Berg",
    "jonas.berg@example.org",
    "Europe/Berlin",
    {
        "title": "Backend Engineer",
        "text": (
            "Backend engineer with six years of experience building web services in "
            "Python. At a fintech I designed the ledger and payout services in Django "
            "and FastAPI on PostgreSQL, moved slow reports to Celery workers with "
            "Redis, and cut p95 API latency from 800 ms to 120 ms. I write REST APIs, "
            "pytest suites and SQL migrations, and deploy with Docker on AWS."
        ),
        "skills": ["python", "django", "fastapi", "postgresql", "redis", "docker"],
        "location": "Berlin, Germany",
        "remote_ok": True,
        "desired_salary": 70000,
    },
)
LUCIA = Person(
    "demo-lucia",
    "Lucía Romero",
    "lucia.romero@example.org",
    "Europe/Madrid",
    {
        "title": "Staff Accountant",
        "text": (
            "Staff accountant with five years in month-end close for a retail group: "
            "journal entries, balance sheet reconciliations, accruals and prepayments, "
            "fixed asset registers and VAT returns. I prepare audit schedules, work in "
            "SAP and Excel (pivot tables, lookups) and improved the close from eight "
            "working days to five."
        ),
        "skills": ["general ledger", "reconciliation", "sap", "excel", "vat"],
        "location": "Madrid, Spain",
        "remote_ok": False,
        "desired_salary": 32000,
    },
)
PEOPLE = (AMARA, JONAS, LUCIA)


def jobs(posted_at: str) -> list[dict[str, Any]]:
    """The jobs, posted at ``posted_at`` (the matcher only matches recent jobs)."""
    base = {"posted_at": posted_at, "job_type": "full_time"}
    return [
        base
        | {
            "job_id": "demo-job-icu-nurse",
            "title": "Critical Care Staff Nurse",
            "company": "Northgate General Hospital",
            "description": (
                "Join our 24-bed adult intensive care unit. You will assess and care "
                "for ventilated and post-operative patients, manage infusions, follow "
                "sepsis pathways, and mentor students and newly qualified nurses. "
                "NMC registration and life support training required."
            ),
            "location": "Manchester, UK",
            "remote": False,
            "salary_min": 37000,
            "salary_max": 45000,
            "currency": "GBP",
            "url": "https://jobs.example.org/jobs/demo-job-icu-nurse",
            "skills": ["patient assessment", "ventilator care", "ALS"],
        },
        base
        | {
            "job_id": "demo-job-backend",
            "title": "Python Backend Engineer",
            "company": "Ledgerly",
            "description": (
                "Ledgerly builds invoicing and cash-flow software for small businesses. "
                "You will design and run the Python services behind payments and "
                "bookkeeping: Django and FastAPI, PostgreSQL, Redis and Celery, "
                "deployed with Docker on AWS. REST APIs, code review, pytest."
            ),
            "location": "Berlin, Germany",
            "remote": True,
            "salary_min": 65000,
            "salary_max": 85000,
            "currency": "EUR",
            "url": "https://jobs.example.org/jobs/demo-job-backend",
            "skills": ["python", "django", "postgresql", "redis", "aws"],
        },
        base
        | {
            "job_id": "demo-job-accountant",
            "title": "Accountant, month-end close",
            "company": "Mercado Verde",
            "description": (
                "Our finance team in Madrid is looking for an accountant to own the "
                "month-end close: journal entries, reconciliations, accruals, fixed "
                "assets and VAT returns, and the audit file. SAP and advanced Excel."
            ),
            "location": "Madrid, Spain",
            "remote": False,
            "salary_min": 30000,
            "salary_max": 38000,
            "currency": "EUR",
            "url": "https://jobs.example.org/jobs/demo-job-accountant",
            "skills": ["general ledger", "reconciliation", "sap", "excel"],
        },
        base
        | {
            "job_id": "demo-job-electrician",
            "title": "Maintenance Electrician",
            "company": "Halden Foods",
            "description": (
                "Maintain and repair production lines at our bakery: fault-finding on "
                "motors, PLC-controlled machinery and three-phase distribution, "
                "planned maintenance and testing. Shift pattern four on, four off."
            ),
            "location": "Manchester, UK",
            "remote": False,
            "salary_min": 36000,
            "salary_max": 42000,
            "currency": "GBP",
            "url": "https://jobs.example.org/jobs/demo-job-electrician",
        },
        base
        | {
            "job_id": "demo-job-teacher",
            "title": "Primary School Teacher (Year 4)",
            "company": "Riverside Primary",
            "description": (
                "A warm, well-led primary school seeks a Year 4 class teacher from "
                "January: planning and teaching the national curriculum, assessment, "
                "and working with parents and teaching assistants. QTS required."
            ),
            "location": "Leeds, UK",
            "remote": False,
            "salary_min": 31000,
            "salary_max": 41000,
            "currency": "GBP",
            "url": "https://jobs.example.org/jobs/demo-job-teacher",
        },
    ]


# Amara applied to the ICU post; the hospital moves her application to interview
# and books the interview (in an hour, so its reminder comes during the demo). Each
# run is a new application (the same status change of the same application again
# would rightly be dropped as a repeat) and moves the one interview.
APPLICATION_PREFIX = "demo-app-amara-icu-"
MEETING_ID = "demo-meeting-amara-icu"
# the job each person (in PEOPLE's order) should be matched to
MATCHES = ("demo-job-icu-nurse", "demo-job-backend", "demo-job-accountant")
