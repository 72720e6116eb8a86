"""Helpers to drive the annotation page in Debian's Chromium through Playwright (tests and screenshot)."""

from __future__ import annotations

import contextlib
import shutil
import socket
import threading
import time
from pathlib import Path
from typing import Iterator

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium_missing_reason() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright Python package is not installed (pip install playwright)"
    if not CHROMIUM.exists():
        return "Debian's Chromium is not installed at /usr/bin/chromium (apt-get install -y chromium)"
    return None


@contextlib.contextmanager
def running_server(root: Path, segmenter, token: str = "browser-test-token") -> Iterator[str]:
    """Serve the page on a free loopback port in a thread; yield its URL with the token."""
    import uvicorn

    from refvps.annotate.server import ServerConfig, create_app, registry_of

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    port = sock.getsockname()[1]
    app = create_app(ServerConfig(root=root, token=token), segmenter)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(100):
        if server.started:
            break
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}/?token={token}"
    finally:
        server.should_exit = True
        thread.join(10)
        registry_of(app).shutdown()
        sock.close()


@contextlib.contextmanager
def browser_page(width: int = 1500, height: int = 900):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            # The page's CSP forbids eval, which Playwright's wait_for_function uses: bypass it in tests only.
            context = browser.new_context(viewport={"width": width, "height": height}, bypass_csp=True)
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.errors = errors
            yield page
        finally:
            browser.close()


def synthetic_clip_to_label(root: Path):
    """A synthetic benchmark whose melting clip lost its masks and expressions (to be labelled).

    Returns the clip id and its ground-truth label maps (T, H, W).
    """
    from refvps.dataset import Dataset, DatasetWriter
    from refvps.synth import generate_benchmark

    generate_benchmark(root, clips=6, seed=0)
    clip = next(c for c in Dataset(root) if "melting" in c.id)
    labels = clip.label_stack()
    shutil.rmtree(clip.masks_dir)
    DatasetWriter(root).update_expressions(clip.id, [])
    return clip.id, labels


def wait_idle(page) -> None:
    page.evaluate("window.__refvps.idle()")


def click_image(page, x: float, y: float, **kwargs) -> None:
    cx, cy = page.evaluate(f"window.__refvps.imageToClient({x}, {y})")
    page.mouse.click(cx, cy, **kwargs)
    wait_idle(page)


def drag_image(page, points) -> None:
    cx, cy = page.evaluate(f"window.__refvps.imageToClient({points[0][0]}, {points[0][1]})")
    page.mouse.move(cx, cy)
    page.mouse.down()
    for x, y in points[1:]:
        cx, cy = page.evaluate(f"window.__refvps.imageToClient({x}, {y})")
        page.mouse.move(cx, cy, steps=8)
    page.mouse.up()
    wait_idle(page)
