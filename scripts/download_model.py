"""Install the files of the models MODELS lists, as their cards say, verified by sha256.

    python scripts/download_model.py                            # from the cards' addresses
    python scripts/download_model.py --from ../shared/models     # offline, from a folder
    python scripts/download_model.py --model squeezenet --only labels

Each model's files go into its folder, `MODELS_DIR/<name>/`, beside its `card.toml`. Offline,
`--from DIR` looks for each file as `DIR/<name>/<file>`, then `DIR/<file>`. Files are written
atomically (temporary file, then rename) and only when their checksum is one the card lists; a
file already in place with such a checksum is left alone.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
from pathlib import Path

import httpx

from shared.errors import ModelError
from shared.model_cards import ModelFileSpec, ModelFolder, labels_sha256, read_cards
from shared.settings import get_settings

DOWNLOAD_TIMEOUT_SECONDS = 60.0


class InstallError(Exception):
    """A file could not be fetched, or its checksum is not one its card lists."""


def checksum(spec: ModelFileSpec, data: bytes, *, text: bool) -> str:
    """The checksum compared with the card's; labels are hashed with a final newline."""
    return labels_sha256(data) if text else hashlib.sha256(data).hexdigest()


def install(
    spec: ModelFileSpec, folder: Path, *, source: Path | None = None, text: bool = False
) -> str:
    """Put a verified copy of `spec` into `folder`; returns what was done, for people."""
    target = folder / spec.file
    if target.is_file() and checksum(spec, target.read_bytes(), text=text) in spec.sha256:
        return f"{target} already present and verified"
    data = _read_local(spec, source, folder.name) if source is not None else _download(spec)
    digest = checksum(spec, data, text=text)
    if digest not in spec.sha256:
        raise InstallError(
            f"{spec.file}: sha256 {digest} is not a checksum its card lists "
            f"({', '.join(spec.sha256)}); refusing to install it"
        )
    _write_atomically(target, data)
    return f"{target} installed ({len(data)} bytes, sha256 {digest})"


def install_model(model: ModelFolder, *, source: Path | None, only: str | None = None) -> list[str]:
    """Install a model's files (or `only` its "model" or "labels" file)."""
    card = model.card
    chosen = [("model", card.model, False), ("labels", card.labels, True)]
    return [
        install(spec, model.folder, source=source, text=text)
        for what, spec, text in chosen
        if only in (None, what)
    ]


def _read_local(spec: ModelFileSpec, source: Path, name: str) -> bytes:
    if source.is_file():
        return source.read_bytes()
    for path in (source / name / spec.file, source / spec.file):
        if path.is_file():
            return path.read_bytes()
    raise InstallError(f"neither {source / name / spec.file} nor {source / spec.file} exists")


def _download(spec: ModelFileSpec) -> bytes:
    if spec.url is None:
        raise InstallError(f"{spec.file} has no url in its card; install it with --from DIR")
    try:
        response = httpx.get(spec.url, follow_redirects=True, timeout=DOWNLOAD_TIMEOUT_SECONDS)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        raise InstallError(
            f"could not download {spec.url}: {exc}; offline, use --from DIR"
        ) from exc
    return response.content


def _write_atomically(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; workers may run as another user
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(argv: list[str] | None = None) -> int:
    settings = get_settings()
    parser = argparse.ArgumentParser(
        description="Install the models' files (ONNX model, labels) as their cards say, "
        f"verified by sha256, into MODELS_DIR ({settings.models_dir}).",
    )
    parser.add_argument(
        "--from",
        dest="source",
        type=Path,
        help="install from this folder (DIR/<model>/<file> or DIR/<file>) or, with --only, "
        "this file; no network is used",
    )
    parser.add_argument(
        "--model",
        action="append",
        choices=settings.model_names(),
        help="install only this model (repeatable; default: every model MODELS lists)",
    )
    parser.add_argument(
        "--only", choices=["model", "labels"], help="install just one of a model's two files"
    )
    args = parser.parse_args(argv)
    try:
        models = read_cards(settings.models_dir, args.model or settings.model_names())
        for model in models.values():
            for line in install_model(model, source=args.source, only=args.only):
                print(line)
    except (InstallError, ModelError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
