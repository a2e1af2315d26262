"""``hart generate --prompts``: prompt files, the work plan, resuming, and 2 processes = 1 process.

The pipeline is the ``tiny`` preset (16 px images). Per-image seeds make an image independent of
its batch (tests/test_reproducibility.py: within 1/255, exact on ``tiny``); the fixed chunks make
the batches themselves the same for any number of processes, so those runs must match exactly.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hart.batch_generate import generate_prompt_file, plan, shard
from hart.cli import main
from hart.pipeline import HARTPipeline
from hart.prompt_file import PromptFileError, PromptLine, read_prompts
from hart.seeding import derive_seed

ACCELERATE = Path(sys.executable).with_name("accelerate")
TOLERANCE = 1  # uint8 levels between an image made in a batch and remade alone (exact on tiny)
JSONL = ['{"prompt": "a red circle"}', "", '{"prompt": "a blue square", "seed": 42}', '{"prompt": "green"}',
         '{"prompt": "a large yellow triangle at the bottom right", "tag": "ignored"}', '{"prompt": "x"}',
         '{"prompt": "a purple square at the top left"}', '{"prompt": "orange"}']


@pytest.fixture(scope="module")
def pipe() -> HARTPipeline:
    return HARTPipeline.from_preset("tiny", seed=0)


@pytest.fixture(scope="module")
def model_dir(pipe, tmp_path_factory) -> Path:
    return pipe.save_pretrained(tmp_path_factory.mktemp("model") / "tiny")


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def pngs(folder: Path) -> dict[str, np.ndarray]:
    return {p.name: np.asarray(Image.open(p)) for p in sorted(folder.glob("*.png"))}


def metadata(folder: Path) -> list[dict]:
    return [json.loads(x) for x in (folder / "metadata.jsonl").read_text().splitlines()]


# ---------------------------------------------------------------- prompt files
def test_txt_prompts_keep_their_line_numbers_and_skip_blank_lines(tmp_path):
    lines = read_prompts(write(tmp_path / "p.txt", ["a red circle", "", "  a blue square  ", "   ", "green"]))
    assert lines == [PromptLine(1, "a red circle"), PromptLine(3, "a blue square"), PromptLine(5, "green")]


def test_jsonl_prompts_read_prompt_and_optional_seed(tmp_path):
    lines = read_prompts(write(tmp_path / "p.jsonl", JSONL[:4]))
    assert lines == [PromptLine(1, "a red circle"), PromptLine(3, "a blue square", 42), PromptLine(4, "green")]


@pytest.mark.parametrize("bad, message", [
    ('{"prompt": "ok"', "not JSON"),
    ('["a red circle"]', "expected an object"),
    ('{"text": "a red circle"}', '"prompt" must be a non-empty string'),
    ('{"prompt": ""}', '"prompt" must be a non-empty string'),
    ('{"prompt": "ok", "seed": -1}', '"seed" must be a non-negative integer'),
    ('{"prompt": "ok", "seed": "7"}', '"seed" must be a non-negative integer'),
    ('{"prompt": "ok", "seed": true}', '"seed" must be a non-negative integer'),
])
def test_a_bad_jsonl_line_is_an_error_naming_file_and_line(tmp_path, bad, message):
    path = write(tmp_path / "p.jsonl", ['{"prompt": "fine"}', "", bad])
    with pytest.raises(PromptFileError, match=f"p.jsonl:3: {message}"):
        read_prompts(path)


def test_unusable_prompt_files_are_clear_errors(tmp_path):
    with pytest.raises(PromptFileError, match=r"must end in \.txt or \.jsonl"):
        read_prompts(write(tmp_path / "p.csv", ["a"]))
    with pytest.raises(PromptFileError, match="no prompts"):
        read_prompts(write(tmp_path / "p.txt", ["", "  "]))
    with pytest.raises(FileNotFoundError, match="not found"):
        read_prompts(tmp_path / "missing.txt")


# ---------------------------------------------------------------- plan and shards
def test_each_image_seed_depends_on_seed_line_and_j_only():
    lines = [PromptLine(1, "a"), PromptLine(3, "b", seed=42)]
    items = plan(lines, n_per_prompt=2, seed=7)
    assert [it.file for it in items] == ["000001_0.png", "000001_1.png", "000003_0.png", "000003_1.png"]
    assert [it.seed for it in items] == [derive_seed(derive_seed(7, 1), 0), derive_seed(derive_seed(7, 1), 1),
                                         derive_seed(42, 0), derive_seed(42, 1)]
    assert plan(lines[1:], 2, seed=7) == items[2:]  # other lines do not move a line's seeds
    assert [it.file for it in plan(lines, 1, 7)] == ["000001.png", "000003.png"]


@pytest.mark.parametrize("world", [1, 2, 3])
def test_shards_split_the_same_fixed_chunks_over_any_number_of_processes(world):
    items = plan([PromptLine(i, "p") for i in range(1, 12)], n_per_prompt=1, seed=0)
    def files(chunks):
        return sorted(tuple(it.file for it in c) for c in chunks)

    assert files(c for r in range(world) for c in shard(items, 4, r, world)) == files(shard(items, 4, 0, 1))
    assert [len(c) for c in shard(items, 4, 0, 1)] == [4, 4, 3]


# ---------------------------------------------------------------- resuming
def test_a_resumed_run_regenerates_only_the_missing_image(pipe, tmp_path, monkeypatch):
    prompts = write(tmp_path / "p.jsonl", JSONL)
    out = tmp_path / "out"
    summary = generate_prompt_file(pipe, prompts, out, "tiny", n_per_prompt=2, batch_size=4, progress=False)
    assert (summary.planned, summary.present) == (14, 0)
    before, meta = pngs(out), metadata(out)
    assert len(before) == 14 and [m["file"] for m in meta] == sorted(before)
    assert meta[2] == {"file": "000003_0.png", "line": 3, "j": 0, "prompt": "a blue square",
                       "seed": derive_seed(42, 0), "line_seed": 42, "model": "tiny",
                       "sampling": {"cfg_scale": 2.0, "top_k": 10, "top_p": 1.0, "temperature": 1.0,
                                    "diffusion_steps": 8, "clip_residual": 5.0}}

    (out / "000004_1.png").unlink()
    asked = []
    call = type(pipe).__call__
    monkeypatch.setattr(type(pipe), "__call__", lambda self, prompts, **kw: asked.append(prompts) or
                        call(self, prompts, **kw))
    summary = generate_prompt_file(pipe, prompts, out, "tiny", n_per_prompt=2, batch_size=4, progress=False)
    assert (summary.planned, summary.present, summary.generated) == (14, 13, 1)
    assert asked == [["green"]]
    after = pngs(out)
    assert after.keys() == before.keys()
    assert max(int(np.abs(after[f].astype(int) - before[f]).max()) for f in before) <= TOLERANCE
    assert metadata(out) == meta  # no duplicated or reordered lines
    assert not list(out.glob("metadata.rank*.jsonl")) and not list(out.glob(".*.tmp"))


def test_a_killed_runs_journal_is_folded_in_and_other_settings_are_refused(pipe, tmp_path):
    prompts = write(tmp_path / "p.txt", ["a red circle", "a blue square"])
    out = tmp_path / "out"
    generate_prompt_file(pipe, prompts, out, "tiny", progress=False)
    meta = metadata(out)
    (out / "metadata.jsonl").unlink()  # as if killed before the merge: records only in a journal,
    write(out / "metadata.rank1.jsonl", [json.dumps(meta[0]), '{"file": "000002.png", "li'])  # one torn
    generate_prompt_file(pipe, prompts, out, "tiny", progress=False)
    assert metadata(out) == meta and not (out / "metadata.rank1.jsonl").exists()
    with pytest.raises(ValueError, match=r"000001.png was made with sampling .* use another --out-dir"):
        generate_prompt_file(pipe, prompts, out, "tiny", progress=False, top_k=3)


# ---------------------------------------------------------------- command line
@pytest.mark.parametrize("argv, message", [
    (["generate"], "exactly one of PROMPT or --prompts"),
    (["generate", "a red circle", "--prompts", "p.txt"], "exactly one of PROMPT or --prompts"),
    (["generate", "--prompts", "p.txt"], "--prompts needs --out-dir"),
    (["generate", "--prompts", "p.txt", "--out-dir", "o", "--n", "2"], "--out, --n and --grid go with"),
    (["generate", "a red circle", "--out-dir", "o"], "--out-dir and --n-per-prompt go with --prompts"),
])
def test_cli_generate_needs_exactly_one_prompt_source(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_write_the_same_images_and_metadata_as_one(model_dir, tmp_path, capsys):
    prompts = write(tmp_path / "p.jsonl", JSONL)
    flags = ["--prompts", str(prompts), "--model", str(model_dir), "--n-per-prompt", "2", "--batch-size", "3",
             "--seed", "5"]
    cmd = [str(ACCELERATE), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(free_port()),
           "-m", "hart.cli", "generate", *flags, "--out-dir", str(tmp_path / "two")]
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "14 images generated, 0 already present, 14 in all" in result.stdout
    assert "on 2 process(es)" in result.stdout  # really sharded, not two whole runs
    assert main(["generate", *flags, "--out-dir", str(tmp_path / "one")]) == 0
    one, two = pngs(tmp_path / "one"), pngs(tmp_path / "two")
    assert len(one) == 14 and one.keys() == two.keys()
    assert all(np.array_equal(one[f], two[f]) for f in one)
    assert metadata(tmp_path / "one") == metadata(tmp_path / "two")
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == [*sorted(one), "metadata.jsonl"]
