"""The page in a real browser: open a synthetic clip, click, propagate, paint Ignore, write, save.

Drives Debian's Chromium (/usr/bin/chromium) headless through Playwright; skipped with the reason
when either is missing (CI installs both).
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.annotate.browser import (
    browser_page,
    chromium_missing_reason,
    click_image,
    drag_image,
    running_server,
    synthetic_clip_to_label,
    wait_idle,
)
from tests.annotate.conftest import distance_inside

pytestmark = [pytest.mark.browser, pytest.mark.skipif(chromium_missing_reason() is not None,
                                                      reason=chromium_missing_reason() or "")]

EXPRESSIONS = ["the pink ice cream melting on the left", "melting ice cream scoop",
               "the scoop that slowly turns into a puddle", "pink dessert melting away"]


def test_label_a_clip_in_the_browser(tmp_path):
    from refvps.annotate.segmenters.classic import ClassicSegmenter
    from refvps.dataset import Dataset
    from refvps.dataset.palette import read_label_png
    from refvps.dataset.validate import validate_dataset

    root = tmp_path / "bench"
    clip_id, truth = synthetic_clip_to_label(root)
    middle = len(truth) // 2
    target = truth[middle] == 1
    depth = distance_inside(target)
    y, x = np.unravel_index(depth.argmax(), depth.shape)

    with running_server(root, ClassicSegmenter()) as url, browser_page() as page:
        page.goto(url)
        page.wait_for_selector(f'#clips li[data-clip="{clip_id}"]')
        assert "segmenter: classic" in page.inner_text("#segmenter")
        shortcuts = page.inner_text("#shortcuts")
        assert "Ctrl+Z" in shortcuts and "propagate" in shortcuts
        page.click(f'#clips li[data-clip="{clip_id}"]')
        page.wait_for_function("window.__refvps.state() !== null")
        assert page.evaluate("window.__refvps.frame()") == middle          # opens on the middle frame
        assert "ice cream melting" in page.inner_text("#concept-name")     # the concept is shown

        # Positive click, a negative (right) click, then remove the negative by clicking it again.
        click_image(page, x, y)
        click_image(page, 5, 5, button="right")
        prompt = page.evaluate(f"window.__refvps.state().prompts['{middle}']")
        assert prompt["labels"] == [1, 0]
        click_image(page, 5, 5)
        prompt = page.evaluate(f"window.__refvps.state().prompts['{middle}']")
        assert prompt["labels"] == [1]

        # Propagate both ways; the progress bar and cancel button appear, then every frame is labelled.
        page.click("#propagate-both")
        page.wait_for_function("window.__refvps.state().job && window.__refvps.state().job.state === 'done'",
                               timeout=60000)
        statuses = page.evaluate("window.__refvps.state().status")
        assert "empty" not in statuses and statuses[middle] == "clicked"

        # Scrub with the timeline slider, come back, paint an Ignore stroke with the keyboard-picked brush.
        page.fill("#scrub", "0")
        page.dispatch_event("#scrub", "input")
        assert page.evaluate("window.__refvps.frame()") == 0
        page.keyboard.press("m")
        assert page.evaluate("window.__refvps.frame()") == middle
        page.keyboard.press("b")
        page.keyboard.press("i")
        assert page.is_checked('input[name="tool"][value="brush"]')
        assert page.is_checked('input[name="layer"][value="ignore"]')
        stroke = [(200.0, 20.0), (230.0, 20.0), (240.0, 30.0)]
        drag_image(page, stroke)
        assert page.evaluate(f"window.__refvps.state().status[{middle}]") == "clicked"  # Ignore keeps the status

        # Undo and redo the stroke from the keyboard.
        page.keyboard.press("Control+z")
        wait_idle(page)
        assert page.evaluate("window.__refvps.state().redo").startswith("brush (ignore)")
        page.keyboard.press("Control+Shift+z")
        wait_idle(page)

        # Four expressions by two annotators.
        page.fill("#annotator-0", "ann1")
        page.fill("#annotator-1", "ann2")
        for k, text in enumerate(EXPRESSIONS):
            page.fill(f"#exp-{k}", text)
        assert "4/4" in page.inner_text("#exp-count")

        page.click("#save")
        page.wait_for_function("document.getElementById('validation-summary') !== null && "
                               "document.getElementById('validation-summary').textContent.startsWith('valid')",
                               timeout=30000)
        assert not page.errors, page.errors

    report = validate_dataset(root, refvps_rules=True, clips=[clip_id])
    assert report.ok, report.errors
    label = read_label_png(root / "Annotations" / clip_id / f"{middle:05d}.png")
    assert label[y, x] == 1                                   # the clicked target
    saved_target = label == 1
    assert (saved_target & target).sum() / (saved_target | target).sum() > 0.8
    for px, py in stroke:                                      # the Ignore stroke
        assert label[int(py), int(px)] == 255
    expressions = Dataset(root).expressions(clip_id)
    assert [e.text for e in expressions] == EXPRESSIONS
    assert [e.annotator for e in expressions] == ["ann1", "ann1", "ann2", "ann2"]
