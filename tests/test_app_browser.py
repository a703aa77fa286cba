"""The GRADIEND app in a real browser: Debian's Chromium driven by Playwright (never `playwright install`).

CI installs Chromium with `make browser`; without it these tests are skipped. The screenshot of the final state is
saved under the test's `tmp_path` (look at it when you change the layout).
"""

from __future__ import annotations

import os
import time

import pytest

from gradiend_hf.app import FEATURE_FACTOR_RANGE, build_demo

from .test_evaluation_common import one_thread, train_gradiend  # noqa: F401


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TEXT = "The doctor said that [MASK] would come home."

pytestmark = [
    pytest.mark.browser,
    pytest.mark.usefixtures("one_thread"),
    pytest.mark.skipif(
        not os.path.exists(CHROMIUM), reason=f"no Chromium at {CHROMIUM}; install it with `make browser`"
    ),
]
playwright_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    gradiend, base, tokenizer = train_gradiend("bert", steps=30)
    gradiend.config.base_model_name_or_path = "google-bert/bert-base-cased"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GRADIO_TEMP_DIR", str(tmp_path_factory.mktemp("gradio")))
        patch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
        blocks = build_demo(
            gradiend, base, tokenizer, examples=[TEXT, "My sister thought that [MASK] was very tired."]
        )
        _, url, _ = blocks.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
        try:
            yield blocks, url
        finally:
            blocks.close()


@pytest.fixture(scope="module")
def page(app):
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.set_default_timeout(15_000)
            page.goto(app[1])
            yield page
        finally:
            browser.close()


def read_table(page, elem_id: str) -> list[list[str]]:
    rows = page.locator(f"#{elem_id} [role=row].virtual-row")
    return [
        [cell.strip() for cell in rows.nth(i).locator("[role=gridcell]").all_inner_texts()]
        for i in range(rows.count())
    ]


def wait_for_table(page, elem_id: str, condition, timeout: float = 15.0) -> list[list[str]]:
    """Polls a Dataframe until `condition(rows)` holds (Gradio updates it asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        rows = read_table(page, elem_id)
        if rows and all(rows[0]) and condition(rows):
            return rows
        if time.monotonic() > deadline:
            raise AssertionError(f"#{elem_id} never met the condition; last rows: {rows}")
        time.sleep(0.1)


def class_probabilities(rows) -> dict[str, tuple[float, float]]:
    return {row[0]: (float(row[2]), float(row[3])) for row in rows}


def drag_slider_to(page, value: float) -> None:
    """Drags the feature-factor slider with the mouse (what a user does; it fires Gradio's `release` event)."""
    slider = page.locator("input[type=range]")
    box = slider.bounding_box()
    low, high = FEATURE_FACTOR_RANGE
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] / 2, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * (value - low) / (high - low), y, steps=8)
    page.mouse.up()
    assert float(slider.input_value()) == pytest.approx(value, abs=0.15)


def test_moving_the_slider_strengthens_the_chosen_class(app, page, tmp_path):
    demo = app[0].gradiend_demo
    text_box = page.get_by_label("Sentence")
    assert text_box.input_value() == TEXT  # the first example is ready to analyse
    page.get_by_label("Learning rate").fill("2")
    page.get_by_role("button", name="Analyze").click()

    features = wait_for_table(page, "features", lambda rows: len(rows) >= 2)
    by_word = {row[0]: row for row in features}
    assert float(by_word["he"][3]) > 0.5 and float(by_word["she"][3]) < -0.5  # the encoder separates the classes
    wait_for_table(page, "base-top", lambda rows: len(rows) == demo.top_k)

    for target in ("F", "M"):
        drag_slider_to(page, demo.strengthen[target])
        rows = wait_for_table(
            page, "classes", lambda rows, t=target: class_probabilities(rows)[t][1] > class_probabilities(rows)[t][0]
        )
        base, rewritten = class_probabilities(rows)[target]
        assert rewritten > base, (target, rows)
    # The page shows what the handler computes for the last rewrite.
    expected_top, _ = demo.rewrite(TEXT, float(page.locator("input[type=range]").input_value()), 2.0)
    wait_for_table(page, "rewritten-top", lambda rows: rows == expected_top)
    assert read_table(page, "rewritten-top") != read_table(page, "base-top")
    page.screenshot(path=str(tmp_path / "app.png"), full_page=True)
    assert (tmp_path / "app.png").stat().st_size > 10_000


def test_bad_input_shows_the_message_and_an_example_runs(app, page):
    text_box = page.get_by_label("Sentence")
    text_box.fill("The doctor said that he would come home.")
    page.get_by_role("button", name="Analyze").click()
    page.get_by_text("The text has no [MASK]").first.wait_for()

    page.get_by_text("My sister thought that [MASK] was very tired.").first.click()
    playwright_api.expect(text_box).to_have_value("My sister thought that [MASK] was very tired.")
    wait_for_table(page, "features", lambda rows: rows[0][0] == "he")
