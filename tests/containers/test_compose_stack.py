"""`docker compose up --build` for real, on Podman: the images built from the Dockerfiles as they
are, the stack classifying, its UI, Flower, Prometheus and webhooks working, a worker container
killed mid-run losing no job, and `down` leaving nothing behind. Tests run in file order."""

from __future__ import annotations

import json
import os
import signal
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect
from standardwebhooks import Webhook

from tests.browser import chromium
from tests.containers.conftest import FLOWER_AUTH, PROJECT, Deployment
from tests.integration.jobs_helpers import count_by_status, submit_many, wait_all_terminal
from tests.processes import SHARED_IMAGES, wait_until

# Building the images on a clean machine takes minutes before the first test.
pytestmark = [pytest.mark.containers, pytest.mark.timeout(2400)]
OURS = ("api", "ui", "worker", "webhooks", "flower")
# Each running job's owner, "hostname:pid:random" of the worker process that claimed it, as the
# recovery sweep reads them (shared/jobs/recovery.py).
OWNERS = (
    "local owners = {} "
    "for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do "
    "owners[#owners + 1] = redis.call('HGET', 'imgclf:job:' .. id, 'worker') or '' end "
    "return owners"
)


def _labrador(deployment: Deployment, **params: str) -> dict[str, Any]:
    response = httpx.post(
        f"{deployment.url('api')}/api/v1/jobs",
        params={"wait": "20", **params},
        files={"file": ("labrador.jpg", (SHARED_IMAGES / "labrador.jpg").read_bytes())},
        timeout=60,
    )
    assert response.status_code in (200, 202), response.text
    job: dict[str, Any] = response.json()
    return job


def test_a_photo_is_classified_through_the_published_api_port(deployment: Deployment) -> None:
    job = _labrador(deployment)
    assert job["status"] == "succeeded"
    assert job["result"]["predictions"][0]["label"] == "Labrador retriever"


def test_each_of_our_containers_runs_as_its_non_root_user(deployment: Deployment) -> None:
    for service in OURS:
        container = deployment.compose.container(service)
        assert deployment.podman("exec", container, "id", "-un").strip() == "imgclf", service
        assert deployment.podman("exec", container, "id", "-u").strip() != "0", service


def test_the_ui_classifies_in_a_browser_on_its_published_port(deployment: Deployment) -> None:
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1300, "height": 1000})
        page.set_default_timeout(120_000)
        page.goto(deployment.url("ui"), timeout=180_000)
        expect(page.get_by_role("heading", name="Classify images")).to_be_visible(timeout=180_000)
        page.set_input_files("input[type=file]", str(SHARED_IMAGES / "labrador.jpg"))
        page.get_by_role("button", name="Classify", exact=True).click()
        expect(page.get_by_role("heading", name="Labrador retriever — 68.1 %")).to_be_visible()


def _flower_workers(deployment: Deployment) -> dict[str, Any]:
    response = httpx.get(f"{deployment.url('flower')}/api/workers", params={"refresh": "1"},
                         auth=FLOWER_AUTH, timeout=30)  # fmt: skip
    response.raise_for_status()
    workers: dict[str, Any] = response.json()
    return workers


def _hostname(deployment: Deployment, service: str, number: int = 1) -> str:
    config = deployment.podman.inspect(deployment.compose.container(service, number))["Config"]
    return str(config["Hostname"])


def test_flower_lists_the_worker_behind_its_basic_auth(deployment: Deployment) -> None:
    assert httpx.get(f"{deployment.url('flower')}/api/workers", timeout=30).status_code == 401
    worker = f"celery@{_hostname(deployment, 'worker')}"
    wait_until(lambda: worker in _flower_workers(deployment), timeout=120, what="worker in Flower")


def _targets(deployment: Deployment) -> list[dict[str, Any]]:
    response = httpx.get(f"{deployment.url('prometheus')}/api/v1/targets", timeout=30)
    targets: list[dict[str, Any]] = response.json()["data"]["activeTargets"]
    return targets


