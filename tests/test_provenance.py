"""The import walk behind dvc.yaml's deps and the checkpoint's code digest, on packages the tests write."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from gan import provenance
from gan.provenance import code_digest, imported_files

ROOT = Path(__file__).resolve().parents[1]


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


PACKAGE = {
    "gan/__init__.py": "",
    "gan/a.py": "from gan import b\nfrom gan.sub.c import thing\n",
    "gan/b.py": "def f():\n    import gan.lazy  # a function-level import runs too\n",
    "gan/lazy.py": "",
    "gan/sub/__init__.py": "",
    "gan/sub/c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from gan import typing_only\nthing = 1\n",
    "gan/typing_only.py": "",
    "gan/unused.py": "",
}


def relative(files: set[Path], root: Path) -> set[str]:
    return {f.relative_to(root).as_posix() for f in files}


def test_the_walk_follows_every_import_but_type_checking_ones(tmp_path):
    root = write(tmp_path, PACKAGE)
    found = relative(imported_files(root / "gan/a.py", root), root)
    assert found == {"gan/__init__.py", "gan/b.py", "gan/lazy.py", "gan/sub/__init__.py", "gan/sub/c.py"}


def test_the_code_digest_changes_with_any_imported_file_and_only_with_those(tmp_path):
    root = write(tmp_path, PACKAGE)
    before = code_digest("gan.a", root)
    assert code_digest("gan.a", root) == before
    (root / "gan/unused.py").write_text("# not imported by gan.a\n")
    (root / "gan/typing_only.py").write_text("# imported for type checkers only\n")
    assert code_digest("gan.a", root) == before
    (root / "gan/lazy.py").write_text("# a comment is an edit too\n")
    assert code_digest("gan.a", root) != before


def test_the_training_digest_covers_the_loss_and_not_the_kid_metric():
    training = relative(imported_files(ROOT / "gan/training.py"), ROOT)
    assert {"gan/losses.py", "gan/updates.py", "gan/models/dcgan.py", "gan/augment.py", "gan/ema.py"} <= training
    assert "gan/metrics/kid.py" not in training and "gan/evaluation.py" not in training


def test_a_stage_runs_the_gan_package_of_its_own_checkout(tmp_path):
    """A copy of the repository (as `dvc exp run --queue` makes) imports its own gan/, not the installed one."""
    copy = tmp_path / "copy"
    for name in subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True).stdout.split():
        if name.startswith(("gan/", "stages/")) and (ROOT / name).is_file():
            write(copy, {name: (ROOT / name).read_text()})
    (copy / "gan/cli.py").write_text((copy / "gan/cli.py").read_text() + "\nprint('COPY-OF-GAN', __file__)\n")
    result = subprocess.run([sys.executable, str(copy / "stages/prepare.py"), "--help"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert f"COPY-OF-GAN {copy / 'gan/cli.py'}" in result.stdout
    assert provenance.ROOT == ROOT  # while this process imported the checkout's own package
