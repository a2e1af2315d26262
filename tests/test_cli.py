"""The package's main job until a generator ships: ``hart reconstruct`` on the shipped photos."""

from PIL import Image

from hart.cli import main
from tokenizer.reconstruct import sample_photos


def test_reconstruct_writes_a_side_by_side_grid_and_psnr_table(tmp_path, capsys):
    out = tmp_path / "rec.png"
    assert main(["reconstruct", "--out", str(out)]) == 0
    n = len(sample_photos())
    assert n == 4 and Image.open(out).size == (3 * 128, n * 128)
    printed = capsys.readouterr().out
    assert "discrete dB" in printed and "hybrid dB" in printed and "astronaut.png" in printed


def test_reconstruct_of_a_missing_file_is_a_clear_error(tmp_path, capsys):
    assert main(["reconstruct", str(tmp_path / "none.png"), "--out", str(tmp_path / "x.png")]) == 2
    assert "not found" in capsys.readouterr().err


def test_every_committed_recipe_parses_into_its_training_config():
    from pathlib import Path

    from hart.cli import build_parser
    from hart.cli_config import config_from_args
    from hart.dit.train import DiTTrainConfig
    from hart.train import HARTTrainConfig
    from tokenizer.train import TokenizerTrainConfig

    recipes = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))
    assert len(recipes) >= 4
    for path in recipes:
        command, cls = ("train-tokenizer", TokenizerTrainConfig) if path.name.startswith("tokenizer-") \
            else ("train-diffusion", DiTTrainConfig) if path.name.startswith("dit-") else ("train", HARTTrainConfig)
        cfg = config_from_args(cls, build_parser().parse_args([command, "--config", str(path)]))
        assert cfg.out_dir.startswith("runs/"), path


def test_info_describes_shipped_tokenizers_and_tokenizer_presets(capsys):
    import json

    assert main(["info", "photo-f8", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["image_size"] == 128 and info["downsample"] == 8 and info["patch_nums"][-1] == 16
    assert info["tokens"] == sum(p * p for p in info["patch_nums"]) and info["params"] > 1e6
    assert main(["info", "cpu-f8-64"]) == 0
    assert "64 px -> 8 x 8 x 16 latent" in capsys.readouterr().out


def test_python_dash_m_hart_runs_the_cli():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "hart", "info", "photo-f8"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and "hybrid tokenizer" in done.stdout


def test_threads_flag_sets_torch_threads_and_refuses_zero(tmp_path, capsys):
    import torch

    before = torch.get_num_threads()
    try:
        out = tmp_path / "x.png"
        assert main(["generate", "a red circle", "--model", "hart-shapes-64", "--n", "1", "--threads", "1",
                     "--out", str(out)]) == 0
        assert torch.get_num_threads() == 1 and out.is_file()
        assert main(["generate", "a red circle", "--threads", "0", "--out", str(out)]) == 2
        assert "--threads must be >= 1" in capsys.readouterr().err
    finally:
        torch.set_num_threads(before)


def test_a_closed_pipe_ends_the_command_quietly(monkeypatch, capsys):
    import os
    import sys

    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader went away, as `| head` does after its lines
    closed = os.fdopen(write_end, "w", buffering=1)
    monkeypatch.setattr(sys, "stdout", closed)
    try:
        assert main(["info", "photo-f8"]) == 141
    finally:
        monkeypatch.undo()
        closed.close()
    assert capsys.readouterr().err == ""
