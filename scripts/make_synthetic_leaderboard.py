"""Regenerate the synthetic benchmark's leaderboard: the entries in ``leaderboard/entries`` and its pages.

    python scripts/make_synthetic_leaderboard.py                  # the four reference baselines
    python scripts/make_synthetic_leaderboard.py --rem --pages leaderboard/synthetic   # everything

generates the default synthetic benchmark (``refvps synth``: 12 clips, seed 0), runs ``empty``,
``full``, ``motion`` and ``oracle`` on it (``--rem``: also ``rem`` with the shipped ``rem-tiny``
weights, which needs the ``rem`` extra), scores each with ``refvps evaluate`` (1000 bootstrap
resamples, seed 0), writes ``<out>/<name>.json`` with :func:`refvps.leaderboard.make_entry` and, with
``--pages DIR``, builds the pages from every entry in ``<out>`` (``refvps leaderboard <out> --out DIR
--no-reference``).

It checks the two facts the scorer must get right: ``oracle`` scores J = 100, and ``empty`` scores
TempCon = 0 on every expression whose target is present in every frame. (On a clip where the target
is absent from some frames, an empty mask is right there, IoU 1 by the DAVIS convention, and wrong
elsewhere, so its TempCon is not 0: the default synthetic benchmark has such clips.)

The output is deterministic on one machine: a rerun changes only the dates in the files. NumPy and
OpenCV builds may round differently on other machines (see :mod:`refvps.synth.generate`).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runs from a checkout without installing

from baselines.reference import REFERENCE_BASELINES, run_reference  # noqa: E402
from baselines.registry import get_baseline  # noqa: E402
from refvps.dataset import Dataset  # noqa: E402
from refvps.leaderboard import build_leaderboard, load_entries, make_entry, write_entry  # noqa: E402
from refvps.scoring import evaluate  # noqa: E402
from refvps.synth import generate_benchmark  # noqa: E402

BENCHMARK = "synthetic"
TITLE = "Ref-VPS synthetic benchmark"
SCRIPT = "python scripts/make_synthetic_leaderboard.py"
REM_TINY = {  # how the rem-tiny row describes itself (weights made by scripts/train_tiny_rem.py)
    "name": "REM (rem-tiny, synthetic)",
    "paper": "ReferEverything: Towards Segmenting Everything We Can Speak of in Videos (arXiv:2410.23287)",
    "url": "https://github.com/miccooper9/ReferEverything",
    "backbone": "rem-tiny: UNet3DConditionModel (1.7M) + AutoencoderKL (0.2M) + CLIPTextModel (0.1M), "
    "trained on synthetic clips of seed 1000",
    "checkpoint": "rem_model/weights/rem-tiny",
    "notes": "The reference REM code path at tiny size; weights made by scripts/train_tiny_rem.py (seeds "
    "disjoint from the benchmark's seed 0).",
}


def make_entries(
    out: Path,
    *,
    dataset: Path | None = None,
    work: Path | None = None,
    names=REFERENCE_BASELINES,
    rem: bool = False,
    bootstrap: int = 1000,
    seed: int = 0,
) -> dict[str, dict]:
    """Run, score and write one entry per baseline of ``names`` (and rem-tiny with ``rem``);
    returns {name: summary}."""
    with tempfile.TemporaryDirectory(prefix="refvps-leaderboard-") as scratch:
        work = Path(work) if work else Path(scratch)
        if dataset is None:
            dataset = generate_benchmark(work / BENCHMARK, seed=seed)
            dataset_words = f"refvps synth {BENCHMARK} --seed {seed} (the default synthetic benchmark)"
            benchmark = BENCHMARK
        else:
            dataset_words = f"the dataset folder {Path(dataset).name}"
            benchmark = Path(dataset).name
        scoring = f"--bootstrap {bootstrap} --seed {seed}"
        summaries = {}
        for name in names:
            spec = get_baseline(name)
            predictions = work / "runs" / name
            run_reference(name, dataset, predictions)
            document = _score(predictions, dataset, spec.title, benchmark, f"runs/{name}", bootstrap, seed)
            extra = " " + check_empty(document, dataset) if name == "empty" else ""
            entry = make_entry(
                document,
                name=spec.title,
                benchmark=benchmark,
                command=f"refvps run-baseline {name} --dataset {benchmark} --out runs/{name}; "
                f"refvps evaluate runs/{name} --dataset {benchmark} {scoring}",
                notes=f"reference baseline ({spec.summary}) Dataset: {dataset_words}. Made by {SCRIPT}.{extra}",
            )
            write_entry(entry, Path(out) / f"{name}.json")
            summaries[name] = document["summary"]
        if rem:
            summaries["rem-tiny"] = _rem_tiny_entry(Path(out), dataset, work, benchmark, bootstrap, seed)
    return summaries


def _score(predictions: Path, dataset: Path, method: str, benchmark: str, shown: str, bootstrap: int, seed: int):
    """``refvps evaluate`` as a results document, without the paths of this machine's scratch folder."""
    document = evaluate(predictions, dataset, method=method, bootstrap=bootstrap, seed=seed).to_json()
    document["meta"]["dataset"] = benchmark
    document["meta"]["predictions"] = shown
    return document


