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
from tests.annotate.conftest import T, distance_inside

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(chromium_missing_reason() is not None, reason=chromium_missing_reason() or ""),
]

EXPRESSIONS = [
    "the pink ice cream melting on the left",
    "melting ice cream scoop",
    "the scoop that slowly turns into a puddle",
    "pink dessert melting away",
]


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
        assert page.evaluate("window.__refvps.frame()") == middle  # opens on the middle frame
        assert "ice cream melting" in page.inner_text("#concept-name")  # the concept is shown

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
        page.wait_for_function(
            "window.__refvps.state().job && window.__refvps.state().job.state === 'done'", timeout=60000
        )
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
        page.wait_for_function(
            "document.getElementById('validation-summary') !== null && "
            "document.getElementById('validation-summary').textContent.startsWith('valid')",
            timeout=30000,
        )
        assert not page.errors, page.errors

    report = validate_dataset(root, refvps_rules=True, clips=[clip_id])
    assert report.ok, report.errors
    label = read_label_png(root / "Annotations" / clip_id / f"{middle:05d}.png")
    assert label[y, x] == 1  # the clicked target
    saved_target = label == 1
    assert (saved_target & target).sum() / (saved_target | target).sum() > 0.8
    for px, py in stroke:  # the Ignore stroke
        assert label[int(py), int(px)] == 255
    expressions = Dataset(root).expressions(clip_id)
    assert [e.text for e in expressions] == EXPRESSIONS
    assert [e.annotator for e in expressions] == ["ann1", "ann1", "ann2", "ann2"]


PIXEL_JS = """([x, y]) => {
  const c = document.getElementById('view');
  const r = c.getBoundingClientRect();
  const [cx, cy] = window.__refvps.imageToClient(x, y);
  const dpr = window.devicePixelRatio || 1;
  return Array.from(c.getContext('2d').getImageData(Math.round((cx - r.left) * dpr),
                                                   Math.round((cy - r.top) * dpr), 1, 1).data.slice(0, 3));
}"""


def wait_pixel(page, x, y, predicate, what):
    """Wait until the drawn pixel at image point (x, y) satisfies ``predicate`` (it is drawn asynchronously)."""
    page.mouse.move(1, 1)  # off the frame: no brush cursor drawn over the pixel
    for _ in range(100):
        rgb = page.evaluate(PIXEL_JS, [x, y])
        if predicate(rgb):
            return rgb
        page.wait_for_timeout(50)
    raise AssertionError(f"pixel at ({x}, {y}) is {rgb}, expected {what}")


def is_red(rgb):  # the target overlay at full opacity: (235, 35, 35)
    return rgb[0] > 220 and rgb[1] < 50 and rgb[2] < 50


def is_frame(rgb):  # the blob's own colour in the frame, (210, 100, 40) before JPEG
    return abs(rgb[0] - 210) < 20 and abs(rgb[1] - 100) < 20 and abs(rgb[2] - 40) < 20


