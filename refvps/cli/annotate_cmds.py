"""``refvps annotate``: the labelling page, or the same path headless from a clicks file."""

from __future__ import annotations

import signal
import socket
import threading
import webbrowser
from pathlib import Path

import click
from rich.markup import escape

from refvps.cli.common import RichProgress, console, err_console, print_json
from refvps.errors import UsageError

DEFAULT_PORT = 8765


@click.command()
@click.argument("root", type=click.Path(path_type=Path))
@click.option("--clip", "clip_id", help="Open this clip first (required with --no-ui).")
@click.option(
    "--segmenter",
    type=click.Choice(["classic", "sam2", "hf-sam2"]),
    default=None,
    help="Which segmenter runs. Default: sam2 for a .pt checkpoint, hf-sam2 for a folder, classic without one.",
)
@click.option("--checkpoint", help="SAM2 .pt file (sam2) or Hugging Face folder / hub id (hf-sam2).")
@click.option(
    "--sam2-config",
    help="Hydra config name for --segmenter sam2, e.g. configs/sam2.1/sam2.1_hiera_l.yaml "
    "(default: read off the checkpoint's file name).",
)
@click.option(
    "--sam2-override",
    "sam2_overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Extra Hydra override for the sam2 model (advanced, repeatable), e.g. ++model.fill_hole_area=0.",
)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:1, mps.")
@click.option("--clicks", type=click.Path(path_type=Path), help="Clicks file for headless labelling (with --no-ui).")
@click.option("--no-ui", is_flag=True, help="Do not serve the page: apply --clicks, propagate both ways, save.")
@click.option("--overwrite", is_flag=True, help="Headless: replace the clip's existing saved masks.")
@click.option(
    "--discard-session", is_flag=True, help="Headless: move an unsaved annotation session aside and start fresh."
)
@click.option(
    "--take-over-lock",
    is_flag=True,
    help="Take over stale locks left by sessions that died: of --clip, or of every clip without --clip.",
)
@click.option(
    "--recover",
    "recover_only",
    is_flag=True,
    help="Only finish or roll back saves a crash interrupted (and remove stale temporary files), then exit.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=int, help="Port (0: any free port).")
@click.option(
    "--allow-remote",
    is_flag=True,
    help="Allow --host other than 127.0.0.1 (anyone who can reach it and has the token can edit the dataset).",
)
@click.option(
    "--token",
    envvar="REFVPS_ANNOTATE_TOKEN",
    help="Access token (default: the one kept for this dataset since its first start, so open pages "
    "keep working after a restart).",
)
@click.option("--new-token", is_flag=True, help="Replace the dataset's kept access token with a new one.")
@click.option("--open/--no-open", "open_browser", default=True, help="Open the page in a browser.")
@click.option(
    "--basic-rules",
    is_flag=True,
    help="Validate with the basic format rules only (not Ref-VPS's 4 expressions by 2 annotators, 24 fps).",
)
@click.option("--json", "as_json", is_flag=True, help="Headless: print the result as JSON.")
def annotate(
    root: Path,
    clip_id,
    segmenter,
    checkpoint,
    sam2_config,
    sam2_overrides,
    device,
    clicks,
    no_ui,
    overwrite,
    discard_session,
    take_over_lock,
    recover_only,
    host,
    port,
    allow_remote,
    token,
    new_token,
    open_browser,
    basic_rules,
    as_json,
) -> None:
    """Label masks, Ignore regions and expressions of the dataset at ROOT.

    Opens a local page: click on the target in the middle frame (left = positive, right =
    negative), propagate forwards and backwards, correct with clicks or the brush on any frame,
    paint Ignore, write four expressions, save. Every edit is autosaved; a clip is locked while open.

    Headless: refvps annotate ROOT --clip ID --clicks clicks.json --no-ui [--segmenter ...]
    """
    from refvps.dataset.format import Dataset

    _check_options(clip_id, clicks, no_ui, overwrite, discard_session, host, allow_remote, token, new_token)
    dataset = Dataset(root)  # a clear error now if ROOT is not a dataset
    if clip_id is not None and clip_id not in dataset:
        raise UsageError(f"clip {clip_id!r} is not in {root}", hint="list the clips with: refvps stats ROOT --per-clip")
    if recover_only:
        _recover(root, clip_id)
        return

    entries = None
    if no_ui:  # check the clicks file, the lock and the clip's saved work before spending time on loading a model
        from refvps.annotate.headless import load_clicks, preflight

        entries = load_clicks(clicks, dataset.clip(clip_id))
        preflight(
            root,
            dataset.clip(clip_id),
            overwrite=overwrite,
            discard_session=discard_session,
            take_over_lock=take_over_lock,
        )

    seg = _load_segmenter(segmenter, checkpoint, sam2_config, sam2_overrides, device)
    if no_ui:
        _headless(root, clip_id, entries, seg, overwrite, discard_session, take_over_lock, not basic_rules, as_json)
        return
    if token is None:
        from refvps.annotate.store import stored_token

        token = stored_token(root, renew=new_token)
    _serve(root, seg, clip_id, host, port, allow_remote, token, open_browser, take_over_lock, not basic_rules)


def _check_options(clip_id, clicks, no_ui, overwrite, discard_session, host, allow_remote, token, new_token) -> None:
    from refvps.annotate.server import is_loopback

    if no_ui and (clicks is None or clip_id is None):
        raise UsageError(
            "--no-ui needs --clip and --clicks", hint="refvps annotate ROOT --clip ID --clicks clicks.json --no-ui"
        )
    if clicks is not None and not no_ui:
        raise UsageError("--clicks is for headless labelling", hint="add --no-ui, or drop --clicks to open the page")
    if not no_ui and (overwrite or discard_session):
        raise UsageError(
            "--overwrite and --discard-session apply to --no-ui only",
            hint="in the page, saving replaces the clip's masks after you press Save",
        )
    if not is_loopback(host) and not allow_remote:
        raise UsageError(
            f"refusing to listen on {host} without --allow-remote",
            hint="keep 127.0.0.1 and use an SSH tunnel (ssh -L 8765:127.0.0.1:8765 HOST), "
            "or add --allow-remote if you trust the network",
        )
    if token and new_token:
        raise UsageError("--token and --new-token contradict each other", hint="pass one of them")


def _load_segmenter(segmenter, checkpoint, sam2_config, sam2_overrides, device):
    from refvps.annotate.segmenters import build_segmenter, guess_segmenter

    options = {}
    if sam2_overrides:
        if (segmenter or guess_segmenter(checkpoint)) != "sam2":
            raise UsageError("--sam2-override applies to --segmenter sam2 only")
        options["overrides"] = list(sam2_overrides)
    with err_console.status("loading the segmenter…"):
        seg = build_segmenter(segmenter, checkpoint, config=sam2_config, device=device, **options)
    info = seg.info()
    err_console.print(
        f"segmenter: [bold]{info.name}[/] ({escape(info.description)}) on {info.device}"
        + (f", checkpoint {escape(info.checkpoint)}" if info.checkpoint else "")
    )
    if info.fallback:
        err_console.print(
            "[yellow]the classic segmenter is a fallback without weights[/]: fine for compact, well-contrasted "
            "targets; SAM2 is the real tool (--checkpoint, see docs/ANNOTATE.md)"
        )
    return seg


def _recover(root: Path, clip_id: str | None) -> None:
    from refvps.dataset.transaction import recover

    done = recover(root, None if clip_id is None else [clip_id])
    for recovery in done:
        console.print(escape(recovery.describe()), soft_wrap=True)
    if not done:
        console.print("nothing to recover: no interrupted save and no stale temporary file")


def _headless(root, clip_id, entries, seg, overwrite, discard_session, take_over_lock, refvps_rules, as_json) -> None:
    from refvps.annotate.headless import run_headless

    with RichProgress(disable=as_json, labels={"propagate": "propagating"}) as progress:
        result = run_headless(
            root,
            clip_id,
            entries,
            seg,
            overwrite=overwrite,
            discard_session=discard_session,
            take_over_lock=take_over_lock,
            refvps_rules=refvps_rules,
            progress=progress,
        )
    if as_json:
        print_json(result.to_json())
        return
    console.print(
        f"saved {result.written} masks of clip [bold]{escape(result.clip)}[/] "
        f"(target in {result.target_frames} frames, Ignore in {result.ignore_frames}; "
        f"clicks on {', '.join(result.clicked_frames)}; {result.seconds} s)"
    )
    for p in result.problems:
        colour = "red" if p["severity"] == "error" else "yellow"
        console.print(f"  [{colour}]{p['severity']}[/] {p['rule']}: {escape(p['message'])}", soft_wrap=True)
    errors = sum(p["severity"] == "error" for p in result.problems)
    if result.valid:
        console.print("[green]valid[/]")
    else:
        console.print(
            f"[red]the clip does not validate yet[/] ({errors} errors above; open it in the page to "
            "fix them, e.g. refvps annotate ROOT --clip ID)"
        )


def _has_display() -> bool:
    """Whether a graphical browser can open here (else webbrowser may start a text browser in this terminal)."""
    import os
    import sys

    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _free_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    tries = [port] + ([port + k for k in range(1, 20)] if port else [])
    last = None
    for candidate in tries:
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, candidate))
        except OSError as exc:
            sock.close()
            last = exc
            continue
        sock.listen(64)
        return sock
    raise UsageError(f"cannot listen on {host}:{port} or the next 19 ports ({last})", hint="pick another --port")


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _take_over_locks(registry, clip_id: str | None) -> None:
    """``--take-over-lock``: the stale locks of --clip, or of every clip; live ones are named and kept."""
    result = registry.take_over_stale_locks(None if clip_id is None else [clip_id])
    if result.taken:
        err_console.print(f"took over the stale locks of: {escape(', '.join(result.taken))}")
    for held, holder in result.live.items():
        err_console.print(
            f"[yellow]not taken over:[/] clip {escape(held)} is open in a running session, {escape(holder)}"
        )
    if not result.taken and not result.live:
        err_console.print("--take-over-lock: no clip had a lock to take over")


