"""Classify: upload images, watch each job live, see the top-10 chart."""

from __future__ import annotations

from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from shared.image_checks import FILE_EXTENSIONS, SUPPORTED_FORMATS
from shared.schemas import JobStatus
from ui.client import ApiError, ApiUnavailableError, Upload
from ui.formatting import chart_rows, job_details, percent, progress, status_label, thumbnail
from ui.session import Entry, api_client, history

EXTENSIONS = [suffix.removeprefix(".") for suffix in FILE_EXTENSIONS]
DEFAULT_MAX_UPLOAD_MB = 10  # MAX_UPLOAD_BYTES's default
# The bar chart shows this many classes, so each job asks for them.
TOP_K = 10
# Long-poll per refresh: returns the moment the oldest pending job ends, at most this long.
LONG_POLL_SECONDS = 2.0


def render() -> None:
    st.title("Classify images")
    st.caption("Accepted: " + ", ".join(sorted(SUPPORTED_FORMATS)))
    extensions, max_mb = upload_limits()
    with st.form("upload", clear_on_submit=True):
        model = model_picker()
        files = st.file_uploader(
            "Images",
            type=extensions,
            accept_multiple_files=True,
            label_visibility="collapsed",
            max_upload_size=max_mb,
        )
        submitted = st.form_submit_button("Classify", type="primary")
    if submitted and files:
        uploads = [
            Upload(f.name, f.getvalue(), f.type or "application/octet-stream") for f in files
        ]
        _submit(uploads, model=model)
    elif submitted:
        st.warning("Choose one or more images first.")
    _lookup()
    _jobs()


def _lookup() -> None:
    """Any job by its id (one a program submitted, say): its state, webhook and a retry."""
    with st.form("lookup", clear_on_submit=True):
        job_id = st.text_input("Find a job by its id", placeholder="job id")
        found = st.form_submit_button("Find")
    if found and job_id.strip():
        try:
            job = api_client().job(job_id.strip())
        except ApiError as exc:
            st.error(exc.message)
            return
        history().add(Entry(job.filename, None, job))


def model_picker() -> str | None:
    """A Model select of the models the API serves, its default preselected; None (the API's
    default model) while the API is unreachable."""
    models = _models()
    if not models:
        return None
    return st.selectbox(
        "Model",
        list(models),
        index=next(i for i, m in enumerate(models.values()) if m["default"]),
        format_func=lambda name: f"{models[name]['title']} ({name})",
    )


def upload_limits() -> tuple[list[str], int]:
    """The file name endings and the size (whole MB, rounded down) the API accepts, so that the
    uploader never offers what the API refuses; the defaults while the API is unreachable."""
    try:
        limits = api_client().limits()
    except ApiError:
        return EXTENSIONS, DEFAULT_MAX_UPLOAD_MB
    extensions = [suffix.removeprefix(".") for suffix in limits["file_extensions"]]
    return extensions, max(1, limits["max_upload_bytes"] // 2**20)


def _models() -> dict[str, dict[str, Any]]:
    """The models to choose from, by name; none while the API is unreachable (then the API's
    default model classifies)."""
    try:
        listed = api_client().models()
    except ApiError:
        return {}
    return {model["name"]: model for model in listed["models"]}


def _submit(uploads: list[Upload], *, model: str | None) -> None:
    client, jobs = api_client(), history()
    for upload in uploads:
        entry = Entry(upload.filename, thumbnail(upload.data))
        try:
            entry.job = client.submit(upload, top_k=TOP_K, model=model)
        except ApiUnavailableError as exc:
            st.error(f"The API is unavailable: {exc.message}")
            return
        except ApiError as exc:
            entry.error = exc.message
        jobs.add(entry)


def _jobs() -> None:
    jobs = history()
    if not jobs.entries:
        st.info("Submitted images and their results appear here, newest first.")
        return
    pending = any(entry.pending for entry in jobs.entries)
    # A fragment that reruns itself only while jobs are pending; no sleep loop in the script.
    st.fragment(run_every=0.2 if pending else None)(_live_jobs)()


def _live_jobs() -> None:
    jobs = history()
    was_pending = [e for e in jobs.entries if e.pending]
    if was_pending:
        _refresh(was_pending)
    finished, total = progress(e.job for e in jobs.entries if e.job is not None)
    if total > 1:
        st.progress(finished / total, text=f"{finished} of {total} jobs finished")
    if st.button("Clear history"):
        jobs.entries.clear()
        st.rerun()
    for entry in jobs.entries:
        _card(entry)
    if was_pending and not any(e.pending for e in jobs.entries):
        st.rerun()  # all done: redraw the page once, without the auto-refresh


def _refresh(pending: list[Entry]) -> None:
    client = api_client()
    try:
        oldest, *others = reversed(pending)
        assert oldest.job is not None
        oldest.job = client.job(oldest.job.job_id, wait=LONG_POLL_SECONDS)
        for entry in others:
            assert entry.job is not None
            entry.job = client.job(entry.job.job_id)
    except ApiUnavailableError as exc:
        st.error(f"The API is unavailable: {exc.message}. Retrying…")
    except ApiError as exc:
        st.error(exc.message)


def _card(entry: Entry) -> None:
    with st.container(border=True):
        left, right = st.columns([1, 3])
        if entry.preview is not None:
            left.image(entry.preview, caption=entry.filename, width="stretch")
        else:
            left.caption(f"{entry.filename} (no preview)")
        with right:
            if entry.error is not None:
                st.error(f"Rejected: {entry.error}")
                return
            assert entry.job is not None
            job = entry.job
            st.markdown(f"{status_label(job.status)} `{job.job_id}`")
            for line in job_details(job):
                st.caption(line)
            if job.error is not None:
                st.error(f"{job.error.message} ({job.error.code})")
            if job.status in (JobStatus.FAILED, JobStatus.CANCELED) and st.button(
                "Retry", key=f"retry-{entry.history_id}"
            ):
                _retry(entry)
            if job.result is not None:
                top = job.result.predictions[0]
                st.subheader(f"{top.label} — {percent(top.probability)}")
                _chart(entry)
                timings = job.result.timings
                st.caption(
                    f"queue {timings.queue_wait_ms:.1f} ms · decode {timings.decode_ms:.1f} ms · "
                    f"preprocess {timings.preprocess_ms:.1f} ms · "
                    f"inference {timings.inference_ms:.1f} ms"
                )


def _retry(entry: Entry) -> None:
    assert entry.job is not None
    try:
        job = api_client().retry(entry.job.job_id)
    except ApiError as exc:
        st.error(exc.message)
        return
    history().add(Entry(entry.filename, entry.preview, job))
    st.rerun()


def _chart(entry: Entry) -> None:
    assert entry.job is not None
    assert entry.job.result is not None
    rows = chart_rows(entry.job.result.predictions, limit=TOP_K)
    frame = pd.DataFrame(
        [{"class": r.label, "probability": r.percent, "rank": r.rank} for r in rows]
    )
    chart = (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            x=alt.X("probability:Q", title="probability (%)", scale=alt.Scale(domain=[0, 100])),
            y=alt.Y("class:N", sort=alt.SortField("rank"), title=None),
            tooltip=["class", alt.Tooltip("probability:Q", format=".2f")],
        )
        .properties(height=28 * len(rows))
    )
    st.altair_chart(chart, width="stretch", key=f"chart-{entry.history_id}")
