"""Naive references of the benchmarks' evaluations, written plainly for the tests (no refvps code).

Each follows what the official or the authors' script computes (named in each docstring), on whole
arrays, frame by frame, with brute force where the scripts use something clever.
"""

from __future__ import annotations

import itertools

import cv2
import numpy as np


def iou(gt: np.ndarray, pred: np.ndarray, void: np.ndarray | None = None) -> float:
    """davis2017 ``db_eval_iou`` of one frame: void pixels left out, 1 when the union is empty."""
    keep = np.ones_like(gt, bool) if void is None else ~void
    inter = np.sum(gt & pred & keep)
    union = np.sum((gt | pred) & keep)
    return 1.0 if union == 0 else inter / union


def _boundary(seg: np.ndarray) -> np.ndarray:
    """davis2017 ``_seg2bmap``: a pixel differs from its right, lower or lower-right neighbour."""
    seg = seg.astype(bool)
    right, down, diag = np.zeros_like(seg), np.zeros_like(seg), np.zeros_like(seg)
    right[:, :-1], down[:-1, :], diag[:-1, :-1] = seg[:, 1:], seg[1:, :], seg[1:, 1:]
    b = (seg ^ right) | (seg ^ down) | (seg ^ diag)
    b[-1, :] = seg[-1, :] ^ right[-1, :]
    b[:, -1] = seg[:, -1] ^ down[:, -1]
    b[-1, -1] = False
    return b


def _disk(radius: float) -> np.ndarray:
    r = np.arange(-radius, radius + 1)
    x, y = np.meshgrid(r, r)
    return (x**2 + y**2 <= radius**2).astype(np.uint8)


def f_measure(gt: np.ndarray, pred: np.ndarray, void: np.ndarray | None = None, bound_th: float = 0.008) -> float:
    """davis2017 ``f_measure``: boundaries (void removed first) matched within a disk of the diagonal."""
    keep = np.ones_like(gt, bool) if void is None else ~void
    radius = np.ceil(bound_th * np.linalg.norm(gt.shape))
    fg, tr = _boundary(pred & keep), _boundary(gt & keep)
    fg_dil = cv2.dilate(fg.astype(np.uint8), _disk(radius)) > 0
    tr_dil = cv2.dilate(tr.astype(np.uint8), _disk(radius)) > 0
    n_fg, n_tr = fg.sum(), tr.sum()
    if n_fg == 0 and n_tr > 0:
        p, r = 1.0, 0.0
    elif n_fg > 0 and n_tr == 0:
        p, r = 0.0, 1.0
    elif n_fg == 0 and n_tr == 0:
        p, r = 1.0, 1.0
    else:
        p, r = (fg & tr_dil).sum() / n_fg, (tr & fg_dil).sum() / n_tr
    return 0.0 if p + r == 0 else 2 * p * r / (p + r)


def mean_j_f(gts, preds, void=None, boundary=True) -> tuple[float, float | None]:
    """Frame means of J and F for one (object, prediction) pair."""
    voids = void if void is not None else [None] * len(gts)
    j = np.mean([iou(g, p, v) for g, p, v in zip(gts, preds, voids)])
    f = np.mean([f_measure(g, p, v) for g, p, v in zip(gts, preds, voids)]) if boundary else None
    return float(j), (None if f is None else float(f))


def davis_unsupervised(objects: list, predictions: list, void: list) -> list[tuple[float, float]]:
    """davis2017 ``_evaluate_unsupervised`` for one sequence: predictions padded with empty ones to the
    number of objects, every pairing tried (brute force), the one with the largest summed (J + F) / 2
    kept; returns (J mean, F mean) per object."""
    empty = [np.zeros_like(objects[0][0]) for _ in objects[0]]
    predictions = list(predictions) + [empty] * max(0, len(objects) - len(predictions))
    pair = {
        (a, k): mean_j_f(objects[k], predictions[a], void) for a in range(len(predictions)) for k in range(len(objects))
    }
    best = max(
        itertools.permutations(range(len(predictions)), len(objects)),
        key=lambda chosen: sum((pair[(a, k)][0] + pair[(a, k)][1]) / 2 for k, a in enumerate(chosen)),
    )
    return [pair[(a, k)] for k, a in enumerate(best)]
