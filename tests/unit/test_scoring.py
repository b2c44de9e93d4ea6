"""Hard filters, skill overlap and the blended score (services/matcher/scoring.py)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from services.matcher.scoring import (
    JobFacts,
    Scored,
    Seeker,
    Weights,
    below_min_score,
    min_similarity,
    passes_filters,
    score,
    skill_overlap,
    vector_part,
)

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


def job(**changes: object) -> JobFacts:
    base = JobFacts(
        job_id="j1",
        title="Registered Nurse - ICU",
        company="St. Brigid's",
        location="Boston, MA",
        remote=False,
        salary_min=90_000,
        salary_max=120_000,
        job_type="full_time",
        posted_at=NOW - timedelta(days=2),
        skills=frozenset({"acls", "bls", "critical care", "patient assessment"}),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def seeker(**changes: object) -> Seeker:
    base = Seeker(
        user_id="u1",
        location="Boston, MA",
        skills=frozenset({"acls", "bls", "critical care", "epic"}),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def passes(s: Seeker, j: JobFacts, max_age_days: float | None = None) -> str | None:
    return passes_filters(s, j, now=NOW, max_age_days=max_age_days)


# -- location ---------------------------------------------------------------------


def test_a_job_in_the_seekers_city_passes() -> None:
    assert passes(seeker(location="boston"), job(location="Boston, MA")) is None


def test_a_job_elsewhere_is_excluded_for_its_place() -> None:
    assert passes(seeker(location="Denver, CO"), job(location="Boston, MA")) == "location"


def test_a_shared_region_alone_is_not_the_same_place() -> None:
    assert passes(seeker(location="Austin, TX"), job(location="Dallas, TX")) == "location"


def test_a_job_named_by_region_reaches_seekers_in_that_region() -> None:
    assert passes(seeker(location="Austin, Texas"), job(location="Texas")) is None


def test_a_city_matches_as_whole_words_only() -> None:
    # "York" is a word of "York, UK", not of "Yorkshire"
    assert passes(seeker(location="York, UK"), job(location="Yorkshire, UK")) == "location"


def test_a_remote_job_passes_a_remote_ok_seeker_elsewhere() -> None:
    remote = job(location="Remote (US)", remote=True)
    assert passes(seeker(location="Denver, CO", remote_ok=True), remote) is None


def test_a_remote_job_passes_a_seeker_who_did_not_say() -> None:
    remote = job(location=None, remote=True)
    assert passes(seeker(location="Denver, CO", remote_ok=None), remote) is None


def test_a_remote_job_elsewhere_is_excluded_for_a_seeker_who_wants_on_site() -> None:
    remote = job(location="New York, NY", remote=True)
    assert passes(seeker(location="Denver, CO", remote_ok=False), remote) == "location"


def test_a_seeker_without_a_place_is_not_filtered_on_place() -> None:
    assert passes(seeker(location=None), job(location="Anywhere")) is None


# -- salary, type, title, age ---------------------------------------------------------


def test_a_salary_floor_above_the_jobs_maximum_excludes_it() -> None:
    assert passes(seeker(desired_salary=130_000), job(salary_max=120_000)) == "salary"


def test_a_salary_floor_inside_the_jobs_range_passes() -> None:
    assert passes(seeker(desired_salary=100_000), job()) is None


def test_a_job_without_a_salary_is_not_excluded_by_a_floor() -> None:
    assert passes(seeker(desired_salary=100_000), job(salary_min=None, salary_max=None)) is None


def test_a_job_stating_only_a_minimum_is_judged_by_it() -> None:
    only_min = job(salary_min=80_000, salary_max=None)
    assert passes(seeker(desired_salary=70_000), only_min) is None
    assert passes(seeker(desired_salary=90_000), only_min) == "salary"


def test_a_job_type_the_seeker_did_not_ask_for_is_excluded() -> None:
    wants = seeker(job_types=frozenset({"full_time", "part_time"}))
    assert passes(wants, job(job_type="contract")) == "job_type"
    assert passes(wants, job(job_type="part_time")) is None


def test_title_keywords_are_alternatives_matched_as_words() -> None:
    wants = seeker(title_keywords=("RN", "nurse"))
    assert passes(wants, job(title="Registered Nurse - ICU")) is None
    assert passes(wants, job(title="ICU RN, nights")) is None
    assert passes(wants, job(title="Nursery Teacher")) == "title"


def test_a_job_older_than_the_limit_is_excluded() -> None:
    old = job(posted_at=NOW - timedelta(days=31))
    assert passes(seeker(), old, max_age_days=30) == "age"
    assert passes(seeker(), old, max_age_days=None) is None
    assert passes(seeker(), job(posted_at=NOW - timedelta(days=29)), max_age_days=30) is None


def test_the_first_failing_filter_is_reported() -> None:
    far_and_cheap = job(location="Denver, CO", salary_max=10)
    assert passes(seeker(desired_salary=50_000), far_and_cheap) == "location"


# -- minimum score ---------------------------------------------------------------------


def test_a_score_below_the_seekers_minimum_is_rejected() -> None:
    scored = Scored(0.55, {"vector": 0.4, "skills": 0.15})
    assert below_min_score(seeker(min_score=0.6), scored) == "score"
    assert below_min_score(seeker(min_score=0.55), scored) is None


# -- overlap and score --------------------------------------------------------------------


def test_overlap_is_the_share_of_the_jobs_skills_the_seeker_has() -> None:
    ratio, matched, missing = skill_overlap(
        {"acls", "bls", "critical care", "epic"},
        {"acls", "bls", "critical care", "patient assessment"},
    )
    assert ratio == pytest.approx(0.75)
    assert matched == ("acls", "bls", "critical care")
    assert missing == ("patient assessment",)


def test_extra_seeker_skills_do_not_lower_the_overlap() -> None:
    job_skills = {"sql", "excel", "tableau"}
    few = skill_overlap({"sql", "excel", "tableau"}, job_skills)[0]
    many = skill_overlap({"sql", "excel", "tableau", "python", "spark"}, job_skills)[0]
    assert few == many == 1.0


def test_a_job_naming_fewer_than_three_skills_counts_as_naming_three() -> None:
    # one recognised skill ("english") is no evidence of a full fit
    assert skill_overlap({"english", "sql"}, {"english"}) == (1 / 3, ("english",), ())
    assert skill_overlap({"sql"}, {"sql", "excel"})[0] == pytest.approx(1 / 3)
    assert skill_overlap({"sql"}, set()) == (0.0, (), ())


def test_the_parts_add_up_to_the_score() -> None:
    scored = score(0.62, seeker(), job())
    assert scored.parts["vector"] == pytest.approx(0.7 * 0.62)
    assert scored.parts["skills"] == pytest.approx(0.3 * 0.75)
    assert sum(scored.parts.values()) == pytest.approx(scored.score)
    assert scored.matched_skills == ("acls", "bls", "critical care")
    assert scored.missing_skills == ("patient assessment",)


def test_configured_weights_are_normalised() -> None:
    scored = score(0.5, seeker(), job(), Weights(vector=2, skills=2))
    assert scored.score == pytest.approx(0.5 * 0.5 + 0.5 * 0.75)


def test_without_skills_on_one_side_the_score_is_the_similarity() -> None:
    scored = score(0.6, seeker(skills=frozenset()), job())
    assert scored.score == pytest.approx(0.6)
    assert scored.parts == {"vector": pytest.approx(0.6), "skills": 0.0}
    assert scored.missing_skills == tuple(sorted(job().skills))


@pytest.mark.parametrize(("cosine", "part"), [(-0.3, 0.0), (0.0, 0.0), (0.42, 0.42), (1.2, 1.0)])
def test_similarity_is_clipped_to_the_unit_interval(cosine: float, part: float) -> None:
    assert vector_part(cosine) == pytest.approx(part)


def test_the_score_stays_in_the_unit_interval() -> None:
    assert score(1.0, seeker(skills=job().skills), job()).score == pytest.approx(1.0)
    assert score(-1.0, seeker(skills=frozenset({"welding"})), job()).score == 0.0


@pytest.mark.parametrize(
    ("vector", "skills"), [(-0.1, 0.3), (0.0, 0.0), (float("nan"), 0.3), (float("inf"), 0.3)]
)
def test_invalid_weights_are_refused(vector: float, skills: float) -> None:
    with pytest.raises(ValueError, match="weight"):
        Weights(vector=vector, skills=skills)


# -- the similarity a search may stop at ---------------------------------------------


@pytest.mark.parametrize("weights", [Weights(), Weights(0.5, 0.5), Weights(1.0, 0.0)])
@pytest.mark.parametrize("threshold", [0.35, 0.5, 0.8])
def test_no_pair_below_min_similarity_reaches_the_threshold(
    weights: Weights, threshold: float
) -> None:
    """The index leaves out candidates under this bound: none of them may be a match,
    whatever the skills on either side."""
    bound = min_similarity(threshold, weights)
    if bound is None:  # then a full skill match with no similarity at all is kept
        assert score(0.0, seeker(), job(skills=seeker().skills), weights).score >= threshold
        return
    all_skills = job().skills
    for have in [frozenset(), frozenset(list(all_skills)[:1]), all_skills]:
        for asked in [frozenset(), all_skills]:
            for step in range(-100, 101):
                similarity = step / 100
                scored = score(similarity, seeker(skills=have), job(skills=asked), weights)
                if scored.score >= threshold:
                    assert similarity >= bound
    # and it is tight: a full skill match just above it is kept
    top = score(bound + 2e-6, seeker(skills=all_skills), job(skills=all_skills), weights)
    assert top.score >= threshold or weights.skills == 0


def test_no_similarity_bound_when_skills_alone_can_reach_the_threshold() -> None:
    assert min_similarity(0.25, Weights(0.7, 0.3)) is None
    assert min_similarity(0.5, Weights(0.0, 1.0)) is None
