"""The app in a real browser: headless Chromium (Debian's package) driven by Playwright.

Skips cleanly unless Playwright and a Chromium binary are installed (scripts/browser_check.sh installs both and runs
this test). Screenshots go to $M3DDM_SCREENSHOTS (default: the test's temporary folder).
"""

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("M3DDM_CHROMIUM", "/usr/bin/chromium")
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture
def page(tmp_path):
    # scripts/browser_check.sh sets M3DDM_REQUIRE_BROWSER=1: there a missing piece is a failure, not a skip
    missing = pytest.fail if os.environ.get("M3DDM_REQUIRE_BROWSER") else pytest.skip
    try:
        from playwright import sync_api
    except ImportError:
        missing("playwright is not installed (pip install playwright)")
    try:
        import gradio  # noqa: F401
    except ImportError:
        missing("gradio is not installed (pip install -e '.[app]')")
    if not (os.path.isfile(CHROMIUM) or shutil.which(CHROMIUM)):
        missing(f"no Chromium at {CHROMIUM} (apt-get install -y chromium; or set M3DDM_CHROMIUM)")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1100})
            page.set_default_timeout(60_000)
            yield page
        finally:
            browser.close()


def _shot(page, name: str, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / name), full_page=True)


def _set_ratio(page, ratio: str) -> None:
    box = page.locator("#ratio input")
    box.fill(ratio)
    box.press("Enter")


def test_upload_preview_mistake_then_result(page, app_url, clip, tmp_path):
    shots = Path(os.environ.get("M3DDM_SCREENSHOTS") or tmp_path / "screenshots")
    page.goto(app_url)
    page.locator("#input-video input[type=file]").set_input_files(str(clip))
    page.locator("#preview img").wait_for(state="visible")  # the canvas preview appears before any run
    page.get_by_text("Region to generate outlined").wait_for()
    _shot(page, "1-preview.png", shots)

    _set_ratio(page, "4:3")  # the clip's own ratio: a user mistake
    page.get_by_text("nothing to do").first.wait_for()  # the preview line says it at once...
    page.locator("#run").click()
    page.locator(".toast-body").get_by_text("the video already has the aspect ratio 1.333: nothing to do").wait_for()
    _shot(page, "2-mistake.png", shots)  # ...and running shows the CLI's line as an error

    _set_ratio(page, "9:16")
    page.get_by_text("Region to generate outlined").wait_for()
    page.locator("#run").click()
    video = page.locator("#result video")
    video.wait_for(state="visible", timeout=120_000)
    page.locator("#result-info").get_by_text("20 frames").wait_for(timeout=120_000)
    assert video.get_attribute("src")
    page.locator("#side-by-side video").wait_for(state="visible")
    page.wait_for_timeout(500)  # let the first frame paint before the screenshot
    _shot(page, "3-result.png", shots)
