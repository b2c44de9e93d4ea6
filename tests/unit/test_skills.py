"""Skill extraction with the real skill-extractor gazetteer (services/matcher/skills.py)."""

from __future__ import annotations

import pytest

from services.matcher.skills import SkillExtractor


@pytest.fixture(scope="module")
def skills() -> SkillExtractor:
    return SkillExtractor()


def test_the_whole_vocabulary_is_loaded(skills: SkillExtractor) -> None:
    # ~31,000 gazetteer names, less about a thousand generic words
    assert 25_000 < len(skills) < 32_000


def test_a_data_engineering_posting(skills: SkillExtractor) -> None:
    text = (
        "Senior Data Engineer. You will build batch and streaming pipelines in Python "
        "and SQL with Apache Airflow, model data in dbt on Snowflake, stream events "
        "through Kafka and deploy on AWS with Terraform and Docker."
    )
    assert {
        "python",
        "sql",
        "apache airflow",
        "dbt",
        "snowflake",
        "kafka",
        "aws",
        "terraform",
        "docker",
    } <= skills.extract(text)


def test_an_accounting_resume(skills: SkillExtractor) -> None:
    text = (
        "Staff accountant, three years. I own the month-end close: journal entries, "
        "bank reconciliations, accounts payable and accounts receivable under US GAAP, "
        "in QuickBooks and advanced Excel (pivot tables, VLOOKUP)."
    )
    assert {
        "month-end close",
        "journal entries",
        "accounts payable",
        "accounts receivable",
        "us gaap",
        "quickbooks",
        "advanced excel",
        "pivot tables",
        "vlookup",
    } <= skills.extract(text)


def test_names_with_symbols_are_found_whole(skills: SkillExtractor) -> None:
    found = skills.extract("Firmware in C++; tools in C# on .NET; a front end in Node.js.")
    assert {"c++", "c#", ".net", "node.js"} <= found


def test_a_skill_is_never_found_inside_a_longer_word(skills: SkillExtractor) -> None:
    found = skills.extract("We use Google Sheets and JavaScript.")
    assert "go" not in found
    assert "java" not in found
    assert "javascript" in found


def test_go_the_language_is_told_from_go_the_verb(skills: SkillExtractor) -> None:
    assert "go" in skills.extract("Services are written in Go and Python.")
    assert "go" not in skills.extract("Ready to go? Let's go! Go and apply today.")


def test_ordinary_prose_yields_no_skills(skills: SkillExtractor) -> None:
    prose = (
        "We are a friendly, fast-growing team that values ownership and curiosity. "
        "You will work closely with colleagues across the business, take initiative "
        "and help us deliver great results for our customers. We offer a competitive "
        "salary, flexible hours, a generous holiday allowance and regular team events. "
        "If you are motivated, reliable and keen to learn, we would love to hear from "
        "you. Last summer the whole office drove to the coast, stopped for coffee, "
        "walked along the river and cooked dinner together."
    )
    assert skills.extract(prose) == frozenset()


def test_a_posting_names_its_skills_not_its_filler(skills: SkillExtractor) -> None:
    text = (
        "Accounts Payable Specialist. Our agency is able to offer great benefits. You "
        "will process supplier invoices with accuracy, match them to purchase orders, "
        "keep schedules and answer questions from suppliers. Excel and SAP required."
    )
    found = skills.extract(text)
    assert {"accounts payable", "purchase orders", "excel", "sap"} <= found
    assert not {"agency", "able", "accuracy", "schedules", "suppliers"} & found


def test_explicit_skills_are_merged_under_canonical_names(skills: SkillExtractor) -> None:
    extracted = skills.extract("Backend work in Python and JavaScript.")
    merged = skills.merge(
        extracted, ["JS", "K8s", "Postgres", "  Accounts  Payable (AP) ", "golang", "Welding"]
    )
    assert merged == {
        "python",
        "javascript",
        "kubernetes",
        "postgresql",
        "accounts payable",
        "go",
        "welding",  # not in the vocabulary: kept as the product sent it, normalised
    }


def test_explicit_generic_words_are_kept(skills: SkillExtractor) -> None:
    # the product said so; only text matching skips generic words
    assert skills.merge(frozenset(), ["Communication"]) == {"communication"}


def test_spelling_variants_are_one_skill(skills: SkillExtractor) -> None:
    assert skills.canonical("A/B-testing") == skills.canonical("a/b testing") == "a/b testing"
    assert skills.canonical("NodeJS") == "node.js"
    assert skills.extract("accounts payable (AP) and Accounts Payable") == {"accounts payable"}


def test_longest_match_wins_without_overlaps() -> None:
    small = SkillExtractor(
        ["machine learning", "machine learning engineering", "learning", "sql"], generic=()
    )
    assert small.extract("Machine learning engineering with SQL") == {
        "machine learning engineering",
        "sql",
    }
    assert small.extract("machine   learning, then learning") == {"machine learning", "learning"}