def test_propagation_progress_cancel_and_corrections_in_the_browser(dataset):
    """Progress and cancel while the page stays usable, overlay colour and opacity, timeline, corrections."""
    from tests.annotate.conftest import GT_LABELS, OracleSegmenter, blob_center

    mid = 5
    with running_server(dataset, OracleSegmenter(GT_LABELS, delay=0.25)) as url, browser_page() as page:
        page.goto(url + "#clip=clip_a")
        page.wait_for_function("window.__refvps.state() !== null")
        assert page.evaluate("window.__refvps.frame()") == mid
        x, y = blob_center(mid)
        click_image(page, x, y)
        x -= 10  # look beside the click's marker, still inside the blob

        # Overlay: red at full opacity, the frame itself at 0, a mix in between; O hides it.
        page.fill("#opacity", "100")
        page.dispatch_event("#opacity", "input")
        wait_pixel(page, x, y, is_red, "the red target overlay")
        for _ in range(5):
            page.keyboard.press("9")
        assert page.input_value("#opacity") == "50"
        half = wait_pixel(page, x, y, lambda rgb: not is_red(rgb) and not is_frame(rgb), "a half-transparent overlay")
        assert 210 < half[0] < 240 and 40 < half[1] < 95
        page.keyboard.press("o")
        wait_pixel(page, x, y, is_frame, "the frame with the overlay hidden")
        page.keyboard.press("o")
        page.fill("#opacity", "100")
        page.dispatch_event("#opacity", "input")

        # Propagate both ways (slowly): a progress bar and a Cancel button; meanwhile the page is usable.
        page.keyboard.press("p")
        page.wait_for_function("window.__refvps.state().job && window.__refvps.state().job.state === 'running'")
        assert page.is_visible("#job") and page.is_enabled("#cancel") and page.is_disabled("#propagate-both")
        page.keyboard.press("ArrowRight")  # scrubbing works
        assert page.evaluate("window.__refvps.frame()") == mid + 1
        page.keyboard.press("b")
        page.keyboard.press("i")
        drag_image(page, [(110.0, 10.0), (120.0, 12.0)])  # so does painting Ignore
        assert page.evaluate("window.__refvps.state().undo").startswith("brush (ignore)")
        assert page.evaluate("window.__refvps.state().job.state") == "running"
        done_before = page.evaluate("window.__refvps.state().job.done")
        page.keyboard.press("Escape")
        page.wait_for_function("window.__refvps.state().job.state === 'cancelled'")
        job = page.evaluate("window.__refvps.state().job")
        assert done_before <= job["done"] < job["total"] == T
        assert "empty" in page.evaluate("window.__refvps.state().status")
        page.keyboard.press("p")
        wait_idle(page)
        page.wait_for_function("window.__refvps.state().job.state === 'done'", timeout=30000)

        # The timeline: a click on frame 2's cell shows frame 2.
        box = page.locator("#timeline").bounding_box()
        page.mouse.click(box["x"] + box["width"] * 2.5 / T, box["y"] + box["height"] / 2)
        assert page.evaluate("window.__refvps.frame()") == 2

        # A hand fix on frame 8, a corrective click on frame 6, R: re-propagates forwards from 6, keeps 8.
        page.keyboard.press("i")  # back to the Target layer
        page.keyboard.press("End")
        page.keyboard.press("ArrowLeft")
        drag_image(page, [(10.0, 60.0), (20.0, 60.0)])
        page.keyboard.press("Shift+ArrowLeft")
        page.keyboard.press("End")
        for _ in range(3):
            page.keyboard.press("ArrowLeft")
        assert page.evaluate("window.__refvps.frame()") == 6
        page.keyboard.press("c")
        click_image(page, *blob_center(6))
        before = page.evaluate("window.__refvps.state().revs")
        page.keyboard.press("r")
        wait_idle(page)
        page.wait_for_function(
            "window.__refvps.state().job.state === 'done' && window.__refvps.state().job.start === 6", timeout=30000
        )
        state = page.evaluate("window.__refvps.state()")
        assert state["job"]["mode"] == "between" and state["job"]["stretches"] == [[6, 8]]  # between 6 and 8
        assert state["status"][6] == "clicked" and state["status"][8] == "manual" and state["status"][mid] == "clicked"
        assert state["revs"][8] == before[8] and state["revs"][:6] == before[:6]  # kept / not reached

        # Eraser makes a hole in frame 7's target, H fills it, the Undo and Redo buttons take it back and forth.
        page.keyboard.press("ArrowRight")
        cx, cy = blob_center(7)
        wait_pixel(page, cx, cy, is_red, "frame 7's propagated target")
        page.keyboard.press("e")
        page.fill("#radius", "3")
        page.dispatch_event("#radius", "input")
        drag_image(page, [(cx, cy), (cx + 1, cy)])
        for dy in (-2, 0, 2):  # centred where the pointer was (the frame did not shift under it)
            wait_pixel(page, cx, cy + dy, is_frame, "a hole erased in the target")
        page.keyboard.press("h")
        wait_idle(page)
        wait_pixel(page, cx, cy, is_red, "the hole filled")
        page.click("#undo")
        wait_idle(page)
        wait_pixel(page, cx, cy, is_frame, "the fill undone")
        page.click("#redo")
        wait_idle(page)
        wait_pixel(page, cx, cy, is_red, "the fill redone")
        assert not page.errors, page.errors


def timeline_colour(page, frame: int, y_from_bottom: float) -> list[int]:
    """The colour the timeline draws for ``frame`` at ``y_from_bottom`` CSS pixels above its bottom."""
    return page.evaluate(
        """([frame, dy]) => {
          const c = document.getElementById('timeline');
          const n = window.__refvps.state().frames.length;
          const dpr = window.devicePixelRatio || 1;
          const x = Math.round((frame + 0.4) * c.clientWidth / n * dpr), y = Math.round((c.clientHeight - dy) * dpr);
          return Array.from(c.getContext('2d').getImageData(x, y, 1, 1).data.slice(0, 3));
        }""",
        [frame, y_from_bottom],
    )


