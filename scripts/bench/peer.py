"""imgclf beside BentoML on the same box, the same ONNX, the same decoding and preprocessing
(`scripts/bench/peer_service.py`), the same images and the same load generator, alternated.

    uv run --group peer python -m scripts.bench.peer [--rounds R] [--clients N] [--images N]

imgclf is measured as programs use it synchronously (`POST /api/v1/jobs?wait=30`, one request
per image; `POST /api/v1/jobs/batch?wait=30`, PER_REQUEST images per request) and as the UI does
(submit, then long-poll); BentoML with keep-alive connections and with a new connection per
request, one image per request (one at a time, or through its adaptive batching) and
PER_REQUEST per request (one after another, or through its adaptive batching): its best mode
counts, for each number of images per request. Each photo size is its own run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from scripts.bench import images as photo
from scripts.bench import load, services
from scripts.processes import free_port, running, wait_for_http
from shared.settings import PROJECT_ROOT

CACHE = PROJECT_ROOT / ".run" / "bench-images"
PER_REQUEST = 16


@contextmanager
def bentoml_server(*, logs: Path) -> Iterator[tuple[str, int]]:
    port = free_port()
    command = [sys.executable, "-m", "bentoml", "serve", "scripts.bench.peer_service:Classifier",
               "--port", str(port), "--host", "127.0.0.1"]  # fmt: skip
    env = {**os.environ, "BENTOML_DO_NOT_TRACK": "True", "BENTOML_HOME": str(logs / "bentoml")}
    with running(command, env=env, log=logs / "bentoml.log") as proc:
        url = f"http://127.0.0.1:{port}"
        wait_for_http(f"{url}/readyz", timeout=120)
        yield url, proc.pid


def _figures(result: load.LoadResult, cpu_seconds: float) -> dict[str, float]:
    return {
        "images_per_second": result.images_per_second,
        "p50_ms": result.latency_ms(50),
        "p99_ms": result.latency_ms(99),
        "cpu_ms_per_image": cpu_seconds / result.images * 1000,
    }


def _tree_cpu(pid: int) -> float:
    """CPU seconds of a process and all its descendants."""
    total = services.cpu_seconds(pid)
    for child in services.children(pid):
        total += _tree_cpu(child)
    return total


def run_imgclf(images: list[bytes], *, clients: int, logs: Path) -> dict[str, Any]:
    cores = os.cpu_count() or 1
    out: dict[str, Any] = {}
    with services.pipeline(workers=cores, logs=logs) as stack:
        load.run(stack.api_url, images[: cores * 4], clients=clients, mode="jobs-wait")
        pids = [pid for group in stack.processes().values() for pid in group]
        for key, mode, per_request in (
            ("one_request", "jobs-wait", 1),
            ("submit_and_poll", "jobs", 1),
            ("batch", "batch-wait", PER_REQUEST),
        ):
            before = sum(map(services.cpu_seconds, pids))
            result = load.run(stack.api_url, images, clients=clients, mode=mode, probe=False,
                              per_request=per_request)  # fmt: skip
            out[key] = _figures(result, sum(map(services.cpu_seconds, pids)) - before)
    return out


def run_bentoml(images: list[bytes], *, clients: int, logs: Path) -> dict[str, Any]:
    cores = os.cpu_count() or 1
    out: dict[str, Any] = {}
    with bentoml_server(logs=logs) as (url, pid):
        load.run(url, images[: cores * 4], clients=clients, mode="predict", probe=False)
        for per_request, modes in ((1, ("predict", "predict-batched")),
                                   (PER_REQUEST, ("predict-many", "predict-batched"))):  # fmt: skip
            for mode, fresh in ((m, f) for m in modes for f in (False, True)):
                before = _tree_cpu(pid)
                result = load.run(url, images, clients=clients, mode=mode, probe=False,
                                  fresh=fresh, per_request=per_request)  # fmt: skip
                key = f"{mode} x{per_request}{' new connections' if fresh else ''}"
                out[key] = _figures(result, _tree_cpu(pid) - before)
    for per_request in (1, PER_REQUEST):
        mine = [f for k, f in out.items() if k.split()[1] == f"x{per_request}"]
        out[f"best x{per_request}"] = max(mine, key=lambda f: f["images_per_second"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.bench.peer",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rounds", type=int, default=3, help="alternated runs of each")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--images", type=int, default=800, help="640x480 images per run")
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "bench-peer.json")
    args = parser.parse_args()
    paths = photo.photo_set(CACHE)
    # The 640x480 photo, and the 12 MP one (fewer: each costs ~15x more).
    workloads = {
        paths[0].name: [paths[0].read_bytes()] * args.images,
        paths[len(photo.SIZES) - 1].name: [paths[len(photo.SIZES) - 1].read_bytes()]
        * max(40, args.images // 15),
    }
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in workloads}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):
            for name, images in workloads.items():
                ours = run_imgclf(images, clients=args.clients, logs=Path(tmp))
                peer = run_bentoml(images, clients=args.clients, logs=Path(tmp))
                ratios = {
                    "one image per request": ours["one_request"]["images_per_second"]
                    / peer["best x1"]["images_per_second"],
                    f"{PER_REQUEST} per request": ours["batch"]["images_per_second"]
                    / peer[f"best x{PER_REQUEST}"]["images_per_second"],
                }
                results[name].append({"imgclf": ours, "bentoml": peer, "ratios": ratios})
                print(_lines(name, ours, peer, ratios), flush=True)
    args.out.write_text(json.dumps({"clients": args.clients, "runs": results}, indent=2))
    print(f"JSON: {args.out}")


def _lines(name: str, ours: dict[str, Any], peer: dict[str, Any], ratios: dict[str, float]) -> str:
    def fig(f: dict[str, float]) -> str:
        return (
            f"{f['images_per_second']:.1f} img/s p99 {f['p99_ms']:.0f} ms "
            f"cpu {f['cpu_ms_per_image']:.1f} ms"
        )

    lines = [f"{name}:"]
    lines += [f"  imgclf {key}: {fig(f)}" for key, f in ours.items()]
    lines += [f"  bentoml {key}: {fig(f)}" for key, f in peer.items()]
    lines += [f"  imgclf / best bentoml, {key}: {ratio:.2f}x" for key, ratio in ratios.items()]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
