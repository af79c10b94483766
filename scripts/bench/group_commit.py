"""How jobs come together by themselves: single-image submits from N concurrent clients, and
the size of the transactions (group commit) and queue messages (groups) they formed.

    uv run python -m scripts.bench.group_commit [--clients 8,64,256] [--images N]

The whole pipeline runs (API, Redis, one worker node of a process per core); each client sends
one image per request and waits for its answer (`POST /api/v1/jobs?wait=30`). The API's
`imgclf_api_transaction_requests` histogram gives the submits per Redis transaction, the
worker's `imgclf_worker_delivery_jobs` the jobs per message it ran.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from scripts.bench import images as photo
from scripts.bench import load, services
from shared.settings import PROJECT_ROOT

CACHE = PROJECT_ROOT / ".run" / "bench-images"


def histogram(url: str, name: str) -> tuple[float, float, dict[float, float]]:
    """A histogram's count, sum and cumulative buckets, from a /metrics page."""
    text = httpx.get(f"{url}/metrics", timeout=30).text
    count = total = 0.0
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == f"{name}_count":
                count += sample.value
            elif sample.name == f"{name}_sum":
                total += sample.value
            elif sample.name == f"{name}_bucket":
                bound = float(sample.labels["le"])
                buckets[bound] = buckets.get(bound, 0.0) + sample.value
    return count, total, buckets


def measure(clients: int, images: list[bytes], logs: Path) -> dict[str, Any]:
    cores = os.cpu_count() or 1
    with services.pipeline(workers=cores, logs=logs) as stack:
        before = (histogram(stack.api_url, "imgclf_api_transaction_requests"),
                  histogram(stack.worker_metrics_url, "imgclf_worker_delivery_jobs"))  # fmt: skip
        result = load.run(stack.api_url, images, clients=clients, mode="jobs-wait", probe=False)
        after = (histogram(stack.api_url, "imgclf_api_transaction_requests"),
                 histogram(stack.worker_metrics_url, "imgclf_worker_delivery_jobs"))  # fmt: skip
    figures: dict[str, Any] = {"clients": clients, "images_per_second": result.images_per_second}
    pairs = zip(before, after, strict=True)
    for key, (old, new) in zip(("transaction_submits", "message_jobs"), pairs, strict=True):
        count, total = new[0] - old[0], new[1] - old[1]
        over_one = count - (new[2].get(1.0, 0.0) - old[2].get(1.0, 0.0))
        figures[key] = {"mean": total / count if count else 0.0, "count": count,
                        "share_above_one": over_one / count if count else 0.0}  # fmt: skip
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.bench.group_commit",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--clients", default="8,64,256")
    parser.add_argument("--images", type=int, default=1500)
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "bench-group-commit.json")
    args = parser.parse_args()
    image = photo.photo_set(CACHE)[0].read_bytes()
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for clients in map(int, args.clients.split(",")):
            run = measure(clients, [image] * args.images, Path(tmp))
            runs.append(run)
            print(json.dumps(run), flush=True)
    args.out.write_text(json.dumps(runs, indent=2))
    print(f"JSON: {args.out}")


if __name__ == "__main__":
    main()
