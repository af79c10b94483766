"""The imgclf web UI: `streamlit run ui/app.py`. It talks to the API over HTTP only."""

from __future__ import annotations

import streamlit as st

from shared.settings import get_settings
from ui.views import classify, collections, model_info, monitoring

# Errors the app does not handle show a short message, never a traceback.
st.set_option("client.showErrorDetails", "none")
# An emoji, not a ":material/...:" icon: Streamlit fetches those favicons from fonts.gstatic.com,
# and a self-hosted UI loads nothing from elsewhere (tests/e2e/test_ui.py checks).
st.set_page_config(page_title="imgclf", page_icon="🔎", layout="wide")

page = st.navigation(
    [
        st.Page(
            classify.render,
            title="Classify",
            icon=":material/image_search:",
            url_path="classify",
            default=True,
        ),
        st.Page(
            collections.render,
            title="Many images",
            icon=":material/photo_library:",
            url_path="collections",
        ),
        st.Page(model_info.render, title="Model info", icon=":material/memory:", url_path="model"),
        st.Page(
            monitoring.render,
            title="Monitoring",
            icon=":material/monitoring:",
            url_path="monitoring",
        ),
    ]
)
st.sidebar.caption(f"API: {get_settings().api_url}")
page.run()
