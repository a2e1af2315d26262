"""Contracts of quiet defaults: loads print nothing unless asked; warnings name the caller's line."""

import pytest

from hart.pipeline import HARTPipeline


def test_loading_a_shipped_model_prints_nothing_unless_verbose(capfd, monkeypatch):
    monkeypatch.delenv("HART_VERBOSE", raising=False)
    HARTPipeline.from_pretrained("hart-shapes-64")
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    monkeypatch.setenv("HART_VERBOSE", "1")
    HARTPipeline.from_pretrained("hart-shapes-64")
    out, err = capfd.readouterr()
    assert "Loading weights" in out + err  # transformers' own bar, let through on request


def test_truncation_warning_points_at_the_callers_line():
    pipe = HARTPipeline.from_preset("tiny", seed=0)
    with pytest.warns(UserWarning, match="truncated") as record:
        pipe(["x" * 500], progress=False)
    assert record[0].filename == __file__