def _rem_tiny_entry(out: Path, dataset: Path, work: Path, benchmark: str, bootstrap: int, seed: int) -> dict:
    """Run ``refvps run-baseline rem --config rem-tiny`` (the README's main path) and write its entry."""
    from refvps.cli import main as refvps

    predictions = work / "runs" / "rem-tiny"
    argv = ["run-baseline", "rem", "--dataset", str(dataset), "--out", str(predictions), "--config", "rem-tiny"]
    try:
        refvps(argv)
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise SystemExit(f"refvps {' '.join(argv)} failed (exit status {exc.code})") from None
    document = _score(predictions, dataset, REM_TINY["name"], benchmark, "runs/rem-tiny", bootstrap, seed)
    command = (
        f"refvps synth {benchmark}; refvps run-baseline rem --dataset {benchmark} --out runs/rem-tiny "
        f"--config rem-tiny; refvps evaluate runs/rem-tiny --dataset {benchmark} --bootstrap {bootstrap} --seed {seed}"
    )
    write_entry(make_entry(document, benchmark=benchmark, command=command, **REM_TINY), out / "rem-tiny.json")
    return document["summary"]


def target_absent_clips(dataset: Path) -> set[str]:
    """Clips with at least one frame where the target (label 1) does not appear."""
    return {clip.id for clip in Dataset(dataset) if any(not (label == 1).any() for label in clip.labels())}


def check_empty(document: dict, dataset: Path) -> str:
    """Check the scorer on the empty baseline; returns a sentence for the entry's notes."""
    absent = target_absent_clips(dataset)
    wrong = [
        (row["video"], row["exp_id"], row["TempCon"])
        for row in document["per_expression"]
        if row["video"] not in absent and row["TempCon"] != 0
    ]
    if wrong:
        raise AssertionError(f"empty predictions must have TempCon 0 where the target is always present: {wrong[:5]}")
    if not absent:
        return "TempCon is 0 on every expression."
    return (
        f"TempCon is 0 on every expression whose target is in every frame; {len(absent)} clips have frames "
        "without the target (an empty mask is right there, IoU 1), which makes the mean nonzero."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("leaderboard/entries"), help="folder for the entry files")
    parser.add_argument("--dataset", type=Path, default=None, help="score on this dataset instead of the synthetic one")
    parser.add_argument("--work", type=Path, default=None, help="keep the dataset and predictions here")
    parser.add_argument("--rem", action="store_true", help="also the rem-tiny row (needs the 'rem' extra)")
    parser.add_argument("--pages", type=Path, default=None, help="then build the pages from <out> into this folder")
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    summaries = make_entries(
        args.out, dataset=args.dataset, work=args.work, rem=args.rem, bootstrap=args.bootstrap, seed=args.seed
    )
    for name, summary in summaries.items():
        print(
            f"{name:8s} J {summary['J']:6.2f}  J&F {summary['JF']:6.2f}  TempCon {summary['TempCon']:5.2f}  "
            f"-> {args.out / (name + '.json')}"
        )
    oracle = summaries.get("oracle")
    if oracle is not None and abs(oracle["J"] - 100.0) > 1e-9:
        print(f"oracle J is {oracle['J']}, not 100: the scorer or the baseline is wrong", file=sys.stderr)
        return 1
    if args.pages is not None:
        written = build_leaderboard(load_entries([args.out]), args.pages, title=TITLE)
        print("pages: " + ", ".join(str(path) for path in written.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
