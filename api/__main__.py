"""`python -m api`: run the API with API_WORKERS uvicorn processes whose metrics add up.

With more than one process, prometheus_client's multiprocess mode needs PROMETHEUS_MULTIPROC_DIR
set before any process starts; this launcher gives its processes a fresh directory of their own
below it (a private temporary directory when none is configured; see `shared.metrics_dir`).
`uvicorn api.main:app` remains fine for a single process.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import uvicorn

from shared import metrics_dir
from shared.errors import ModelError
from shared.model_cards import read_cards
from shared.settings import get_settings


def main() -> None:
    settings = get_settings()
    parser = argparse.ArgumentParser(prog="python -m api", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=settings.api_host, help="default API_HOST")
    parser.add_argument("--port", type=int, default=settings.api_port, help="default API_PORT")
    parser.add_argument(
        "--workers", type=int, default=settings.api_workers, help="default API_WORKERS"
    )
    args = parser.parse_args()
    try:
        # Each process reads the cards again; this says what is wrong once, before any starts.
        read_cards(settings.models_dir, settings.model_names())
    except ModelError as exc:
        sys.exit(f"imgclf API refuses to start: {exc.message}")
    directory = settings.prometheus_multiproc_dir
    if args.workers > 1 and directory is None:
        directory = Path(tempfile.mkdtemp(prefix="imgclf-api-metrics-"))
    metrics_dir.prepare(directory, role="api")
    uvicorn.run(
        "api.main:app",
        host=args.host,
        port=args.port,
        workers=args.workers,
        proxy_headers=True,
        log_level=settings.log_level.lower(),
        # JSON lines: uvicorn's loggers reach the root logger's JSON handler (`api.main`).
        log_config=None if settings.log_format == "json" else uvicorn.config.LOGGING_CONFIG,
    )


if __name__ == "__main__":
    main()
