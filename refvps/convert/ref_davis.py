"""Ref-DAVIS17: DAVIS 2017 frames and unsupervised masks with the Ref-DAVIS referring expressions.

Written against:

* wjn922/ReferFormer @ 06fc218f5d8f04730f81471a15ed89ea7e4d30d8, ``tools/data/convert_davis_to_ytvos.py``
  (how the field reads the text annotations: four files, two annotators x first-frame / full-video,
  annotator 2 in latin-1, three misspelt video names, entries sorted by obj_id and zipped per video)
  and ``docs/data.md`` (the source layout);
* miccooper9/ReferEverything @ 6dcc5a9aeda785bebb2268317b141a92cbc28a89, ``ref-davis/infer_davis_MS.py``
  (expression ``4k + r`` is the k-th object of run r; runs scored separately and averaged) and its
  ``davis2017/`` (masks from ``Annotations_unsupervised``);
* davisvideochallenge/davis2017-evaluation @ ac7c43fca936f9722837b7fbd337d284ba37004b,
  ``davis2017/davis.py`` (sorted frames, ``ImageSets/2017/<split>.txt``, 255 = void).

Source layout (ReferFormer's ``data/ref-davis``)::

    SRC/DAVIS/ImageSets/2017/{train,val}.txt
    SRC/DAVIS/JPEGImages/480p/<video>/<frame>.jpg
    SRC/DAVIS/Annotations_unsupervised/480p/<video>/<frame>.png
    SRC/davis_text_annotations/Davis17_annot{1,2}[_full_video].txt   lines: video obj_id "expression"

Masks are kept as they are (objects 1..N, 255 void as Ignore): the protocol matches predictions to
those objects as the DAVIS evaluator does, so objects no expression names stay (the clip's
``label_ids`` declare them).
"""

from __future__ import annotations

from pathlib import Path

from refvps.convert.common import (
    BenchmarkInfo,
    ClipJob,
    frames_in,
    label_files,
    planned,
    read_lines,
    require_path,
)
from refvps.dataset.format import ClipMeta, Expression

INFO = BenchmarkInfo(
    key="ref-davis",
    name="Ref-DAVIS17",
    protocol="ref-davis",
    url="https://davischallenge.org/davis2017/code.html",
    license="DAVIS 2017 terms (https://davischallenge.org); expressions: Khoreva et al. 2018 (MPI-INF)",
    splits=("val", "train"),
    default_split="val",
)
FPS = 24  # DAVIS frames are at 24 fps (the paper's appendix B.4)

# (file, encoding, annotator, annotation): the order ReferFormer interleaves them in (exp id 4k + r).
TEXT_FILES = (
    ("Davis17_annot1.txt", "utf-8", "annotator1", "first_frame"),
    ("Davis17_annot1_full_video.txt", "utf-8", "annotator1", "full_video"),
    ("Davis17_annot2.txt", "latin-1", "annotator2", "first_frame"),
    ("Davis17_annot2_full_video.txt", "latin-1", "annotator2", "full_video"),
)
RENAMED = {"clasic-car": "classic-car", "dog-scale": "dogs-scale", "motor-bike": "motorbike"}


def read_expressions(path: Path, encoding: str, notes: list[str]) -> dict[str, list[tuple[str, str]]]:
    """video -> [(obj_id, expression)] of one text file, sorted by obj_id as text (as ReferFormer does)."""
    videos: dict[str, list[tuple[str, str]]] = {}
    with open(path, encoding=encoding) as handle:
        for number, line in enumerate(handle, 1):
            words = line.strip().split()
            if not words:
                continue
            if len(words) < 3 or not words[1].isdigit():
                notes.append(f"{path.name} line {number}: not 'video obj_id \"expression\"'; skipped")
                continue
            video, obj_id = RENAMED.get(words[0], words[0]), words[1]
            videos.setdefault(video, []).append((obj_id, " ".join(words[2:])[1:-1]))
    return {video: sorted(entries, key=lambda e: e[0]) for video, entries in videos.items()}


def _expressions(video: str, texts: list[dict[str, list[tuple[str, str]]]], notes: list[str]) -> list[Expression]:
    """The four lists of one video zipped by position (ReferFormer): expression 4k + r is entry k of file r."""
    lists = [t.get(video, []) for t in texts]
    count = min(len(entries) for entries in lists)
    if any(len(entries) != count for entries in lists):
        notes.append(f"{video}: the four text files list {[len(e) for e in lists]} objects; the first {count} kept")
    expressions = []
    for k in range(count):
        for r, (_, _, annotator, annotation) in enumerate(TEXT_FILES):
            obj_id, text = lists[r][k]
            expressions.append(
                Expression(str(4 * k + r), text, int(obj_id), annotator, extra={"annotation": annotation})
            )
    return expressions


def jobs(source: Path, split: str, options: dict[str, str], notes: list[str]) -> list[ClipJob]:
    davis = require_path(
        source / "DAVIS", "the DAVIS folder", "pass the folder that holds DAVIS/ and davis_text_annotations/"
    )
    text_dir = require_path(
        source / "davis_text_annotations", "the Ref-DAVIS text annotations", "unzip davis_text_annotations.zip into SRC"
    )
    split_file = require_path(davis / "ImageSets" / "2017" / f"{split}.txt", f"the {split} video list", "unzip DAVIS")
    texts = [
        read_expressions(require_path(text_dir / f, "a text file", "unzip it"), enc, notes)
        for f, enc, _, _ in TEXT_FILES
    ]
    jobs = []
    for video in read_lines(split_file):
        expressions = _expressions(video, texts, notes)
        if not expressions:
            notes.append(f"{video}: no referring expression in the text files; left out")
            continue
        job = planned(video, _job, davis, split, video, expressions)
        if job is not None:
            jobs.append(job)
    return jobs


def _job(davis: Path, split: str, video: str, expressions: list[Expression]) -> ClipJob:
    frames = frames_in(davis / "JPEGImages" / "480p" / video, "unzip DAVIS")
    return ClipJob(
        clip_id=video,
        frames=frames,
        expressions=expressions,
        meta=INFO.stamp(ClipMeta(video, fps=FPS), split, video),
        labels=label_files(davis / "Annotations_unsupervised" / "480p" / video, [name for name, _ in frames]),
    )