def test_review_marks_navigation_and_repropagation_in_the_browser(dataset):
    """Issue 16 item 2: V marks a frame reviewed (shown on the timeline and counted in the clip list),
    editing marks it, N and K jump to the next frame to review and the next keyframe, a typed frame
    number is a jump, and R re-propagates between the keyframes around the frame."""
    from tests.annotate.conftest import GT_LABELS, CarrySegmenter, blob_center

    with running_server(dataset, CarrySegmenter()) as url, browser_page() as page:
        page.goto(url + "#clip=clip_a")
        page.wait_for_function("window.__refvps.state() !== null")
        click_image(page, *blob_center(5))
        page.keyboard.press("p")
        page.wait_for_function("window.__refvps.state().job && window.__refvps.state().job.state === 'done'")
        assert page.evaluate("window.__refvps.state().reviewed") == [i == 5 for i in range(T)]  # clicked: looked at
        page.keyboard.press("Home")
        page.keyboard.press("v")
        wait_idle(page)
        assert page.evaluate("window.__refvps.state().reviewed[0]")
        assert "reviewed ✓" in page.inner_text("#frame-status")
        assert "2/10 reviewed" in page.inner_text("#reviewed-count")
        assert "2 reviewed" in page.inner_text('#clips li[data-clip="clip_a"]')
        page.keyboard.press("n")
        assert page.evaluate("window.__refvps.frame()") == 1  # the next frame not reviewed
        green = [76, 175, 114]  # the line under a reviewed frame's cell
        assert timeline_colour(page, 0, 2) == green and timeline_colour(page, 5, 2) == green
        assert timeline_colour(page, 3, 2) != green
        page.keyboard.press("k")
        assert page.evaluate("window.__refvps.frame()") == 5  # the next keyframe
        page.keyboard.press("f")
        page.keyboard.type("8")
        page.keyboard.press("Enter")
        assert page.evaluate("window.__refvps.frame()") == 8
        assert page.input_value("#goto") == "00008"
        # A correction on frame 8, then R there: the frames between the keyframes 5 and 8 follow both.
        click_image(page, *blob_center(8))
        assert page.evaluate("window.__refvps.state().reviewed[8]")  # editing is reviewing
        page.keyboard.press("r")
        wait_idle(page)
        page.wait_for_function(
            "window.__refvps.state().job.mode === 'between' && window.__refvps.state().job.state === 'done'"
        )
        job = page.evaluate("window.__refvps.state().job")
        assert job["stretches"] == [[5, 8], [8, T]] and job["total"] == 3
        page.keyboard.press("Shift+K")
        assert page.evaluate("window.__refvps.frame()") == 5
        assert not page.errors, page.errors
    from refvps.annotate.store import read_session_summary

    assert read_session_summary(dataset, "clip_a")["reviewed"] == 3
    assert GT_LABELS[7].any()


def test_what_a_tab_types_after_losing_its_clip_is_kept(dataset):
    """Issue 16 item 3: a click and an expression typed in a tab whose clip another tab took are listed
    in its dialog and sent when it takes the clip back (they used to be dropped while the dialog said
    that nothing was lost)."""
    from tests.annotate.conftest import GT_LABELS, OracleSegmenter, blob_center

    with running_server(dataset, OracleSegmenter(GT_LABELS)) as url, browser_page() as first:
        first.goto(url + "#clip=clip_a")
        first.wait_for_function("window.__refvps.state() !== null")
        second = first.context.new_page()
        second.goto(url + "#clip=clip_a")
        second.wait_for_selector("#take-over:not([hidden])")
        assert "another tab" in second.inner_text("#dialog-text")
        second.click("#take-over")
        second.wait_for_function("window.__refvps.state() !== null")

        first.fill("#exp-0", "typed in the tab that lost the clip")
        first.wait_for_selector("#dialog-discard:not([hidden])")  # the autosave was refused: told at once
        assert "the expressions typed here" in first.inner_text("#dialog-hint")
        first.click("#dialog-close")
        click_image(first, *blob_center(5))
        first.wait_for_selector("#dialog-discard:not([hidden])")
        listed = first.inner_text("#dialog-hint")
        assert "the expressions typed here" in listed and "positive click on 00005" in listed, listed
        assert first.evaluate("window.__refvps.pending()") == ["the expressions typed here", "positive click on 00005"]
        assert first.input_value("#exp-0") == "typed in the tab that lost the clip"  # still in the field

        assert first.inner_text("#take-over") == "Take back and send again"
        first.click("#take-over")
        first.wait_for_function("window.__refvps.state() && window.__refvps.state().prompts['5']")
        wait_idle(first)
        state = first.evaluate("window.__refvps.state()")
        assert state["expressions"][0] == "typed in the tab that lost the clip"
        assert state["prompts"]["5"]["labels"] == [1]
        assert first.input_value("#exp-0") == "typed in the tab that lost the clip"
        assert "sent again" in first.inner_text("#message")
        assert first.evaluate("window.__refvps.pending()") == []
        assert not first.errors, first.errors


