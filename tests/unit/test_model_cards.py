"""Models as data: cards, and what a worker refuses to load, each with one clear message."""

from __future__ import annotations

import hashlib
import json
import shutil
import tomllib
from pathlib import Path

import fakeredis
import pytest

from shared.errors import ModelError
from shared.jobs import JobStore, NewJob
from shared.model_cards import labels_sha256, read_card
from shared.settings import Settings
from tests.jobs import QUEUES, next_delivery, queue_job
from tests.models import SQUEEZENET, SUPERCLASS, install_superclass, photos
from worker.model import Classifier, load_named
from worker.pipeline import classify
from worker.processing import JobRunner

pytestmark = pytest.mark.unit
LIMIT = 50_000_000


PHOTOS = {name: data for name, data, _, _ in photos()}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("models")
    shutil.copytree(SQUEEZENET, base / "squeezenet")
    install_superclass(base)
    return base


@pytest.fixture(scope="module")
def superclass(models: Path) -> Classifier:
    return load_named(models, SUPERCLASS, threads=1)


def _edit_card(folder: Path, **changes: object) -> None:
    """Change fields of a folder's card (`section__field` for a table's field)."""
    card = tomllib.loads((folder / "card.toml").read_text())
    for key, value in changes.items():
        section, _, field = key.partition("__")
        if field:
            card[section][field] = value
        else:
            card[section] = value
    (folder / "card.toml").write_text(_toml(card))


def _toml(card: dict[str, object]) -> str:
    """A card's TOML: scalars first, then its tables (values are strings, numbers or lists)."""
    tables = {k: v for k, v in card.items() if isinstance(v, dict)}
    lines = [f"{k} = {json.dumps(v)}" for k, v in card.items() if k not in tables]
    for name, table in tables.items():
        lines += [f"[{name}]", *(f"{k} = {json.dumps(v)}" for k, v in table.items())]
    return "\n".join(lines) + "\n"


def _copy(models: Path, name: str, tmp_path: Path) -> Path:
    folder = tmp_path / name
    shutil.copytree(models / name, folder)
    return folder


@pytest.mark.parametrize(
    ("photo", "superclass_of"),
    [("labrador.jpg", "dog"), ("chelsea.jpg", "cat"), ("coffee.jpg", "food"), ("fox.jpg", "other")],
)
def test_the_second_model_answers_by_its_own_card(
    superclass: Classifier, photo: str, superclass_of: str
) -> None:
    """192x192 NHWC BGR 0-255 input and probabilities out: only its card's recipe gets these."""
    result = classify(PHOTOS[photo], classifier=superclass, top_k=1, max_pixels=LIMIT)
    assert result.predictions[0].label == superclass_of
    assert result.predictions[0].probability > 0.8


def test_an_invalid_card_is_refused_naming_its_fields(models: Path, tmp_path: Path) -> None:
    folder = _copy(models, SUPERCLASS, tmp_path)
    _edit_card(folder, input__layout="NCWH", input__std=[1, 0, 1], colour="red")
    with pytest.raises(ModelError) as refused:
        load_named(tmp_path, SUPERCLASS, threads=1)
    message = refused.value.message
    assert message.startswith(f"The model card {folder / 'card.toml'} is invalid")
    assert "input.layout" in message
    assert "input.std" in message
    assert "colour: Extra inputs are not permitted" in message


def test_a_card_must_live_in_its_models_folder(models: Path, tmp_path: Path) -> None:
    shutil.copytree(models / SUPERCLASS, tmp_path / "other")
    with pytest.raises(ModelError, match="its folder must have that name"):
        read_card(tmp_path / "other")


def test_a_model_file_with_another_checksum_is_refused(models: Path, tmp_path: Path) -> None:
    folder = _copy(models, SUPERCLASS, tmp_path)
    _edit_card(folder, model__sha256=["0" * 64])
    with pytest.raises(ModelError, match=r"has sha256 [0-9a-f]{64}, not one its card lists"):
        load_named(tmp_path, SUPERCLASS, threads=1)


def test_a_file_that_is_not_onnx_is_refused(models: Path, tmp_path: Path) -> None:
    folder = _copy(models, SUPERCLASS, tmp_path)
    junk = b"\x08\x07not a model at all"
    (folder / "superclass.onnx").write_bytes(junk)
    _edit_card(folder, model__sha256=[hashlib.sha256(junk).hexdigest()])
    with pytest.raises(ModelError, match="is corrupt or not ONNX"):
        load_named(tmp_path, SUPERCLASS, threads=1)


