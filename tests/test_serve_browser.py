"""End-to-end: a real headless Chromium uses the web page of a real uvicorn server.

Needs Debian's ``chromium`` and ``chromium-driver`` packages and the ``selenium`` Python
package; skipped, saying which is missing, when any of them is absent. Paths can be
overridden with ``CRACKSCAN_CHROMIUM`` and ``CRACKSCAN_CHROMEDRIVER``.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from onnx_models import classification_model, segmentation_model

pytestmark = pytest.mark.timeout(180)


def _find(env: str, names: tuple[str, ...]) -> str | None:
    if os.environ.get(env):
        return os.environ[env] if Path(os.environ[env]).is_file() else None
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    return None


CHROMIUM = _find("CRACKSCAN_CHROMIUM", ("chromium", "chromium-browser", "google-chrome"))
CHROMEDRIVER = _find("CRACKSCAN_CHROMEDRIVER", ("chromedriver",))
HAVE_SELENIUM = importlib.util.find_spec("selenium") is not None

_missing = [
    what
    for what, ok in (
        ("the chromium browser (apt: chromium)", CHROMIUM),
        ("chromedriver (apt: chromium-driver)", CHROMEDRIVER),
        ("the selenium package (pip: selenium)", HAVE_SELENIUM),
    )
    if not ok
]
pytestmark = [
    pytestmark,
    pytest.mark.skipif(bool(_missing), reason="browser test needs " + ", ".join(_missing)),
]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A uvicorn server on a free loopback port, in a thread, with the tiny test models."""
    import uvicorn

    from crackscan.serve import ServeSettings, create_app

    d = tmp_path_factory.mktemp("browser-models")
    settings = ServeSettings(
        models=[str(classification_model(d / "cls.onnx")), str(segmentation_model(d / "seg.onnx"))],
        port=_free_port(),
    )
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=settings.port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn-e2e", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{settings.port}"
    finally:
        server.should_exit = True
        thread.join(30)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,1000",
    ):
        options.add_argument(arg)
    # An explicit driver path: Selenium Manager must not try to download a browser or driver.
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def _wall(path: Path) -> Path:
    img = np.full((240, 320, 3), 205, np.uint8)
    img[118:123, 30:290] = 12  # one dark crack, 5 px wide
    Image.fromarray(img).save(path)
    return path


def test_page_uploads_an_image_and_shows_the_overlay(server_url: str, browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(server_url + "/")
    assert browser.title == "crackscan"
    # the page filled its model list from /v1/models
    WebDriverWait(browser, 15).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#model option")) == 3)
    browser.find_element(By.ID, "mm").send_keys("0.1")
    browser.find_element(By.ID, "file").send_keys(str(_wall(tmp_path / "wall.png")))

    def overlay_loaded(d) -> bool:  # type: ignore[no-untyped-def]
        return bool(
            d.execute_script(
                "const img = document.querySelector('#results .card img.overlay');"
                "return img !== null && img.complete && img.naturalWidth > 0;"
            )
        )

    WebDriverWait(browser, 60).until(overlay_loaded)
    card = browser.find_element(By.CSS_SELECTOR, "#results .card")
    assert card.get_attribute("data-state") == "done"
    assert card.get_attribute("data-crack") == "true"
    assert card.find_element(By.CSS_SELECTOR, ".name").text == "wall.png"
    assert "Crack" in card.find_element(By.CSS_SELECTOR, ".verdict").text
    rows = card.find_elements(By.CSS_SELECTOR, ".cracks tbody tr")
    assert len(rows) == 1 and "mm" in rows[0].text  # one crack, measured in mm with the scale given
    width = browser.execute_script("return document.querySelector('#results img.overlay').naturalWidth")
    assert width == 320


def test_page_shows_the_error_for_a_non_image(server_url: str, browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(server_url + "/")
    bad = tmp_path / "notes.png"
    bad.write_text("not an image at all\n")
    browser.find_element(By.ID, "file").send_keys(str(bad))
    WebDriverWait(browser, 30).until(
        lambda d: d.find_element(By.CSS_SELECTOR, "#results .card").get_attribute("data-state") == "error"
    )
    error = browser.find_element(By.CSS_SELECTOR, "#results .card .error")
    assert "not a supported image" in error.text
    # the server is still serving
    browser.get(server_url + "/healthz")
    assert '"ok"' in browser.page_source
