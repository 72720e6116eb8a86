"""Make the shipped ``rem-tiny`` weights (``rem_model/weights/rem-tiny/``) from the synthetic benchmark.

The exact command that made the shipped weights (2 CPU cores shared with other jobs, about 35 minutes)::

    python scripts/train_tiny_rem.py --work runs/rem-tiny --out rem_model/weights/rem-tiny

What it does, each step resumable (run the same command again after an interruption):

1. **Data.** ``refvps.synth.generate_benchmark`` writes training clips with seed ``--train-seed``
   (1000), disjoint from the evaluation benchmark (the default ``refvps synth OUT``, seed 0);
   the script checks that no frame of one appears in the other.
2. **VAE.** The ``rem-tiny`` ``AutoencoderKL`` learns to reconstruct training frames and target
   masks (3-channel, as the codec feeds them) at the model resolution (72 x 128). Its
   ``scaling_factor`` stays 1.0, as in the ``rem-tiny`` config: the shipped weights were trained
   so (the std of the frame latents, about 1.46, is logged). This stands in for the generative
   pre-training the real backbones bring.
3. **REM.** The denoiser (random init, as is the frozen text encoder, whose word vocabulary is built
   from the training expressions) is REM-trained with :func:`rem_model.train.run`: stage 1 on
   single frames (spatial weights only), stage 2 on 8-frame windows (all weights), MSE to the
   mask latent at t = 0, exactly the code path of the full-size models.
4. **Export** of the stage-2 result (weights + config + tokenizer) to ``--out``.
5. **Evaluation** on the held-out benchmark (seed 0): the same prediction and scoring as
   ``refvps run-baseline rem`` and ``refvps evaluate``, next to the trivial all-empty and full-frame
   predictions, and the codec round-trip IoU; written to ``<work>/results.json``.

The leaderboard entry ``leaderboard/entries/rem-tiny.json`` comes from the README's main path with
the shipped weights::

    refvps synth synthetic
    refvps run-baseline rem --dataset synthetic --out runs/rem-tiny --config rem-tiny
    refvps evaluate runs/rem-tiny --dataset synthetic --bootstrap 1000 --seed 0 \
        --method "REM (rem-tiny, synthetic)" --output runs/rem-tiny.results.json
    python -c "from refvps.leaderboard import make_entry, write_entry; write_entry(make_entry(
        'runs/rem-tiny.results.json', name='REM (rem-tiny, synthetic)', benchmark='synthetic',
        checkpoint='rem_model/weights/rem-tiny', command='refvps run-baseline rem ...'),
        'leaderboard/entries/rem-tiny.json')"

Measured on 2026-11-23 (shipped weights): J 71.5 (95% CI 54.3-87.6), J&F 70.0, TempCon 3.3 on the
held-out benchmark, against J 12.8 (all-empty) and 10.4 (full-frame); after stage 1 only: J 61.4,
TempCon 6.0. Codec round trip IoU 0.989 at the model resolution, 0.969 at the frame resolution.
Time: data 48 s, VAE 410 s, stage 1 605 s, stage 2 967 s (35 minutes).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from refvps.dataset.format import Dataset  # noqa: E402
from refvps.dataset.palette import IGNORE_INDEX  # noqa: E402
from refvps.fileio import atomic_write_json, read_json  # noqa: E402
from refvps.scoring.metrics import jaccard  # noqa: E402
from rem_model.data.transforms import Geometry, frame_to_model, mask_to_model  # noqa: E402

TRAIN_SEED = 1000
EVAL_SEED = 0


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def record_time(work: Path, phase: str, seconds: float) -> None:
    """Seconds each phase took, kept across resumed runs in ``<work>/timings.json``."""
    path = work / "timings.json"
    timings = read_json(path) if path.is_file() else {}
    timings[phase] = round(seconds, 1)
    atomic_write_json(path, timings)


# ------------------------------------------------------------------------------------------ data
def generate(out: Path, clips: int, seed: int, frames: int) -> Path:
    """A synthetic benchmark (skipped if a finished one is already there)."""
    marker = out / ".generated.json"
    if marker.is_file() and read_json(marker) == {"clips": clips, "seed": seed, "frames": frames}:
        return out
    from refvps.synth import generate_benchmark

    if out.exists():
        shutil.rmtree(out)
    log(f"generating {clips} clips with seed {seed} in {out}")
    generate_benchmark(out, clips=clips, seed=seed, frames=frames)
    atomic_write_json(marker, {"clips": clips, "seed": seed, "frames": frames})
    return out


def frame_hashes(root: Path) -> set[str]:
    dataset = Dataset(root)
    return {
        hashlib.sha256(clip.frame_path(name).read_bytes()).hexdigest() for clip in dataset for name in clip.frame_names
    }


def check_disjoint(train: Path, evaluation: Path) -> None:
    shared = frame_hashes(train) & frame_hashes(evaluation)
    if shared:
        raise SystemExit(f"training and evaluation data share {len(shared)} frames: pick another --train-seed")


def load_vae_data(root: Path, resolution: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Every frame (uint8, model resolution) and every target mask of every expression's object."""
    frames, masks = [], []
    for clip in Dataset(root):
        objects = sorted({e.obj_id for e in clip.expressions})
        geometry = None
        for name in clip.frame_names:
            rgb = clip.read_frame(name)
            geometry = geometry or Geometry.fit(rgb.shape[:2], resolution, "squash", "area")  # as rem-tiny
            frames.append(np.round((frame_to_model(rgb, geometry) + 1) * 127.5).astype(np.uint8))
            label = clip.read_label(name)
            for obj in objects:
                target = ((label == obj) & (label != IGNORE_INDEX)).astype(np.float32)
                masks.append((mask_to_model(target, geometry) > 0.5).astype(np.uint8))
    return np.stack(frames), np.stack(masks)


