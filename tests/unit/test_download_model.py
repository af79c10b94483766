from __future__ import annotations

from pathlib import Path

import pytest

from scripts.download_model import InstallError, install
from shared.model_files import LABELS_FILE, MODEL_FILE
from tests.processes import SHARED_MODELS

pytestmark = pytest.mark.unit


def test_installs_verified_files_from_a_folder(tmp_path: Path) -> None:
    target = tmp_path / "models" / MODEL_FILE.filename
    assert "installed" in install(MODEL_FILE, target, source=SHARED_MODELS)
    assert target.read_bytes() == (SHARED_MODELS / MODEL_FILE.filename).read_bytes()
    assert target.stat().st_mode & 0o644 == 0o644
    assert "already present" in install(MODEL_FILE, target, source=SHARED_MODELS)
    assert not list(target.parent.glob("*.part"))


def test_refuses_a_file_with_an_unknown_checksum(tmp_path: Path) -> None:
    bogus = tmp_path / "squeezenet1.1-7.onnx"
    bogus.write_bytes(b"not the model")
    target = tmp_path / "out" / "model.onnx"
    with pytest.raises(InstallError, match="not a known good checksum"):
        install(MODEL_FILE, target, source=bogus)
    assert not target.exists()


def test_labels_without_final_newline_are_accepted(tmp_path: Path) -> None:
    upstream = tmp_path / "imagenet_labels.txt"
    upstream.write_bytes((SHARED_MODELS / LABELS_FILE.filename).read_bytes().rstrip(b"\n"))
    target = tmp_path / "out" / "labels.txt"
    assert "installed" in install(LABELS_FILE, target, source=upstream)


def test_replaces_a_corrupt_installed_file(tmp_path: Path) -> None:
    target = tmp_path / MODEL_FILE.filename
    target.write_bytes(b"truncated")
    assert "installed" in install(MODEL_FILE, target, source=SHARED_MODELS)
    assert target.stat().st_size == 4_954_054
