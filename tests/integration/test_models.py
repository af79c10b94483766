"""Several models served at once by real worker nodes, each job on the model it names."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.integration.jobs_helpers import wait_all_terminal
from tests.models import SUPERCLASS, Photo, models_dir, photos
from tests.processes import (
    RedisServer,
    api_server,
    flower_command,
    flower_lists,
    free_port,
    running,
    service_env,
    wait_until,
    worker_command,
)

pytestmark = pytest.mark.integration


PHOTOS = photos()


@dataclass
class TwoModels:
    api: str
    env: dict[str, str]
    tmp: Path
    stack: ExitStack

    def start_flower(self) -> str:
        port = free_port()
        env = {**self.env, "DEV_MODE": "1"}
        self.stack.enter_context(
            running(flower_command(port), env=env, log=self.tmp / "flower.log")
        )
        return f"http://127.0.0.1:{port}"

    def start_node(self, name: str, models: str = "") -> None:
        env = {**self.env, "WORKER_MODELS": models}
        self.stack.enter_context(
            running(worker_command(hostname=name), env=env, log=self.tmp / f"{name}.log")
        )


@pytest.fixture
def two_models(tmp_path: Path) -> Iterator[TwoModels]:
    redis = RedisServer(tmp_path / "redis")
    redis.start()
    env = service_env(
        redis.url,
        MODELS_DIR=str(models_dir(tmp_path / "models")),
        MODELS=f"squeezenet,{SUPERCLASS}",
    )
    with ExitStack() as stack:
        api = stack.enter_context(api_server(env, tmp_path / "api.log"))
        yield TwoModels(api, env, tmp_path, stack)
    redis.stop()


SUPERCLASS_QUEUES = (f"imgclf.{SUPERCLASS}", f"imgclf.{SUPERCLASS}.high")


def _models(api: str) -> dict[str, dict[str, object]]:
    listed = httpx.get(f"{api}/api/v1/models").json()
    return {model["name"]: model for model in listed["models"]}


def _submit(api: str, sent: list[Photo], model: str | None) -> list[str]:
    params = {"model": model} if model else {}
    files = [("files", (name, data, "image/jpeg")) for name, data, _, _ in sent]
    answer = httpx.post(f"{api}/api/v1/jobs/batch", params=params, files=files, timeout=60)
    assert answer.status_code == 202, answer.text
    return [job["job_id"] for job in answer.json()["jobs"]]


def test_two_models_served_at_once_each_job_on_its_own(two_models: TwoModels) -> None:
    api = two_models.api
    two_models.start_node("squeezenet-only", models="squeezenet")
    wait_until(lambda: _models(api)["squeezenet"]["workers_online"] == 2, timeout=60,
               what="the SqueezeNet node")  # fmt: skip

    # A model no worker serves yet: listed, said so by /ready, its jobs accepted and waiting.
    listed = _models(api)
    assert listed[SUPERCLASS]["workers_online"] == 0
    assert listed[SUPERCLASS]["num_classes"] == 6
    assert listed["squeezenet"]["default"] is True
    assert httpx.get(f"{api}/ready").json()["models_without_workers"] == [SUPERCLASS]
    waiting = _submit(api, PHOTOS, SUPERCLASS)
    queue = httpx.get(f"{api}/api/v1/queue").json()
    assert queue["models"][SUPERCLASS]["queued"] == len(PHOTOS)
    assert queue["models"][SUPERCLASS]["workers_online"] == 0
    flower = two_models.start_flower()
    wait_until(lambda: flower_lists(flower, SUPERCLASS_QUEUES), timeout=60,
               what="Flower listing the superclass model's queues")  # fmt: skip

    unknown = httpx.post(f"{api}/api/v1/jobs", params={"model": "resnet"},
                         files={"file": ("a.jpg", PHOTOS[0][1], "image/jpeg")})  # fmt: skip
    assert unknown.status_code == 422
    assert unknown.json()["code"] == "unknown_model"
    assert "squeezenet, superclass" in unknown.json()["message"]

    # A node serving both: the waiting jobs run, and both models' new jobs too.
    two_models.start_node("both")
    default = _submit(api, PHOTOS, None)
    again = _submit(api, PHOTOS, SUPERCLASS)
    by_id = wait_all_terminal(api, waiting + default + again, timeout=180)
    card = _models(api)[SUPERCLASS]
    for ids, model, column in ((waiting, SUPERCLASS, 3), (default, "squeezenet", 2),
                               (again, SUPERCLASS, 3)):  # fmt: skip
        for job_id, photo in zip(ids, PHOTOS, strict=True):
            job = by_id[job_id]
            assert job["status"] == "succeeded", job
            assert job["model"] == model
            assert job["result"]["predictions"][0]["label"] == photo[column], (photo[0], job)
            ran = job["result"]["model"]
            assert ran["name"] == model
            if model == SUPERCLASS:
                assert ran["version"] == card["version"]
                assert ran["sha256"] in card["sha256"]
    assert httpx.get(f"{api}/ready").json()["models_without_workers"] == []
    info = httpx.get(f"{api}/api/v1/model-info", params={"model": SUPERCLASS}).json()
    assert info["model"] == SUPERCLASS
    assert info["input_shape"] == [1, 192, 192, 3]
    assert info["workers_online"] == 2


def test_the_api_refuses_to_start_with_an_invalid_card(tmp_path: Path) -> None:
    models = models_dir(tmp_path / "models")
    card = models / SUPERCLASS / "card.toml"
    card.write_text(card.read_text().replace('layout = "NHWC"', 'layout = "HWC"'))
    env = service_env("redis://127.0.0.1:1/0", MODELS_DIR=str(models),
                      MODELS=f"squeezenet,{SUPERCLASS}")  # fmt: skip
    result = subprocess.run([sys.executable, "-m", "api", "--port", "1"], env=env,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode != 0
    assert f"imgclf API refuses to start: The model card {card} is invalid" in result.stderr
    assert "input.layout" in result.stderr
