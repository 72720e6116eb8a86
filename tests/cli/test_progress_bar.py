"""The CLI's drawing of the library's Progress protocol (refvps.cli.common.RichProgress)."""

from __future__ import annotations

from refvps.cli.common import RichProgress


def _counts(progress: RichProgress) -> dict[str, tuple[float, float | None, bool]]:
    return {t.description.split()[0]: (t.completed, t.total, t.finished) for t in progress.bar.tasks}


def test_a_stage_abandoned_half_way_keeps_its_count_and_a_finished_one_is_full():
    with RichProgress(disable=True) as progress:
        with progress.stage("clips", total=3):
            for clip in ("a", "b", "c"):
                progress.advance("clips", note=clip)
        try:
            with progress.stage("frames", total=5):
                progress.advance("frames", 2)
                raise KeyboardInterrupt
        except KeyboardInterrupt:
            pass
        counts = _counts(progress)
    assert counts["clips"] == (3, 3, True)
    assert counts["frames"][:2] == (2, 5) and not counts["frames"][2]


def test_update_sets_the_total_when_it_becomes_known_and_restarting_a_stage_resets_it():
    with RichProgress(disable=True) as progress:
        progress.update("masks", 4)
        progress.update("masks", 6, total=10, note="clip_0001")
        assert _counts(progress)["masks"] == (6, 10, False)
        progress.start("masks", total=2)
        progress.advance("masks")
        assert _counts(progress)["masks"] == (1, 2, False)
