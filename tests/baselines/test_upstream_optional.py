"""Optional checks against the real upstream code, when a checkout is at hand (skipped otherwise).

    REFVPS_MUTR_REPO=~/src/MUTR REFVPS_VDIT_REPO=~/src/VD-IT REFVPS_UNINEXT_REPO=~/src/UNINEXT \\
        python -m pytest tests/baselines/test_upstream_optional.py

* MUTR and VD-IT: the real ``inference_ytvos.py`` runs through the adapter on this machine's
  interpreter, with only the model replaced by a stub (a view of the checkout whose ``models/`` is a
  stub package, built from symlinks: the checkout is not written to) and on the CPU. It reads the
  export, meets the patched traps, writes its masks where the adapter looks, and the conversion
  finds every one of them. Needs PyTorch in this interpreter.
* UNINEXT: the real ``conversion/convert_refytvos2ytvis_val.py`` (202-video assertion patched by
  the driver, as for the other scripts) runs on the export, and its ``valid.json`` equals the one
  the adapter writes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from baselines.export import overlay
from baselines.external import DRIVER
from baselines.mutr import PATCHES as MUTR_PATCHES
from refvps.dataset import Dataset

from .conftest import external_args

STUB_MODELS = '''
# A stub of the method's model for a CPU smoke run of its real inference script.
import torch


class StubModel(torch.nn.Module):
    """Query 2 wins and predicts the top-left quarter of the (padded) frame."""

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(1))

    def forward(self, samples, captions, targets):
        t, _, h, w = samples[0].shape
        logits = torch.zeros(1, t, 5, 1)
        logits[:, :, 2] = 3.0
        masks = torch.full((1, t, 5, h // 4, w // 4), -5.0)
        masks[:, :, 2, : h // 8, : w // 8] = 5.0
        return {"pred_logits": logits, "pred_masks": masks * self.scale,
                "pred_boxes": torch.rand(1, t, 5, 4), "reference_points": torch.rand(1, t, 5, 2)}


def build_model(args):
    return StubModel(), None, None


build_model_diff_cross = build_model
'''
SITECUSTOMIZE = "import torch\ntorch.cuda.set_device = lambda *a, **k: None  # CPU smoke run\n"


def _repo(variable: str) -> Path:
    value = os.environ.get(variable)
    if not value:
        pytest.skip(f"set {variable} to a checkout to run this check")
    return Path(value).expanduser().resolve()


def _stubbed_view(repo: Path, tmp_path: Path) -> tuple[Path, Path]:
    """The checkout seen through symlinks, with models/ a stub; and a stub checkpoint for it."""
    pytest.importorskip("torch")
    import torch

    stub = tmp_path / "stub_models"
    stub.mkdir()
    (stub / "__init__.py").write_text(STUB_MODELS)
    view = overlay(repo, tmp_path / "view", {"models": stub})
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    sys.path.insert(0, str(stub.parent))
    try:
        import importlib

        module = importlib.import_module("stub_models")
        checkpoint = tmp_path / "stub.pth"
        torch.save({"model": module.StubModel().state_dict()}, checkpoint)
    finally:
        sys.path.remove(str(stub.parent))
        sys.modules.pop("stub_models", None)
    return view, checkpoint


@pytest.mark.slow
@pytest.mark.parametrize("method, variable", [("mutr", "REFVPS_MUTR_REPO"), ("vdit", "REFVPS_VDIT_REPO")])
def test_real_inference_script_through_the_adapter(method, variable, cli, dataset_root, tmp_path, monkeypatch):
    repo = _repo(variable)
    view, checkpoint = _stubbed_view(repo, tmp_path)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "site"))
    extra = ["--method-arg", "--device", "--method-arg", "cpu", "--gpus", "0"]
    if method == "vdit":
        weights = tmp_path / "t2v"
        (weights / "unet").mkdir(parents=True)
        extra += ["--t2v-weights", weights]
    out = tmp_path / "preds"
    result = cli(*external_args(method, dataset_root, out, view, checkpoint, *extra))
    assert result.code == 0, result.err
    dataset = Dataset(dataset_root)
    for clip in dataset:
        for expression in clip.expressions:
            for frame in clip.frame_names:
                mask = np.asarray(Image.open(out / clip.id / expression.exp_id / f"{frame}.png")) > 0
                assert mask.any() and not mask.all()  # the stub's quarter, resized back by the script
    log = Path(json.loads((out / "run.json").read_text())["attempts"][0]["log"]).read_text()
    assert "patch '202-videos' applied" in log


def test_uninext_json_equals_the_upstream_converters(cli, dataset_root, tmp_path):
    repo = _repo("REFVPS_UNINEXT_REPO")
    script = repo / "conversion" / "convert_refytvos2ytvis_val.py"
    fake = tmp_path / "fake"  # only for --dry-run's checks; the converter comes from the real checkout
    from .conftest import make_fake_checkout

    make_fake_checkout(fake, "uninext")
    summary = cli(
        *external_args("uninext", dataset_root, tmp_path / "p", fake, _dummy(tmp_path), "--dry-run", "--json")
    ).json()
    ours = json.loads((Path(summary["workdir"]) / "export/datasets/ref-youtube-vos/valid.json").read_text())
    data_dir = Path(summary["workdir"]) / "export/datasets/ref-youtube-vos"
    (data_dir / "valid.json").unlink()
    config = tmp_path / "driver.json"
    config.write_text(
        json.dumps(
            {
                "script": str(script),
                "argv": ["--data_dir", str(data_dir)],
                "sys_path": [str(script.parent)],
                "patches": MUTR_PATCHES,
            }
        )
    )
    done = subprocess.run([sys.executable, str(DRIVER), str(config)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "patch '202-videos' applied" in done.stderr
    theirs = json.loads((data_dir / "valid.json").read_text())
    assert theirs == ours


def _dummy(tmp_path: Path) -> Path:
    path = tmp_path / "ckpt.pth"
    path.write_bytes(b"x")
    return path
