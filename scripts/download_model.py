"""Install the SqueezeNet 1.1 model and ImageNet labels into `models/`, verified by sha256.

    python scripts/download_model.py                      # from the public addresses
    python scripts/download_model.py --from ../shared/models   # offline, from a folder or file

Files are written atomically (temporary file, then rename) and only when their checksum is one of
the known good ones; a file already in place with a good checksum is left alone.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import httpx

from shared.model_files import LABELS_FILE, MODEL_FILE, ModelFile, content_sha256
from shared.settings import get_settings

FILES = (MODEL_FILE, LABELS_FILE)
DOWNLOAD_TIMEOUT_SECONDS = 60.0


class InstallError(Exception):
    """A file could not be fetched, or its checksum is not a known good one."""


def install(spec: ModelFile, target: Path, *, source: Path | None = None) -> str:
    """Put a verified copy of `spec` at `target`; returns what was done, for people."""
    if target.is_file() and content_sha256(spec, target.read_bytes()) in spec.sha256:
        return f"{target} already present and verified"
    data = _read_local(spec, source) if source is not None else _download(spec)
    digest = content_sha256(spec, data)
    if digest not in spec.sha256:
        raise InstallError(
            f"{spec.filename}: sha256 {digest} is not a known good checksum "
            f"({', '.join(sorted(spec.sha256))}); refusing to install it"
        )
    _write_atomically(target, data)
    return f"{target} installed ({len(data)} bytes, sha256 {digest})"


def _read_local(spec: ModelFile, source: Path) -> bytes:
    path = source / spec.filename if source.is_dir() else source
    if not path.is_file():
        raise InstallError(f"{path} does not exist")
    return path.read_bytes()


def _download(spec: ModelFile) -> bytes:
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
    parser = argparse.ArgumentParser(
        description="Install SqueezeNet 1.1 (ONNX) and the ImageNet labels, verified by sha256.",
    )
    parser.add_argument(
        "--from",
        dest="source",
        type=Path,
        help="install from this folder (holding both files) or, with --only, this file; "
        "no network is used",
    )
    parser.add_argument(
        "--only", choices=["model", "labels"], help="install just one of the two files"
    )
    args = parser.parse_args(argv)
    settings = get_settings()
    targets = {
        "model": (MODEL_FILE, settings.model_path),
        "labels": (LABELS_FILE, settings.labels_path),
    }
    chosen = [targets[args.only]] if args.only else list(targets.values())
    try:
        for spec, target in chosen:
            print(install(spec, target, source=args.source))
    except InstallError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
