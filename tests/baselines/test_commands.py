"""The commands each adapter builds (``--dry-run``), and the driver's in-memory source patches."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from baselines import mutr, vdit
from baselines.external import DRIVER

from .conftest import PYTHON, dry_run, external_args, make_fake_checkout


def _dry(cli, method, dataset_root, tmp_path, checkpoint, *extra):
    repo, workdir, summary = dry_run(cli, method, dataset_root, tmp_path, checkpoint, *extra)
    (command,) = summary["commands"]
    return repo, workdir, command


def _flag_values(argv: list[str]) -> dict[str, str | bool]:
    values: dict[str, str | bool] = {}
    i = 0
    while i < len(argv):
        if argv[i].startswith("--") and (i + 1 == len(argv) or argv[i + 1].startswith("--")):
            values[argv[i]] = True
            i += 1
        elif argv[i].startswith("--"):
            values[argv[i]] = argv[i + 1]
            i += 2
        else:
            i += 1
    return values


def test_vdit_command(cli, dataset_root, tmp_path, checkpoint):
    repo, workdir, command = _dry(cli, "vdit", dataset_root, tmp_path, checkpoint, "--gpus", "2,3")
    # Through the driver, with the method's interpreter, in the shadow working folder.
    assert command["argv"] == [PYTHON, str(DRIVER), str(workdir / "driver.json")]
    assert command["cwd"] == str(workdir / "cwd")
    assert command["env"] == {"CUDA_VISIBLE_DEVICES": "2,3"}
    # scripts/dist_test_ytvos_vdit.sh: --with_box_refine --binary --freeze_text_encoder --eval
    # --ngpu --output_dir --resume --backbone itcross_video_swin --amp (+ --ytvos_path, opts.py).
    upstream = command["upstream_argv"]
    assert upstream[:2] == [PYTHON, str(repo / "inference_ytvos.py")]
    flags = _flag_values(upstream[2:])
    assert flags == {
        "--with_box_refine": True,
        "--binary": True,
        "--freeze_text_encoder": True,
        "--eval": True,
        "--ngpu": "2",
        "--output_dir": str(workdir / "raw"),
        "--resume": str(checkpoint.resolve()),
        "--backbone": "itcross_video_swin",
        "--amp": True,
        "--ytvos_path": str(workdir / "export" / "ref-youtube-vos"),
    }
    driver = json.loads((workdir / "driver.json").read_text())
    assert driver["script"] == str(repo / "inference_ytvos.py")
    assert driver["argv"] == upstream[2:]
    assert driver["sys_path"] == [str(repo)]
    assert {p["name"] for p in driver["patches"]} == {"cuda-visible-devices", "202-videos"}
    # The shell line a user can paste runs the same thing.
    assert shlex.split(command["shell"]) == [
        "cd",
        str(workdir / "cwd"),
        "&&",
        "CUDA_VISIBLE_DEVICES=2,3",
        *command["argv"],
    ]


def test_vdit_without_gpus_inherits_the_environment_and_uses_one(cli, dataset_root, tmp_path, checkpoint):
    _, _, command = _dry(
        cli,
        "vdit",
        dataset_root,
        tmp_path,
        checkpoint,
        "--no-amp",
        "--method-arg",
        "--threshold",
        "--method-arg",
        "0.4",
    )
    assert command["env"] == {}
    flags = _flag_values(command["upstream_argv"][2:])
    assert flags["--ngpu"] == "1" and "--amp" not in flags
    assert command["upstream_argv"][-2:] == ["--threshold", "0.4"]


def test_mutr_command(cli, dataset_root, tmp_path, checkpoint):
    repo, workdir, command = _dry(cli, "mutr", dataset_root, tmp_path, checkpoint, "--gpus", "0,1,2,3")
    assert command["argv"] == [PYTHON, str(DRIVER), str(workdir / "driver.json")]
    assert command["cwd"] == str(workdir / "cwd")  # where results/<B>/ckpt is
    assert command["env"] == {"CUDA_VISIBLE_DEVICES": "0,1,2,3"}
    # scripts/dist_test_ytvos.sh: --with_box_refine --binary --freeze_text_encoder --ngpu N --backbone B
    flags = _flag_values(command["upstream_argv"][2:])
    assert flags == {
        "--with_box_refine": True,
        "--binary": True,
        "--freeze_text_encoder": True,
        "--ngpu": "4",
        "--backbone": "swin_l_p4w7",
        "--ytvos_path": str(workdir / "export" / "ref-youtube-vos"),
        "--davis_path": str(workdir / "export" / "ref-davis"),
    }
    driver = json.loads((workdir / "driver.json").read_text())
    assert [p["name"] for p in driver["patches"]] == ["202-videos"]


def test_mutr_output_folder_is_named_as_the_script_names_it():
    # inference_ytvos.py: eval_name = '{}_{}_{}_ckpt_{}'.format('refytvos2021', split, backbone,
    # args.model_ckpt[:-4]); output under results/<B>/eval/<dataset_file>/<eval_name>/Annotations
    assert mutr.eval_name("swin_l_p4w7") == "refytvos2021_valid_swin_l_p4w7_ckpt_checkpoint"
    from baselines.external import WorkPaths

    paths = WorkPaths(Path("/w"))
    assert mutr.MutrAdapter("resnet50").annotations_dir(paths) == Path(
        "/w/cwd/results/resnet50/eval/ytvos/refytvos2021_valid_resnet50_ckpt_checkpoint/Annotations"
    )


def test_uninext_command(cli, dataset_root, tmp_path, checkpoint):
    repo, workdir, command = _dry(
        cli,
        "uninext",
        dataset_root,
        tmp_path,
        checkpoint,
        "--gpus",
        "0,1",
        "--variant",
        "r50",
        "--method-arg",
        "INPUT.MIN_SIZE_TEST",
        "--method-arg",
        "360",
    )
    argv = command["argv"]
    # launch.py runs `python3 projects/UNINEXT/train_net.py --num-gpus=<np, default 8> <args>`;
    # assets/infer.sh passes --eval-only --uni 1 --config-file <eval-vid/..._eval_rvos.yaml>.
    assert argv[:2] == [PYTHON, str(repo / "projects/UNINEXT/train_net.py")]
    assert argv[2:9] == [
        "--num-gpus",
        "2",
        "--eval-only",
        "--uni",
        "1",
        "--config-file",
        str(repo / "projects/UNINEXT/configs/eval-vid/video_joint_r50_eval_rvos.yaml"),
    ]
    opts = argv[9:]
    assert dict(zip(opts[0::2], opts[1::2])) == {
        "OUTPUT_DIR": str(workdir / "raw"),
        "MODEL.WEIGHTS": str(checkpoint.resolve()),
        "DATASETS.TEST": "('rvos-refytb-val',)",
        "INPUT.MIN_SIZE_TEST": "360",
    }
    assert "--resume" not in argv  # the given checkpoint, not outputs/<exp>/last_checkpoint
    assert command["cwd"] == str(workdir / "cwd")
    assert command["env"]["CUDA_VISIBLE_DEVICES"] == "0,1"
    assert command["env"]["DETECTRON2_DATASETS"] == str(workdir / "export" / "datasets")
    assert command["env"]["PYTHONPATH"].split(":")[0] == str(repo)
    assert command["upstream_argv"][1:7] == ["launch.py", "--nn", "1", "--np", "2", "--eval-only"]


def test_uninext_default_variant_is_the_papers(cli, dataset_root, tmp_path, checkpoint):
    _, _, command = _dry(cli, "uninext", dataset_root, tmp_path, checkpoint)
    assert command["argv"][8].endswith("eval-vid/video_joint_vit_huge_eval_rvos.yaml")
    assert command["argv"][3] == "1"


def test_dry_run_prints_commands_for_people(cli, dataset_root, tmp_path, checkpoint):
    repo = make_fake_checkout(tmp_path / "repo", "mutr")
    result = cli(*external_args("mutr", dataset_root, tmp_path / "p", repo, checkpoint, "--dry-run"))
    assert result.code == 0, result.err
    assert "nothing was run" in result.out
    assert "run_patched.py" in result.out and "inference_ytvos.py --with_box_refine" in result.out
    assert "202-video assertion" in result.out


@pytest.mark.parametrize("bad", ["a,b", "0,0", "1;2"])
def test_bad_gpu_list_is_a_usage_error(cli, dataset_root, tmp_path, checkpoint, bad):
    repo = make_fake_checkout(tmp_path / "repo", "vdit")
    result = cli(*external_args("vdit", dataset_root, tmp_path / "p", repo, checkpoint, "--dry-run", "--gpus", bad))
    assert result.code == 2 and result.err.startswith("Error:") and "--gpus" in result.flat_err


def test_missing_interpreter_and_checkpoint_are_clear_errors(cli, dataset_root, tmp_path, checkpoint):
    repo = make_fake_checkout(tmp_path / "repo", "vdit")
    args = external_args("vdit", dataset_root, tmp_path / "p", repo, checkpoint, "--dry-run")
    args[args.index("--python") + 1] = str(tmp_path / "no-python")
    result = cli(*args)
    assert result.code == 1 and "--python" in result.flat_err and "Hint:" in result.err
    result = cli(*external_args("vdit", dataset_root, tmp_path / "p", repo, tmp_path / "none.pth", "--dry-run"))
    assert result.code == 1 and "checkpoint not found" in result.flat_err


# -- the driver's patches, on the upstream lines ------------------------------------------------------
# VD-IT inference_ytvos.py line 36 and line 89 (commit e44bd79); MUTR inference_ytvos.py (c5f5044).
UPSTREAM_CUDA_LINE = "os.environ['CUDA_VISIBLE_DEVICES'] = '7'"
UPSTREAM_202_LINE = "    assert len(video_list) == 202, 'error: incorrect number of validation videos'"


def _script(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "inference_ytvos.py"
    path.write_text(body)
    return path


def _run_driver(tmp_path: Path, script: Path, patches, env=None) -> subprocess.CompletedProcess:
    config = tmp_path / "driver.json"
    config.write_text(
        json.dumps({"script": str(script), "argv": ["--x", "1"], "sys_path": [str(script.parent)], "patches": patches})
    )
    return subprocess.run(
        [sys.executable, str(DRIVER), str(config)], capture_output=True, text=True, env=env, cwd=tmp_path
    )


def test_driver_removes_the_pinned_gpu_and_the_202_assertion(tmp_path):
    script = _script(
        tmp_path,
        "\n".join(
            [
                "import os, sys",
                "import os",
                UPSTREAM_CUDA_LINE,
                "def main(video_list):",
                UPSTREAM_202_LINE,
                "    print('videos', len(video_list), os.environ.get('CUDA_VISIBLE_DEVICES'), sys.argv[1:], __name__)",
                "if __name__ == '__main__':",
                "    main(['a', 'b'])",
            ]
        )
        + "\n",
    )
    done = _run_driver(tmp_path, script, vdit.PATCHES, env={"CUDA_VISIBLE_DEVICES": "5", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "videos 2 5 ['--x', '1'] __main__"
    assert "patch 'cuda-visible-devices' applied at line 3" in done.stderr
    assert "patch '202-videos' applied at line 5" in done.stderr
    assert script.read_text().count("202") == 1  # the file on disk is not changed


def test_driver_keeps_line_numbers_in_tracebacks(tmp_path):
    script = _script(tmp_path, "\n".join([UPSTREAM_CUDA_LINE, "x = 1", "raise RuntimeError('boom')"]) + "\n")
    done = _run_driver(tmp_path, script, vdit.PATCHES)
    assert done.returncode == 1
    assert f'File "{script}", line 3' in done.stderr and "RuntimeError: boom" in done.stderr


def test_driver_reports_a_patch_that_no_longer_matches(tmp_path):
    script = _script(tmp_path, "print('fixed upstream')\n")
    optional = _run_driver(tmp_path, script, mutr.PATCHES)
    assert optional.returncode == 0 and "nothing to patch" in optional.stderr
    required = _run_driver(tmp_path, script, [dict(mutr.PATCHES[0], required=True)])
    assert required.returncode == 3 and "upstream code changed" in required.stderr


def test_patch_patterns_match_the_upstream_lines_only():
    import re

    cuda = re.compile(vdit.PATCHES[0]["pattern"], re.MULTILINE)
    assert cuda.search(UPSTREAM_CUDA_LINE)
    assert cuda.search('os.environ["CUDA_VISIBLE_DEVICES"] = "0,1"')
    assert not cuda.search("os.environ.setdefault('CUDA_VISIBLE_DEVICES', '7')")
    assert not cuda.search("print(os.environ['CUDA_VISIBLE_DEVICES'])")
    assertion = re.compile(mutr.PATCHES[0]["pattern"], re.MULTILINE)
    assert assertion.sub(mutr.PATCHES[0]["replacement"], UPSTREAM_202_LINE) == (
        "    assert len(video_list) > 0, 'refvps: no videos to process'"
    )
    assert not assertion.search("    assert len(video_list) == 2020")
