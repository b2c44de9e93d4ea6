"""Match quality: how well the matcher ranks jobs for a résumé, three ways.

Loads the hand-labelled set in ``bench/data/match_quality.json`` (résumés and jobs
across fields, each résumé with its relevant jobs graded 2 = strong, 1 = partial),
embeds every text with the project's embedder (the packaged MiniLM), extracts
skills with the project's extractor, and ranks all jobs for each résumé by

- ``vector``: cosine similarity of the two vectors alone;
- ``skills``: skill overlap alone (share of the job's skills the résumé has);
- ``hybrid``: the matcher's score, ``services.matcher.scoring.score`` with the
  default weights (0.7 vector, 0.3 skills).

Hard filters (place, pay, job type, age) are off: this measures ranking, and the
labels judge the role only. Prints precision@5 (share of the top five that are
relevant at any grade) and nDCG@10 (graded gain 2^grade - 1), means over
résumés, and exits 1 unless hybrid beats both others on both figures.

    .venv/bin/python bench/match_quality.py
    .venv/bin/python bench/match_quality.py --per-resume --explain r-icu-nurse

Needs no broker or database; the embedding model is the packaged one (assembled
under ``HERALD_DATA_DIR`` if need be) or ``HERALD_EMBEDDING_MODEL_DIR``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import statistics
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from services.matcher.embedding import Embedder
from services.matcher.scoring import JobFacts, Seeker, Weights, score, skill_overlap
from services.matcher.skills import SkillExtractor
from shared.settings import Settings

DATA = Path(__file__).resolve().parent / "data" / "match_quality.json"
METHODS = ("vector", "skills", "hybrid")
NOW = datetime(2026, 6, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Case:
    resume_id: str
    field: str
    relevant: Mapping[str, int]


def job_text(job: Mapping[str, object]) -> str:
    # as the matcher's handlers build it: title, company, description
    return f"{job['title']}\n{job['company']}\n{job['description']}"


def resume_text(resume: Mapping[str, object]) -> str:
    return f"{resume['title']}\n{resume['text']}"


def precision_at(k: int, ranked: Sequence[str], relevant: Mapping[str, int]) -> float:
    return sum(1 for j in ranked[:k] if relevant.get(j, 0) > 0) / k


def ndcg_at(k: int, ranked: Sequence[str], relevant: Mapping[str, int]) -> float:
    def dcg(grades: Sequence[int]) -> float:
        return sum(((1 << g) - 1) / math.log2(i + 2) for i, g in enumerate(grades[:k]))

    ideal = dcg(sorted(relevant.values(), reverse=True))
    return dcg([relevant.get(j, 0) for j in ranked]) / ideal if ideal else 0.0


def rank(job_ids: Sequence[str], scores: Sequence[float], resume_id: str) -> list[str]:
    """Jobs by descending score; ties in a fixed pseudo-random order (not the file's
    order, which groups jobs by field and would flatter a method that ties a lot)."""

    def tie(job_id: str) -> str:
        return hashlib.sha256(f"{resume_id}|{job_id}".encode()).hexdigest()

    order = sorted(range(len(job_ids)), key=lambda i: (-scores[i], tie(job_ids[i])))
    return [job_ids[i] for i in order]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument(
        "--model-dir",
        type=Path,
        help="fastembed model directory (default: HERALD_EMBEDDING_MODEL_DIR or the packaged one)",
    )
    parser.add_argument("--vector-weight", type=float, default=Weights().vector)
    parser.add_argument("--skills-weight", type=float, default=Weights().skills)
    parser.add_argument("--per-resume", action="store_true", help="print each résumé's figures")
    parser.add_argument(
        "--explain", metavar="RESUME_ID", help="show one résumé's top five with explanations"
    )
    args = parser.parse_args(argv)
    weights = Weights(vector=args.vector_weight, skills=args.skills_weight)

    data = json.loads(args.data.read_text(encoding="utf-8"))
    jobs, resumes = data["jobs"], data["resumes"]
    job_ids = [j["id"] for j in jobs]
    cases = [Case(r["id"], r["field"], r["relevant"]) for r in resumes]
    fields = sorted({j["field"] for j in jobs})
    print(
        f"{len(resumes)} résumés, {len(jobs)} jobs in {len(fields)} fields, "
        f"{sum(len(c.relevant) for c in cases)} relevance labels"
    )

    t0 = time.perf_counter()
    extractor = SkillExtractor()
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    job_skills = [extractor.extract(job_text(j)) for j in jobs]
    resume_skills = [extractor.extract(resume_text(r)) for r in resumes]
    per_text_ms = (time.perf_counter() - t0) * 1000 / (len(jobs) + len(resumes))
    print(
        f"skills: vocabulary loaded in {load_s:.2f} s, {per_text_ms:.2f} ms per text, "
        f"{statistics.mean(len(s) for s in job_skills):.1f} per job, "
        f"{statistics.mean(len(s) for s in resume_skills):.1f} per résumé"
    )

    t0 = time.perf_counter()
    embedder = Embedder(args.model_dir) if args.model_dir else Embedder.from_settings(Settings())
    try:
        job_vectors = embedder.embed_sync([job_text(j) for j in jobs])
        resume_vectors = embedder.embed_sync([resume_text(r) for r in resumes])
    finally:
        embedder.close()
    print(f"embedding: {time.perf_counter() - t0:.1f} s for {len(jobs) + len(resumes)} texts")
    similarity = np.asarray(resume_vectors @ job_vectors.T, dtype=np.float64)

    facts = [
        JobFacts(
            job_id=j["id"],
            title=j["title"],
            company=j["company"],
            location=j["location"],
            remote=j["remote"],
            salary_min=j["salary_min"],
            salary_max=j["salary_max"],
            job_type=j["job_type"],
            posted_at=NOW - timedelta(days=j["posted_days_ago"]),
            skills=skills,
        )
        for j, skills in zip(jobs, job_skills, strict=True)
    ]

    figures: dict[str, dict[str, list[float]]] = {m: {"p@5": [], "ndcg@10": []} for m in METHODS}
    per_resume: list[tuple[str, dict[str, tuple[float, float]]]] = []
    for r_i, (resume, case) in enumerate(zip(resumes, cases, strict=True)):
        seeker = Seeker(user_id=resume["id"], skills=resume_skills[r_i])
        sims = similarity[r_i]
        scores: dict[str, list[float]] = {
            "vector": [float(x) for x in sims],
            "skills": [skill_overlap(seeker.skills, f.skills)[0] for f in facts],
            "hybrid": [
                score(float(x), seeker, f, weights).score for x, f in zip(sims, facts, strict=True)
            ],
        }
        row = {}
        for method, by_job in scores.items():
            ranked = rank(job_ids, by_job, case.resume_id)
            p5 = precision_at(5, ranked, case.relevant)
            n10 = ndcg_at(10, ranked, case.relevant)
            figures[method]["p@5"].append(p5)
            figures[method]["ndcg@10"].append(n10)
            row[method] = (p5, n10)
        per_resume.append((case.resume_id, row))
        if args.explain == case.resume_id:
            explain(resume, resume_skills[r_i], facts, sims, seeker, weights, case)

    if args.per_resume:
        print(f"\n{'résumé':<26}" + "".join(f"{m + ' p@5/nDCG':>22}" for m in METHODS))
        for resume_id, row in per_resume:
            cells = "".join(f"{row[m][0]:>13.2f} / {row[m][1]:.2f}" for m in METHODS)
            print(f"{resume_id:<26}{cells}")

    mean = {m: {k: statistics.mean(v) for k, v in figures[m].items()} for m in METHODS}
    print(f"\nweights: vector {weights.vector}, skills {weights.skills}; hard filters off")
    print(f"{'method':<8} {'precision@5':>12} {'nDCG@10':>9}")
    for m in METHODS:
        print(f"{m:<8} {mean[m]['p@5']:>12.3f} {mean[m]['ndcg@10']:>9.3f}")

    beaten = [
        f"{metric} ({mean['hybrid'][metric]:.3f} vs {other} {mean[other][metric]:.3f})"
        for other in ("vector", "skills")
        for metric in ("p@5", "ndcg@10")
        if mean["hybrid"][metric] <= mean[other][metric]
    ]
    if beaten:
        print("FAIL: hybrid does not beat " + "; ".join(beaten))
        return 1
    print("ok: hybrid beats vector-only and skills-only on both figures")
    return 0


def explain(
    resume: Mapping[str, object],
    skills: frozenset[str],
    facts: Sequence[JobFacts],
    sims: np.ndarray,
    seeker: Seeker,
    weights: Weights,
    case: Case,
) -> None:
    print(f"\n{resume['id']} ({resume['title']}): skills {sorted(skills)}")
    scored = sorted(
        ((score(float(sims[i]), seeker, f, weights), f) for i, f in enumerate(facts)),
        key=lambda sf: -sf[0].score,
    )
    for s, f in scored[:5]:
        grade = case.relevant.get(f.job_id, 0)
        parts = ", ".join(f"{k} {v:.3f}" for k, v in s.parts.items())
        print(f"  {s.score:.3f} [{grade}] {f.job_id}: {parts}")
        print(f"      matched {list(s.matched_skills)}")
        print(f"      missing {list(s.missing_skills)}")


if __name__ == "__main__":
    sys.exit(main())
