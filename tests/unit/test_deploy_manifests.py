"""The deployment files (deploy/k8s/*.yaml and docker-compose.yml) checked statically: no cluster
and no Docker engine run here. Kubernetes objects validate against the Kubernetes JSON schemas
that ship in the kubernetes-validate wheel (strict: unknown fields are errors); KEDA's objects
are custom resources outside those schemas and validate against the small schemas below, which
cover the fields these manifests use. Then what the files name is checked against the code:
settings, queues, commands, probes, images."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from kombu.transport.redis import Channel

from api import create_app
from shared.contract import QUEUE_INFERENCE, QUEUE_MAINTENANCE, QUEUE_TRAINING
from shared.objects import ObjectStore
from shared.queue import make_celery
from shared.settings import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
COMPOSE = ROOT / "docker-compose.yml"
KUBERNETES_VERSION = "1.30.0"
NAMESPACE = "artforge"
SECRET_TEMPLATE = "secrets.example.yaml"
SETTINGS_ENV = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
QUEUES = {QUEUE_INFERENCE, QUEUE_TRAINING, QUEUE_MAINTENANCE}
WORKER_QUEUE = {"worker-inference": QUEUE_INFERENCE, "worker-training": QUEUE_TRAINING}
GPU = "nvidia.com/gpu"

_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_METADATA = {
    "type": "object",
    "required": ["name", "namespace"],
    "properties": {"name": {"type": "string"}, "namespace": {"type": "string"}, "labels": _STRING_MAP},
    "additionalProperties": False,
}
_HPA_BEHAVIOR_RULES = {
    "type": "object",
    "properties": {
        "stabilizationWindowSeconds": {"type": "integer", "minimum": 0, "maximum": 3600},
        "selectPolicy": {"enum": ["Max", "Min", "Disabled"]},
        "policies": {"type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["type", "value", "periodSeconds"], "additionalProperties": False,
            "properties": {"type": {"enum": ["Pods", "Percent"]}, "value": {"type": "integer", "minimum": 1},
                           "periodSeconds": {"type": "integer", "minimum": 1, "maximum": 1800}}}},
    },
    "additionalProperties": False,
}
# The fields of keda.sh/v1alpha1 these manifests use, as KEDA's CRDs define them
# (metadata values are strings; scalingModifiers needs KEDA 2.12+).
KEDA_SCHEMAS: dict[str, dict[str, Any]] = {
    "ScaledObject": {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "keda.sh/v1alpha1"},
            "kind": {"const": "ScaledObject"},
            "metadata": _METADATA,
            "spec": {
                "type": "object",
                "required": ["scaleTargetRef", "triggers"],
                "additionalProperties": False,
                "properties": {
                    "scaleTargetRef": {"type": "object", "required": ["name"], "additionalProperties": False,
                                       "properties": {"name": {"type": "string"}, "kind": {"type": "string"},
                                                      "apiVersion": {"type": "string"}}},
                    "pollingInterval": {"type": "integer", "minimum": 1},
                    "cooldownPeriod": {"type": "integer", "minimum": 0},
                    "minReplicaCount": {"type": "integer", "minimum": 0},
                    "maxReplicaCount": {"type": "integer", "minimum": 1},
                    "advanced": {
                        "type": "object", "additionalProperties": False,
                        "properties": {
                            "scalingModifiers": {
                                "type": "object", "required": ["formula", "target"], "additionalProperties": False,
                                "properties": {"formula": {"type": "string"}, "target": {"type": "string"},
                                               "activationTarget": {"type": "string"},
                                               "metricType": {"enum": ["AverageValue", "Value"]}}},
                            "horizontalPodAutoscalerConfig": {
                                "type": "object", "additionalProperties": False,
                                "properties": {"name": {"type": "string"}, "behavior": {
                                    "type": "object", "additionalProperties": False,
                                    "properties": {"scaleUp": _HPA_BEHAVIOR_RULES,
                                                   "scaleDown": _HPA_BEHAVIOR_RULES}}}},
                        },
                    },
                    "triggers": {"type": "array", "minItems": 1, "items": {
                        "type": "object", "required": ["type", "metadata"], "additionalProperties": False,
                        "properties": {
                            "type": {"const": "redis"},
                            "name": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
                            "metadata": {
                                "type": "object", "required": ["address", "listName", "listLength"],
                                "additionalProperties": False,
                                "properties": {
                                    "address": {"type": "string", "pattern": r"^[a-z0-9.-]+:\d+$"},
                                    "listName": {"type": "string"},
                                    "listLength": {"type": "string", "pattern": r"^\d+$"},
                                    "activationListLength": {"type": "string", "pattern": r"^\d+$"},
                                    "databaseIndex": {"type": "string", "pattern": r"^\d+$"},
                                    "enableTLS": {"enum": ["true", "false"]},
                                }},
                            "authenticationRef": {"type": "object", "required": ["name"], "additionalProperties": False,
                                                  "properties": {"name": {"type": "string"}}},
                        }}},
                },
            },
        },
        "additionalProperties": False,
    },
    "TriggerAuthentication": {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "keda.sh/v1alpha1"},
            "kind": {"const": "TriggerAuthentication"},
            "metadata": _METADATA,
            "spec": {"type": "object", "required": ["secretTargetRef"], "additionalProperties": False, "properties": {
                "secretTargetRef": {"type": "array", "minItems": 1, "items": {
                    "type": "object", "required": ["parameter", "name", "key"], "additionalProperties": False,
                    "properties": {"parameter": {"type": "string"}, "name": {"type": "string"},
                                   "key": {"type": "string"}}}}}},
        },
        "additionalProperties": False,
    },
}


# -- loading --------------------------------------------------------------------------------


def manifest_files() -> list[Path]:
    return sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


def load_objects() -> list[tuple[str, dict[str, Any]]]:
    objects = []
    for path in manifest_files():
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                objects.append((path.name, doc))
    return objects


OBJECTS = load_objects()


def of_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {obj["metadata"]["name"]: obj for _, obj in OBJECTS if obj["kind"] == kind}


def workloads() -> dict[str, dict[str, Any]]:
    return {**of_kind("Deployment"), **of_kind("StatefulSet"), **{
        name: job for name, job in of_kind("Job").items()}}


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    spec = pod_spec(workload)
    return [*spec.get("initContainers", []), *spec["containers"]]


def all_containers() -> Iterator[tuple[str, dict[str, Any]]]:
    for name, workload in workloads().items():
        for container in containers(workload):
            yield name, container


def command_of(container: dict[str, Any]) -> list[str]:
    return [*container.get("command", []), *container.get("args", [])]


def option(command: list[str], name: str) -> str:
    for index, word in enumerate(command):
        if word == name:
            return command[index + 1]
        if word.startswith(name + "="):
            return word.split("=", 1)[1]
    raise AssertionError(f"{name} not in {command}")


def secret_data() -> dict[str, dict[str, str]]:
    return {name: {**s.get("data", {}), **s.get("stringData", {})} for name, s in of_kind("Secret").items()}


def container_environment(container: dict[str, Any]) -> dict[str, str]:
    """The environment a container starts with: envFrom first, then env with $(VAR) expanded."""
    configmaps, secrets = {n: c["data"] for n, c in of_kind("ConfigMap").items()}, secret_data()
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(configmaps[source["configMapRef"]["name"]])
        else:
            env.update(secrets[source["secretRef"]["name"]])
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], var["value"])
        else:
            ref = var["valueFrom"].get("secretKeyRef") or var["valueFrom"]["configMapKeyRef"]
            source = secrets if "secretKeyRef" in var["valueFrom"] else configmaps
            env[var["name"]] = source[ref["name"]][ref["key"]]
    return env


def redis_lists(queue: str) -> list[str]:
    """The Redis lists Celery's Redis transport keeps for ``queue``, named by kombu itself."""
    options = make_celery(Settings()).conf.broker_transport_options

    class Transport:
        sep = options["sep"]
        priority_steps = options["priority_steps"]
        priority = Channel.priority

    return [Channel._q_for_pri(Transport(), queue, step) for step in options["priority_steps"]]


