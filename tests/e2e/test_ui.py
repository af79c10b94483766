"""The whole stack driven through the Streamlit UI in a real headless Chromium."""

from __future__ import annotations

import csv
import io
import itertools
import os
import re
import sys
import time
import uuid
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser import chromium
from tests.conftest import Stack
from tests.images import encode, gradient
from tests.processes import SHARED_IMAGES, Trap, free_port, running, service_env, wait_until
from tests.prometheus import monitored_stack
from ui.monitoring import Prometheus
from ui.trends import CHARTS, Window, chart_points

# The first test of a fixture starts its stack and waits for the first render: room for both.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]

# Set to a folder (for example docs/screenshots) to keep the pages' screenshots.
SCREENSHOTS = os.environ.get("IMGCLF_SCREENSHOTS_DIR")


# Every host a page of the UI made the browser ask, across the module's tests.
HOSTS_ASKED: set[str] = set()
# Proxies pointed at a trap for the UI's own process: what it sends anywhere but to the API on
# loopback (NO_PROXY) lands there.
TRAP = Trap()
TRAFFIC_SECONDS = 30
# A busy machine (CI shares two cores with everything) slows each render: waits are for what the
# page shows, with room to spare. The first render of a fresh Streamlit server, which imports the
# app's modules, is waited for once, longer, before any test (`_first_render`).
RENDER_TIMEOUT_MS = 60_000
FIRST_RENDER_TIMEOUT_MS = 180_000
expect.set_options(timeout=RENDER_TIMEOUT_MS)


@contextmanager
def _ui(redis_url: str, api_url: str, prometheus_url: str, log: Path) -> Iterator[str]:
    port = free_port()
    env = service_env(
        redis_url,
        API_URL=api_url,
        PROMETHEUS_URL=prometheus_url,
        **TRAP.proxy_env(),
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
    )
    # No --browser.gatherUsageStats here: .streamlit/config.toml must turn it off by itself.
    command = [sys.executable, "-m", "streamlit", "run", "ui/app.py",
               "--server.port", str(port), "--server.headless", "true"]  # fmt: skip
    with running(command, env=env, log=log):
        url = f"http://127.0.0.1:{port}"
        wait_until(
            lambda: httpx.get(f"{url}/_stcore/health").status_code == 200, timeout=120, what="UI"
        )
        yield url


def _first_render(browser: Browser, url: str) -> None:
    """Wait until the app has rendered its first page: Streamlit's health check answers before
    the app's modules are imported, which the first session does."""
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(url, timeout=FIRST_RENDER_TIMEOUT_MS)
        heading = page.get_by_role("heading", name="Classify images")
        expect(heading).to_be_visible(timeout=FIRST_RENDER_TIMEOUT_MS)
    finally:
        context.close()


