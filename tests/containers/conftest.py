"""The container tier's stack: the images built from Dockerfile.api and Dockerfile.worker as they
are, and docker-compose.yml brought up with the README's environment, on Podman."""

from __future__ import annotations

import base64
import os
import secrets
import socket
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.containers import standins
from tests.containers.compose import Compose
from tests.containers.podman import HealthChecks, Podman, problem
from tests.processes import ROOT

PROJECT = "imgclf-containertest"
# The README's stack, but Grafana (and Jaeger, in the tracing profile): their images have no
# Debian package to build a stand-in from, and no registry is reachable to pull them.
SERVICES = ("redis", "api", "worker", "webhooks", "ui", "flower", "prometheus")
PUBLISHED = {"api": 8000, "ui": 8501, "flower": 5555, "prometheus": 9090}
FLOWER_AUTH = ("admin", "change-me")
# Image sizes, for the summary at the end of the run (pytest_terminal_summary).
SIZES: dict[str, int] = {}


@dataclass(frozen=True)
class Deployment:
    podman: Podman
    compose: Compose
    webhook_secret: str

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{PUBLISHED[service]}"

    def receiver_url(self) -> str:
        address = self.compose("port", "receiver", "8080").strip()
        return f"http://{address}"


def _busy(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    reason = problem()
    if reason is not None:
        message = f"container tier not run: {reason}"
        # CI installs what the tier needs (scripts/test.sh): there, a missing engine is a failure.
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    busy = [f"{service} {port}" for service, port in PUBLISHED.items() if _busy(port)]
    if busy:
        pytest.fail(f"the compose stack publishes ports already in use here: {', '.join(busy)}")
    if not (ROOT / "models" / "squeezenet" / "squeezenet1.1-7.onnx").exists():
        pytest.fail("no model in models/: uv run python scripts/download_model.py --from DIR")
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    workdir = tmp_path_factory.mktemp("containers")
    podman = Podman(workdir)
    variables = {
        # The README's `docker compose up`, offline (the model from models/), with webhooks on.
        "FLOWER_BASIC_AUTH": ":".join(FLOWER_AUTH),
        "GRAFANA_ADMIN_PASSWORD": "change-me",
        "MODEL_SOURCE": "models",
        "WEBHOOK_SECRET": secret,
        "CALLBACK_ALLOWED_HOSTS": "receiver",
    }
    with podman.api(workdir / "podman-api.log"):
        compose = Compose(podman, PROJECT, variables)
        services = compose.config()["services"]
        needed = [services[name].get("image", "") for name in SERVICES]
        standins.build(podman, standins.base_images(needed), workdir)
        with HealthChecks(podman, PROJECT):
            try:
                # The README's command, waiting for every healthcheck to pass.
                compose("up", "--build", "--detach", "--wait", "--wait-timeout", "600",
                        *SERVICES, "receiver", timeout=2400)  # fmt: skip
                for name in ("python:3.11-slim", "imgclf-api", "imgclf-ui", "imgclf-worker"):
                    SIZES[name] = podman.image_size(name)
                yield Deployment(podman, compose, secret)
            finally:
                compose("down", "--volumes", "--timeout", "30")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if SIZES:
        base = SIZES["python:3.11-slim"]
        terminalreporter.section("container images")
        for name, size in SIZES.items():
            over = f" ({(size - base) / 1e6:.0f} MB over the base)" if size != base else ""
            terminalreporter.write_line(f"{name}: {size / 1e6:.0f} MB{over}")
