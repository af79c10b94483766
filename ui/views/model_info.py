"""Model info: what the workers serve, as the API reports it."""

from __future__ import annotations

import streamlit as st

from ui.client import ApiError
from ui.session import api_client


def render() -> None:
    st.title("Model info")
    try:
        info = api_client().model_info()
    except ApiError as exc:
        st.error(f"Could not read the model info: {exc.message}")
        return
    st.header(info["name"])
    st.write(info["description"])
    first, second, third = st.columns(3)
    first.metric("Classes", info["num_classes"])
    second.metric("Input shape", " x ".join(str(d) for d in info["input_shape"]))
    third.metric("Workers online", info["workers_online"])
    st.subheader("Runtime")
    if info.get("sha256"):
        st.markdown(
            f"- **Model file sha256:** `{info['sha256']}`\n"
            f"- **Runtime:** {info['runtime']}\n"
            f"- **Execution provider:** {info['execution_provider']}\n"
            f"- **Output shape:** {info['output_shape']}"
        )
    else:
        st.warning("No worker is online, so the checksum and runtime are unknown right now.")
    st.subheader("Preprocessing")
    st.write(info["preprocessing"])
