"""Model info: every model the deployment serves, its card, and the workers serving it."""

from __future__ import annotations

from typing import Any

import streamlit as st

from ui.client import ApiError
from ui.session import api_client


def render() -> None:
    st.title("Model info")
    try:
        listed = api_client().models()
    except ApiError as exc:
        st.error(f"Could not read the models: {exc.message}")
        return
    st.caption(
        f"{len(listed['models'])} model(s); jobs that name none run on "
        f"`{listed['default_model']}`. Each model is a folder with its card (docs/MODELS.md)."
    )
    for model in listed["models"]:
        _card(model)


def _card(model: dict[str, Any]) -> None:
    with st.container(border=True):
        default = " · default" if model["default"] else ""
        st.header(model["title"])
        st.caption(f"`{model['name']}` · version {model['version']}{default}")
        st.write(model["description"])
        first, second, third = st.columns(3)
        first.metric("Classes", model["num_classes"])
        shape = model["input"]
        second.metric("Input", f"{shape['width']} x {shape['height']} {shape['layout']}")
        third.metric("Workers online", model["workers_online"])
        st.markdown(f"**Preprocessing:** {model['preprocessing']}")
        st.markdown(f"**Output:** {model['output_kind']}")
        if model["serving"]:
            served = "\n".join(
                f"- version {s['version']}, sha256 `{s['sha256']}`" for s in model["serving"]
            )
            st.markdown(f"**Served now:**\n{served}")
        else:
            st.warning("No worker serves this model right now: its jobs wait in its queue.")
        _runtime(model["name"])


def _runtime(name: str) -> None:
    """The runtime a live worker reports for the model, where one serves it."""
    try:
        info = api_client().model_info(name)
    except ApiError:
        return
    if info.get("runtime"):
        st.caption(f"{info['runtime']} · {info['execution_provider']}")
