"""Make the leaderboard entries of the reference baselines on the default synthetic benchmark.

    python -m baselines.leaderboard_entries --out leaderboard/entries

generates the default synthetic benchmark (``refvps synth``: 12 clips, seed 0), runs ``empty``,
``full``, ``motion`` and ``oracle`` on it, scores each with ``refvps evaluate`` (1000 bootstrap
resamples, seed 0) and writes ``<out>/<name>.json`` with :func:`refvps.leaderboard.make_entry`.
It checks the two facts the scorer must get right: ``oracle`` scores J = 100, and ``empty`` scores
TempCon = 0 on every expression whose target is present in every frame. (On a clip where the target
is absent from some frames, an empty mask is right there, IoU 1 by the DAVIS convention, and wrong
elsewhere, so its TempCon is not 0: the default synthetic benchmark has such clips.)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from baselines.reference import REFERENCE_BASELINES, run_reference
from baselines.registry import get_baseline

BENCHMARK = "synthetic"


def make_entries(
    out: Path,
    *,
    dataset: Path | None = None,
    work: Path | None = None,
    names=REFERENCE_BASELINES,
    bootstrap: int = 1000,
    seed: int = 0,
) -> dict[str, dict]:
    """Run, score and write one entry per reference baseline; returns {name: summary}."""
    from refvps.leaderboard import make_entry, write_entry
    from refvps.scoring import evaluate

    with tempfile.TemporaryDirectory(prefix="refvps-reference-") as scratch:
        work = Path(work) if work else Path(scratch)
        if dataset is None:
            from refvps.synth import generate_benchmark

            dataset = generate_benchmark(work / BENCHMARK, seed=seed)
            dataset_words = f"refvps synth {BENCHMARK} --seed {seed} (the default synthetic benchmark)"
            benchmark = BENCHMARK
        else:
            dataset_words = f"the dataset folder {Path(dataset).name}"
            benchmark = Path(dataset).name
        summaries = {}
        for name in names:
            spec = get_baseline(name)
            predictions = work / "runs" / name
            run_reference(name, dataset, predictions)
            results = evaluate(predictions, dataset, method=spec.title, bootstrap=bootstrap, seed=seed)
            document = results.to_json()
            # Paths of this machine's scratch folder mean nothing in a committed file.
            document["meta"]["dataset"] = benchmark
            document["meta"]["predictions"] = f"runs/{name}"
            extra = " " + _check_empty(document, dataset) if name == "empty" else ""
            entry = make_entry(
                document,
                name=spec.title,
                benchmark=benchmark,
                command=f"refvps run-baseline {name} --dataset {benchmark} --out runs/{name}; "
                f"refvps evaluate runs/{name} --dataset {benchmark} --bootstrap {bootstrap} --seed {seed}",
                notes=f"reference baseline ({spec.summary}) Dataset: {dataset_words}. "
                f"Made by python -m baselines.leaderboard_entries.{extra}",
            )
            write_entry(entry, Path(out) / f"{name}.json")
            summaries[name] = document["summary"]
    return summaries


def target_absent_clips(dataset: Path) -> set[str]:
    """Clips with at least one frame where the target (label 1) does not appear."""
    from refvps.dataset import Dataset

    return {clip.id for clip in Dataset(dataset) if any(not (label == 1).any() for label in clip.labels())}


def _check_empty(document: dict, dataset: Path) -> str:
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
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    summaries = make_entries(args.out, dataset=args.dataset, work=args.work, bootstrap=args.bootstrap, seed=args.seed)
    for name, summary in summaries.items():
        print(
            f"{name:8s} J {summary['J']:6.2f}  J&F {summary['JF']:6.2f}  TempCon {summary['TempCon']:5.2f}  "
            f"-> {args.out / (name + '.json')}"
        )
    oracle = summaries.get("oracle")
    if oracle is not None and abs(oracle["J"] - 100.0) > 1e-9:
        print(f"oracle J is {oracle['J']}, not 100: the scorer or the baseline is wrong", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