def load_compose() -> dict[str, Any]:
    compose: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return compose


def compose_command(service: dict[str, Any]) -> list[str]:
    command = service["command"]
    return shlex.split(command) if isinstance(command, str) else list(command)


# -- Kubernetes manifests -----------------------------------------------------------------------


def test_kustomization_applies_every_manifest_but_the_secret_template() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert kustomization["namespace"] == NAMESPACE
    assert sorted(kustomization["resources"]) == sorted(p.name for p in manifest_files() if p.name != SECRET_TEMPLATE)


@pytest.mark.parametrize("obj", [o for _, o in OBJECTS], ids=[f"{f}:{o['kind']}/{o['metadata']['name']}"
                                                              for f, o in OBJECTS])
def test_every_manifest_validates_against_its_schema(obj: dict[str, Any]) -> None:
    if obj["apiVersion"].startswith("keda.sh/"):
        jsonschema.validate(obj, KEDA_SCHEMAS[obj["kind"]])
    else:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_namespaced_objects_are_in_the_artforge_namespace() -> None:
    for _, obj in OBJECTS:
        if obj["kind"] == "Namespace":
            assert obj["metadata"]["name"] == NAMESPACE
        else:
            assert obj["metadata"].get("namespace") == NAMESPACE, obj["metadata"]["name"]


