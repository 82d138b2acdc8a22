"""The monitoring profile (deploy/monitoring/): Prometheus' scrape config and alert rules and
Grafana's dashboard, parsed (no Docker engine here) and checked against the compose file and
against real scrapes of a worker and the exporter."""

import json
import re

import pytest
import yaml

from tests.audio_files import write
from tests.conftest import ROOT, free_port, soundtag, wait_for
from tests.scrape import families, scrape, value

MONITORING = ROOT / "deploy" / "monitoring"
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
PROMETHEUS = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
ALERTS = yaml.safe_load((MONITORING / "alerts.yml").read_text())
DASHBOARD = json.loads((MONITORING / "grafana" / "dashboards" / "soundtag.json").read_text())


def _exprs() -> dict[str, str]:
    """Every PromQL expression of the dashboard and the alert rules, by where it is."""
    exprs = {f"alert {rule['alert']}": rule["expr"] for group in ALERTS["groups"] for rule in group["rules"]}
    exprs.update({f"panel {p['title']} {t['refId']}": t["expr"] for p in DASHBOARD["panels"] for t in p["targets"]})
    return exprs


def _mounts(service: str) -> dict[str, str]:
    """A service's bind mounts: container path -> host path (relative to the repository)."""
    return {volume.split(":")[1]: volume.split(":")[0] for volume in SERVICES[service]["volumes"]
            if volume.startswith("./")}


def test_monitoring_profile_starts_prometheus_grafana_flower_and_the_exporter():
    for name in ("prometheus", "grafana", "flower", "exporter"):
        assert SERVICES[name]["profiles"] == ["monitoring"], name
    assert SERVICES["exporter"]["command"][:2] == ["soundtag", "exporter"]
    for service in ("prometheus", "grafana"):
        for container, host in _mounts(service).items():
            assert (ROOT / host).exists(), f"{service} mounts {host}, which is not committed"
    prometheus = _mounts("prometheus")
    for path in PROMETHEUS["rule_files"]:
        assert (ROOT / prometheus[path]).resolve() == (MONITORING / "alerts.yml").resolve()
    assert (ROOT / prometheus["/etc/prometheus/prometheus.yml"]).resolve() == (MONITORING / "prometheus.yml").resolve()


def test_prometheus_scrapes_the_services_on_the_ports_they_serve():
    jobs = {job["job_name"]: job for job in PROMETHEUS["scrape_configs"]}
    (workers,) = jobs["soundtag-worker"]["dns_sd_configs"]
    assert workers["names"] == ["worker"] and workers["names"][0] in SERVICES
    assert str(workers["port"]) == SERVICES["worker"]["environment"]["SOUNDTAG_METRICS_PORT"]
    (target,) = jobs["soundtag-exporter"]["static_configs"][0]["targets"]
    host, port = target.split(":")
    command = SERVICES[host]["command"]
    assert command[command.index("--port") + 1] == port
    # every job an expression names is one Prometheus scrapes
    for where, expr in _exprs().items():
        for job in re.findall(r'job="([^"]+)"', expr):
            assert job in jobs, f"{where} names job {job}"


def test_grafana_is_provisioned_with_prometheus_and_the_dashboard():
    grafana = _mounts("grafana")
    provisioning = ROOT / grafana["/etc/grafana/provisioning"]
    (source,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())["datasources"]
    host, port = re.fullmatch(r"http://([\w-]+):(\d+)", source["url"]).groups()
    assert host in SERVICES and any(mapping.endswith(f":{port}") for mapping in SERVICES[host]["ports"])
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "soundtag.yml").read_text())["providers"]
    assert (ROOT / grafana[provider["options"]["path"]] / "soundtag.json").exists()
    for panel in DASHBOARD["panels"]:
        assert panel["datasource"]["uid"] == source["uid"], panel["title"]


def test_dashboard_shows_what_an_operator_watches():
    exprs = " ".join(_exprs().values())
    for name in ("soundtag_files_total", "soundtag_queue_length", "soundtag_job_eta_seconds", "soundtag_failures_total",
                 "soundtag_batch_seconds_bucket", "soundtag_decode_seconds_bucket", "soundtag_model_seconds_bucket",
                 "soundtag_save_seconds_bucket", "soundtag_cuda_memory_bytes", "soundtag_leases_taken_back_total"):
        assert name in exprs, name
    assert {rule["alert"] for group in ALERTS["groups"] for rule in group["rules"]} == {
        "SoundtagNoWorkerUp", "SoundtagFailureRateHigh", "SoundtagQueueNotDraining", "SoundtagLeasesTakenBack"}


@pytest.mark.slow
def test_dashboard_and_alerts_name_only_metrics_that_a_worker_and_the_exporter_serve(tmp_path, celery_env, workers,
                                                                                      exporter):
    from worker.metrics import CUDA_MEMORY

    archive = tmp_path / "archive"
    archive.mkdir()
    write(archive / "clip.wav", seconds=1.0, rate=16000)
    (archive / "broken.flac").write_bytes(b"fLaC" + b"\x00" * 100)
    port = free_port()
    env = {**celery_env, "SOUNDTAG_METRICS_PORT": str(port)}
    workers(env)
    job = soundtag("enqueue", str(archive), "--labels", "rain,siren", env=env).stdout.strip().splitlines()[-1]
    soundtag("status", job, "--wait", env=env)
    worker = wait_for(lambda: (s := scrape(port)) and value(s, "soundtag_batch_seconds_count") == 1 and s, 30,
                      "the batch to be timed")
    fleet = families(exporter(env))
    # A gauge of active jobs has no sample once they are all finished, but the exporter declares it.
    served = {s.name for s in worker} | {s.name for f in fleet for s in f.samples} | {
        f.name for f in fleet if f.type == "gauge"}
    # GPU memory is measured on CUDA only; this machine has none.
    served.add(CUDA_MEMORY._name)
    for where, expr in _exprs().items():
        for name in re.findall(r"\bsoundtag_\w+", expr):
            assert name in served, f"{where}: {name} is not a metric soundtag serves"
        others = set(re.findall(r"\b([a-zA-Z_:][\w:]*)\s*[{\[]", expr)) - {"by", "on", "without"}
        assert {n for n in others if not n.startswith("soundtag_")} <= {"up"}, where
