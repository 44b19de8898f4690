"""Damaged files on disk give one clear line and lose nothing: checkpoints, prepared data, samples.

Each test damages a real file the way a crash, a full disk or a stray edit would, then
reads it through the code the stages use.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import ROOT, run_stage, write_params
from gan import models
from gan.checkpoint import FORMAT_VERSION, PREVIOUS, load_checkpoint, remove_stale_temps, save_checkpoint
from gan.config import parse_params
from gan.data import load_prepared
from gan.data.datasets import prepare
from gan.errors import UserError
from gan.evaluation import load_samples
from gan.features import build_evaluator
from gan.reference import build_reference

WHAT, FIX = "training checkpoint", "run `dvc repro train` to start afresh"


def state(step: int, numbers: int = 100) -> dict:
    return {"version": FORMAT_VERSION, "step": step, "weights": torch.full((numbers,), float(step))}


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file in `folder`, temp files included, so that a test sees anything left behind."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture
def two_checkpoints(tmp_path) -> Path:
    """last.pt at step 2 and prev.pt at step 1, written as training writes them."""
    path = tmp_path / "checkpoints" / "ab12" / "last.pt"
    save_checkpoint(state(1), path)
    save_checkpoint(state(2), path)
    return path


# ---------------------------------------------------------------------------- checkpoints


def test_a_save_keeps_the_checkpoint_before_it_as_prev(two_checkpoints):
    assert sorted(snapshot(two_checkpoints.parent)) == ["last.pt", PREVIOUS]
    assert load_checkpoint(two_checkpoints, WHAT, FIX)[0]["step"] == 2
    save_checkpoint(state(3), two_checkpoints)
    loaded, message = load_checkpoint(two_checkpoints, WHAT, FIX)
    assert loaded["step"] == 3 and message is None
    assert torch.load(two_checkpoints.with_name(PREVIOUS), weights_only=True)["step"] == 2


def test_temp_files_of_killed_writes_are_removed_and_the_checkpoints_kept(two_checkpoints):
    folder = two_checkpoints.parent
    kept = snapshot(folder)
    for name in (".last.pt.abc123.tmp", f".{PREVIOUS}.4242.tmp"):  # as a SIGKILL mid-write leaves them
        (folder / name).write_bytes(b"half a checkpoint")
    (folder / "notes.txt").write_text("not ours")
    assert remove_stale_temps(two_checkpoints) == 2
    assert snapshot(folder) == {**kept, "notes.txt": b"not ours"}


def test_no_checkpoint_at_all_loads_as_none(tmp_path):
    assert load_checkpoint(tmp_path / "ab12" / "last.pt", WHAT, FIX) is None


def test_a_truncated_last_falls_back_to_prev_with_one_line_and_touches_nothing(two_checkpoints):
    data = two_checkpoints.read_bytes()
    two_checkpoints.write_bytes(data[: len(data) // 2])
    before = snapshot(two_checkpoints.parent)
    loaded, message = load_checkpoint(two_checkpoints, WHAT, FIX)
    assert loaded["step"] == 1 and torch.equal(loaded["weights"], state(1)["weights"])
    assert message.startswith(f"{two_checkpoints} is unreadable (") and "\n" not in message
    assert message.endswith(f"resuming from the previous checkpoint {PREVIOUS} (step 1)")
    assert snapshot(two_checkpoints.parent) == before


def test_a_damaged_last_is_not_rotated_over_a_good_prev(two_checkpoints):
    """After resuming from prev.pt, the next save must not replace the only good file by the bad one."""
    two_checkpoints.write_bytes(b"garbage")
    good_previous = two_checkpoints.with_name(PREVIOUS).read_bytes()
    save_checkpoint(state(3), two_checkpoints)
    assert two_checkpoints.with_name(PREVIOUS).read_bytes() == good_previous
    assert load_checkpoint(two_checkpoints, WHAT, FIX)[0]["step"] == 3


def test_both_checkpoints_unreadable_name_both_files_and_the_way_out(two_checkpoints):
    two_checkpoints.write_bytes(b"not a checkpoint")
    torch.save({"version": FORMAT_VERSION + 1, "step": 1}, two_checkpoints.with_name(PREVIOUS))
    before = snapshot(two_checkpoints.parent)
    with pytest.raises(UserError) as info:
        load_checkpoint(two_checkpoints, WHAT, FIX)
    message = str(info.value)
    assert message.startswith(f"{two_checkpoints}: cannot read the training checkpoint (") and "\n" not in message
    assert f"nor the previous one {PREVIOUS} (format version {FORMAT_VERSION + 1}," in message
    assert message.endswith(f"delete the folder {two_checkpoints.parent} and {FIX}")
    assert snapshot(two_checkpoints.parent) == before


SAVE_UNDER_A_FILE_SIZE_LIMIT = textwrap.dedent("""
    import resource, signal, sys
    from pathlib import Path
    import torch
    from gan.checkpoint import save_checkpoint
    from gan.errors import UserError

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # so that the kernel fails the write (EFBIG), not the process
    resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[2]), resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    try:
        save_checkpoint({"version": 1, "step": 3, "weights": torch.zeros(1 << 20)}, Path(sys.argv[1]))
    except UserError as exc:
        print(exc)
        sys.exit(2)
