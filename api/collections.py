"""`Collections`: what the API does for `/api/v1/collections` apart from HTTP, over the app's
`JobService` (its store, group committer, upload limits). Built once per app in its lifespan.

A collection's images become ordinary jobs, each queued as a request of its own whose
Idempotency-Key is its custom_id: an image added twice (a retried request, a resumed upload) is
found, not queued again, and a full queue refuses only the images past its limit (the client
sends the request again; those accepted are found).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Sequence

from starlette.datastructures import UploadFile

from api import metrics
from api.collection_items import Added, Item, custom_ids, item_requests
from api.service import JobService
from api.submissions import IdempotentRequest, check_callback
from api.upload_form import BudgetedUpload
from api.upload_spool import disk_turn
from api.uploads import check_each, upload_bytes
from shared import tracing
from shared.collection_schemas import (
    Collection,
    CollectionOptions,
    CollectionState,
    csv_lines,
    gone_row,
    jsonl_line,
    result_row,
)
from shared.errors import (
    CollectionClosedError,
    CollectionFullError,
    ImgclfError,
)
from shared.jobs import collections as ops
from shared.jobs import idempotency_key, new_job_id
from shared.schemas import Job

# How often a long-poll looks at the collection again.
POLL_SECONDS = 0.25


class Collections:
    """Open, fill, watch, close and cancel collections; stream their results."""

    def __init__(self, jobs: JobService) -> None:
        self.jobs = jobs
        self.store = jobs.store
        self.settings = jobs.settings

    async def create(
        self, options: CollectionOptions, *, owner: str, idempotency: IdempotentRequest | None
    ) -> Collection:
        for url in (options.job_callback_url, options.callback_url):
            if url is not None:
                await check_callback(url, self.settings)
        collection_id = new_job_id()
        message = ""
        if options.callback_url is not None:
            message = self.jobs.collection_webhooks.message(collection_id)
        new = ops.NewCollection(
            model=self.jobs.checked_model(options.model),
            top_k=options.top_k or self.settings.default_top_k,
            priority=options.priority,
            job_callback_url=options.job_callback_url,
            owner=owner,
            ttl=self.settings.job_ttl_seconds,
            collection_id=collection_id,
            callback_url=options.callback_url,
            callback_message=message,
            webhooks=self.jobs.collection_webhooks.name,
        )
        record = None
        if idempotency is not None:
            fingerprint = hashlib.sha256(f"collection\0{options.model_dump_json()}".encode())
            record = (idempotency_key(idempotency.caller, idempotency.key), fingerprint.hexdigest())
        collection_id = await self.store.run(ops.open_collection(new, idempotency=record))
        return await self.get(collection_id, owner=owner)

    async def get(self, collection_id: str, *, owner: str, wait: float = 0) -> Collection:
        """The collection; with `wait`, once it is completed, canceled or expired, or when `wait`
        seconds have passed."""
        deadline = time.monotonic() + wait
        while True:
            collection = await self._owned(collection_id, owner)
            left = deadline - time.monotonic()
            if collection.state.final or left <= 0:
                return collection
            await asyncio.sleep(min(POLL_SECONDS, left))

    async def _owned(self, collection_id: str, owner: str) -> Collection:
        """Another API key's collection is as unknown as one that never was."""
        stored = await self.store.run(ops.read(collection_id))
        if stored.owner != owner:
            raise ops.not_found(collection_id)
        return stored.collection

    async def close(self, collection_id: str, *, owner: str) -> Collection:
        await self._owned(collection_id, owner)
        return (await self.store.run(ops.close(collection_id))).collection

    async def cancel(self, collection_id: str, *, owner: str) -> Collection:
        await self._owned(collection_id, owner)
        webhooks = self.store.webhooks
        return (await self.store.run(ops.cancel(collection_id, webhooks))).collection

    async def find(self, collection_id: str, wanted: Sequence[str], *, owner: str) -> list[Added]:
        """Those of the `wanted` custom_ids the collection holds, with their jobs."""
        await self._owned(collection_id, owner)
        known = await self.store.run(ops.known_items(collection_id, list(dict.fromkeys(wanted))))
        return [Added(custom_id, job, added=False) for custom_id, job in known.items()]

    async def add(
        self,
        collection_id: str,
        files: Sequence[UploadFile],
        named: Sequence[str] | None,
        *,
        owner: str,
    ) -> list[Added]:
        """Add images; each custom_id once (one added before is found, whatever its bytes).
        Refused whole (nothing added) when the collection does not take images or would hold
        more than MAX_COLLECTION_IMAGES; a full queue refuses the images past its limit
        (`QueueFullError`, 503) and keeps those before it."""
        try:
            collection = await self._owned(collection_id, owner)
            ids = custom_ids(files, named)
            if collection.state is not CollectionState.OPEN:
                raise CollectionClosedError(
                    f"Collection {collection_id} is {collection.state.value}; it takes no more "
                    "images (open a new one)"
                )
            spools = [file.spool for file in files if isinstance(file, BudgetedUpload)]
            async with disk_turn(spools):
                return await self._add(collection, files, ids, owner=owner)
        finally:
            for file in files:
                await file.close()

    async def _add(
        self, collection: Collection, files: Sequence[UploadFile], ids: list[str], *, owner: str
    ) -> list[Added]:
        cid = collection.collection_id
        known = await self.store.run(ops.known_items(cid, list(dict.fromkeys(ids))))
        # Each custom_id not added before, once (the first of its files).
        new = [at for at, c in enumerate(ids) if c not in known and ids.index(c) == at]
        cap = self.settings.max_collection_images
        if collection.counts.total + len(new) > cap:
            raise CollectionFullError(
                f"Collection {cid} holds {collection.counts.total} images; {len(new)} more would "
                f"pass its limit of {cap} (MAX_COLLECTION_IMAGES)"
            )
        contents = [await upload_bytes(files[at]) for at in new]
        with tracing.span("check uploads"):
            checked = await check_each(
                [files[at] for at in new],
                contents,
                top_k=collection.top_k,
                max_pixels=self.settings.max_image_pixels,
                check_seconds=self.settings.upload_check_timeout_seconds,
            )
        made: dict[str, Job] = {}
        refusals: list[ImgclfError] = []
        items = [
            (ids[at], files[at], data, job)
            for at, data, job in zip(new, contents, checked, strict=True)
        ]
        with tracing.span("enqueue"):
            await self._queue(collection, items, owner=owner, made=made, refusals=refusals)
        metrics.observe_submission("collection", collection.model, [len(d) for _, _, d, _ in items])
        if refusals:
            raise refusals[0]
        return [
            Added(custom_id, known.get(custom_id) or made[custom_id], custom_id in made)
            for custom_id in ids
        ]

    async def _queue(
        self,
        collection: Collection,
        items: Sequence[Item],
        *,
        owner: str,
        made: dict[str, Job],
        refusals: list[ImgclfError],
    ) -> None:
        """Queue the items that are images, and record those that are not as failed jobs."""
        cid = collection.collection_id
        requests, failed = item_requests(collection, items, owner=owner)
        if failed:
            settings = self.settings
            jobs = await self.store.run(
                ops.record_failed(cid, failed, owner=owner, ttl=settings.job_ttl_seconds)
            )
            made.update(zip((job.custom_id or "" for job, _ in failed), jobs, strict=True))
        outcomes = await self.jobs.committer.submit_each(requests)
        for request, outcome in zip(requests, outcomes, strict=True):
            if isinstance(outcome, ImgclfError):
                refusals.append(outcome)
            else:
                made[request.uploads[0][0].custom_id or ""] = outcome[0]

    async def results(
        self, collection_id: str, *, owner: str, cursor: int, limit: int, wait: float
    ) -> tuple[Collection, int]:
        """The collection, and the cursor past its results from `cursor` (at most `limit`);
        with `wait`, once there is at least one or the collection is final, or after `wait`
        seconds."""
        deadline = time.monotonic() + wait
        while True:
            collection = await self._owned(collection_id, owner)
            ended = await self.store.run(ops.ended_count(collection_id))
            left = deadline - time.monotonic()
            if ended > cursor or collection.state.final or left <= 0:
                return collection, max(cursor, min(ended, cursor + limit))
            await asyncio.sleep(min(POLL_SECONDS, left))

    async def lines(
        self, collection_id: str, start: int, stop: int, *, as_csv: bool
    ) -> AsyncIterator[str]:
        """Result lines from `start` to `stop`, page by page; CSV's header when from the first."""
        if as_csv and start == 0:
            yield csv_lines([], header=True)
        for page in range(start, stop, ops.PAGE):
            ended = await self.store.run(
                ops.ended_jobs(collection_id, page, min(stop, page + ops.PAGE))
            )
            rows = [result_row(job) if job else gone_row(job_id) for job_id, job in ended]
            yield csv_lines(rows, header=False) if as_csv else "".join(map(jsonl_line, rows))
