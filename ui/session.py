"""What a browser session keeps between reruns: its API client and its jobs."""

from __future__ import annotations

from dataclasses import dataclass, field

import streamlit as st

from shared.schemas import Job
from shared.settings import get_settings
from ui.client import ApiClient
from ui.monitoring import Prometheus


@dataclass
class Entry:
    """One submitted image in the page's history."""

    filename: str
    preview: bytes | None
    job: Job | None = None
    error: str | None = None
    history_id: int = 0

    @property
    def pending(self) -> bool:
        return self.job is not None and not self.job.status.terminal


@dataclass
class History:
    entries: list[Entry] = field(default_factory=list)
    counter: int = 0

    def add(self, entry: Entry) -> None:
        self.counter += 1
        entry.history_id = self.counter
        self.entries.insert(0, entry)


@st.cache_resource
def api_client() -> ApiClient:
    """One HTTP client (connection pool) for the whole Streamlit server."""
    settings = get_settings()
    key = settings.api_key.get_secret_value() if settings.api_key else None
    return ApiClient(settings.api_url, api_key=key)


@st.cache_resource
def prometheus() -> Prometheus:
    """One Prometheus query client for the whole Streamlit server."""
    return Prometheus(get_settings().prometheus_url)


def history() -> History:
    if "history" not in st.session_state:
        st.session_state["history"] = History()
    value: History = st.session_state["history"]
    return value