""")


def test_a_full_disk_while_saving_is_one_line_and_leaves_both_checkpoints_as_they_were(two_checkpoints):
    before = snapshot(two_checkpoints.parent)
    limit = 256 * 1024  # above the checkpoints there, far below the 4 MB one being written
    assert max(len(data) for data in before.values()) < limit
    result = subprocess.run([sys.executable, "-c", SAVE_UNDER_A_FILE_SIZE_LIMIT, str(two_checkpoints), str(limit)],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    line = result.stdout.strip()
    assert "\n" not in line and "Traceback" not in result.stderr
    assert line.startswith(f"cannot write {two_checkpoints} (") and "File too large" in line
    assert f"last.pt and {PREVIOUS} there are untouched" in line
    assert line.endswith(f"free space on {two_checkpoints.parent} (or raise the quota or file size limit) and rerun")
    assert snapshot(two_checkpoints.parent) == before


# ---------------------------------------------------------------------------- prepared data


def test_a_prepared_array_changed_after_prepare_is_refused_with_both_digests_and_the_fix(tmp_path):
    meta = prepare(parse_params({"data": {"name": "ring8", "num_points": 100}, "model": {"arch": "mlp"}}), tmp_path)
    with np.load(tmp_path / "train.npz") as train:
        x, y = train["x"].copy(), train["y"]
    x[0, 0] += 0.5
    np.savez(tmp_path / "train.npz", x=x, y=y)
    with pytest.raises(UserError) as info:
        load_prepared(tmp_path)
    message = str(info.value)
    assert message.startswith(f"{tmp_path}: the arrays do not match meta.json") and "\n" not in message
    assert f"sha256 {meta['sha256'][:12]} recorded" in message
    assert "`dvc checkout data/prepared`" in message and "`dvc repro -f prepare`" in message


# ---------------------------------------------------------------------------- generated samples

RING8 = {"data": {"name": "ring8", "num_points": 200}, "model": {"arch": "mlp", "width": 8, "latent_dim": 2},
         "evaluate": {"num_samples": 50}}


@pytest.fixture(scope="module")
def evaluate_dir(tmp_path_factory) -> Path:
    """A working directory in which only generate's samples.npz stands between evaluate and its metrics."""
    root = tmp_path_factory.mktemp("evaluate")
    write_params(root, RING8)
    cfg = parse_params(RING8)
    meta = prepare(cfg, root / "data" / "prepared")
    build_evaluator(cfg, root / "data" / "prepared", root / "models" / "evaluator.pt", root / "features.json")
    build_reference(cfg, root / "data" / "prepared", root / "models" / "reference_inception.pt")
    generator, _ = models.build("mlp", (2,), 2, 8)
    models.save_generator(generator, cfg, meta, 0, root / "models" / "generator.pt")
    (root / "data" / "generated").mkdir(parents=True)
    return root


def good_samples(path: Path) -> None:
    np.savez(path, x=np.zeros((60, 2), dtype=np.float32))


def truncate(path: Path) -> None:
    good_samples(path)
    path.write_bytes(path.read_bytes()[:300])


def garbage(path: Path) -> None:
    path.write_bytes(np.random.default_rng(0).bytes(1000))


@pytest.mark.parametrize("damage,reason", [(truncate, "BadZipFile: File is not a zip file"),
                                           (garbage, "ValueError: not an .npz archive")])
def test_a_damaged_samples_file_stops_the_evaluate_stage_with_one_line(evaluate_dir, damage, reason):
    samples = evaluate_dir / "data" / "generated" / "samples.npz"
    damage(samples)
    result = run_stage("evaluate", evaluate_dir)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert line == f"evaluate: error: data/generated/samples.npz: unreadable samples ({reason}); " \
                   "run `dvc repro -f generate`"


META = {"kind": "points", "shape": [2]}


@pytest.mark.parametrize("arrays,problem", [
    ({"samples": np.zeros((60, 2), dtype=np.float32)}, "x is not a file in the archive"),
    ({"x": np.zeros((60, 3), dtype=np.float32)}, "samples are float32 (3,) per sample but the prepared points "
                                                  "are float32 (2,)"),
    ({"x": np.zeros((60, 2), dtype=np.float64)}, "samples are float64 (2,) per sample"),
    ({"x": np.zeros((60, 2), dtype=np.float32), "y": np.zeros(59, dtype=np.int64)}, "labels 'y' are int64 (59,)"),
])
def test_samples_unlike_the_prepared_data_are_one_line_with_the_fix(tmp_path, arrays, problem):
    np.savez(tmp_path / "samples.npz", **arrays)
    with pytest.raises(UserError) as info:
        load_samples(tmp_path / "samples.npz", 50, META)
    message = str(info.value)
    assert problem in message and message.endswith("run `dvc repro -f generate`") and "\n" not in message


def test_samples_like_the_prepared_data_load(tmp_path):
    good_samples(tmp_path / "samples.npz")
    samples, labels = load_samples(tmp_path / "samples.npz", 50, META)
    assert samples.shape == (50, 2) and labels is None
