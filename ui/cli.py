"""`imgclf`: classify images from the command line through the imgclf API.

    imgclf submit cat.jpg photos/          # files or folders; progress on stderr, rows on stdout
    imgclf submit photos/ -o results.csv   # or results.jsonl: each result written as it comes
    imgclf submit --json photos/ > out.jsonl
    imgclf submit --model superclass photos/   # another model the API serves
    imgclf models                          # the models, their versions and workers
    imgclf status JOB_ID [--wait 10]
    imgclf submit x.jpg --api-url http://api:8000 --api-key KEY   # before or after the command

`submit` classifies its images as one collection (/api/v1/collections): it uploads a few
requests at a time while it reads results as they end, waits out a full queue as long as the
API asks, and started again (the same command) it continues the same collection: an image
already sent is never classified twice. Each image's id (custom_id) is its path relative to the
folder given.

Exit codes: 0 all succeeded (or, for `status` without --wait, the job exists); 1 a job failed,
was canceled or was rejected; 2 usage error or no images; 3 API unreachable or unavailable;
4 gave up waiting; 5 unknown job id.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Sequence
from enum import IntEnum
from pathlib import Path
from typing import Literal

from shared.priorities import PRIORITIES
from shared.schemas import JobStatus
from shared.settings import get_settings
from ui.cli_output import Item, Progress, RowWriter, format_table, table
from ui.client import ApiClient, ApiError, ApiUnavailableError
from ui.folder_run import IMAGE_SUFFIXES, FolderRun, RunOptions, find_images


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
    submit.add_argument(
        "--output",
        "-o",
        type=Path,
        default=None,
        help="write the results to this file as they come: results.csv or results.jsonl "
        "(started again, the file is written anew from the collection's first result)",
    )
    submit.add_argument(
        "--json", action="store_true", help="print the results as JSON lines (without --output)"
    )
    submit.add_argument(
        "--timeout",
        type=float,
        default=300,
        help="give up (exit 4) when no result has come for this many seconds after the last "
        "upload (default 300)",
    )
    submit.add_argument(
        "--new",
        action="store_true",
        help="start a new collection, even where the same command ran before (by default it "
        "continues that one: nothing is classified twice)",
    )
    submit.add_argument(
        "--batch", type=int, default=32, help="images per upload request (default 32)"
    )
    submit.add_argument(
        "--in-flight", type=int, default=4, help="upload requests at once (default 4)"
    )
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
    if next(find_images(args.paths), None) is None:
        print(
            "error: no images found (looked for " + ", ".join(sorted(IMAGE_SUFFIXES)) + ")",
            file=sys.stderr,
        )
        return Exit.USAGE
    kind = _output_kind(args)
    if kind is None:
        print("error: --output must end in .csv or .jsonl", file=sys.stderr)
        return Exit.USAGE
    if args.model is not None and (problem := _unknown_model(client, args.model)):
        print(f"error: {problem}", file=sys.stderr)
        return Exit.USAGE
    options = RunOptions(
        model=args.model,
        top_k=args.top_k,
        priority=args.priority,
        job_callback_url=args.callback_url,
        batch=min(args.batch, int(client.limits()["max_batch_files"])),
        in_flight=args.in_flight,
        timeout=args.timeout,
        new=args.new,
    )
    show = not args.no_progress and sys.stderr.isatty()
    progress = Progress(sys.stderr) if show else None
    with contextlib.ExitStack() as files:
        stream = files.enter_context(args.output.open("w", newline="")) if args.output else None
        writer = RowWriter(stream or sys.stdout, kind)
        run = FolderRun(
            client, args.paths, options, writer=writer, progress=progress, announce=sys.stderr
        )
        try:
            tally, finished = run.run()
        except ApiUnavailableError:
            raise
        except ApiError as exc:
            print(f"error: {exc.message}", file=sys.stderr)
            return Exit.USAGE if exc.status in (404, 409, 422) else Exit.JOB_FAILED
        finally:
            if progress is not None:
                progress.end()
    counts = ", ".join(f"{n} {status}" for status, n in sorted(tally.by_status.items()))
    print(f"imgclf: collection {run.collection_id}: {counts or 'no results'}", file=sys.stderr)
    if not finished:
        return Exit.TIMEOUT
    return Exit.OK if set(tally.by_status) <= {"succeeded"} else Exit.JOB_FAILED


def _output_kind(args: argparse.Namespace) -> Literal["csv", "jsonl", "text"] | None:
    if args.output is None:
        return "jsonl" if args.json else "text"
    suffix = args.output.suffix.lower()
    if suffix == ".csv":
        return "csv"
    return "jsonl" if suffix == ".jsonl" else None


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


if __name__ == "__main__":
    sys.exit(main())
