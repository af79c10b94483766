"""`imgclf`: classify images from the command line through the imgclf API.

    imgclf submit cat.jpg photos/          # files or folders; progress on stderr, table on stdout
    imgclf submit --json photos/ > out.json
    imgclf submit --model superclass photos/   # another model the API serves
    imgclf models                          # the models, their versions and workers
    imgclf status JOB_ID [--wait 10]
    imgclf submit x.jpg --api-url http://api:8000 --api-key KEY   # before or after the command

Each submit carries an Idempotency-Key, so one dropped by the network or refused while the API
is briefly unavailable is sent again (up to 4 times) without ever making a second job.

Exit codes: 0 all succeeded (or, for `status` without --wait, the job exists); 1 a job failed,
was canceled or was rejected; 2 usage error or no images; 3 API unreachable or unavailable;
4 gave up waiting; 5 unknown job id.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterable, Sequence
from enum import IntEnum
from pathlib import Path
from typing import TextIO

from shared.image_checks import FILE_EXTENSIONS
from shared.priorities import PRIORITIES
from shared.schemas import JobStatus
from shared.settings import get_settings
from ui.cli_output import Item, as_json, draw, format_table, table
from ui.client import ApiClient, ApiError, ApiUnavailableError, Upload

IMAGE_SUFFIXES = frozenset(FILE_EXTENSIONS)
LONG_POLL_SECONDS = 10.0


class Exit(IntEnum):
    OK = 0
    JOB_FAILED = 1
    USAGE = 2
    UNAVAILABLE = 3
    TIMEOUT = 4
    NOT_FOUND = 5


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    client = ApiClient(args.api_url, api_key=args.api_key)
    try:
        if args.command == "submit":
            return int(_submit(client, args))
        if args.command == "models":
            return int(_models(client, args))
        return int(_status(client, args))
    except ApiUnavailableError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return Exit.UNAVAILABLE
    finally:
        client.close()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="imgclf",
        description="Classify images with the imgclf API.",
        epilog="Exit codes:" + (__doc__ or "").split("Exit codes:", 1)[1].rstrip(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _connection_options(parser, with_defaults=True)
    commands = parser.add_subparsers(dest="command", required=True)
    submit = commands.add_parser("submit", help="classify image files or folders")
    _connection_options(submit, with_defaults=False)
    submit.add_argument("paths", nargs="+", type=Path, help="image files or folders")
    submit.add_argument(
        "--top-k", type=int, default=None, help="classes per image (default: the API's, 5)"
    )
    submit.add_argument(
        "--priority",
        choices=PRIORITIES,
        default=None,
        help="workers take high before normal before low (default: normal)",
    )
    submit.add_argument(
        "--model",
        default=None,
        help="the model to classify with, by name (`imgclf models` lists them; default: the "
        "API's default model)",
    )
    submit.add_argument(
        "--callback-url",
        default=None,
        help="POST each finished job there too (a webhook signed with the API's WEBHOOK_SECRET)",
    )
    submit.add_argument("--json", action="store_true", help="print the jobs as JSON")
    submit.add_argument("--timeout", type=float, default=300, help="seconds to wait (default 300)")
    submit.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    models = commands.add_parser("models", help="list the models the API serves")
    _connection_options(models, with_defaults=False)
    models.add_argument("--json", action="store_true", help="print the models as JSON")
    status = commands.add_parser("status", help="show one job")
    _connection_options(status, with_defaults=False)
    status.add_argument("job_id")
    status.add_argument("--wait", type=float, default=0, help="long-poll up to 30 s for the end")
    status.add_argument("--json", action="store_true", help="print the job as JSON")
    return parser


def _connection_options(parser: argparse.ArgumentParser, *, with_defaults: bool) -> None:
    """--api-url and --api-key, accepted before the subcommand and after it: a subcommand's
    copy has no default, so that it does not overwrite one given before the subcommand."""
    settings = get_settings()
    key = settings.api_key.get_secret_value() if settings.api_key else None
    parser.add_argument(
        "--api-url",
        default=settings.api_url if with_defaults else argparse.SUPPRESS,
        help=f"the API (default: API_URL or {settings.api_url})",
    )
    parser.add_argument(
        "--api-key",
        default=key if with_defaults else argparse.SUPPRESS,
        help="API key, when the API requires one (default: API_KEY)",
    )


def _submit(client: ApiClient, args: argparse.Namespace) -> Exit:
    missing = [str(path) for path in args.paths if not path.exists()]
    if missing:
        print(f"error: no such file or folder: {', '.join(missing)}", file=sys.stderr)
        return Exit.USAGE
    paths = list(find_images(args.paths))
    if not paths:
        print(
            "error: no images found (looked for " + ", ".join(sorted(IMAGE_SUFFIXES)) + ")",
            file=sys.stderr,
        )
        return Exit.USAGE
    if args.model is not None and (problem := _unknown_model(client, args.model)):
        print(f"error: {problem}", file=sys.stderr)
        return Exit.USAGE
    items = [Item(path) for path in paths]
    for item in items:
        try:
            item.job = client.submit(
                Upload(item.path.name, item.path.read_bytes()),
                top_k=args.top_k,
                callback_url=args.callback_url,
                priority=args.priority,
                model=args.model,
            )
        except ApiUnavailableError:
            raise
        except ApiError as exc:
            item.error = exc.message
    show = not args.no_progress and sys.stderr.isatty()
    finished = _wait(client, items, timeout=args.timeout, progress=sys.stderr if show else None)
    if args.json:
        json.dump([as_json(item) for item in items], sys.stdout, indent=2)
        print()
    else:
        print(format_table(items))
    if not finished:
        return Exit.TIMEOUT
    ok = all(item.job is not None and item.job.status is JobStatus.SUCCEEDED for item in items)
    return Exit.OK if ok else Exit.JOB_FAILED


def _wait(client: ApiClient, items: list[Item], *, timeout: float, progress: TextIO | None) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        pending = [i for i in items if i.job is not None and not i.job.status.terminal]
        if progress is not None:
            draw(progress, len(items) - len(pending), len(items))
        remaining = deadline - time.monotonic()
        if not pending or remaining <= 0:
            if progress is not None:
                progress.write("\n")
            return not pending
        first, *rest = pending
        assert first.job is not None
        first.job = client.job(first.job.job_id, wait=min(LONG_POLL_SECONDS, max(remaining, 0.1)))
        for item in rest:
            assert item.job is not None
            item.job = client.job(item.job.job_id)


def _unknown_model(client: ApiClient, model: str) -> str | None:
    """Why `model` cannot be asked for (it is not one the API serves), before any upload."""
    served = [m["name"] for m in client.models()["models"]]
    return None if model in served else f"unknown model {model!r}; the API serves {served}"


def _models(client: ApiClient, args: argparse.Namespace) -> Exit:
    listed = client.models()
    if args.json:
        print(json.dumps(listed, indent=2))
        return Exit.OK
    rows = [("MODEL", "VERSION", "CLASSES", "WORKERS", "TITLE")]
    for model in listed["models"]:
        default = " (default)" if model["default"] else ""
        rows.append((model["name"] + default, model["version"], str(model["num_classes"]),
                     str(model["workers_online"]), model["title"]))  # fmt: skip
    print(table(rows))
    return Exit.OK


def _status(client: ApiClient, args: argparse.Namespace) -> Exit:
    try:
        job = client.job(args.job_id, wait=args.wait)
    except ApiUnavailableError:
        raise
    except ApiError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return Exit.NOT_FOUND if exc.status == 404 else Exit.USAGE
    if args.json:
        print(job.model_dump_json(indent=2))
    else:
        print(format_table([Item(Path(job.filename), job)]))
    if job.status in (JobStatus.FAILED, JobStatus.CANCELED):
        return Exit.JOB_FAILED
    if args.wait and not job.status.terminal:
        return Exit.TIMEOUT
    return Exit.OK


def find_images(paths: Iterable[Path]) -> Iterable[Path]:
    """Image files named directly, and those found (recursively, sorted) in folders."""
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        else:
            yield path


if __name__ == "__main__":
    sys.exit(main())
