"""refvps fetch through yt-dlp's generic extractor, from a local HTTP server bound to 127.0.0.1."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from refvps.curation.fetch import (
    FetchItem,
    FetchOptions,
    YtDlpSearcher,
    _match_filter,
    _State,
    fetch,
    is_transient,
    read_fetch_input,
)
from refvps.curation.workspace import OptOutList, VideoRecord, Workspace
from refvps.errors import UsageError

from .conftest import generic_key, run_cli, serve_folder

yt_dlp = pytest.importorskip("yt_dlp")


def test_fetch_url_list_with_optout_broken_url_and_rerun(tmp_path, server, capsys):
    base, _ = server
    urls = tmp_path / "urls.txt"
    urls.write_text(
        "# candidate videos\n"
        f"{base}/clip_a.mp4 fire\n"
        f"{base}/missing.mp4\n"
        f"{base}/clip_b.mp4 candle_melting\n"
        f"{base}/clip_c.mp4\n"
    )
    ws_root = tmp_path / "ws"
    ws = Workspace(ws_root).create()
    ws.optout_path.write_text("# opted out\nCLIP_C\n")  # case does not matter
    code, out, err = run_cli(capsys, "fetch", str(urls), "--workspace", str(ws_root), "--json", "--backoff", "0")
    # The broken URL is reported (non-zero exit, named) while the others were fetched.
    assert code == 1
    assert "1 item(s) could not be fetched" in err and "failures.json" in err
    assert "fix or remove the 1 broken" in " ".join(err.split())  # a 404 does not heal by rerunning
    report = json.loads(out)
    key_a, key_b, key_c = (generic_key(f"{base}/{n}.mp4", n) for n in ("clip_a", "clip_b", "clip_c"))
    assert report["downloaded"] == [key_a, key_b]
    assert [f["target"] for f in report["failed"]] == [f"{base}/missing.mp4"]
    assert "404" in report["failed"][0]["reason"] and report["failed"][0]["transient"] is False
    assert report["failed"][0]["attempts"] == 1  # a 404 is not retried
    assert [(s["key"], "opt-out" in s["reason"]) for s in report["skipped"]] == [(key_c, True)]
    assert not list(ws.videos_dir.glob("*clip_c*"))
    failures = json.loads(ws.failures_path.read_text())["runs"]
    assert len(failures) == 1 and failures[0]["failed"][0]["target"] == f"{base}/missing.mp4"

    record = ws.read_record(key_a)
    assert record.id == key_a.removeprefix("generic_") and record.display_id == "clip_a"
    assert record.extractor == "Generic" and record.url == f"{base}/clip_a.mp4"
    assert (record.concept, record.category) == ("fire", "entities_with_dynamic_boundaries")
    assert record.file == f"videos/{key_a}.mp4" and (ws_root / record.file).stat().st_size > 1000
    assert record.retrieved and record.retrieved.endswith("Z")
    assert record.title == "clip_a" and record.query is None
    info = json.loads((ws.meta_dir / f"{key_a}.info.json").read_text())
    assert info["display_id"] == "clip_a" and info["extractor_key"] == "Generic"  # yt-dlp's own, sanitized
    assert ws.read_record(key_b).concept == "candle_melting"
    assert sorted(ws.archive_path.read_text().split("\n")) == ["", f"generic {record.id}", f"generic {key_b[8:]}"]

    # Second run: nothing is downloaded again, nothing is rewritten, and every skip says why.
    stamps = {p.name: p.stat().st_mtime_ns for p in ws.videos_dir.iterdir()}
    metas = {p.name: p.read_bytes() for p in ws.meta_dir.iterdir()}
    again = fetch(ws_root, read_fetch_input(urls), FetchOptions(backoff_s=0))
    assert again.downloaded == []
    assert {s["key"]: s["reason"] for s in again.skipped} == {
        key_a: f"already in the download archive (archive.txt) as {key_a}",
        key_b: f"already in the download archive (archive.txt) as {key_b}",
        key_c: "display_id clip_c is on the opt-out list",
    }
    assert len(again.failed) == 1
    assert {p.name: p.stat().st_mtime_ns for p in ws.videos_dir.iterdir()} == stamps
    assert {p.name: p.read_bytes() for p in ws.meta_dir.iterdir()} == metas
    stages = [entry["stage"] for entry in ws.provenance()]
    assert stages == ["fetch", "fetch"]
    # failures.json keeps every run (one entry each, with its time), not only the last.
    runs = json.loads(ws.failures_path.read_text())["runs"]
    assert len(runs) == 2 and all(run["time"].endswith("Z") and len(run["failed"]) == 1 for run in runs)


def test_unknown_duration_passes_the_duration_filter(tmp_path, server):
    base, _ = server
    # The generic extractor cannot know the duration before downloading: "<?" lets it through.
    report = fetch(tmp_path / "ws", [FetchItem("url", f"{base}/clip_a.mp4")], FetchOptions(max_duration_s=0.5))
    assert report.downloaded == [generic_key(f"{base}/clip_a.mp4", "clip_a")]


def test_duration_and_optout_filter_semantics():
    state = _State()
    optout = OptOutList(["@Some_Uploader", "abc123"])
    check = _match_filter(FetchOptions(max_duration_s=60, min_duration_s=2), optout, state)
    assert check({"id": "x", "duration": 30}) is None
    assert check({"id": "x", "duration": None}) is None  # unknown passes
    assert check({"id": "x"}) is None
    assert "outside the limits" in check({"id": "x", "duration": 61})
    assert "outside the limits" in check({"id": "x", "duration": 1.5})
    assert "opt-out" in check({"id": "x", "duration": 30, "uploader": "some_uploader"})
    assert "opt-out" in check({"id": "abc123", "ie_key": "Youtube"})
    assert "opt-out" in check({"id": "q", "extractor_key": "Youtube", "channel_id": "ABC123"})
    assert state.rejected and "opt-out" in state.rejected


def test_transient_failures_are_retried_with_backoff(tmp_path, server):
    base, state = server
    state["flaky_failures"] = 2
    delays: list[float] = []
    report = fetch(
        tmp_path / "ws",
        [FetchItem("url", f"{base}/flaky/clip_b.mp4")],
        FetchOptions(retries=3, backoff_s=0.5),
        sleep=delays.append,
    )
    assert report.downloaded == [generic_key(f"{base}/flaky/clip_b.mp4", "clip_b")] and not report.failed
    assert delays == [0.5, 1.0]  # backoff doubles
    # Out of retries: reported as transient with the number of attempts.
    state["flaky_seen"], state["flaky_failures"] = 0, 10
    delays.clear()
    report = fetch(
        tmp_path / "ws2",
        [FetchItem("url", f"{base}/flaky/clip_c.mp4")],
        FetchOptions(retries=2, backoff_s=0.1),
        sleep=delays.append,
    )
    assert report.downloaded == [] and report.failed[0].transient and report.failed[0].attempts == 3
    assert delays == [0.1, 0.2]


def _local_search_extractor(base: str):
    from yt_dlp.extractor.common import SearchInfoExtractor

    class LocalSearchIE(SearchInfoExtractor):
        """Search over the test server: every clip whose name shares a word with the query."""

        IE_NAME = "localsearch"
        _SEARCH_KEY = "localsearch"

        def _search_results(self, query):
            catalogue = {"clip_a": "fire flames", "clip_b": "candle fire", "clip_c": "candle wax"}
            for name, words in catalogue.items():
                if set(words.split()) & set(query.split()):
                    yield self.url_result(f"{base}/{name}.mp4", "Generic", name, name)

    return LocalSearchIE()


def test_queries_go_through_a_search_extractor(tmp_path, server):
    base, _ = server
    queries = tmp_path / "queries.csv"
    queries.write_text(
        "category,concept,query,source\n"
        "entities_with_dynamic_boundaries,fire,fire,template\n"
        "temporal_object_changes,candle_melting,candle,template\n"
    )
    items = read_fetch_input(queries)
    assert [(i.kind, i.target, i.concept) for i in items] == [
        ("query", "fire", "fire"),
        ("query", "candle", "candle_melting"),
    ]
    searcher = YtDlpSearcher("localsearch", extractors=[_local_search_extractor(base)])
    ws = Workspace(tmp_path / "ws")
    report = fetch(ws, items, FetchOptions(per_query=2), searcher=searcher)
    # "fire" finds a and b; "candle" finds b (already there) and c.
    key = {n: generic_key(f"{base}/{n}.mp4", n) for n in ("clip_a", "clip_b", "clip_c")}
    assert report.searched == 2
    assert report.downloaded == [key["clip_a"], key["clip_b"], key["clip_c"]]
    b = ws.read_record(key["clip_b"])
    assert (b.query, b.concept) == ("fire", "fire")
    assert b.also_found_by == ["candle"]  # provenance of the second query is kept
    c = ws.read_record(key["clip_c"])
    assert (c.query, c.concept, c.category) == ("candle", "candle_melting", "temporal_object_changes")
    # --per-query limits the results: one per query.
    report = fetch(tmp_path / "ws_one", items[:1], FetchOptions(per_query=1), searcher=searcher)
    assert report.downloaded == [key["clip_a"]]


def test_a_failed_search_is_reported_and_the_rest_continue(tmp_path, server):
    base, _ = server

    def broken_then_fine(params, query, count):
        if query == "bad":
            raise yt_dlp.utils.DownloadError("ERROR: [youtube:search] HTTP Error 400: Bad Request")
        return [{"url": f"{base}/clip_a.mp4", "id": "clip_a", "ie_key": "Generic"}]

    items = [FetchItem("query", "bad"), FetchItem("query", "good", "fire", "entities_with_dynamic_boundaries")]
    report = fetch(tmp_path / "ws", items, FetchOptions(backoff_s=0), searcher=broken_then_fine)
    assert [f.kind for f in report.failed] == ["search"]
    assert report.downloaded == [generic_key(f"{base}/clip_a.mp4", "clip_a")]


def test_input_errors_name_the_line(tmp_path):
    text = tmp_path / "urls.txt"
    text.write_text("https://example.org/v1\ncandle melting timelapse\n")
    with pytest.raises(UsageError, match=r"line 2: 'candle' is not a URL"):
        read_fetch_input(text)
    text.write_text("https://example.org/v1 not_a_concept\n")
    with pytest.raises(UsageError, match="unknown concept 'not_a_concept'"):
        read_fetch_input(text)
    csv_file = tmp_path / "x.csv"
    csv_file.write_text("name,value\na,b\n")
    with pytest.raises(Exception, match="no 'query' or 'url' column"):
        read_fetch_input(csv_file)
    named = tmp_path / "named.txt"
    named.write_text("https://example.org/v1 candle melting\n")  # a concept name works too
    assert read_fetch_input(named)[0].concept == "candle_melting"


def test_input_that_lists_nothing_or_is_not_text_is_refused(tmp_path, capsys):
    cases = {
        "empty.txt": b"",
        "comments.txt": b"# only a comment\n\n",
        "header_only.csv": b"category,concept,query,source\n",
        "binary.txt": bytes(range(128, 256)),
    }
    for name, content in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(UsageError) as error:
            read_fetch_input(path)
        assert error.value.hint, name
        code, _, err = run_cli(capsys, "fetch", str(path), "-w", str(tmp_path / "ws"))
        assert code == 2 and "Traceback" not in err, (name, err)
        assert ("lists no queries or URLs" in err) or ("not a UTF-8 text file" in err), (name, err)
    assert not (tmp_path / "ws").exists(), "nothing to fetch creates no workspace"


def test_comments_after_a_url_and_fragments_in_it(tmp_path):
    urls = tmp_path / "urls.txt"
    urls.write_text("https://example.org/v#t=10 fire   # a comment\nhttps://example.org/w  # another\n")
    items = read_fetch_input(urls)
    assert [(i.target, i.concept) for i in items] == [
        ("https://example.org/v#t=10", "fire"),
        ("https://example.org/w", None),
    ]


def test_negative_numbers_are_refused_by_the_options(tmp_path, capsys):
    urls = tmp_path / "urls.txt"
    urls.write_text("https://example.org/v\n")
    for option, value in (("--backoff", "-1"), ("--retries", "-1"), ("--per-query", "0"), ("--max-duration", "-5")):
        code, _, err = run_cli(capsys, "fetch", str(urls), "-w", str(tmp_path / "ws"), option, value)
        assert code == 2 and option in err, option
    assert not (tmp_path / "ws").exists()


def test_transient_classification():
    err = yt_dlp.utils.DownloadError
    assert is_transient(err("ERROR: [generic] x: Unable to download webpage: HTTP Error 503: busy"))
    assert is_transient(err("ERROR: Read timed out"))
    assert is_transient(TimeoutError("slow"))
    assert not is_transient(err("ERROR: [generic] x: Unable to download webpage: HTTP Error 404: Not Found"))
    assert not is_transient(err("ERROR: Unsupported URL: https://example.org"))


@pytest.fixture
def lookalikes(media, tmp_path):
    """Files that share a name: a/cut.mp4 and b/cut.mp4 (different videos), odd.mp4 and odd.webm."""
    from .footage import ffmpeg

    folder = tmp_path / "served"
    for sub, source in (("a", "clip_a"), ("b", "clip_b")):
        (folder / sub).mkdir(parents=True)
        shutil.copyfile(media / f"{source}.mp4", folder / sub / "cut.mp4")
    shutil.copyfile(media / "clip_c.mp4", folder / "odd.mp4")
    ffmpeg(
        "-i",
        str(media / "clip_a.mp4"),
        "-c:v",
        "libvpx-vp9",
        "-b:v",
        "100k",
        "-deadline",
        "realtime",
        str(folder / "odd.webm"),
    )
    return folder


def test_sources_that_share_a_file_name_never_share_a_key(lookalikes, tmp_path, capsys):
    with serve_folder(lookalikes) as (base, _):
        urls = tmp_path / "urls.txt"
        names = ["a/cut.mp4", "b/cut.mp4", "odd.mp4", "odd.webm"]
        urls.write_text("".join(f"{base}/{name}\n" for name in names))
        ws = Workspace(tmp_path / "ws")
        report = fetch(ws, read_fetch_input(urls), FetchOptions(backoff_s=0))
        expected = [generic_key(f"{base}/{name}", Path(name).stem) for name in names]
        assert report.downloaded == expected and len(set(expected)) == 4 and not report.skipped
        assert len(ws.archive_path.read_text().split()) == 8  # four "generic <id>" lines
        sizes = {ws.read_record(key).file: (ws.root / ws.read_record(key).file).stat().st_size for key in expected}
        assert sizes[f"videos/{expected[0]}.mp4"] == (lookalikes / "a" / "cut.mp4").stat().st_size
        assert sizes[f"videos/{expected[1]}.mp4"] == (lookalikes / "b" / "cut.mp4").stat().st_size
        assert sizes[f"videos/{expected[3]}.webm"] == (lookalikes / "odd.webm").stat().st_size
        # Again: every one is skipped, and the summary says why (not only a count).
        code, out, err = run_cli(capsys, "fetch", str(urls), "-w", str(ws.root))
    assert code == 0 and "Fetched 0 video(s)" in out
    for key in expected:
        assert f"skipped {key}: already in the download archive (archive.txt) as {key}" in " ".join(out.split())
    assert (out + err).count("already in the download archive") == len(expected)  # said once, in the summary


def test_a_non_video_is_refused_at_fetch_time_and_not_archived(lookalikes, tmp_path, media):
    page = lookalikes / "clip.mp4"
    page.write_text("<html><body>This video is not available in your country</body></html>")
    with serve_folder(lookalikes) as (base, _):
        ws = Workspace(tmp_path / "ws")
        report = fetch(ws, [FetchItem("url", f"{base}/clip.mp4")], FetchOptions(backoff_s=0))
        assert report.downloaded == [] and len(report.failed) == 1
        assert "not a readable video" in report.failed[0].reason
        assert not ws.archive_path.exists() or not ws.archive_path.read_text().strip()  # not archived ...
        assert not list(ws.videos_dir.iterdir()) and not ws.records()  # ... and nothing half-kept
        # Once the server has the real file, fetching again really fetches it.
        shutil.copyfile(media / "clip_a.mp4", page)
        again = fetch(ws, [FetchItem("url", f"{base}/clip.mp4")], FetchOptions(backoff_s=0))
    assert again.downloaded == [generic_key(f"{base}/clip.mp4", "clip")] and not again.failed


def test_a_workspace_from_before_url_keys_keeps_its_keys(tmp_path, server):
    """A plain link fetched under its old name-only key is not fetched again under a new key."""
    base, _ = server
    ws = Workspace(tmp_path / "ws").create()
    ws.write_record(VideoRecord(key="generic_clip_a", id="clip_a", extractor="Generic", url=f"{base}/clip_a.mp4"))
    ws.archive_path.write_text("generic clip_a\n")
    report = fetch(ws, [FetchItem("url", f"{base}/clip_a.mp4")], FetchOptions(backoff_s=0))
    assert report.downloaded == [] and [s["key"] for s in report.skipped] == ["generic_clip_a"]
    assert [r.key for r in ws.records()] == ["generic_clip_a"]