def test_a_missing_file_is_refused_with_how_to_install_it(models: Path, tmp_path: Path) -> None:
    folder = _copy(models, SUPERCLASS, tmp_path)
    (folder / "labels.txt").unlink()
    with pytest.raises(ModelError, match=r"labels\.txt of model 'superclass' is missing"):
        load_named(tmp_path, SUPERCLASS, threads=1)


def test_labels_that_do_not_match_the_output_are_refused(models: Path, tmp_path: Path) -> None:
    folder = _copy(models, SUPERCLASS, tmp_path)
    labels = b"dog\ncat\nbird\nvehicle\nfood\nother\nfish\n"
    (folder / "labels.txt").write_bytes(labels)
    _edit_card(folder, labels__sha256=[labels_sha256(labels)], output__classes=7)
    with pytest.raises(ModelError, match=r"gives \[1, 6\], but its card and labels say 7"):
        load_named(tmp_path, SUPERCLASS, threads=1)
    _edit_card(folder, output__classes=6)
    with pytest.raises(ModelError, match=r"has 7 labels; the card .* says output\.classes = 6"):
        load_named(tmp_path, SUPERCLASS, threads=1)


def test_an_input_shape_other_than_the_cards_is_refused(models: Path, tmp_path: Path) -> None:
    folder = _copy(models, SUPERCLASS, tmp_path)
    _edit_card(folder, input__layout="NCHW")
    with pytest.raises(ModelError, match=r"its card says one float tensor of shape \[1, 3, 192"):
        load_named(tmp_path, SUPERCLASS, threads=1)


def test_a_worker_runs_each_job_on_the_model_it_names(models: Path) -> None:
    """One runner serving both models: SqueezeNet's job gets ImageNet classes, the other's
    superclasses, each recording the model (name, version, sha256) that ran it."""
    classifiers = {name: load_named(models, name, threads=1) for name in ("squeezenet", SUPERCLASS)}
    client = fakeredis.FakeRedis()
    store = JobStore(client, ttl_seconds=60)
    runner = JobRunner(store, classifiers, max_pixels=LIMIT)
    image = PHOTOS["labrador.jpg"]
    for name, top1 in (("squeezenet", "Labrador retriever"), (SUPERCLASS, "dog")):
        new = NewJob(filename="a.jpg", content_type="image/jpeg", size_bytes=len(image),
                     width=1, height=1, top_k=1, model=name)  # fmt: skip
        job = queue_job(store, new, image)
        delivery = next_delivery(client, QUEUES.queue(name, "normal"))
        assert delivery.model == name
        runner.run(delivery.job_ids, delivery.tag, delivery.model)
        done = store.get(job.job_id)
        assert done.result is not None
        assert done.result.predictions[0].label == top1
        ran = classifiers[name]
        assert (done.result.model.name, done.result.model.version) == (name, ran.version)
        assert done.result.model.sha256 == ran.sha256


def test_a_job_of_a_model_the_worker_does_not_serve_fails_saying_so(models: Path) -> None:
    store = JobStore(fakeredis.FakeRedis(), ttl_seconds=60)
    runner = JobRunner(store, {"squeezenet": load_named(models, "squeezenet", threads=1)},
                       max_pixels=LIMIT)  # fmt: skip
    job = queue_job(store)
    runner.run([job.job_id], job.job_id, SUPERCLASS)
    failed = store.get(job.job_id)
    assert failed.error is not None
    assert failed.error.code == "model_error"
    assert "does not serve model 'superclass' (it serves squeezenet)" in failed.error.message


@pytest.mark.parametrize(
    ("env", "complaint"),
    [
        ({"MODELS": "squeezenet,High"}, "MODELS must list model names"),
        ({"MODELS": "squeezenet,webhooks"}, "MODELS must list model names"),
        ({"MODELS": "a,a"}, "lists a model twice"),
        ({"MODELS": "a,b", "DEFAULT_MODEL": "c"}, "DEFAULT_MODEL 'c' is not in MODELS"),
        ({"MODELS": "a,b", "WORKER_MODELS": "b,c"}, "WORKER_MODELS 'b,c' must be among MODELS"),
    ],
)
def test_model_settings_are_checked_at_start(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], complaint: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=complaint):
        Settings()


def test_a_node_serves_its_worker_models_in_models_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELS", "a,b,c")
    monkeypatch.setenv("WORKER_MODELS", "c,a")
    settings = Settings()
    assert settings.worker_model_names() == ["a", "c"]
    assert settings.default_model_name() == "a"
