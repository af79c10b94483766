"""A folder of small photos through `imgclf submit` against the load generator, on one stack.

    uv run python -m scripts.bench.folder [--images 10000] [--queue 500] [--turns 2]

One worker node (a process per core) and MAX_QUEUE_LENGTH=`--queue`. In turns: the load
generator (8 clients, a job per request, each long-polled) sends the folder's photos; then again
with 32 photos per request (batch submits, waited for); then the command classifies the folder
as a collection. For the command: its throughput, HTTP requests
per image (the API's own request count), its peak memory, and that every photo was classified
once. docs/PERFORMANCE.md records a run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from PIL import Image

from scripts.bench import images as photo
from scripts.bench import load, services
from shared.jobs.keys import collection_key
from shared.redis_client import connect
from shared.settings import PROJECT_ROOT, Settings

CACHE = PROJECT_ROOT / ".run" / "bench-images"
CLIENTS = 8
BATCH = 32  # the command's images per request


def small_photos(folder: Path, count: int) -> list[Path]:
    """`count` small JPEGs (640x480 and smaller, cut from the team's photos), hard links to a
    few dozen distinct files, in folders of 500."""
    sources = []
    CACHE.mkdir(parents=True, exist_ok=True)
    for at, size in enumerate([(640, 480), (480, 360), (320, 240)]):
        for name, image in (("fox", photo.FOX), ("labrador", photo.LABRADOR)):
            path = CACHE / f"small-{name}-{size[0]}.jpg"
            if not path.exists():
                with Image.open(image) as opened:
                    opened.convert("RGB").resize(size).save(path, "JPEG", quality=85 - 5 * at)
            sources.append(path)
    made = []
    for n in range(count):
        path = folder / f"shelf-{n // 500:03d}" / f"{n:05d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        os.link(sources[n % len(sources)], path)
        made.append(path)
    return made


def requests_served(api_url: str) -> float:
    """Requests the API has answered, by its own histogram."""
    text = httpx.get(f"{api_url}/metrics").text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("imgclf_http_request_duration_seconds_count")
    )


def run_command(api_url: str, folder: Path, out: Path, redis_url: str) -> dict[str, Any]:
    before = requests_served(api_url)
    rss = out.with_suffix(".rss")
    # GNU time's %M: the command's peak resident memory, KiB.
    command = ["/usr/bin/time", "-f", "%M", "-o", str(rss), sys.executable, "-m", "ui.cli",
               "--api-url", api_url, "submit", str(folder), "--output", str(out),
               "--no-progress", "--new"]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"imgclf submit exited {done.returncode}: {done.stderr[-2000:]}")
    collection_id = done.stderr.split("imgclf: collection ", 1)[1].split(",", 1)[0]
    counts = connect(Settings(redis_url=redis_url)).hgetall(collection_key(collection_id))
    lines = out.read_text().count("\n") - 1  # the CSV's header
    images = int(counts[b"total"])
    return {
        "images": images,
        "succeeded": int(counts[b"succeeded"]),
        "rows": lines,
        "seconds": seconds,
        "images_per_second": images / seconds,
        "requests_per_image": (requests_served(api_url) - before) / images,
        "peak_rss_mb": int(rss.read_text().split()[-1]) / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.bench.folder",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--queue", type=int, default=500, help="MAX_QUEUE_LENGTH")
    parser.add_argument("--turns", type=int, default=2)
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "bench-folder.json")
    args = parser.parse_args()
    results: dict[str, Any] = {"images": args.images, "max_queue_length": args.queue}
    generator: list[float] = []
    batched: list[float] = []
    commands: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "photos"
        paths = small_photos(folder, args.images)
        images = [path.read_bytes() for path in paths[:50]] * (args.images // 50)
        env = {"MAX_QUEUE_LENGTH": str(args.queue)}
        workers = os.cpu_count() or 1
        with services.pipeline(workers=workers, logs=Path(tmp), extra_env=env) as stack:
            for turn in range(args.turns):
                run = load.run(stack.api_url, images, clients=CLIENTS, probe=False)
                generator.append(run.images_per_second)
                print(f"turn {turn}: load generator {run.images_per_second:.1f} img/s", flush=True)
                run = load.run(stack.api_url, images, clients=CLIENTS, probe=False,
                               mode="batch-wait", per_request=BATCH)  # fmt: skip
                batched.append(run.images_per_second)
                print(f"turn {turn}: load generator, {BATCH} a request: "
                      f"{run.images_per_second:.1f} img/s", flush=True)  # fmt: skip
                command = run_command(stack.api_url, folder, Path(tmp) / "out.csv", stack.redis_url)
                commands.append(command)
                print(f"turn {turn}: imgclf submit {json.dumps(command)}", flush=True)
    results["load_generator_images_per_second"] = generator
    results["load_generator_batched_images_per_second"] = batched
    results["command"] = commands
    speed = statistics.median(c["images_per_second"] for c in commands)
    results["ratio"] = speed / statistics.median(generator)
    results["ratio_to_batched"] = speed / statistics.median(batched)
    print(f"imgclf submit / load generator: {results['ratio']:.2f}, "
          f"/ batched: {results['ratio_to_batched']:.2f}")  # fmt: skip
    args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
