"""The bus runs only on the AMQP library versions its private paths were tested with."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError

import pytest

from shared.bus import UntestedLibrary, check_versions


def installed(versions: dict[str, str]) -> object:
    def version(package: str) -> str:
        if package not in versions:
            raise PackageNotFoundError(package)
        return versions[package]

    return version


def test_the_installed_libraries_are_the_tested_ones() -> None:
    check_versions()  # what `make install` brought, from pyproject.toml's pins


@pytest.mark.parametrize("patch", ["7.2.0", "7.2.4", "7.2.15"])
def test_any_patch_release_of_the_tested_minor_is_accepted(patch: str) -> None:
    check_versions(installed({"aiormq": patch, "pamqp": "4.0.1"}))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("versions", "named"),
    [
        ({"aiormq": "7.3.0", "pamqp": "4.0.1"}, ["aiormq 7.3.0 (tested: 7.2.x)"]),
        ({"aiormq": "7.20.1", "pamqp": "4.0.1"}, ["aiormq 7.20.1 (tested: 7.2.x)"]),
        ({"aiormq": "7.2.4", "pamqp": "4.1.0"}, ["pamqp 4.1.0 (tested: 4.0.x)"]),
        ({"aiormq": "6.8.0"}, ["aiormq 6.8.0 (tested: 7.2.x)", "pamqp none (tested: 4.0.x)"]),
    ],
)
def test_another_version_stops_the_bus_naming_each_package(
    versions: dict[str, str], named: list[str]
) -> None:
    with pytest.raises(UntestedLibrary) as caught:
        check_versions(installed(versions))  # type: ignore[arg-type]
    for name in named:
        assert name in str(caught.value)
    assert "pyproject.toml" in str(caught.value)