def test_prometheus_scrapes_every_target_up(deployment: Deployment) -> None:
    expected = {"imgclf-api", "imgclf-worker", "flower", "prometheus"}
    wait_until(lambda: {t["labels"]["job"] for t in _targets(deployment)
                        if t["health"] == "up"} == expected, timeout=120, what="targets up")  # fmt: skip
    assert [t for t in _targets(deployment) if t["health"] != "up"] == []


def test_a_webhook_reaches_a_receiver_container(deployment: Deployment) -> None:
    job = _labrador(deployment, callback_url="http://receiver:8080/hooks")
    deliveries: list[dict[str, Any]] = []

    def delivered() -> bool:
        deliveries[:] = httpx.get(f"{deployment.receiver_url()}/deliveries", timeout=10).json()
        return any(d["headers"].get("webhook-id") == job["job_id"] for d in deliveries)

    wait_until(delivered, timeout=120, what="the webhook")
    (delivery,) = [d for d in deliveries if d["headers"]["webhook-id"] == job["job_id"]]
    event = Webhook(deployment.webhook_secret).verify(delivery["body"], delivery["headers"])
    assert event["data"]["result"]["predictions"][0]["label"] == "Labrador retriever"


def _holds_jobs(deployment: Deployment, hostname: str) -> bool:
    redis = deployment.compose.container("redis")
    owners = deployment.podman("exec", redis, "redis-cli", "--raw", "EVAL", OWNERS, "1",
                               "imgclf:running").split()  # fmt: skip
    return any(owner.startswith(f"{hostname}:") for owner in owners)


def test_a_killed_worker_container_loses_no_job_and_comes_back(deployment: Deployment) -> None:
    """Two worker containers; one's processes killed (SIGKILL, as the OOM killer or a crash
    would) while it holds jobs. `podman kill` is not that: Podman counts it as the user's stop,
    which a restart policy leaves stopped."""
    compose, podman = deployment.compose, deployment.podman
    compose("up", "--detach", "--wait", "--no-recreate", "--scale", "worker=2", "worker")
    names = {f"celery@{_hostname(deployment, 'worker', n)}" for n in (1, 2)}
    wait_until(lambda: names <= set(_flower_workers(deployment)), timeout=120, what="2 workers")
    victim = compose.container("worker")
    fox = (SHARED_IMAGES / "red-fox-4928x3280.jpg").read_bytes()
    jobs = submit_many(deployment.url("api"), fox, 192, clients=4, per_request=8)
    hostname = _hostname(deployment, "worker")
    wait_until(lambda: _holds_jobs(deployment, hostname), timeout=120, what="a job held")
    os.kill(podman.inspect(victim)["State"]["Pid"], signal.SIGKILL)
    done = wait_all_terminal(deployment.url("api"), jobs, timeout=600)
    assert count_by_status(done) == {"succeeded": len(jobs)}
    assert all(j["result"]["predictions"][0]["label"] == "red fox" for j in done.values())
    state = podman.inspect(victim)
    assert state["RestartCount"] >= 1
    wait_until(lambda: podman.inspect(victim)["State"]["Health"]["Status"] == "healthy",
               timeout=180, what="the restarted worker healthy")  # fmt: skip


def test_down_leaves_no_container_network_or_volume(deployment: Deployment) -> None:
    """Last: `down` removes the containers and the network, keeps the named volumes; `down -v`
    removes those too."""
    compose, podman = deployment.compose, deployment.podman
    volumes = {f"{PROJECT}_{name}" for name in compose.config()["volumes"]}
    compose("down", "--timeout", "30")
    assert podman.containers(PROJECT, every=True) == []
    networks = json.loads(podman("network", "ls", "--format", "json"))
    assert [n["name"] for n in networks if n["name"].startswith(PROJECT)] == []
    kept = {v["Name"] for v in json.loads(podman("volume", "ls", "--format", "json"))}
    # Only the volumes of the services that ran: Grafana's never existed.
    assert {f"{PROJECT}_redis-data", f"{PROJECT}_prometheus-data"} <= kept
    compose("down", "--volumes", "--timeout", "30")
    kept = {v["Name"] for v in json.loads(podman("volume", "ls", "--format", "json"))}
    assert volumes & kept == set()