def test_secret_template_holds_placeholders_only() -> None:
    for name, data in secret_data().items():
        for key, value in data.items():
            assert "change-me" in value, f"{name}.{key} looks like a real secret"


def test_every_artforge_variable_is_a_setting_and_parses() -> None:
    names = {key for c in of_kind("ConfigMap").values() for key in c["data"]}
    names |= {key for data in secret_data().values() for key in data}
    for _, container in all_containers():
        names |= {var["name"] for var in container.get("env", [])}
        env = container_environment(container)
        Settings.from_env(env)  # every value parses as its setting's type
    unknown = {n for n in names if n.startswith(ENV_PREFIX)} - SETTINGS_ENV
    assert not unknown, f"not settings of shared/settings.py: {sorted(unknown)}"


def test_every_reference_to_a_configmap_secret_or_variable_resolves() -> None:
    configmaps, secrets = of_kind("ConfigMap"), secret_data()
    for workload_name, container in all_containers():
        defined: set[str] = set()
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                assert source["configMapRef"]["name"] in configmaps
                defined |= set(configmaps[source["configMapRef"]["name"]]["data"])
            else:
                assert source["secretRef"]["name"] in secrets
                defined |= set(secrets[source["secretRef"]["name"]])
        for var in container.get("env", []):
            for ref in re.findall(r"\$\((\w+)\)", var.get("value", "")):
                assert ref in defined, f"{workload_name}: {var['name']} uses $({ref}) before it is set"
            key_ref = var.get("valueFrom", {}).get("secretKeyRef")
            if key_ref:
                assert key_ref["key"] in secrets[key_ref["name"]], (workload_name, key_ref)
            defined.add(var["name"])
        for word in command_of(container):
            for ref in re.findall(r"\$\((\w+)\)", word):
                assert ref in defined, f"{workload_name}: the command uses $({ref}), which is not set"
    for workload_name, workload in workloads().items():
        volumes = {v["name"]: v for v in pod_spec(workload).get("volumes", [])}
        claims = {c["metadata"]["name"] for c in workload["spec"].get("volumeClaimTemplates", [])}
        for container in containers(workload):
            for mount in container.get("volumeMounts", []):
                assert mount["name"] in volumes or mount["name"] in claims, (workload_name, mount["name"])
        for volume in volumes.values():
            if "secret" in volume:
                keys = secrets[volume["secret"]["secretName"]]
                assert {item["key"] for item in volume["secret"].get("items", [])} <= set(keys)


def test_services_select_pods_and_target_their_named_ports() -> None:
    for name, service in of_kind("Service").items():
        selector = service["spec"]["selector"]
        matched = [w for w in workloads().values()
                   if selector.items() <= w["spec"]["template"]["metadata"]["labels"].items()]
        assert matched, f"service {name} selects no pods"
        ports = {p["name"] for w in matched for c in containers(w) for p in c.get("ports", [])}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports, (name, port)


def test_api_runs_the_app_factory_with_probes_on_routes_the_app_serves() -> None:
    (api,) = containers(of_kind("Deployment")["api"])
    command = command_of(api)
    assert command[0] == "gunicorn" and command[-1] == "api:create_app()"
    config = option(command, "-c")
    if config.startswith("python:"):
        assert (ROOT / (config.removeprefix("python:").replace(".", "/") + ".py")).is_file(), config
    assert api["image"] == load_compose()["services"]["api"]["image"]
    routes = {rule.rule for rule in create_app(Settings()).url_map.iter_rules()}
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz" in routes
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz" in routes
    assert api["resources"]["requests"]["cpu"], "the HPA's CPU utilisation needs a CPU request"


def test_api_scales_on_cpu_and_is_not_pinned_to_a_replica_count() -> None:
    (hpa,) = of_kind("HorizontalPodAutoscaler").values()
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "api"}
    assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]
    assert 2 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    assert "replicas" not in of_kind("Deployment")["api"]["spec"]