def light_clip(root):
    """A clip with a light background (where Ignore at 50 % grey used to vanish) and an orange blob."""
    from refvps.dataset import DatasetWriter
    from tests.annotate.conftest import blob_clip, meta

    rgb, labels = blob_clip()
    rgb = [np.where(label[..., None] == 1, frame, 225).astype(np.uint8) for frame, label in zip(rgb, labels)]
    DatasetWriter(root).write_clip("light", rgb, None, [], meta("light"))
    return labels


def test_overlay_styles_keep_both_layers_readable_and_the_fallback_is_named(tmp_path):
    """Issue 16 item 5 and 4: outline and hatch styles for both layers (L cycles them); on a light
    background the Ignore outline stands out at 50 % opacity where the grey fill does not; the page
    says when the weightless fallback segmenter runs."""
    from refvps.annotate.segmenters.classic import ClassicSegmenter
    from tests.annotate.conftest import blob_center

    root = tmp_path / "light"
    light_clip(root)
    with running_server(root, ClassicSegmenter()) as url, browser_page() as page:
        page.goto(url + "#clip=light")
        page.wait_for_function("window.__refvps.state() !== null")
        assert page.is_visible("#fallback") and "SAM2 is the real tool" in page.inner_text("#fallback")
        x, y = blob_center(5)
        click_image(page, x, y)
        page.keyboard.press("b")
        page.keyboard.press("i")
        page.fill("#radius", "12")
        page.dispatch_event("#radius", "input")
        drag_image(page, [(100.0, 15.0), (115.0, 15.0)])  # Ignore on the light background
        assert page.evaluate("window.__refvps.style()") == "fill"
        edge = (100.0 - 11.0, 15.0)  # on the Ignore stroke's left edge
        background = wait_pixel(page, 60, 66, lambda rgb: abs(rgb[0] - 225) < 6, "the light background")
        fill = wait_pixel(page, *edge, lambda rgb: rgb != background, "the Ignore fill")
        assert max(abs(a - b) for a, b in zip(fill, background)) < 40  # grey on light: hard to see
        page.keyboard.press("c")
        page.keyboard.press("l")
        assert page.evaluate("window.__refvps.style()") == "outline" and page.input_value("#overlay-style") == "outline"
        wait_pixel(page, x - 8, y, is_frame, "the frame inside the target's outline")  # beside the click marker
        across_the_edge = [page.evaluate(PIXEL_JS, [x - dx, y]) for dx in np.arange(10, 24, 0.5)]
        assert any(rgb[0] > 200 and rgb[1] < 90 for rgb in across_the_edge), across_the_edge  # a red outline
        # The Ignore outline is dashed black and white: the black dashes stand out on the light frame.
        column = [page.evaluate(PIXEL_JS, [edge[0], edge[1] + dy]) for dy in range(-6, 7)]
        contrast = [max(abs(a - b) for a, b in zip(rgb, background)) for rgb in column]
        assert sum(c > 80 for c in contrast) >= 3, contrast
        page.keyboard.press("l")
        assert page.evaluate("window.__refvps.style()") == "hatch"
        row = [page.evaluate(PIXEL_JS, [x + dx, y + 5]) for dx in range(-8, 9)]
        assert any(not is_frame(rgb) for rgb in row) and any(is_frame(rgb) for rgb in row)  # stripes
        assert not page.errors, page.errors
