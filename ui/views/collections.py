"""Many images: upload files or zips as one collection, watch it, read its table and gallery,
download its results, open it again by its id."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from shared.collection_schemas import csv_lines, jsonl_line
from ui.archives import ARCHIVE_SUFFIXES, ArchiveError, ZipLimits, members
from ui.client import ApiError, ApiUnavailableError, Upload
from ui.folder_run import chunks
from ui.formatting import percent, thumbnail
from ui.session import api_client
from ui.views.classify import model_picker, upload_limits

# Previews kept per collection (the first images uploaded from this page): the gallery's.
MAX_THUMBNAILS = 240
GALLERY_COLUMNS = 6
FINAL = ("completed", "canceled", "expired")


@dataclass
class Watched:
    """The collection the page shows: its results read so far and its previews."""

    collection_id: str
    collection: dict[str, Any] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    cursor: int = 0
    thumbnails: dict[str, bytes] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def final(self) -> bool:
        return self.collection.get("state") in FINAL


def render() -> None:
    st.title("Classify many images")
    st.caption(
        "Files or zip archives become one collection: each image a job, the results one table. "
        "A collection can be opened again by its id, here or from a program."
    )
    extensions, max_mb = upload_limits()
    with st.form("collection", clear_on_submit=True):
        model = model_picker()
        files = st.file_uploader(
            "Images or zip archives",
            type=[*extensions, *(s.removeprefix(".") for s in ARCHIVE_SUFFIXES)],
            accept_multiple_files=True,
            max_upload_size=max(max_mb, 200),
        )
        submitted = st.form_submit_button("Classify all", type="primary")
    # One slot for the upload's progress and errors in every run, so that the elements below
    # keep their places: the run that ends the refresh then redraws them in place.
    notice = st.empty()
    if submitted and files:
        files_read = [(f.name, f.getvalue()) for f in files]
        _start(files_read, model=model, max_file_bytes=max_mb * 2**20, notice=notice)
    elif submitted:
        notice.warning("Choose images or a zip first.")
    with st.form("reopen", clear_on_submit=True):
        wanted = st.text_input("Open a collection by its id", placeholder="collection id")
        if st.form_submit_button("Open collection") and wanted.strip():
            st.session_state["watched"] = Watched(wanted.strip())
    watched: Watched | None = st.session_state.get("watched")
    if watched is not None:
        st.fragment(run_every=None if watched.final else 1.0)(_live)()


def _items(
    files: Sequence[tuple[str, bytes]], limits: ZipLimits, skipped: list[tuple[str, str]]
) -> Iterator[tuple[str, bytes]]:
    """Each image's custom_id (its file's name; inside a zip, the zip's name and its path
    there) and bytes; what is left out (a zip's, a file larger than the API takes) goes to
    `skipped`."""
    for name, data in files:
        if not name.lower().endswith(ARCHIVE_SUFFIXES):
            if len(data) > limits.file_bytes:
                skipped.append((name, f"larger than {limits.file_bytes} bytes"))
            else:
                yield name, data
            continue
        try:
            for member in members(data, limits):
                if member.data is None:
                    skipped.append((f"{name}/{member.name}", member.skipped or ""))
                else:
                    yield f"{name}/{member.name}", member.data
        except ArchiveError as exc:
            skipped.append((name, f"refused: {exc}"))


def _start(
    files: Sequence[tuple[str, bytes]],
    *,
    model: str | None,
    max_file_bytes: int,
    notice: DeltaGenerator,
) -> None:
    client = api_client()
    try:
        batch = int(client.limits()["max_batch_files"])
        collection = client.create_collection({"model": model} if model else {})
    except ApiError as exc:
        notice.error(exc.message)
        return
    watched = Watched(collection["collection_id"], collection)
    st.session_state["watched"] = watched
    bar = notice.progress(0.0, text="Uploading…")
    sent = 0
    try:
        items = _items(files, ZipLimits(file_bytes=max_file_bytes), watched.skipped)
        for chunk in chunks(items, batch):
            for custom_id, data in chunk:
                if len(watched.thumbnails) < MAX_THUMBNAILS and (preview := thumbnail(data)):
                    watched.thumbnails[custom_id] = preview
            uploads = [(c, Upload(c.rsplit("/", 1)[-1], data)) for c, data in chunk]
            client.add_images(watched.collection_id, uploads)
            sent += len(uploads)
            bar.progress(0.0, text=f"Uploading… {sent} images sent")
        client.close_collection(watched.collection_id)
    except ApiUnavailableError as exc:
        notice.error(f"The API is unavailable: {exc.message}. Open the collection again to go on.")
        return
    except ApiError as exc:
        notice.error(exc.message)
        return
    notice.empty()


def _live() -> None:
    watched: Watched = st.session_state["watched"]
    client = api_client()
    was_final = watched.final
    try:
        page = client.collection_results(watched.collection_id, cursor=watched.cursor)
        watched.rows += page.rows
        watched.cursor = page.next_cursor
        watched.collection = client.collection(watched.collection_id)
    except ApiUnavailableError as exc:
        st.error(f"The API is unavailable: {exc.message}. Retrying…")
        return
    except ApiError as exc:
        st.error(exc.message)
        return
    _summary(watched)
    table, gallery = st.tabs(["Table", "Gallery"])
    with table:
        _table(watched.rows)
    with gallery:
        _gallery(watched)
    if watched.final and not was_final:
        st.rerun()  # done: draw the page once more, without the refresh


def _summary(watched: Watched) -> None:
    collection, cid = watched.collection, watched.collection_id
    counts = collection["counts"]
    ended = counts["succeeded"] + counts["failed"] + counts["canceled"]
    st.subheader(f"Collection {collection['state']}")
    st.caption(f"id `{cid}` · model {collection['model']} · top {collection['top_k']}")
    total = counts["total"]
    st.progress(
        ended / total if total else 0.0,
        text=f"{ended} of {total} done · {counts['succeeded']} succeeded · "
        f"{counts['failed']} failed · {counts['canceled']} canceled",
    )
    for name, why in watched.skipped:
        st.warning(f"Left out: {name}: {why}")
    left, middle, right = st.columns([1, 1, 4])
    left.download_button("Download CSV", csv_lines(watched.rows, header=True),
                         file_name=f"{cid}.csv", mime="text/csv")  # fmt: skip
    middle.download_button("Download JSONL", "".join(map(jsonl_line, watched.rows)),
                           file_name=f"{cid}.jsonl", mime="application/jsonl")  # fmt: skip
    if not watched.final and right.button("Cancel the rest"):
        api_client().cancel_collection(cid)


def _table(rows: list[dict[str, Any]]) -> None:
    if not rows:
        st.info("Results appear here as the images are classified.")
        return
    frame = pd.DataFrame(
        [
            {
                "image": row["custom_id"],
                "status": row["status"],
                "top class": row["label"] or "",
                "probability": percent(row["probability"]) if row["probability"] else "",
                "error": row["error"] or "",
            }
            for row in rows
        ]
    )
    st.dataframe(frame, hide_index=True, width="stretch")


def _gallery(watched: Watched) -> None:
    """The previews grouped by top class, largest group first (failures last)."""
    groups: dict[str, list[str]] = {}
    for row in watched.rows:
        if row["custom_id"] in watched.thumbnails:
            groups.setdefault(row["label"] or row["status"], []).append(row["custom_id"])
    if not groups:
        st.info("Previews show here for images uploaded from this page.")
        return
    for label, ids in sorted(groups.items(), key=lambda g: (g[0] in FINAL or g[0] == "failed",
                                                           -len(g[1]))):  # fmt: skip
        st.markdown(f"**{label}** ({len(ids)})")
        columns = st.columns(GALLERY_COLUMNS)
        for at, custom_id in enumerate(ids):
            columns[at % GALLERY_COLUMNS].image(watched.thumbnails[custom_id], caption=custom_id)
