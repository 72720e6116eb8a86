"""Progress reports of the scorer, the validator and the statistics, through refvps.progress.

The expected counts are computed here from the test dataset's own definition (clips x frames x
expressions), not from the scorer's plan.
"""

from __future__ import annotations

import pytest

from refvps.dataset.stats import compute_stats
from refvps.dataset.validate import validate_dataset
from refvps.errors import DatasetError
from refvps.progress import NO_PROGRESS, Progress, RecordingProgress
from refvps.scoring import evaluate

from .conftest import CLIPS, EXPRESSIONS


def _masks_per_clip() -> dict[str, int]:
    return {clip_id: frames * len(EXPRESSIONS) for clip_id, (frames, _, _) in CLIPS.items()}


def _stage_events(progress: RecordingProgress, stage: str) -> list[tuple]:
    return [event for event in progress.events if event[1] == stage]


@pytest.mark.parametrize("workers", [1, 2])
def test_evaluate_reports_every_mask_once_per_clip(scored_case, workers):
    progress = RecordingProgress()
    evaluate(scored_case["tree"], scored_case["dataset"], workers=workers, bootstrap=0, progress=progress)
    events = _stage_events(progress, "scoring")
    expected = _masks_per_clip()
    assert events[0] == ("start", "scoring", sum(expected.values()), None)
    assert events[-1] == ("end", "scoring")
    advances = [event for event in events if event[0] == "advance"]
    # One advance per clip, by that clip's masks, noted with its id (any order with workers).
    assert sorted((note, n) for _, _, n, note in advances) == sorted(expected.items())
    assert progress.completed["scoring"] == progress.totals["scoring"] == 4 * (7 + 5 + 6)


def test_evaluate_ends_its_stage_when_scoring_fails(scored_case, tmp_path):
    import shutil

    dataset = tmp_path / "dataset"
    shutil.copytree(scored_case["dataset"], dataset)
    (dataset / "Annotations" / "clip_b" / "00002.png").write_bytes(b"garbage")
    progress = RecordingProgress()
    with pytest.raises(DatasetError, match="00002.png"):
        evaluate(scored_case["tree"], dataset, bootstrap=0, progress=progress)
    assert progress.events[-1] == ("end", "scoring")  # a bar is never left running


def test_validate_and_stats_report_one_step_per_clip(scored_case):
    for run, stage in (
        (lambda p: validate_dataset(scored_case["dataset"], progress=p), "validating"),
        (lambda p: compute_stats(scored_case["dataset"], progress=p), "reading"),
    ):
        progress = RecordingProgress()
        run(progress)
        events = _stage_events(progress, stage)
        assert events[0] == ("start", stage, len(CLIPS), None)
        assert [event[3] for event in events if event[0] == "advance"] == sorted(CLIPS)
        assert events[-1] == ("end", stage)


def test_the_default_reports_nothing_and_stages_always_end():
    assert type(NO_PROGRESS) is Progress
    with NO_PROGRESS.stage("anything", total=3) as same:
        same.advance("anything")  # does nothing, raises nothing
    progress = RecordingProgress()
    with pytest.raises(RuntimeError), progress.stage("frames", total=5):
        progress.advance("frames", 2)
        raise RuntimeError("stop")
    assert progress.events == [("start", "frames", 5, None), ("advance", "frames", 2, None), ("end", "frames")]
    progress.update("frames", 4, total=9, note="x")
    assert (progress.completed["frames"], progress.totals["frames"]) == (4, 9)
