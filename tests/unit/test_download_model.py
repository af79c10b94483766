from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from scripts.download_model import InstallError, install, install_model, main
from shared.model_cards import read_card
from tests.models import SQUEEZENET
from tests.processes import SHARED_MODELS

pytestmark = pytest.mark.unit

CARD = read_card(SQUEEZENET).card


def _empty_squeezenet(tmp_path: Path) -> Path:
    """A models folder holding SqueezeNet's card alone."""
    folder = tmp_path / "models" / "squeezenet"
    folder.mkdir(parents=True)
    shutil.copy(SQUEEZENET / "card.toml", folder)
    return folder


def test_installs_a_cards_verified_files_from_a_flat_folder(tmp_path: Path) -> None:
    folder = _empty_squeezenet(tmp_path)
    done = install_model(read_card(folder), source=SHARED_MODELS)
    assert all("installed" in line for line in done)
    target = folder / CARD.model.file
    assert target.read_bytes() == (SHARED_MODELS / CARD.model.file).read_bytes()
    assert target.stat().st_mode & 0o644 == 0o644
    again = install_model(read_card(folder), source=SHARED_MODELS)
    assert all("already present" in line for line in again)
    assert not list(folder.glob("*.part"))


def test_installs_from_a_folder_of_model_folders(tmp_path: Path) -> None:
    """`--from DIR` finds a model's files in DIR/<name>/ too (another models folder)."""
    folder = _empty_squeezenet(tmp_path)
    (done,) = install_model(read_card(folder), source=SQUEEZENET.parent, only="labels")
    assert "installed" in done
    assert (folder / CARD.labels.file).is_file()
    assert not (folder / CARD.model.file).exists()


def test_refuses_a_file_with_a_checksum_its_card_does_not_list(tmp_path: Path) -> None:
    bogus = tmp_path / "squeezenet1.1-7.onnx"
    bogus.write_bytes(b"not the model")
    out = tmp_path / "out"
    with pytest.raises(InstallError, match="not a checksum its card lists"):
        install(CARD.model, out, source=bogus)
    assert not (out / CARD.model.file).exists()


def test_labels_without_final_newline_are_accepted(tmp_path: Path) -> None:
    upstream = tmp_path / "imagenet_labels.txt"
    upstream.write_bytes((SHARED_MODELS / CARD.labels.file).read_bytes().rstrip(b"\n"))
    assert "installed" in install(CARD.labels, tmp_path / "out", source=upstream, text=True)


def test_replaces_a_corrupt_installed_file(tmp_path: Path) -> None:
    target = tmp_path / CARD.model.file
    target.write_bytes(b"truncated")
    assert "installed" in install(CARD.model, tmp_path, source=SHARED_MODELS)
    assert target.stat().st_size == 4_954_054


def test_the_command_says_which_card_is_invalid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _empty_squeezenet(tmp_path)
    (folder / "card.toml").write_text('name = "squeezenet"\nversion = "1"\n')
    monkeypatch.setenv("MODELS_DIR", str(folder.parent))
    from shared.settings import get_settings

    get_settings.cache_clear()
    try:
        assert main(["--from", str(SHARED_MODELS)]) == 1
    finally:
        get_settings.cache_clear()
    error = capsys.readouterr().err
    assert f"The model card {folder / 'card.toml'} is invalid" in error
    assert "title: Field required" in error
