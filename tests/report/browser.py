"""A headless Debian Chromium driven by Selenium, with the network switched off."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1000",
)


def require_browser() -> None:
    """Skip when Chromium is absent and ``CI`` is unset; in CI a missing browser fails."""
    if os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER):
        return
    if os.environ.get("CI"):
        pytest.fail(
            f"CI needs {CHROMIUM} and {CHROMEDRIVER} (apt-get install chromium chromium-driver)"
        )
    pytest.skip(
        "chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)"
    )


@contextmanager
def browser() -> Iterator[Any]:
    """A Chrome WebDriver whose network is emulated offline."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    require_browser()
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="report-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        driver.execute_cdp_cmd("Network.enable", {})
        driver.execute_cdp_cmd(
            "Network.emulateNetworkConditions",
            {"offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
        )
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def open_report(driver: Any, path: Path, timeout: float = 30.0) -> None:
    """Open ``path`` from ``file://`` and wait until every thumbnail is drawn."""
    driver.get(path.resolve().as_uri())
    wait_ready(driver, timeout)


def wait_ready(driver: Any, timeout: float = 30.0) -> None:
    """Wait for the page's ``data-ready`` flag; fail with the page's error if it has one."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout).until(
        lambda d: d.execute_script("return document.body.dataset.ready") in ("1", "error")
    )
    state = driver.execute_script(
        "return [document.body.dataset.ready, document.body.dataset.error]"
    )
    assert state[0] == "1", f"the page failed: {state[1]}"


def canvas_pixels(driver: Any, selector: str) -> Any:
    """The RGBA pixels of the canvas at ``selector`` as a numpy array ``(h, w, 4)``."""
    import numpy as np

    width, height, data = driver.execute_script(
        "const c = document.querySelector(arguments[0]);"
        "const d = c.getContext('2d').getImageData(0, 0, c.width, c.height);"
        "return [c.width, c.height, Array.from(d.data)];",
        selector,
    )
    return np.asarray(data, dtype=np.uint8).reshape(height, width, 4)
