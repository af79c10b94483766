"""Stand-ins for the base images the Dockerfiles and compose file name, built here because no
image registry is reachable: a Debian bookworm root (debootstrap, from the Debian mirror) with
what each official image provides. An image already present under such a name that is not one
of ours (a real one, pulled where a registry is reachable) is used as it is."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import ssl
import subprocess
import tempfile
from pathlib import Path

from tests.containers.podman import Podman
from tests.processes import ROOT

HERE = Path(__file__).parent / "standins"
BASE = "localhost/imgclf-standin-base:bookworm"
LABEL = "imgclf.standin"
MIRROR = os.environ.get("IMGCLF_DEBIAN_MIRROR", "http://deb.debian.org/debian")


def base_images(compose_images: list[str]) -> dict[str, str]:
    """Each base image the build and the stack need, by its full name, to its stand-in's kind
    (python, redis, prometheus): the Dockerfiles' FROM lines and the compose file's images."""
    names = set(compose_images)
    for dockerfile in ("Dockerfile.api", "Dockerfile.worker"):
        text = (ROOT / dockerfile).read_text()
        names.update(re.findall(r"^FROM\s+(\S+)", text, flags=re.MULTILINE))
    wanted = {}
    for name in names:
        kind = name.split(":")[0].rsplit("/", 1)[-1]
        if (HERE / f"{kind}.Containerfile").exists():
            wanted[_qualified(name)] = kind
    return wanted


def _qualified(name: str) -> str:
    """The name as the Docker API resolves a short one: docker.io, library/ for official ones."""
    parts = name.split("/")
    if len(parts) == 1:
        return f"docker.io/library/{name}"
    if "." in parts[0] or ":" in parts[0] or parts[0] == "localhost":
        return name  # a registry named
    return f"docker.io/{name}"


def build(podman: Podman, images: dict[str, str], workdir: Path) -> None:
    """Build the stand-ins that are missing or out of date."""
    digest = hashlib.sha256(
        b"".join(p.name.encode() + p.read_bytes() for p in sorted(HERE.iterdir()))
    ).hexdigest()[:16]
    for name, kind in sorted(images.items()):
        if _exists(podman, name):
            label = podman("image", "inspect", "--format", f'{{{{index .Labels "{LABEL}"}}}}',
                           name).strip()  # fmt: skip
            if label in ("", "<no value>") or label == digest:
                continue  # a real image, or our stand-in as it is now
        _ensure_base(podman, workdir)
        with tempfile.TemporaryDirectory(dir=workdir) as context:
            for part in HERE.iterdir():
                shutil.copy(part, context)
            # How anything on this machine reaches the package registries: its CA bundle.
            shutil.copy(_ca_bundle(), Path(context) / "ca-certificates.crt")
            podman("build", "--format", "docker", "--label", f"{LABEL}={digest}",
                   "--file", f"{context}/{kind}.Containerfile", "--tag", name, context,
                   timeout=900)  # fmt: skip


def _exists(podman: Podman, name: str) -> bool:
    result = subprocess.run(["podman", "image", "exists", name], env=podman.env, check=False)
    return result.returncode == 0


def _ensure_base(podman: Podman, workdir: Path) -> None:
    if _exists(podman, BASE):
        return
    rootfs = workdir / "rootfs"
    made = subprocess.run(["debootstrap", "--variant=minbase", "bookworm", str(rootfs), MIRROR],
                          capture_output=True, text=True, timeout=900, check=False)  # fmt: skip
    if made.returncode != 0:
        raise RuntimeError(f"debootstrap from {MIRROR} failed: {made.stdout[-2000:]}{made.stderr}")
    archive = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
    imported = subprocess.run(["podman", "import", "-", BASE], stdin=archive.stdout,
                              env=podman.env, capture_output=True, text=True, timeout=600,
                              check=False)  # fmt: skip
    archive.wait()
    if imported.returncode != 0:
        raise RuntimeError(f"podman import of the Debian root failed: {imported.stderr}")
    shutil.rmtree(rootfs)


def _ca_bundle() -> str:
    return (
        os.environ.get("SSL_CERT_FILE")
        or ssl.get_default_verify_paths().cafile
        or "/etc/ssl/certs/ca-certificates.crt"
    )
