"""Podman for the container tier: its Docker API on a private socket, which compose talks to, the
healthchecks it would run from systemd timers, and what its containers and images say."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CONF = Path(__file__).with_name("containers.conf")


class Podman:
    """The `podman` command with the tier's settings (CONTAINERS_CONF), and its Docker API."""

    def __init__(self, workdir: Path) -> None:
        self.env = {**os.environ, "CONTAINERS_CONF": str(CONF)}
        self.socket = workdir / "podman.sock"
        self.docker_host = f"unix://{self.socket}"

    def __call__(self, *args: str, check: bool = True, timeout: float = 120) -> str:
        result = subprocess.run(["podman", *args], env=self.env, capture_output=True, text=True,
                                timeout=timeout, check=False)  # fmt: skip
        if check and result.returncode != 0:
            raise RuntimeError(f"podman {' '.join(args)}: {result.stderr.strip()}")
        return result.stdout

    @contextmanager
    def api(self, log: Path) -> Iterator[None]:
        """Podman's Docker-compatible API on `self.socket` while the block runs."""
        with log.open("w") as out:
            service = subprocess.Popen(
                ["podman", "system", "service", "--time=0", self.docker_host],
                env=self.env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        try:
            deadline = time.monotonic() + 30
            while not self.socket.exists():
                if service.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"podman system service did not start: {log.read_text()}")
                time.sleep(0.1)
            yield
        finally:
            service.terminate()
            service.wait(timeout=30)

    def inspect(self, name: str) -> dict[str, Any]:
        found: list[dict[str, Any]] = json.loads(self("inspect", name))
        return found[0]

    def containers(self, project: str, *, every: bool = False) -> list[dict[str, Any]]:
        """The project's containers (running ones only, unless `every`), as `podman ps` lists."""
        label = f"label=com.docker.compose.project={project}"
        every_flag = ["--all"] if every else []
        listed: list[dict[str, Any]] = json.loads(
            self("ps", *every_flag, "--format", "json", "--filter", label)
        )
        return listed

    def image_size(self, image: str) -> int:
        return int(self("image", "inspect", "--format", "{{.Size}}", image).strip())


def problem() -> str | None:
    """Why this machine cannot run the tier's containers, or None when it can."""
    if shutil.which("podman") is None:
        return "podman is not installed (apt-get install podman runc debootstrap)"
    if os.geteuid() != 0:
        return "the container tier runs Podman as root, and this is not root"
    if shutil.which("debootstrap") is None:
        return "debootstrap is not installed: the base images' stand-ins are built with it"
    return None


class HealthChecks:
    """Runs each running container's healthcheck at its interval, as Podman's systemd timers
    would: this machine has no systemd, so Podman alone never runs them, and compose waits for
    `service_healthy` forever. The checks are the images' and the compose file's own."""

    def __init__(self, podman: Podman, project: str) -> None:
        self.podman = podman
        self.project = project
        self.intervals: dict[str, float] = {}
        self.last: dict[str, float] = {}
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="healthchecks", daemon=True)

    def __enter__(self) -> HealthChecks:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stopping.set()
        self.thread.join(timeout=60)

    def _interval(self, container: str) -> float:
        if container not in self.intervals:
            check = self.podman.inspect(container)["Config"].get("Healthcheck") or {}
            # Podman gives the interval in nanoseconds; no healthcheck: never due.
            nanoseconds = check.get("Interval") or 0
            self.intervals[container] = nanoseconds / 1e9 if check.get("Test") else float("inf")
        return self.intervals[container]

    def _run(self) -> None:
        while not self.stopping.wait(1):
            try:
                running = [c["Id"] for c in self.podman.containers(self.project)]
            except (RuntimeError, subprocess.TimeoutExpired):
                continue
            for container in running:
                try:
                    due = self.last.get(container, 0.0) + self._interval(container)
                    if time.monotonic() >= due:
                        self.last[container] = time.monotonic()
                        self.podman("healthcheck", "run", container, check=False, timeout=60)
                except (RuntimeError, subprocess.TimeoutExpired, IndexError):
                    continue  # gone between the listing and the check
