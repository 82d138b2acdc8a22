"""deploy/kubernetes/ (kustomize) cannot be applied here (no cluster): its manifests are parsed
and checked against what exists: the image the compose file builds, the CLI's commands, the
settings, the ports the containers serve, and the queue's real Redis key for KEDA."""

import re
import shutil
import subprocess

import pytest
import yaml

from soundtag.cli import app
from soundtag.fleet import queue_keys
from soundtag.settings import Settings
from tests.conftest import ROOT

KUSTOMIZE = ROOT / "deploy" / "kubernetes"
KUSTOMIZATION = yaml.safe_load((KUSTOMIZE / "kustomization.yaml").read_text())
DOCS = [doc for name in KUSTOMIZATION["resources"] for doc in yaml.safe_load_all((KUSTOMIZE / name).read_text()) if doc]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _named(kind: str) -> dict:
    return {doc["metadata"]["name"]: doc for doc in DOCS if doc["kind"] == kind}


def _workloads() -> dict:
    return {doc["metadata"]["name"]: doc for doc in DOCS if doc["kind"] in {"Deployment", "Job"}}


def _pods() -> dict:
    """Every pod spec, by its workload's name."""
    return {name: doc["spec"]["template"]["spec"] for name, doc in _workloads().items()}


def _containers():
    return [(name, c) for name, pod in _pods().items() for c in pod["containers"]]


def _env(container) -> dict:
    return {e["name"]: e for e in container.get("env", [])}


def test_kustomization_lists_files_that_exist_and_kubectl_builds_it():
    for name in KUSTOMIZATION["resources"]:
        assert (KUSTOMIZE / name).is_file(), name
    assert {path.name for path in KUSTOMIZE.glob("*.yaml")} == {*KUSTOMIZATION["resources"], "kustomization.yaml"}
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed: the build itself is not checked")
    built = subprocess.run(["kubectl", "kustomize", str(KUSTOMIZE)], capture_output=True, text=True, timeout=60)
    assert built.returncode == 0, built.stderr
    docs = [doc for doc in yaml.safe_load_all(built.stdout) if doc]
    assert len(docs) == len(DOCS)
    assert all(doc["metadata"].get("namespace") == "soundtag" for doc in docs if doc["kind"] != "Namespace")


def test_containers_run_the_compose_image_and_commands_it_has():
    image = COMPOSE["services"]["worker"]["image"]
    (mapping,) = KUSTOMIZATION["images"]
    assert f"{mapping['name']}:{mapping['newTag']}" == image
    commands = {command.name or command.callback.__name__ for command in app.registered_commands}
    for workload, container in _containers():
        assert container["image"] == mapping["name"], workload
        program, subcommand = container["command"][:2]
        if program == "soundtag":
            assert subcommand in commands | {"db"}, f"{workload}: soundtag {subcommand}"
        else:
            assert container["command"][:4] == COMPOSE["services"]["beat"]["command"][:4], workload


def test_environment_names_only_real_settings_and_objects_that_exist():
    fields = {f"SOUNDTAG_{name.upper()}" for name in Settings.model_fields}
    (config,) = [doc for doc in DOCS if doc["kind"] == "ConfigMap" and doc["metadata"]["name"] == "soundtag"]
    assert {key for key in config["data"] if key.startswith("SOUNDTAG_")} <= fields
    secrets, maps = _named("Secret"), _named("ConfigMap")
    for workload, container in _containers():
        assert {name for name in _env(container) if name.startswith("SOUNDTAG_")} <= fields, workload
        for source in container.get("envFrom", []):
            assert source["configMapRef"]["name"] in maps
        for var in container.get("env", []):
            ref = var.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                assert ref["key"] in secrets[ref["name"]]["stringData"], f"{workload}: {var['name']}"
    claims = _named("PersistentVolumeClaim")
    for workload, pod in _pods().items():
        for volume in pod.get("volumes", []):
            if "persistentVolumeClaim" in volume:
                assert volume["persistentVolumeClaim"]["claimName"] in claims, workload
            if "configMap" in volume:
                assert volume["configMap"]["name"] in maps, workload


def test_ports_are_those_the_containers_serve():
    workloads = _workloads()
    for workload, container in _containers():
        declared = {port["containerPort"] for port in container.get("ports", [])}
        command = container["command"]
        if "--port" in command:
            assert int(command[command.index("--port") + 1]) in declared, workload
        if "SOUNDTAG_METRICS_PORT" in _env(container):
            assert int(_env(container)["SOUNDTAG_METRICS_PORT"]["value"]) in declared, workload
        annotations = workloads[workload]["spec"]["template"].get("metadata", {}).get("annotations", {})
        if "prometheus.io/port" in annotations:
            assert int(annotations["prometheus.io/port"]) in declared, workload
    for service in _named("Service").values():
        (served,) = [doc for doc in workloads.values() if doc["spec"].get("selector", {}).get("matchLabels") == service["spec"]["selector"]]
        names = {port["name"] for c in served["spec"]["template"]["spec"]["containers"] for port in c.get("ports", [])}
        assert {port["targetPort"] for port in service["spec"]["ports"]} <= names


def test_worker_requests_a_gpu_and_its_grace_period_fits_a_warm_shutdown():
    worker = _pods()["soundtag-worker"]
    (container,) = worker["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    grace = COMPOSE["services"]["worker"]["stop_grace_period"]
    assert worker["terminationGracePeriodSeconds"] == 60 * int(re.fullmatch(r"(\d+)m", grace).group(1))


def test_keda_scales_the_workers_on_the_queues_real_redis_list_down_to_zero():
    (scaled,) = _named("ScaledObject").values()
    assert scaled["spec"]["scaleTargetRef"]["name"] == "soundtag-worker" and scaled["spec"]["minReplicaCount"] == 0
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "redis"
    queue = _named("ConfigMap")["soundtag"]["data"]["SOUNDTAG_QUEUE"]
    assert trigger["metadata"]["listName"] == queue_keys(queue)[0]
    assert int(trigger["metadata"]["activationListLength"]) == 0
    auth = _named("TriggerAuthentication")[trigger["authenticationRef"]["name"]]
    secrets = _named("Secret")
    assert all(ref["key"] in secrets[ref["name"]]["stringData"] for ref in auth["spec"]["secretTargetRef"])
