"""fnn serve in a real browser: headless Chromium, driven by selenium, draws digits on the page.

Needs Debian's `chromium` and `chromium-driver` (apt) and `selenium` (pip); skipped with the
reason when any is missing. A 784-64-10 network trained for 10 epochs on the bundled sample
(train accuracy ~0.98) must read a vertical stroke as "1" and an oval as "0", and the answer for
the finished drawing must be on the page within 300 ms of the end of the stroke (the page stamps
`performance.now()` on the canvas at pointerup and on #prediction when it renders).

`FNN_SCREENSHOT=1 pytest tests/test_serve_browser.py` also rewrites docs/serve.png.
"""

from __future__ import annotations

import math
import os
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

import fnn
from fnn import serve

from selenium import webdriver  # noqa: E402  (the `test` extra installs selenium)
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.actions import interaction  # noqa: E402
from selenium.webdriver.common.actions.action_builder import ActionBuilder  # noqa: E402
from selenium.webdriver.common.actions.pointer_input import PointerInput  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "serve.png"

pytestmark = [
    pytest.mark.skipif(
        CHROMIUM is None or CHROMEDRIVER is None,
        reason="needs Chromium and its driver on PATH (Debian: apt-get install chromium chromium-driver)",
    ),
    pytest.mark.slow,
]


def _start(params, metadata):
    server = serve.make_server(params, metadata, port=0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    return server, thread


def _stop(server, thread):
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    """The URL of a server whose model was trained on the sample and read back from its file."""
    sample = fnn.load_dataset("sample")
    result = fnn.train(np.random.default_rng(0), fnn.TrainConfig(hidden=(64,), epochs=10), sample)
    path = tmp_path_factory.mktemp("browser") / "model.npz"
    fnn.save_model(path, result.best_params, {"class_names": list(sample.class_names)})
    server, thread = _start(*fnn.load_model(path))
    yield serve.url(server)
    _stop(server, thread)


@pytest.fixture(scope="module")
def driver():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=860,740", "--force-device-scale-factor=1"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(service=webdriver.ChromeService(executable_path=CHROMEDRIVER), options=options)
    browser.set_script_timeout(10)
    yield browser
    browser.quit()


def _open(driver, url):
    driver.get(url)
    WebDriverWait(driver, 10).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#bars .name")) > 0)


def _offsets(canvas, points):
    """Points in canvas fractions (0..1, y down) -> integer offsets from the canvas's centre."""
    w, h = canvas.size["width"], canvas.size["height"]
    return [(round((x - 0.5) * w), round((y - 0.5) * h)) for x, y in points]


def _stroke(driver, canvas, points, kind: str) -> None:
    """Draw one stroke through `points` with a pointer of `kind` (mouse, pen or touch)."""
    pointer = PointerInput({"mouse": interaction.POINTER_MOUSE, "pen": interaction.POINTER_PEN,
                            "touch": interaction.POINTER_TOUCH}[kind], kind)
    actions = ActionBuilder(driver, mouse=pointer, duration=15)
    (x0, y0), *rest = _offsets(canvas, points)
    actions.pointer_action.move_to(canvas, x0, y0).pointer_down()
    for x, y in rest:
        actions.pointer_action.move_to(canvas, x, y)
    actions.pointer_action.pointer_up()
    actions.perform()


def _answer(driver) -> tuple[str, float]:
    """(the #prediction text, ms from the end of the stroke to its render) once the page has
    rendered the answer for the drawing as it now is."""
    WebDriverWait(driver, 5).until(
        lambda d: d.execute_script(
            "const p = document.getElementById('prediction'), c = document.getElementById('canvas');"
            "return p.dataset.version === c.dataset.version;"
        )
    )
    return driver.execute_script(
        "const p = document.getElementById('prediction'), c = document.getElementById('canvas');"
        "return [p.textContent, Number(p.dataset.renderedAt) - Number(c.dataset.strokeEnd)];"
    )


ONE = [(0.5, 0.15 + 0.7 * t / 11) for t in range(12)]
ZERO = [(0.5 + 0.22 * math.sin(2 * math.pi * t / 36), 0.5 - 0.33 * math.cos(2 * math.pi * t / 36)) for t in range(37)]


@pytest.mark.parametrize(
    "digit, points, kind",
    [("1", ONE, "mouse"), ("0", ZERO, "mouse"), ("1", ONE, "pen"), ("0", ZERO, "touch")],
    ids=["1-mouse", "0-mouse", "1-pen", "0-touch"],
)
def test_a_drawn_digit_is_read_within_300_ms(url, driver, digit, points, kind):
    _open(driver, url)
    canvas = driver.find_element(By.ID, "canvas")
    assert driver.find_element(By.ID, "prediction").text == ""
    _stroke(driver, canvas, points, kind)
    text, latency_ms = _answer(driver)
    print(f"{digit} drawn with {kind}: {text!r} on the page {latency_ms:.0f} ms after the stroke ended")
    assert text == digit
    assert latency_ms <= 300, f"the answer came {latency_ms:.0f} ms after the stroke ended"
    seen = driver.execute_script(  # the 28x28 the network received is drawn, and it has ink
        "const d = document.getElementById('seen').getContext('2d').getImageData(0, 0, 28, 28).data;"
        "let s = 0; for (let i = 0; i < d.length; i += 4) s += d[i]; return s;"
    )
    assert seen > 0
    if digit == "0" and kind == "mouse" and os.environ.get("FNN_SCREENSHOT") == "1":
        SCREENSHOT.parent.mkdir(exist_ok=True)
        driver.save_screenshot(str(SCREENSHOT))
    errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == []  # no script errors, no Content-Security-Policy violations


def test_clear_empties_the_canvas_and_the_answer(url, driver):
    _open(driver, url)
    canvas = driver.find_element(By.ID, "canvas")
    _stroke(driver, canvas, ONE, "mouse")
    assert _answer(driver)[0] == "1"
    driver.find_element(By.ID, "clear").click()
    assert driver.find_element(By.ID, "prediction").text == ""
    ink = driver.execute_script(
        "const c = document.getElementById('canvas'), d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        "let s = 0; for (let i = 0; i < d.length; i += 4) s += d[i]; return s;"
    )
    assert ink == 0


def test_class_names_are_shown_as_text_and_cut_when_long(driver):
    names = ["<img src=x id=injected>", "x" * 100] + [f"class {j}" for j in range(2, 10)]
    server, thread = _start(fnn.init(np.random.default_rng(0), (784, 10)), {"class_names": names})
    try:
        _open(driver, serve.url(server))
        shown = [element.text for element in driver.find_elements(By.CSS_SELECTOR, "#bars .name")]
        assert driver.find_elements(By.ID, "injected") == []
        assert shown[0] == names[0] and shown[1] == "x" * 39 + "\u2026" and shown[2:] == names[2:]
    finally:
        _stop(server, thread)
