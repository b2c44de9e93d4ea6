"""Custom channels from entry points and HERALD_CHANNELS, with errors that say what is wrong."""

from __future__ import annotations

import importlib.metadata
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from services.dispatcher.channels import Notification, Outcome
from services.dispatcher.channels.registry import (
    ENTRY_POINT_GROUP,
    ChannelContext,
    instantiate,
    load_channel_classes,
)
from shared.endpoints import Endpoint
from shared.settings import Settings
from tests import fixture_channels
from tests.support import channel_notification


def settings(**channels: str) -> Settings:
    return Settings(channels=channels)


@pytest.fixture(autouse=True)
def installed(monkeypatch: pytest.MonkeyPatch) -> list[importlib.metadata.EntryPoint]:
    """The entry points "installed" for this test; none unless a test adds some."""
    points: list[importlib.metadata.EntryPoint] = []

    def entry_points(*, group: str) -> list[importlib.metadata.EntryPoint]:
        return [p for p in points if p.group == group]

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    return points


def plugin(name: str, value: str) -> importlib.metadata.EntryPoint:
    return importlib.metadata.EntryPoint(name=name, value=value, group=ENTRY_POINT_GROUP)


@pytest.fixture
async def context() -> AsyncIterator[ChannelContext]:
    async with aiohttp.ClientSession() as guarded, aiohttp.ClientSession() as trusted:
        yield ChannelContext(settings(), guarded, trusted)


def notification() -> Notification:
    return channel_notification(title="Server down", body="It is down.", priority="high")


ENDPOINT = Endpoint(uuid.uuid4(), "u1", "pager", None, "chat", None)


async def test_a_channel_named_in_config_is_imported_and_built_from_the_context(
    context: ChannelContext,
) -> None:
    classes = load_channel_classes(settings(pager="tests.fixture_channels:PagerChannel"))
    assert classes == {"pager": fixture_channels.PagerChannel}
    channel = instantiate(classes["pager"], context)
    assert isinstance(channel, fixture_channels.PagerChannel)
    assert channel.context is context
    result = await channel.send(notification(), ENDPOINT)
    assert (result.outcome, result.detail) == (Outcome.DELIVERED, "paged Server down")


async def test_the_environment_form_of_the_setting_works_too(context: ChannelContext) -> None:
    parsed = Settings(channels="echo=tests.fixture_channels:EchoChannel")
    classes = load_channel_classes(parsed)
    channel = instantiate(classes["echo"], context)  # no from_context: built with cls()
    assert isinstance(channel, fixture_channels.EchoChannel)
    assert (await channel.send(notification(), ENDPOINT)).detail == "It is down."


async def test_a_class_that_needs_arguments_and_has_no_from_context_is_explained(
    context: ChannelContext,
) -> None:
    classes = load_channel_classes(settings(needy="tests.fixture_channels:NeedsArguments"))
    with pytest.raises(ValueError, match=r"channel 'needy': NeedsArguments\(\).*from_context"):
        instantiate(classes["needy"], context)


@pytest.mark.parametrize(
    ("name", "spec", "message"),
    [
        ("x", "tests.fixture_channels", "is not 'package.module:Class'"),
        ("x", "tests/fixture_channels.py:EchoChannel", "is not 'package.module:Class'"),
        ("x", "tests.fixture_channels:", "is not 'package.module:Class'"),
        ("x", "tests.no_such_module:Channel", "module 'tests.no_such_module' not found"),
        ("x", "tests.fixture_channels:Missing", "has no attribute 'Missing'"),
        ("x", "tests.fixture_channels:send", "is not a class"),
        ("sync", "tests.fixture_channels:SyncSend", "no 'async def send"),
        ("x", "tests.fixture_channels:Nameless", "no 'name' class attribute"),
        ("other", "tests.fixture_channels:EchoChannel", "is named 'echo'; register it as 'echo'"),
    ],
)
def test_bad_config_entries_are_refused_naming_the_channel(
    name: str, spec: str, message: str
) -> None:
    with pytest.raises(ValueError, match="HERALD_CHANNELS") as caught:
        load_channel_classes(settings(**{name: spec}))
    assert str(caught.value).startswith(f"channel {name!r}")
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("import herald_dependency_not_installed\n", "No module named"),
        ("raise RuntimeError('needs PAGER_TOKEN')\n", "RuntimeError: needs PAGER_TOKEN"),
    ],
)
def test_a_module_that_fails_to_import_is_reported_with_its_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str, message: str
) -> None:
    module = f"broken_plugin_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ValueError, match=f"channel 'pager'.*importing '{module}' failed") as caught:
        load_channel_classes(settings(pager=f"{module}:Pager"))
    assert message in str(caught.value)


def test_entry_points_are_discovered(installed: list[importlib.metadata.EntryPoint]) -> None:
    installed.append(plugin("pager", "tests.fixture_channels:PagerChannel"))
    installed.append(
        importlib.metadata.EntryPoint(
            name="echo", value="tests.fixture_channels:EchoChannel", group="other.group"
        )
    )
    assert load_channel_classes(settings()) == {"pager": fixture_channels.PagerChannel}


def test_config_wins_over_an_entry_point_of_the_same_name_which_is_not_even_imported(
    installed: list[importlib.metadata.EntryPoint],
) -> None:
    installed.append(plugin("echo", "tests.no_such_module:Broken"))
    installed.append(plugin("pager", "tests.fixture_channels:PagerChannel"))
    classes = load_channel_classes(settings(echo="tests.fixture_channels:EchoChannel"))
    assert classes == {
        "echo": fixture_channels.EchoChannel,
        "pager": fixture_channels.PagerChannel,
    }


def test_a_broken_entry_point_is_refused_naming_the_channel_and_its_source(
    installed: list[importlib.metadata.EntryPoint],
) -> None:
    installed.append(plugin("pager", "tests.fixture_channels:Missing"))
    with pytest.raises(ValueError, match=r"channel 'pager' \(entry point\).*'Missing'"):
        load_channel_classes(settings())


def test_two_packages_claiming_one_name_are_refused(
    installed: list[importlib.metadata.EntryPoint],
) -> None:
    installed.append(plugin("pager", "tests.fixture_channels:PagerChannel"))
    installed.append(plugin("pager", "other_package:Pager"))
    with pytest.raises(ValueError, match="channel 'pager': two installed packages claim it"):
        load_channel_classes(settings())
    # the same entry point seen twice (one package on the path twice) is no conflict
    installed[1] = plugin("pager", "tests.fixture_channels:PagerChannel")
    assert load_channel_classes(settings()) == {"pager": fixture_channels.PagerChannel}