@pytest.mark.parametrize("name", sorted(WORKER_QUEUE))
def test_gpu_workers_consume_their_queue_one_job_at_a_time_on_one_gpu(name: str) -> None:
    deployment = of_kind("Deployment")[name]
    (worker,) = containers(deployment)
    command = command_of(worker)
    assert command[:4] == ["celery", "-A", "workers.celery_app", "worker"]
    assert (ROOT / "workers" / "celery_app.py").is_file()
    queues = option(command, "-Q").split(",")
    assert set(queues) <= QUEUES and queues == [WORKER_QUEUE[name], QUEUE_MAINTENANCE]
    assert option(command, "--concurrency") == "1" and option(command, "--prefetch-multiplier") == "1"
    assert worker["resources"]["requests"][GPU] == worker["resources"]["limits"][GPU] == 1
    assert worker["image"] == load_compose()["services"]["worker-inference"]["image"]
    env = container_environment(worker)
    assert env["ARTFORGE_DEVICE"] == "cuda"
    assert env["ARTFORGE_WORKER_METRICS_PORT"] == "9808" and env["ARTFORGE_WORKER_METRICS_HOST"] == "0.0.0.0"
    assert {"name": "metrics", "containerPort": 9808} in worker["ports"]
    assert env["ARTFORGE_SIGNING_KEY"].startswith("/etc/artforge/signing/")
    grace = pod_spec(deployment)["terminationGracePeriodSeconds"]
    assert grace > Settings().lease_s
    if name == "worker-inference":  # a warm shutdown always lets a running inference job finish
        assert grace >= Settings().inference_hard_limit_s
    assert "replicas" not in deployment["spec"], "KEDA owns the replica count"


def test_only_the_workers_get_the_signing_key() -> None:
    for name, workload in workloads().items():
        for volume in pod_spec(workload).get("volumes", []):
            if volume.get("secret", {}).get("secretName") == "artforge-signing":
                items = volume["secret"].get("items")
                keys = {i["key"] for i in items} if items else set(secret_data()["artforge-signing"])
                assert ("signer.key" in keys) == name.startswith("worker-"), name


def test_beat_is_a_single_replica_recreated_never_autoscaled() -> None:
    beat = of_kind("Deployment")["beat"]
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"] == {"type": "Recreate"}
    (container,) = containers(beat)
    assert command_of(container) == ["celery", "-A", "workers.celery_app", "beat"]
    assert GPU not in container["resources"].get("limits", {})
    scaled = {o["spec"]["scaleTargetRef"]["name"] for o in [*of_kind("HorizontalPodAutoscaler").values(),
                                                             *of_kind("ScaledObject").values()]}
    assert "beat" not in scaled
    assert make_celery(Settings()).conf.beat_scheduler == "redbeat.RedBeatScheduler"


@pytest.mark.parametrize("name", sorted(WORKER_QUEUE))
def test_keda_scales_each_gpu_worker_on_the_sum_of_its_queues_priority_lists(name: str) -> None:
    scaled = of_kind("ScaledObject")[name]["spec"]
    assert scaled["scaleTargetRef"]["name"] == name in of_kind("Deployment")
    triggers = scaled["triggers"]
    # Every list a job of this queue can wait in, whatever its priority (kombu's own naming).
    assert [t["metadata"]["listName"] for t in triggers] == redis_lists(WORKER_QUEUE[name])
    assert len(redis_lists(WORKER_QUEUE[name])) == 10
    modifiers = scaled["advanced"]["scalingModifiers"]
    assert sorted(re.split(r"\s*\+\s*", modifiers["formula"])) == sorted(t["name"] for t in triggers)
    assert modifiers["metricType"] == "AverageValue" and int(modifiers["target"]) >= 1
    # Running jobs are not in the lists: never scale to zero under one.
    assert 1 <= scaled["minReplicaCount"] <= scaled["maxReplicaCount"]
    redis_service = of_kind("Service")["redis"]
    redis_port = redis_service["spec"]["ports"][0]["port"]
    auths = of_kind("TriggerAuthentication")
    for trigger in triggers:
        # KEDA's operator runs in its own namespace: the address must be the full service name.
        assert trigger["metadata"]["address"] == f"redis.{NAMESPACE}.svc.cluster.local:{redis_port}"
        auth = auths[trigger["authenticationRef"]["name"]]["spec"]["secretTargetRef"]
        assert {(r["parameter"], r["name"], r["key"]) for r in auth} == {("password", "artforge-redis", "password")}


