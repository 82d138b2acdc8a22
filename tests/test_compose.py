"""docker-compose.yml cannot run here (no Docker engine), so it is parsed, and every soundtag
service's command is run as the container would run it, against the local Redis and PostgreSQL."""

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from soundtag.settings import Settings
from tests.conftest import ROOT, WorkerProcess, free_port, soundtag, wait_for

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
OURS = {name: svc for name, svc in SERVICES.items() if svc.get("image") == "soundtag:latest"}


def test_compose_declares_the_deployment():
    assert set(SERVICES) == {"redis", "postgres", "migrate", "worker", "scanner", "beat", "producer", "flower",
                             "exporter", "prometheus", "grafana"}
    assert set(OURS) == {"migrate", "worker", "scanner", "beat", "producer", "flower", "exporter"}
    assert SERVICES["flower"]["profiles"] == ["monitoring"]
    assert "--appendonly" in SERVICES["redis"]["command"]
    assert "pgdata:/var/lib/postgresql/data" in SERVICES["postgres"]["volumes"]
    devices = SERVICES["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"]
    assert SERVICES["worker"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert SERVICES["producer"]["profiles"] == ["tools"]
    for svc in OURS.values():
        assert "models:/models" in svc["volumes"] and svc["environment"]["HF_HOME"] == "/models"
        for volume in svc["volumes"]:
            name = volume.split(":")[0]
            assert name.startswith("${") or name in COMPOSE["volumes"]


def test_environment_names_only_real_settings():
    fields = {f"SOUNDTAG_{name.upper()}" for name in Settings.model_fields}
    env = OURS["worker"]["environment"]
    assert {key for key in env if key.startswith("SOUNDTAG_")} <= fields


def test_dockerfile_copies_what_exists_and_installs_the_cli():
    dockerfile = (ROOT / OURS["worker"]["build"] / "Dockerfile").read_text()
    for src in re.findall(r"^COPY (\S+)", dockerfile, re.M):
        assert (ROOT / src).exists(), src
    assert "pip install ${TORCH_SPEC}" in dockerfile
    # The extras the image installs exist: monitoring (Flower) and openvino (the CPU workers' fastest
    # backend on x86, what --backend auto takes there).
    (extras,) = re.findall(r'pip install "\.\[([^]]+)\]"', dockerfile)
    defined = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert set(extras.split(",")) == {"monitoring", "openvino"} and set(extras.split(",")) <= set(defined)
    # Celery warns at every start of a worker run as root; the image's last USER is not root.
    users = re.findall(r"^USER (\S+)", dockerfile, re.M)
    assert users and users[-1] not in {"root", "0"}


def test_the_wheel_built_from_what_the_dockerfile_copies_holds_every_package(tmp_path):
    """The image installs what its COPY lines bring; a package pyproject installs but the
    Dockerfile forgets (review was) is missing in every container."""
    import shutil
    import tomllib
    import zipfile

    dockerfile = (ROOT / "Dockerfile").read_text()
    context = tmp_path / "app"
    context.mkdir()
    for line in re.findall(r"^COPY (.+)$", dockerfile, re.M):
        *sources, dest = line.split()
        for src in sources:
            target = context / dest / Path(src).name if dest.endswith("/") or len(sources) > 1 else context / dest
            (shutil.copytree if (ROOT / src).is_dir() else shutil.copy)(ROOT / src, target)
    built = tmp_path / "wheel"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(built),
                    str(context)], check=True, capture_output=True)
    (wheel,) = built.glob("*.whl")
    in_wheel = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    wanted = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    assert {pattern.rstrip("*") for pattern in wanted} <= in_wheel
    assert "review/templates/review.html" in zipfile.ZipFile(wheel).namelist()


def _readme_fleet_block() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## A fleet of GPU workers"):]
    return re.search(r"```bash\n(.*?)```", section, re.S).group(1)


