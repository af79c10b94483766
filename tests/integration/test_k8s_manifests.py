"""deploy/k8s, checked offline: against the Kubernetes schemas (kubernetes-validate, strict),
KEDA's ScaledObject against KEDA's CRD schema (@kubernetes-models/keda, in tests/k8s), and
against the code: probe paths, ports, commands and setting names that exist."""

from __future__ import annotations

import importlib
import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from shared import workers
from shared.settings import Settings
from shared.workers import WorkerInfo
from tests.processes import ROOT, RedisServer, service_env

pytestmark = pytest.mark.integration

K8S = ROOT / "deploy" / "k8s"
KEDA_VALIDATOR = ROOT / "tests" / "k8s"
KUBERNETES_VERSION = "1.30.0"  # the oldest release still supported by the big providers


def _documents() -> list[dict]:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    docs = []
    for name in kustomization["resources"]:
        docs += [doc for doc in yaml.safe_load_all((K8S / name).read_text()) if doc]
    return docs


DOCS = _documents()
BY_NAME = {(doc["kind"], doc["metadata"]["name"]): doc for doc in DOCS}


def _container(deployment: str) -> dict:
    return BY_NAME[("Deployment", deployment)]["spec"]["template"]["spec"]["containers"][0]


def test_every_file_in_the_folder_is_applied() -> None:
    listed = set(yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"])
    assert listed == {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}


@pytest.mark.parametrize(
    "doc", [d for d in DOCS if d["kind"] != "ScaledObject"], ids=lambda d: d["metadata"]["name"]
)
def test_core_resources_match_the_kubernetes_schemas(doc: dict) -> None:
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_the_validator_rejects_what_kubernetes_would() -> None:
    broken = json.loads(json.dumps(BY_NAME[("Deployment", "imgclf-worker")]))
    broken["spec"]["template"]["spec"]["terminationGracePeriod"] = 120  # not a field
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def _keda(docs: list[dict]) -> subprocess.CompletedProcess[str]:
    if shutil.which("node") is None or not (KEDA_VALIDATOR / "node_modules").is_dir():
        pytest.skip("KEDA's schema needs Node.js and `npm ci --prefix tests/k8s` (test.sh runs it)")
    return subprocess.run(
        ["node", str(KEDA_VALIDATOR / "validate_keda.mjs")],
        input=json.dumps(docs),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_scaled_object_matches_kedas_schema_and_scales_the_worker() -> None:
    scaled = [d for d in DOCS if d["kind"] == "ScaledObject"]
    result = _keda(scaled)
    assert result.returncode == 0, result.stdout + result.stderr
    broken = json.loads(json.dumps(scaled))
    broken[0]["spec"]["minReplicaCount"] = "one"
    assert _keda(broken).returncode == 1
    (spec,) = [d["spec"] for d in scaled]
    assert ("Deployment", spec["scaleTargetRef"]["name"]) in BY_NAME
    triggers = {t["type"]: t["metadata"] for t in spec["triggers"]}
    # Queued plus running, from the API's cluster-wide gauges, taken once (not per API pod).
    assert triggers["prometheus"]["query"] == "max(imgclf_queue_length) + max(imgclf_jobs_running)"
    assert triggers["redis-sentinel"]["listName"] == Settings().queue_name


def test_the_gauges_the_scaler_reads_exist() -> None:
    source = (ROOT / "api" / "metrics.py").read_text()
    for name in ("imgclf_queue_length", "imgclf_jobs_running"):
        assert f'"{name}"' in source


def test_setting_names_in_the_manifests_are_real_settings() -> None:
    known = {name.upper() for name in Settings.model_fields} | {"PROMETHEUS_MULTIPROC_DIR"}
    # Read by KEDA from the worker's environment, not by imgclf.
    known |= {"REDIS_PASSWORD"}
    config = BY_NAME[("ConfigMap", "imgclf-config")]["data"]
    assert set(config) <= known, set(config) - known
    for deployment in ("imgclf-api", "imgclf-worker", "imgclf-flower"):
        names = {e["name"] for e in _container(deployment).get("env", [])}
        assert names <= known, names - known
    for trigger in BY_NAME[("ScaledObject", "imgclf-worker")]["spec"]["triggers"]:
        from_env = {v for k, v in trigger["metadata"].items() if k.endswith("FromEnv")}
        assert from_env <= known, from_env - known


def test_ports_and_probes_match_the_processes() -> None:
    settings = Settings(
        **{k.lower(): v for k, v in BY_NAME[("ConfigMap", "imgclf-config")]["data"].items()}
    )
    api, worker, flower = (_container(f"imgclf-{n}") for n in ("api", "worker", "flower"))
    assert api["ports"][0]["containerPort"] == settings.api_port
    paths = importlib.import_module("api.main").app.openapi()["paths"]
    for probe in ("readinessProbe", "livenessProbe"):
        assert api[probe]["httpGet"]["path"] in paths
        assert flower[probe]["httpGet"]["path"] == "/healthcheck"
    assert worker["ports"][0]["containerPort"] == settings.worker_metrics_port
    assert flower["ports"][0]["containerPort"] == settings.flower_port
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        command = worker[probe]["exec"]["command"]
        assert command[:3] == ["python", "-m", "worker.probe"]
        assert (ROOT / "worker" / "probe.py").is_file()
    annotations = {
        name: BY_NAME[("Deployment", f"imgclf-{name}")]["spec"]["template"]["metadata"][
            "annotations"
        ]
        for name in ("api", "worker", "flower")
    }
    assert annotations["api"]["prometheus.io/port"] == str(settings.api_port)
    assert annotations["worker"]["prometheus.io/port"] == str(settings.worker_metrics_port)
    assert annotations["flower"]["prometheus.io/port"] == str(settings.flower_port)


def test_a_scale_down_lets_running_jobs_finish() -> None:
    config = BY_NAME[("ConfigMap", "imgclf-config")]["data"]
    grace = BY_NAME[("Deployment", "imgclf-worker")]["spec"]["template"]["spec"][
        "terminationGracePeriodSeconds"
    ]
    assert grace > int(config["TASK_TIME_LIMIT_SECONDS"])


def _probe(what: str, env: dict[str, str]) -> int:
    command = [sys.executable, "-m", "worker.probe", what]
    return subprocess.run(command, env=env, cwd=ROOT, capture_output=True, timeout=60).returncode


def test_worker_probe_answers_from_the_heartbeats(tmp_path: Path) -> None:
    """Against a real Redis: ready and live while a process of this host heartbeats; neither
    once none does; live but not ready while Redis is down (not the node's fault)."""
    server = RedisServer(tmp_path / "redis")
    server.start()
    env = service_env(server.url)
    try:
        info = WorkerInfo(
            worker_id=f"{socket.gethostname()}:1", hostname=socket.gethostname(), pid=1,
            model_name="m", model_sha256="0", runtime="onnxruntime", execution_provider="cpu",
            threads=1, model_load_seconds=0.1,
        )  # fmt: skip
        workers.beat(server.client(), info, ttl_seconds=60)
        assert (_probe("ready", env), _probe("live", env)) == (0, 0)
        workers.leave(server.client(), info.worker_id)
        assert (_probe("ready", env), _probe("live", env)) == (1, 1)
    finally:
        server.stop()
    assert (_probe("ready", env), _probe("live", env)) == (1, 0)