@pytest.fixture(scope="module")
def ui_url(
    stack: Stack, browser: Browser, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The UI on the session's stack, with no Prometheus where it looks for one."""
    log = tmp_path_factory.mktemp("ui") / "ui.log"
    with _ui(stack.redis.url, stack.api_url, f"http://127.0.0.1:{free_port()}", log) as url:
        _first_render(browser, url)
        yield url


@pytest.fixture(scope="module")
def monitored_ui_url(browser: Browser, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The UI on a stack of its own that a real Prometheus scrapes, after real traffic spread
    over half a minute: good and broken images, a refused upload and unknown job ids."""
    tmp = tmp_path_factory.mktemp("monitored")
    with monitored_stack(tmp) as monitored:
        _traffic(monitored.api, seconds=TRAFFIC_SECONDS)
        prom = Prometheus(monitored.prometheus)
        wait_until(lambda: all(chart_points(prom, chart, Window(300, time.time()))
                               for chart in CHARTS), timeout=120, what="data for every chart")  # fmt: skip
        with _ui(monitored.redis_url, monitored.api, monitored.prometheus, tmp / "ui.log") as url:
            _first_render(browser, url)
            yield url


def _traffic(api: str, *, seconds: float) -> None:
    good = (SHARED_IMAGES / "labrador.jpg").read_bytes()
    jpeg = encode(gradient(), "JPEG")
    broken = jpeg[:300] + b"\0" * 300 + jpeg[-2:]  # fails in the worker
    end = time.monotonic() + seconds
    with httpx.Client(base_url=api, timeout=30) as http:
        for round_ in itertools.count():
            if time.monotonic() > end:
                break
            image = broken if round_ % 5 == 4 else good
            http.post("/api/v1/jobs", params={"wait": 10},
                      files={"file": ("p.jpg", image, "image/jpeg")})  # fmt: skip
            if round_ % 4 == 0:
                http.get(f"/api/v1/jobs/{uuid.uuid4()}")  # 404
                http.post("/api/v1/jobs", files={"file": ("x.jpg", b"not an image")})  # 4xx
            time.sleep(0.3)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1300, "height": 1000})
    context.set_default_timeout(RENDER_TIMEOUT_MS)
    page = context.new_page()
    page.on("request", lambda request: HOSTS_ASKED.add(urlsplit(request.url).hostname or ""))
    yield page
    context.close()


def _screenshot(page: Page, name: str) -> None:
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SCREENSHOTS) / f"{name}.png"), full_page=True)


def test_upload_shows_labrador_as_top_prediction_with_chart(page: Page, ui_url: str) -> None:
    page.goto(ui_url)
    expect(page.get_by_role("heading", name="Classify images")).to_be_visible()
    # The uploader promises what the API accepts (MAX_UPLOAD_BYTES), not Streamlit's 200 MB.
    expect(page.get_by_text("10MB per file", exact=False)).to_be_visible()
    expect(page.get_by_role("button", name="Deploy")).to_have_count(0)
    page.set_input_files("input[type=file]", str(SHARED_IMAGES / "labrador.jpg"))
    page.get_by_role("button", name="Classify", exact=True).click()
    top = page.get_by_role("heading", name="Labrador retriever — 68.1 %")
    expect(top).to_be_visible()
    chart = page.locator("[data-testid='stVegaLiteChart']").first
    expect(chart).to_be_visible()
    expect(chart.locator("canvas, svg").first).to_be_visible()
    expect(page.get_by_text("done", exact=True).first).to_be_visible()
    page.wait_for_timeout(500)
    _screenshot(page, "classify")


def test_bad_file_shows_the_api_error(page: Page, ui_url: str, tmp_path: Path) -> None:
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 50)
    page.goto(ui_url)
    page.set_input_files("input[type=file]", str(bad))
    page.get_by_role("button", name="Classify", exact=True).click()
    expect(page.get_by_text("Rejected: Invalid image file", exact=False)).to_be_visible()


def test_a_job_found_by_id_shows_its_failure_and_can_be_retried(
    page: Page, ui_url: str, stack: Stack
) -> None:
    """A job a program submitted (a JPEG whose pixels are broken: it fails in the worker),
    looked up by its id, retried from the page: the new job names the one it retries."""
    jpeg = encode(gradient(), "JPEG")
    broken = jpeg[:300] + b"\0" * 300 + jpeg[-2:]
    job = httpx.post(f"{stack.api_url}/api/v1/jobs", params={"wait": 20},
                     files={"file": ("broken.jpg", broken, "image/jpeg")}, timeout=30).json()  # fmt: skip
    assert job["status"] == "failed"
    page.goto(ui_url)
    expect(page.get_by_role("heading", name="Classify images")).to_be_visible()
    page.get_by_placeholder("job id").fill(job["job_id"])
    page.get_by_role("button", name="Find", exact=True).click()
    expect(page.get_by_text(job["job_id"], exact=False).first).to_be_visible()
    page.get_by_role("button", name="Retry").first.click()
    expect(page.get_by_text(f"retry of {job['job_id']}", exact=False)).to_be_visible()


def test_another_model_chosen_on_the_page_classifies(page: Page, ui_url: str) -> None:
    """The default model is preselected; the superclass model, chosen, answers `dog`."""
    page.goto(ui_url)
    picker = page.get_by_role("combobox", name="Model")
    expect(picker).to_have_value("SqueezeNet 1.1 (squeezenet)")
    picker.click()
    page.get_by_role("option", name="Superclasses (superclass)").click()
    page.set_input_files("input[type=file]", str(SHARED_IMAGES / "labrador.jpg"))
    page.get_by_role("button", name="Classify", exact=True).click()
    expect(page.get_by_role("heading", name="dog — 100.0 %")).to_be_visible()
    expect(page.get_by_text("model superclass").first).to_be_visible()


def test_model_info_page_shows_each_models_card(page: Page, ui_url: str) -> None:
    page.goto(f"{ui_url}/model")
    expect(page.get_by_role("heading", name="SqueezeNet 1.1")).to_be_visible()
    expect(page.get_by_text("CPUExecutionProvider").first).to_be_visible()
    expect(page.get_by_text("centre crop 224x224", exact=False)).to_be_visible()
    expect(page.get_by_role("heading", name="Superclasses")).to_be_visible()
    expect(page.get_by_text("BGR; resize shorter side to 219", exact=False)).to_be_visible()
    expect(page.get_by_text("Output: probabilities")).to_be_visible()
    _screenshot(page, "model-info")


def test_monitoring_page_falls_back_to_api_figures(page: Page, ui_url: str) -> None:
    page.goto(f"{ui_url}/monitoring")
    expect(page.get_by_text("Prometheus is not reachable", exact=False)).to_be_visible()
    expect(page.get_by_text("Workers online")).to_be_visible()


def test_monitoring_page_charts_what_prometheus_scraped(page: Page, monitored_ui_url: str) -> None:
    """Every chart drawn with data over the window (none says 'No data'), the current figures
    above them, and no fallback."""
    # Tall enough for every chart in one screenshot (the page scrolls inside Streamlit's frame).
    page.set_viewport_size({"width": 1300, "height": 2350})
    page.goto(f"{monitored_ui_url}/monitoring")
    page.locator("[data-testid='stSelectbox']").first.click()
    page.get_by_role("option", name="5 minutes", exact=True).click()
    for chart in CHARTS:
        title = page.locator("strong").get_by_text(chart.title, exact=True)
        expect(title).to_be_visible()
    # One chart element per trend, and the inference-time distribution.
    expect(page.locator("[data-testid='stVegaLiteChart']")).to_have_count(len(CHARTS) + 1)  # fmt: skip
    expect(page.get_by_text("No data in this window.")).to_have_count(0)
    expect(page.get_by_text("Prometheus is not reachable", exact=False)).to_have_count(0)
    expect(page.get_by_text("Workers online").first).to_be_visible()
    page.get_by_role("heading", name="Monitoring").click()  # the selectbox's focus off
    page.wait_for_timeout(1000)  # the charts' last paint
    _screenshot(page, "monitoring")


def test_the_ui_talked_to_no_one_else() -> None:
    """Last in the module: the pages asked only the UI's own server (no usage statistics, fonts
    or scripts from elsewhere), and the UI's process sent nothing through the trapped proxies."""
    assert {"127.0.0.1"} == HOSTS_ASKED
    assert TRAP.caught == []


def test_many_images_as_a_collection_with_table_gallery_and_downloads(
    page: Page, ui_url: str, tmp_path: Path
) -> None:
    """Two photos and a zip (a photo, a text file, a zip inside it) as one collection: the
    table, the gallery by class, the downloads; then the collection opened by its id in a new
    page."""
    labrador = (SHARED_IMAGES / "labrador.jpg").read_bytes()
    (tmp_path / "dog.jpg").write_bytes(labrador)
    (tmp_path / "gradient.png").write_bytes(encode(gradient(), "PNG"))
    with zipfile.ZipFile(tmp_path / "shelf.zip", "w") as archive:
        archive.writestr("inner/puppy.jpg", labrador)
        archive.writestr("inner/notes.txt", "not an image")
        archive.writestr("old.zip", b"PK\x05\x06" + b"\0" * 18)
    page.goto(f"{ui_url}/collections")
    expect(page.get_by_role("heading", name="Classify many images")).to_be_visible()
    page.set_input_files("input[type=file]", [str(tmp_path / n) for n in
                                              ("dog.jpg", "gradient.png", "shelf.zip")])  # fmt: skip
    page.get_by_role("button", name="Classify all").click()
    expect(page.get_by_role("heading", name="Collection completed").first).to_be_visible()
    # Done, the page draws itself once more without its refresh; until then Streamlit keeps the
    # last drawing's elements beside the new ones.
    expect(page.locator("[data-testid='stDataFrame']")).to_have_count(1)
    expect(page.get_by_text("4 of 4 done · 3 succeeded · 1 failed", exact=False)).to_be_visible()
    expect(page.get_by_text("shelf.zip/old.zip: an archive inside the archive")).to_be_visible()
    table = page.locator("[data-testid='stDataFrame']")
    expect(table).to_be_visible()
    page.get_by_role("tab", name="Gallery").click()
    expect(page.get_by_text("Labrador retriever (2)")).to_be_visible()
    expect(page.locator("[data-testid='stImage']")).to_have_count(3)
    with page.expect_download() as download:
        page.get_by_role("button", name="Download CSV").click()
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert sorted(row["custom_id"] for row in rows) == [
        "dog.jpg", "gradient.png", "shelf.zip/inner/notes.txt", "shelf.zip/inner/puppy.jpg"
    ]  # fmt: skip
    notes = next(row for row in rows if row["custom_id"].endswith("notes.txt"))
    assert (notes["status"], notes["error"]) == ("failed", "invalid_image")
    page.set_viewport_size({"width": 1300, "height": 1500})  # the form, the counts, the gallery
    page.wait_for_timeout(1000)
    _screenshot(page, "collections")

    caption = page.get_by_text("· model squeezenet", exact=False).first.inner_text()
    found = re.search(r"[0-9a-f-]{36}", caption)
    assert found, caption
    other = page.context.new_page()
    other.goto(f"{ui_url}/collections")
    other.get_by_placeholder("collection id").fill(found[0])
    other.get_by_role("button", name="Open collection").click()
    expect(other.get_by_text("4 of 4 done", exact=False).first).to_be_visible()
    expect(other.locator("[data-testid='stDataFrame']")).to_have_count(1)