def test_redis_persists_every_write_and_never_evicts() -> None:
    redis = of_kind("StatefulSet")["redis"]
    (container,) = containers(redis)
    command = command_of(container)
    assert option(command, "--appendonly") == "yes"
    assert option(command, "--maxmemory-policy") == "noeviction"
    assert option(command, "--requirepass") == "$(REDIS_PASSWORD)"
    assert container["image"] == load_compose()["services"]["redis"]["image"]
    (claim,) = redis["spec"]["volumeClaimTemplates"]
    assert {"name": claim["metadata"]["name"], "mountPath": "/data"} in container["volumeMounts"]
    for _, other in all_containers():
        url = container_environment(other).get("ARTFORGE_REDIS_URL")
        if url is not None:
            assert url == "redis://:change-me-redis-password@redis:6379/0"


def test_minio_runs_distributed_over_four_persistent_pods() -> None:
    minio = of_kind("StatefulSet")["minio"]
    spec = minio["spec"]
    assert spec["replicas"] >= 4 and spec["podManagementPolicy"] == "Parallel"
    headless = of_kind("Service")[spec["serviceName"]]["spec"]
    assert headless["clusterIP"] == "None" and headless["publishNotReadyAddresses"] is True
    (container,) = containers(minio)
    assert container["image"] == load_compose()["services"]["minio"]["image"]
    server = command_of(container)
    pattern = f"http://minio-{{0...{spec['replicas'] - 1}}}.{spec['serviceName']}.{NAMESPACE}.svc.cluster.local/data"
    assert server[:2] == ["server", pattern]
    assert spec["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    config = of_kind("ConfigMap")["artforge-config"]["data"]
    assert config["ARTFORGE_S3_ENDPOINT"] == f"minio:{of_kind('Service')['minio']['spec']['ports'][0]['port']}"


def test_bucket_job_creates_the_buckets_with_the_services_code() -> None:
    (container,) = containers(of_kind("Job")["artforge-buckets"])
    assert container["image"] == load_compose()["services"]["api"]["image"]
    assert "ObjectStore(Settings.from_env()).ensure_buckets()" in command_of(container)[-1]
    assert callable(ObjectStore.ensure_buckets)


# -- docker-compose.yml ------------------------------------------------------------------------


def test_compose_environment_names_are_settings() -> None:
    compose = load_compose()
    documented = (ROOT / "deploy" / "README.md").read_text()
    for name, service in compose["services"].items():
        environment = service.get("environment") or {}
        keys = set(environment) if isinstance(environment, dict) else {e.split("=", 1)[0] for e in environment}
        unknown = {k for k in keys if k.startswith(ENV_PREFIX)} - SETTINGS_ENV
        assert not unknown, f"{name}: not settings of shared/settings.py: {sorted(unknown)}"
    # Variables compose itself reads (e.g. which GPU) need not be settings, but must be documented.
    for variable in set(re.findall(r"\$\{(ARTFORGE_\w+)", COMPOSE.read_text())) - SETTINGS_ENV:
        assert f"`{variable}`" in documented, f"{variable} is not documented in deploy/README.md"


def test_compose_services_run_the_code_with_the_contract_queues() -> None:
    services = load_compose()["services"]
    api = compose_command(services["api"])
    assert api[0] == "gunicorn" and api[-1] == "api:create_app()"
    for name, queue in WORKER_QUEUE.items():
        command = compose_command(services[name])
        assert command[:4] == ["celery", "-A", "workers.celery_app", "worker"]
        assert option(command, "-Q").split(",") == [queue, QUEUE_MAINTENANCE]
        assert option(command, "--concurrency") == "1" and option(command, "--prefetch-multiplier") == "1"
        (device,) = services[name]["deploy"]["resources"]["reservations"]["devices"]
        assert device["capabilities"] == ["gpu"]
    assert compose_command(services["beat"]) == ["celery", "-A", "workers.celery_app", "beat"]
    assert "replicas" not in services["beat"].get("deploy", {})
    redis = compose_command(services["redis"])
    assert option(redis, "--appendonly") == "yes" and option(redis, "--maxmemory-policy") == "noeviction"
    bucket_script = " ".join(compose_command(services["minio-init"]))
    settings = Settings()
    for bucket in (settings.bucket_uploads, settings.bucket_results, settings.bucket_models, settings.bucket_datasets):
        assert f"artforge/{bucket}" in bucket_script


def test_compose_and_kubernetes_run_the_same_images() -> None:
    services = load_compose()["services"]
    compose_images = {services[s]["image"] for s in ("api", "worker-inference", "worker-training", "beat", "flower",
                                                     "redis", "minio")}
    k8s_images = {c["image"] for _, c in all_containers()}
    assert k8s_images == compose_images
