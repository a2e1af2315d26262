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
