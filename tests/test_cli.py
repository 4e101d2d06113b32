"""The CLI surface: help, version, real data commands, one-line errors, no tracebacks."""

from __future__ import annotations

import subprocess
import sys

import pytest

import skinedge
from test_check import make_broken_folder

COMMANDS = ["data", "train", "eval", "export", "prune", "calibrate", "build-engines",
            "enhance", "run", "bench", "demo"]


def skinedge_cli(*args, cwd=None):
    """Run the real entry point in a fresh interpreter, as a user would."""
    return subprocess.run([sys.executable, "-m", "skinedge", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=900)  # a bound against hangs; the tiny demo alone takes ~1-5 min


def test_help_lists_the_whole_surface():
    result = skinedge_cli("--help")
    assert result.returncode == 0
    for command in COMMANDS:
        assert command in result.stdout
    data_help = skinedge_cli("data", "--help").stdout
    for sub in ("synth", "check", "split", "sheet"):
        assert sub in data_help


def test_version():
    result = skinedge_cli("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"skinedge {skinedge.__version__}"


@pytest.mark.parametrize("argv", [["bench", "--models", "nowhere"], ["run", "--source", "x.avi", "--models", "nowhere"],
                                  ["enhance", "x.png", "--models", "nowhere", "--out", "o"]])
def test_runtime_commands_with_a_missing_models_dir_say_so_in_one_line(argv, tmp_path):
    result = skinedge_cli(*argv, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().startswith("skinedge: error:") and "nowhere" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_synth_twice_is_byte_identical_and_checks_clean(tmp_path):
    for name in ("a", "b"):
        result = skinedge_cli("data", "synth", tmp_path / name, "--count", 4, "--size", 64, "--seed", 1)
        assert result.returncode == 0, result.stderr
        assert "Not patient data" in result.stdout
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files)
    for spec in (f"synthetic:{tmp_path / 'a'}", f"folder:{tmp_path / 'a'}"):
        result = skinedge_cli("data", "check", spec)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "OK: every item is usable" in result.stdout


def test_check_of_broken_dataset_lists_problems_and_exits_1(tmp_path):
    make_broken_folder(tmp_path)
    result = skinedge_cli("data", "check", f"folder:{tmp_path}")
    assert result.returncode == 1
    assert "4 of 8 items unusable" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.parametrize("argv, message", [
    (["data", "check", "folder:/no/such/place"], "dataset folder not found: /no/such/place"),
    (["data", "check", "imagenet:/x"], "unknown dataset kind 'imagenet'"),
    (["data", "synth", "OUT", "--size", "7"], "--size must be between 32 and 4096"),
])
def test_user_mistakes_are_one_line_without_traceback(tmp_path, argv, message):
    result = skinedge_cli(*argv, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip() == f"skinedge: error: {message}" or message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_split_and_sheet_commands(tmp_path, synth_dir):
    split = tmp_path / "split.json"
    result = skinedge_cli("data", "split", f"synthetic:{synth_dir}", "--out", split, "--seed", 2)
    assert result.returncode == 0 and split.is_file() and "random split" in result.stdout
    sheet = tmp_path / "sheet.png"
    result = skinedge_cli("data", "sheet", f"synthetic:{synth_dir}", "--out", sheet, "--count", 4, "--tile", 64)
    assert result.returncode == 0, result.stderr
    from PIL import Image
    assert Image.open(sheet).size == (256, 64 + 14)


@pytest.mark.parametrize("argv, message", [
    (["train", "seg", "--data", "folder:/nowhere", "--out", "r", "--size", "100"], "--size must be a multiple of 32"),
    (["train", "seg", "--data", "folder:/nowhere", "--out", "r"], "dataset folder not found"),
    (["train", "sr", "--data", "folder:/nowhere", "--out", "r", "--phase", "warm"], "--phase must be one of"),
    (["train", "seg", "--data", "folder:/nowhere", "--out", "r", "--resume"], "--resume: no seg-last.pt"),
    (["eval", "--data", "folder:/x", "--seg", "no.pt", "--sr", "no.pt", "--out", "rep"], "checkpoint not found: no.pt"),
])
def test_training_and_eval_mistakes_are_one_line(tmp_path, argv, message):
    result = skinedge_cli(*argv, cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