def _serve(root, seg, clip_id, host, port, allow_remote, token, open_browser, take_over_lock, refvps_rules) -> None:
    from refvps.errors import require

    require("fastapi", "annotate", "the annotation page")
    uvicorn = require("uvicorn", "annotate", "the annotation page")

    from refvps.annotate.server import LOOPBACK_HOSTS, ServerConfig, create_app, registry_of

    sock = _free_socket(host, port)
    bound_port = sock.getsockname()[1]
    if port and bound_port != port:
        err_console.print(f"port {port} is in use (another refvps annotate?); using {bound_port}")
    allowed = None if allow_remote else LOOPBACK_HOSTS
    config = ServerConfig(
        root=Path(root), token=token, refvps_rules=refvps_rules, allowed_hosts=allowed, initial_clip=clip_id
    )
    app = create_app(config, seg)
    registry = registry_of(app)
    for recovery in registry.recovered:
        err_console.print(escape(recovery.describe()), soft_wrap=True)
    if take_over_lock:  # now, so that the page opens the clips without asking
        _take_over_locks(registry, clip_id)
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    url = f"http://{shown_host if ':' not in shown_host else '[' + shown_host + ']'}:{bound_port}/?token={config.token}"
    if clip_id:
        url += f"#clip={clip_id}"
    if allow_remote and host not in LOOPBACK_HOSTS:
        err_console.print(
            f"[bold yellow]Warning:[/] listening on {host}: anyone who can reach port {bound_port} "
            "and knows the token can read frames and change this dataset; traffic is not encrypted. "
            "An SSH tunnel to 127.0.0.1 is safer."
        )
    console.print(f"Annotating [bold]{escape(str(root))}[/]. Open this address (it holds the access token):")
    console.print(f"    {url}", soft_wrap=True, highlight=False, markup=False)
    console.print("Press Ctrl+C to stop; every edit is autosaved and the next start restores it.")
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off"))
    if open_browser and _has_display():
        threading.Timer(1.0, lambda: webbrowser.open(url)).start()
    # uvicorn stops cleanly on SIGINT/SIGTERM, then raises the signal again with the handlers it
    # found installed: make SIGTERM (kill, systemd, docker stop) and SIGHUP (terminal closed) end
    # like Ctrl+C, so the locks are released below instead of the process dying on the spot.
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass  # stopping is what was asked for
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        unsaved = registry.shutdown()
        sock.close()
        if unsaved:
            err_console.print(f"stopped; unsaved (autosaved) work in: {', '.join(unsaved)} - start again to save it")
        else:
            err_console.print("stopped; nothing unsaved")
