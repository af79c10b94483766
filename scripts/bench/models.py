"""Two models on one worker node against each alone, on the same cores.

    uv run python -m scripts.bench.models --models-dir DIR --second NAME [--rounds N]

DIR holds SqueezeNet and a second model NAME (the tests' superclass model:
`uv run python -m tests.models DIR`). For each model, a node serving it alone and a node serving
both drain the same jobs of that model (queued straight into Redis, no HTTP), in turns, twice
each; and the memory of each worker process with one model and with two. docs/PERFORMANCE.md
records a run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from scripts.bench import images as photo
from scripts.bench import services
from shared.model_cards import ORIGINAL_MODEL
from shared.settings import PROJECT_ROOT

CACHE = PROJECT_ROOT / ".run" / "bench-images"
TURNS = 2


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.bench.models",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--models-dir", type=Path, required=True)
    parser.add_argument("--second", required=True, help="the second model's name")
    parser.add_argument("--rounds", type=int, default=30, help="passes over the 7 photos")
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "bench-models.json")
    args = parser.parse_args()
    workers = os.cpu_count() or 1
    images = [p.read_bytes() for p in photo.photo_set(CACHE)] * args.rounds
    both = f"{ORIGINAL_MODEL},{args.second}"
    results: dict[str, Any] = {"cores": workers, "images_per_run": len(images)}
    with tempfile.TemporaryDirectory() as logs:
        for model in (ORIGINAL_MODEL, args.second):
            runs: dict[str, list[float]] = {"alone": [], "beside the other": []}
            for _ in range(TURNS):
                for label, served in (("alone", model), ("beside the other", both)):
                    env = {"MODELS_DIR": str(args.models_dir), "MODELS": both,
                           "WORKER_MODELS": served}  # fmt: skip
                    with services.pipeline(workers=workers, logs=Path(logs), extra_env=env) as s:
                        runs[label].append(services.drain(s.redis_url, images, model=model))
                        results[f"memory: {served}"] = _memory(s)
            results[model] = {label: statistics.median(v) for label, v in runs.items()}
            results[model]["runs"] = runs
            ratio = results[model]["beside the other"] / results[model]["alone"]
            results[model]["ratio"] = ratio
            alone, beside = results[model]["alone"], results[model]["beside the other"]
            print(f"{model}: alone {alone:.1f} img/s, beside the other {beside:.1f} img/s "
                  f"({ratio:.2f})", flush=True)  # fmt: skip
    for key, value in results.items():
        if key.startswith("memory"):
            print(f"{key}: {value}")
    args.out.write_text(json.dumps(results, indent=2))


def _memory(stack: services.Stack) -> dict[str, float]:
    """Each worker process's resident memory, after the drain (median and largest, MB)."""
    time.sleep(1)
    rss = [services.rss_mb(pid)["rss_mb"] for pid in services.children(stack.worker_pid)]
    return {"median_rss_mb": statistics.median(rss), "max_rss_mb": max(rss)}


if __name__ == "__main__":
    main()