# ------------------------------------------------------------------------------------------ VAE
def _ious(pred: np.ndarray, truth: np.ndarray, valid: np.ndarray | None = None) -> list[float]:
    """Per-frame IoU (the scorer's J; Ignore pixels left out where not ``valid``), 1 where both are empty."""
    return np.atleast_1d(jaccard(truth, pred, None if valid is None else ~valid)).tolist()


def _crops(images: np.ndarray, index: np.ndarray, crop: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    h, w = images.shape[1:3]
    ch, cw = min(crop[0], h), min(crop[1], w)
    tops = rng.integers(0, h - ch + 1, len(index))
    lefts = rng.integers(0, w - cw + 1, len(index))
    return np.stack([images[i, t : t + ch, l : l + cw] for i, t, l in zip(index, tops, lefts)])


def train_vae(
    vae,
    frames: np.ndarray,
    masks: np.ndarray,
    *,
    steps: int,
    batch: int,
    lr: float,
    seed: int,
    crop: tuple[int, int] = (40, 64),
    kl_weight: float = 1e-6,
):
    """Reconstruct frames (L1 + MSE) and masks (MSE on the 3 channels); KL keeps the latent tame.

    The VAE is fully convolutional, so it trains on random crops (a quarter of the pixels per image)."""
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    vae.requires_grad_(True)  # (built inside a REM model, which freezes it)
    vae.train()
    optimizer = torch.optim.AdamW(vae.parameters(), lr=lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * s / steps))
    )
    # REM uses the decoder for masks only (frames are only encoded), so two thirds of a batch are masks;
    # masks are mostly background, so most mask samples come from frames where the target is present.
    half = max(1, batch // 3)
    n_masks = batch - half
    present = np.flatnonzero(masks.reshape(len(masks), -1).any(axis=1))
    started = time.perf_counter()
    for step in range(1, steps + 1):
        f_idx = rng.integers(0, len(frames), half)
        m_idx = np.concatenate([rng.choice(present, n_masks - n_masks // 4), rng.integers(0, len(masks), n_masks // 4)])
        images = torch.from_numpy(_crops(frames, f_idx, crop, rng)).permute(0, 3, 1, 2).float() / 127.5 - 1
        targets = torch.from_numpy(_crops(masks, m_idx, crop, rng)).float().unsqueeze(1).expand(-1, 3, -1, -1)
        if rng.random() < 0.5:
            images, targets = images.flip(-1), targets.flip(-1)
        posterior = vae.encode(torch.cat([images, targets])).latent_dist
        recon = vae.decode(posterior.sample()).sample
        frame_loss = F.l1_loss(recon[:half], images) + F.mse_loss(recon[:half], images)
        mask_loss = F.mse_loss(recon[half:], targets)
        kl = posterior.kl().mean()
        loss = frame_loss + 5.0 * mask_loss + kl_weight * kl
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        if step % 100 == 0 or step == steps:
            with torch.no_grad():
                decoded = recon[half:].mean(1) > 0.5
                truth = targets[:, 0] > 0.5
                iou = float(np.mean(_ious(decoded.numpy(), truth.numpy())))
            log(
                f"vae step {step}/{steps} frame {frame_loss.item():.4f} mask {mask_loss.item():.4f} kl {kl.item():.1f} "
                f"mask IoU {iou:.3f} ({time.perf_counter() - started:.0f} s)"
            )
    vae.eval()
    return vae


@torch.no_grad()
def latent_std(vae, frames: np.ndarray, samples: int = 256, seed: int = 0) -> float:
    """The std of the frame latents (Stable Diffusion's scaling factor is 1 / this; rem-tiny keeps 1.0)."""
    rng = np.random.default_rng(seed)
    index = rng.choice(len(frames), min(samples, len(frames)), replace=False)
    images = torch.from_numpy(frames[index]).permute(0, 3, 1, 2).float() / 127.5 - 1
    latents = torch.cat([vae.encode(images[i : i + 32]).latent_dist.mode() for i in range(0, len(images), 32)])
    return float(latents.std())


# ------------------------------------------------------------------------------------------ REM
def make_init_checkpoint(vae, train_root: Path, out: Path, seed: int) -> Path:
    """A self-contained starting point: random denoiser and text encoder, the trained VAE, a word
    vocabulary from the training expressions."""
    from rem_model.builder import build_rem
    from rem_model.checkpoints import save_checkpoint
    from rem_model.tokenizer import offline_tokenizer

    model = build_rem("rem-tiny", random_init=True, seed=seed)
    model.vae.load_state_dict(vae.state_dict())  # the weights only: the config's scaling factor (1.0) stays
    texts = [e.text for clip in Dataset(train_root) for e in clip.expressions]
    model.tokenizer = offline_tokenizer(model.text_encoder.config.vocab_size, model.config.max_text_tokens, texts)
    unknown = sum(model.tokenizer.unk_token_id in model.tokenizer(t)["input_ids"] for t in texts)
    log(f"vocabulary: {len(model.tokenizer)} words; {unknown} of {len(texts)} training expressions have unknown words")
    return save_checkpoint(model, out, metadata={"note": "rem-tiny before REM training: trained VAE, random denoiser"})


def rem_stage(
    stage: str, init: Path, train_root: Path, out: Path, *, steps: int, batch: int, frames: int, lr: float, seed: int
) -> Path:
    from rem_model.train import TrainConfig, run

    config = TrainConfig.from_dict(
        {
            "model": "rem-tiny",
            "init_checkpoint": str(init),
            "stage": stage,
            "num_frames": frames,
            "data": [{"kind": "refvps", "root": str(train_root), "max_stride": 2}],
            "output_dir": str(out),
            "batch_size": batch,
            "max_steps": steps,
            "lr": lr,
            "lr_scheduler": "cosine",
            "lr_warmup_steps": min(100, steps // 10),
            "max_grad_norm": 1.0,
            "checkpointing_steps": 250,
            "checkpoints_total_limit": 2,
            "resume_from_checkpoint": "latest",
            "latent_cache": 200_000,
            "num_workers": 0,
            "log_every": 50,
            "seed": seed,
        }
    )
    final = out / "final"
    if (final / "model.safetensors").is_file() and read_json(out / "run.json").get("train_config", {}).get(
        "max_steps"
    ) == steps:
        log(f"stage {stage} already trained: {final}")
        return final
    result = run(config)  # loss lines through logging (configured in main)
    log(f"stage {stage}: {result.global_step} steps in {result.seconds:.0f} s, last loss {result.last_loss}")
    record_time(out.parent, f"stage{stage}", result.seconds)
    return final


def export(final: Path, out: Path, args, argv) -> Path:
    """Copy the stage-2 weights, with metadata that says how they were made (no local paths)."""
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy2(final / "model.safetensors", out / "model.safetensors")
    shutil.copytree(final / "tokenizer", out / "tokenizer", dirs_exist_ok=True)
    meta = read_json(final / "rem_config.json")
    meta["base"] = None
    meta["init_checkpoint"] = None
    meta["training"] = {
        "script": "scripts/train_tiny_rem.py",
        "command": command_line(argv),
        "data": {
            "generator": "refvps.synth.generate_benchmark",
            "clips": args.train_clips,
            "seed": args.train_seed,
            "frames": args.frames,
            "size": [256, 144],
        },
        "vae": {"steps": args.vae_steps, "batch": args.vae_batch, "lr": 1e-3},
        "stage1": {
            "steps": args.stage1_steps,
            "batch": args.stage1_batch,
            "frames": 1,
            "lr": args.lr,
            "trains": "spatial weights",
        },
        "stage2": {
            "steps": args.stage2_steps,
            "batch": args.stage2_batch,
            "frames": 8,
            "lr": args.stage2_lr,
            "trains": "all weights",
        },
        "held_out": "refvps synth (seed 0), never seen in training",
    }
    atomic_write_json(out / "rem_config.json", meta)
    return out


def command_line(argv) -> str:
    return "python scripts/train_tiny_rem.py " + " ".join(argv if argv is not None else sys.argv[1:])


# ------------------------------------------------------------------------------------------ eval
@torch.no_grad()
def codec_round_trip_iou(model, eval_root: Path) -> tuple[float, float]:
    """Mean per-frame IoU of every target mask of the benchmark through the codec: frame mask -> model
    size -> encode -> decode, compared at the model size (what the codec itself loses) and, resized
    back, at the frame size (Ignore excluded)."""
    from rem_model.data.transforms import masks_tensor, probs_to_frame

    model_size, frame_size = [], []
    for clip in Dataset(eval_root):
        labels = clip.label_stack()
        valid = labels != IGNORE_INDEX
        geometry = Geometry.fit(labels.shape[1:], model.config.resolution, "squash", model.config.resample)
        for obj in sorted({e.obj_id for e in clip.expressions}):
            truth = labels == obj
            small = masks_tensor(list(truth.astype(np.float32)), geometry)
            probs = model.codec.decode_mask_probs(model.codec.encode_masks(small.unsqueeze(0)))[0]
            model_size.extend(_ious((probs > 0.5).numpy(), small.numpy() > 0.5))
            frame_size.extend(_ious((probs_to_frame(probs, geometry) > 0.5).numpy(), truth, valid))
    return float(np.mean(model_size)), float(np.mean(frame_size))


def evaluate_all(weights: Path, eval_root: Path, work: Path) -> dict:
    """Score the model (J, F, TempCon, bootstrap CI, as `refvps evaluate --bootstrap 1000 --seed 0`)
    and the trivial predictions (J only) on the held-out benchmark."""
    from baselines.reference import run_reference
    from refvps.scoring import evaluate
    from rem_model.builder import build_rem
    from rem_model.inference import predict_dataset

    model = build_rem(None, checkpoint=weights)
    model_size, frame_size = codec_round_trip_iou(model, eval_root)
    results = {"codec_iou_model_size": model_size, "codec_iou_frame_size": frame_size}
    pred = work / "eval" / "rem-tiny"
    if pred.exists():
        shutil.rmtree(pred)  # always predict with the weights just exported
    summary = predict_dataset(model, eval_root, pred)
    results["inference_frame_expressions_per_s"] = summary.frame_expressions_per_s
    scores = evaluate(pred, eval_root, bootstrap=1000, seed=0, method="REM (rem-tiny, synthetic)")
    scores.write_json(work / "eval" / "rem-tiny.results.json")
    results["rem-tiny"] = {
        "J": scores.summary.J,
        "TempCon": scores.summary.TempCon,
        "JF": scores.summary.JF,
        "J_ci95": scores.summary.J_ci95,
    }
    for name, baseline in (("all-empty", "empty"), ("full-frame", "full")):
        folder = work / "eval" / name
        run_reference(baseline, eval_root, folder)  # refvps run-baseline empty / full
        s = evaluate(folder, eval_root, boundary=False, bootstrap=0, method=name).summary
        results[name] = {"J": s.J, "TempCon": s.TempCon}
    results["margin_over_trivial"] = results["rem-tiny"]["J"] - max(
        results["all-empty"]["J"], results["full-frame"]["J"]
    )
    return results


# ------------------------------------------------------------------------------------------ main
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--work", type=Path, default=Path("runs/rem-tiny"), help="working folder (data, checkpoints, logs)"
    )
    parser.add_argument("--out", type=Path, default=Path("rem_model/weights/rem-tiny"), help="where the weights go")
    parser.add_argument("--train-clips", type=int, default=240)
    parser.add_argument("--train-seed", type=int, default=TRAIN_SEED)
    parser.add_argument("--frames", type=int, default=24, help="frames per training clip")
    parser.add_argument("--vae-steps", type=int, default=2500)
    parser.add_argument("--vae-batch", type=int, default=18)
    parser.add_argument("--stage1-steps", type=int, default=800)
    parser.add_argument("--stage1-batch", type=int, default=16)
    parser.add_argument("--stage2-steps", type=int, default=600)
    parser.add_argument("--stage2-batch", type=int, default=4)
    parser.add_argument("--lr", type=float, default=5e-4, help="stage-1 learning rate")
    parser.add_argument("--stage2-lr", type=float, default=2e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-data", type=Path, help="use this Ref-VPS-format dataset instead of generating one")
    parser.add_argument("--eval-data", type=Path, help="use this held-out dataset instead of generating seed 0")
    parser.add_argument("--skip-eval", action="store_true")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (1 is fastest on a machine whose cores are shared with other jobs)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    work = args.work
    work.mkdir(parents=True, exist_ok=True)

    phase = time.perf_counter()
    train_root = args.train_data or generate(work / "train-data", args.train_clips, args.train_seed, args.frames)
    # The held-out benchmark is exactly `refvps synth synthetic` (12 clips, seed 0, 24 frames, 256x144).
    eval_root = args.eval_data or generate(work / "synthetic", 12, EVAL_SEED, 24)
    check_disjoint(train_root, eval_root)
    if not (work / "timings.json").is_file() or "data" not in read_json(work / "timings.json"):
        record_time(work, "data", time.perf_counter() - phase)

    from rem_model.config import get_config

    config = get_config("rem-tiny")
    vae_dir = work / "vae"
    if not (vae_dir / "config.json").is_file():
        from rem_model.builder import build_rem

        frames, masks = load_vae_data(train_root, config.resolution)
        log(f"VAE data: {len(frames)} frames, {len(masks)} masks ({masks.mean():.3f} foreground)")
        vae = build_rem("rem-tiny", random_init=True, seed=args.seed).vae
        phase = time.perf_counter()
        train_vae(vae, frames, masks, steps=args.vae_steps, batch=args.vae_batch, lr=1e-3, seed=args.seed)
        log(f"VAE frame latents std {latent_std(vae, frames):.4f} (scaling factor kept at {vae.config.scaling_factor})")
        vae.save_pretrained(vae_dir)
        record_time(work, "vae", time.perf_counter() - phase)
    from diffusers import AutoencoderKL

    vae = AutoencoderKL.from_pretrained(vae_dir)
    init = work / "init"
    if not (init / "model.safetensors").is_file():
        make_init_checkpoint(vae, train_root, init, args.seed)

    stage1 = rem_stage(
        "1",
        init,
        train_root,
        work / "stage1",
        steps=args.stage1_steps,
        batch=args.stage1_batch,
        frames=1,
        lr=args.lr,
        seed=args.seed,
    )
    stage2 = rem_stage(
        "2",
        stage1,
        train_root,
        work / "stage2",
        steps=args.stage2_steps,
        batch=args.stage2_batch,
        frames=8,
        lr=args.stage2_lr,
        seed=args.seed,
    )

    export(stage2, args.out, args, argv)
    log(
        f"weights written to {args.out} ({sum(p.stat().st_size for p in args.out.rglob('*') if p.is_file()) / 1e6:.1f} MB)"
    )

    if not args.skip_eval:
        results = evaluate_all(args.out, eval_root, work)
        results["timings_s"] = read_json(work / "timings.json") if (work / "timings.json").is_file() else {}
        results["command"] = command_line(argv)
        atomic_write_json(work / "results.json", results)
        log(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