def test_readme_runs_the_fleet_the_way_the_compose_file_and_deploy_guide_do():
    """Every line of the README's fleet block is a compose command on a declared service; the
    CLI runs inside the producer container, on the paths its volumes mount."""
    deploy = (ROOT / "docs" / "deploy.md").read_text()
    for line in _readme_fleet_block().splitlines():
        command = line.split("#")[0].strip()
        assert command.startswith("docker compose ") or "soundtag" not in command, command
        words = command.split()
        if "run" in words:
            service = words[words.index("--rm") + 1]
            assert service in SERVICES and words[words.index(service) + 1] == "soundtag", command
            mounted = {re.sub(r"\$\{[^}]*\}", "host", volume).split(":")[1] for volume in SERVICES[service]["volumes"]}
            for path in (word for word in words if word.startswith("/")):
                assert any(path == m or path.startswith(m + "/") for m in mounted), path
        if "soundtag enqueue" in command:
            assert command in deploy, "docs/deploy.md enqueues differently"
    for port in re.findall(r"127\.0\.0\.1:(\d+)", _readme_fleet_block()):
        assert any(f":{port}:" in mapping or mapping.endswith(f":{port}") for svc in SERVICES.values()
                   for mapping in svc.get("ports", [])), port


def test_postgres_is_not_published_on_the_port_a_local_postgres_uses():
    for mapping in SERVICES["postgres"].get("ports", []):
        published = re.sub(r"\$\{\w+:-(\d+)\}", r"\1", mapping)  # 127.0.0.1:${VAR:-5433}:5432 with its default
        assert published.split(":")[-2] != "5432", mapping


def test_worker_grace_period_covers_a_warm_shutdown():
    """SIGTERM finishes the file in hand and gives the rest back: the grace period is minutes."""
    grace = SERVICES["worker"]["stop_grace_period"]
    assert re.fullmatch(r"\d+m", grace) and 1 <= int(grace[:-1]) <= 5


def _local_env(celery_env) -> dict:
    env = {k: v for k, v in OURS["worker"]["environment"].items() if not k.startswith(("AWS_", "HF_"))}
    return {**env, **celery_env, "SOUNDTAG_DTYPE": "fp32", "SOUNDTAG_SCHEDULE_FILE": "",
            "SOUNDTAG_METRICS_PORT": str(free_port())}


def test_migrate_and_producer_commands_run(celery_env):
    env = _local_env(celery_env)
    assert OURS["migrate"]["command"][:1] == ["soundtag"]
    soundtag(*OURS["migrate"]["command"][1:], env=env)
    assert soundtag(*OURS["producer"]["command"][1:], env=env).returncode == 0


@pytest.mark.parametrize("service", ["worker", "scanner"])
def test_worker_services_start(service, celery_env, tmp_path):
    command = OURS[service]["command"]
    assert command[:2] == ["soundtag", "worker"]
    worker = WorkerProcess(_local_env(celery_env), tmp_path / "w.log", *command[2:])
    try:
        assert "soundtag.label_batch" in worker.log() and "soundtag.scan" in worker.log()
    finally:
        worker.stop()


def test_beat_service_starts_with_a_schedule(celery_env, tmp_path):
    schedule = tmp_path / "schedule.yaml"
    schedule.write_text("scans:\n  - {name: nightly, sources: [/archive], labels: [rain], cron: '0 3 * * *'}\n")
    command = [sys.executable, "-m"] + OURS["beat"]["command"]
    command[command.index("--schedule") + 1] = str(tmp_path / "beat-state")
    log = tmp_path / "beat.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, **_local_env(celery_env), "SOUNDTAG_SCHEDULE_FILE": str(schedule)})
        try:
            wait_for(lambda: "beat: Starting" in log.read_text() or proc.poll() is not None, 60, "beat to start")
            assert proc.poll() is None, log.read_text()
        finally:
            proc.terminate()
            proc.wait(20)


def test_flower_service_serves_the_fleet_dashboard(celery_env, tmp_path):
    import urllib.request

    command = [sys.executable, "-m"] + OURS["flower"]["command"]
    port = free_port()
    command = [f"--port={port}" if arg.startswith("--port=") else arg for arg in command]
    command = ["--address=127.0.0.1" if arg.startswith("--address=") else arg for arg in command]
    log = tmp_path / "flower.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, **_local_env(celery_env)})
        try:
            def answers():
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/workers", timeout=5) as r:
                        return r.status == 200 and b"Flower" in r.read()
                except OSError:
                    return proc.poll() is not None

            wait_for(answers, 60, "flower to answer")
            assert proc.poll() is None, log.read_text()
        finally:
            proc.terminate()
            proc.wait(20)
