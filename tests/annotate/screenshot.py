"""Make docs/annotate.png: the page after labelling and reviewing a synthetic smoke clip (needs Chromium + Playwright).

python -m tests.annotate.screenshot docs/annotate.png
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

from tests.annotate.browser import browser_page, click_image, drag_image, running_server, wait_idle
from tests.annotate.conftest import distance_inside


def main(out: Path) -> None:
    from refvps.annotate.segmenters.classic import ClassicSegmenter
    from refvps.dataset import Dataset, DatasetWriter
    from refvps.synth import generate_benchmark

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "synthetic"
        generate_benchmark(root, clips=6, seed=0)
        clip = next(c for c in Dataset(root) if c.id.endswith("smoke"))
        truth = clip.label_stack()
        for path in clip.masks_dir.glob("*.png"):
            path.unlink()
        clip.masks_dir.rmdir()
        DatasetWriter(root).update_expressions(clip.id, [])
        middle = len(clip) // 2
        target = truth[middle] == 1
        depth = distance_inside(target)
        y1, x1 = np.unravel_index(depth.argmax(), depth.shape)
        ys, xs = np.nonzero(depth > 0.5 * depth.max())
        far = np.argmax(np.hypot(xs - x1, ys - y1))
        # An Ignore stroke along the upper-left part of the smoke's ambiguous fringe, in order around it.
        fringe = np.argwhere(truth[middle] == 255)
        cy, cx = np.argwhere(target).mean(axis=0)
        angle = np.arctan2(fringe[:, 0] - cy, fringe[:, 1] - cx)
        arc = fringe[(angle > -np.pi) & (angle < -np.pi / 3)]
        arc = arc[np.argsort(np.arctan2(arc[:, 0] - cy, arc[:, 1] - cx))]
        fringe = arc[:: max(1, len(arc) // 14)]
        with running_server(root, ClassicSegmenter()) as url, browser_page(1500, 900) as page:
            page.goto(url)
            page.click(f'#clips li[data-clip="{clip.id}"]')
            page.wait_for_function("window.__refvps.state() !== null")
            click_image(page, x1, y1)
            click_image(page, xs[far], ys[far])
            click_image(page, 200, 120, button="right")
            page.click("#propagate-both")
            page.wait_for_function(
                "window.__refvps.state().job && window.__refvps.state().job.state === 'done'", timeout=120000
            )
            page.keyboard.press("b")
            page.keyboard.press("i")
            page.fill("#radius", "4")
            page.dispatch_event("#radius", "input")
            drag_image(page, [(float(x), float(y)) for y, x in fringe])
            for field, text in [
                ("#annotator-0", "ann1"),
                ("#annotator-1", "ann2"),
                ("#exp-0", "the orange smoke on the left"),
                ("#exp-1", "smoke billowing from the bomb"),
                ("#exp-2", "the coloured smoke cloud"),
                ("#exp-3", "orange smoke spreading upwards"),
            ]:
                page.fill(field, text)
            page.click("#save")
            page.wait_for_function("document.getElementById('validation-summary') !== null")
            page.keyboard.press("c")
            page.keyboard.press("Home")
            for _ in range(9):  # review the first frames: N to the next one to check, V when it is right
                page.keyboard.press("v")
                wait_idle(page)
                page.keyboard.press("n")
            page.keyboard.press("m")
            page.evaluate("document.getElementById('side').scrollTop = 0")
            page.mouse.move(*page.evaluate(f"window.__refvps.imageToClient({x1}, {y1})"))
            page.wait_for_timeout(300)
            page.screenshot(path=str(out))
    print(f"wrote {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/annotate.png"))
