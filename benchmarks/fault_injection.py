"""Fault injection for resume: SIGKILL `dvc repro train` again and again, then compare bit for bit.

    python benchmarks/fault_injection.py                          # 20 kills
    python benchmarks/fault_injection.py --kills 4 --steps 600 --seed 1 --json out.json --keep

Two temporary copies of this repository (the tracked files, a new git repo, one commit) get the
same small params: grid25, the MLP, EMA on, a checkpoint every 25 steps. Copy 2 is a clone of
copy 1 after `dvc repro features`, so both run the same code on the same upstream outputs.
Copy 1 runs `dvc repro train` once, uninterrupted: the reference. Its every checkpoint is linked
aside as it appears, so each kill can be checked against the reference at the same step. Copy 2
starts `dvc repro train` in its own process group and SIGKILLs the whole group, N times: about
half at a uniformly random moment after the start (within a window that leaves training for the
kills still to come), the other half as soon as a checkpoint's temp file (`*.tmp`) is seen
(polled every ~1 ms). Then one `dvc repro train` must finish. The final
checkpoint (G, D, both optimisers, EMA, RNGs, histories), models/generator.pt and the plot files
must equal the reference's bit for bit. A kill that leaves DVC unable to start is cleaned up as a
user would (DVC's own message says what to delete) and counted: that is a finding in itself.

Exit status 0 only when every comparison is identical and every kill landed before training ended.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
POLL_S = 0.001  # how often the checkpoints folder is scanned for a temp file
RESUMED = re.compile(r"train: .*?(resuming at step (\d+)|from scratch)")
DONE = re.compile(r"train: done, (\d+) steps in ([\d.]+)s")
# What DVC prints when a killed run left a lock it cannot clear by itself; the fix is in its message
LOCK_ERRORS = ("is busy, it is being blocked by", "RWLock-file", "Unable to acquire lock")
REPORTS = ("reports/train/history.tsv", "reports/train/eval.tsv")
IGNORED_KEYS = ("run_id",)  # each copy has its own MLflow store, so its own run id


def small_params(steps: int) -> dict[str, Any]:
    """grid25 on the MLP with EMA on and frequent checkpoints: a whole run in ~10-20 s on 2 cores."""
    return {
        "data": {"name": "grid25", "num_points": 4000},
        "model": {"arch": "mlp", "width": 64, "latent_dim": 16},
        "train": {"steps": steps, "batch_size": 64, "ema_half_life_images": 2000.0, "checkpoint_every": 25,
                  "sample_every": 100_000, "log_every": 50, "eval_every": 500, "eval_samples": 500},
        "features": {"epochs": 1},
    }


# ---------------------------------------------------------------- the two copies


def make_copy(dest: Path, overrides: dict[str, Any], rev: str | None) -> None:
    """The files of the working tree that git knows about (or of commit `rev`), params merged, as one commit."""
    if rev:
        archive = subprocess.run(["git", "archive", rev], cwd=ROOT, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    else:
        listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                                capture_output=True, text=True, check=True).stdout.split("\n")
        for name in filter(None, listed):
            if (ROOT / name).is_file():
                (dest / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / name, dest / name)
    params = yaml.safe_load((dest / "params.yaml").read_text())
    for section, values in overrides.items():
        params[section].update(values)
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = stage_env(dest)
    for args in (["git", "init", "-q", "-b", "main"], ["git", "add", "-A"], ["git", "commit", "-qm", "copy"]):
        subprocess.run(args, cwd=dest, env=env, check=True, capture_output=True)


def clone_copy(source: Path, dest: Path) -> None:
    """The second copy is the first one after `dvc repro features`, file for file (git repo, dvc.lock,
    cache, MLflow store): others may be editing the tree meanwhile, and both copies must run the
    same code. DVC's own tmp folder (locks, hash state of the other path) is left behind."""
    shutil.copytree(source, dest, symlinks=True,
                    ignore=lambda folder, names: ["tmp"] if Path(folder).name == ".dvc" else [])


def init_mlflow_store(root: Path) -> None:
    """Create the SQLite store's tables now, so that the timed reference run starts as every later run does."""
    code = "import sys; from mlflow.tracking import MlflowClient; MlflowClient(sys.argv[1]).search_experiments()"
    subprocess.run([sys.executable, "-c", code, stage_env(root)["MLFLOW_TRACKING_URI"]], cwd=root,
                   env=stage_env(root), check=True, capture_output=True)


def stage_env(root: Path) -> dict[str, str]:
    """The environment of every command in a copy: its own code, its own MLflow store, 1 thread."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_"))}
    env.update({"PATH": f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}", "PYTHONPATH": str(root),
                "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}", "MLFLOW_DISABLE_TELEMETRY": "true",
                # unbuffered, so that a killed run's "resuming at step N" line is not lost with it
                "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1",
                "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.invalid",
                "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.invalid"})
    return env


def dvc(root: Path, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=root, env=stage_env(root),
                            capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        raise RuntimeError(f"dvc {' '.join(args)} in {root} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return result


# ---------------------------------------------------------------- watching and killing a run


def scan(checkpoints: Path) -> tuple[set[str], set[tuple[str, int]]]:
    """Temp files, and (path, inode) of each last.pt, under checkpoints/ and its per-fingerprint
    folders (their names are not relied on). A new inode at last.pt is a completed write: it
    arrives by rename. The inode comes with the directory entry, so a scan costs no stat."""
    temps: set[str] = set()
    lasts: set[tuple[str, int]] = set()
    try:
        for entry in os.scandir(checkpoints):
            for e in os.scandir(entry.path) if entry.is_dir() else [entry]:
                if e.name.endswith(".tmp"):
                    temps.add(e.path)
                elif e.name == "last.pt":
                    lasts.add((e.path, e.inode()))
    except FileNotFoundError:  # the folder, or one being scanned, does not exist (yet)
        pass
    return temps, lasts


def temp_files(checkpoints: Path) -> set[str]:
    return scan(checkpoints)[0]


def last_checkpoints(checkpoints: Path) -> list[Path]:
    return sorted(checkpoints.glob("*/last.pt"))


@dataclass
class Run:
    """One `dvc repro train` in its own process group, its output in files beside the copies."""

    root: Path
    log: Path
    process: subprocess.Popen = field(init=False)
    started: float = field(init=False)

    def __post_init__(self) -> None:
        with open(self.log.with_suffix(".out"), "w") as out, open(self.log.with_suffix(".err"), "w") as err:
            self.process = subprocess.Popen([sys.executable, "-m", "dvc", "repro", "train"], cwd=self.root,
                                            env=stage_env(self.root), stdout=out, stderr=err, start_new_session=True)
        self.started = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def output(self) -> tuple[str, str]:
        return self.log.with_suffix(".out").read_text(), self.log.with_suffix(".err").read_text()

    def kill(self) -> None:
        """SIGKILL the whole group, then wait until none of it is alive, so nothing writes after."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        deadline = time.monotonic() + 10
        while group_alive(self.process.pid) and time.monotonic() < deadline:
            time.sleep(0.005)


def group_alive(pgid: int) -> bool:
    """Whether a process of the group still runs (zombies excluded: they write nothing)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def wait_for(run: Run, kill_after_s: float | None, kill_at_write: int | None, snapshots: Path | None = None) -> dict:
    """Poll the run's checkpoints every ~1 ms; kill it at a moment, or during its n-th checkpoint write
    (right after it, should that write's temp file come and go between two polls).

    With `snapshots`, every new last.pt is hard-linked there (the reference's checkpoint of each step).
    Returns when the run was killed or ended on its own.
    """
    checkpoints = run.root / "checkpoints"
    stale, previous = scan(checkpoints)  # left by earlier runs: not this run's writes
    seen: set[str] = set()
    done, first_write = 0, None
    while run.process.poll() is None:
        now, (temps, lasts) = run.elapsed(), scan(checkpoints)
        # against the previous poll only: a freed inode number may come back for a later file
        temps, new, previous = temps - stale, lasts - previous, lasts
        if (temps or new) and first_write is None:
            first_write = now
        seen |= temps
        done += len(new)
        if snapshots is not None:
            _link(new, snapshots)
        at_write = kill_at_write is not None and ((temps and len(seen) >= kill_at_write) or done >= kill_at_write)
        if at_write or (kill_after_s is not None and now >= kill_after_s):
            run.kill()
            return {"killed": True, "seconds": round(now, 3), "during_write": bool(temps),
                    "temp_left": any(Path(t).exists() for t in temps), "first_write": first_write}
        time.sleep(POLL_S)
    if snapshots is not None:
        _link(scan(checkpoints)[1] - previous, snapshots)
    return {"killed": False, "seconds": round(run.elapsed(), 3), "returncode": run.process.returncode,
            "first_write": first_write}


def _link(new: set[tuple[str, int]], snapshots: Path) -> None:
    """Keep a link to each new last.pt: the reference's checkpoint of that step, for later comparisons."""
    for path, inode in new:
        try:
            os.link(path, snapshots / f"{inode}.pt")
        except (FileNotFoundError, FileExistsError):  # replaced meanwhile (the next poll links that), or kept
            pass


# ---------------------------------------------------------------- comparing states


def leaves(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Flatten nested dicts/lists of a checkpoint to {'opt_g/state/0/exp_avg': leaf}."""
    if isinstance(obj, dict):
        items = obj.items()
    elif isinstance(obj, (list, tuple)):
        items = enumerate(obj)
    else:
        return {prefix: obj}
    out: dict[str, Any] = {}
    for key, value in items:
        out.update(leaves(value, f"{prefix}/{key}" if prefix else str(key)))
    return out


def same(a: Any, b: Any) -> bool:
    """Bit for bit: dtype, shape and bytes for tensors (NaN equals NaN), == for the rest."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
            return False
        return (a.dtype == b.dtype and a.shape == b.shape
                and a.contiguous().cpu().numpy().tobytes() == b.contiguous().cpu().numpy().tobytes())
    return type(a) is type(b) and a == b


def differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Paths of the leaves that differ or exist on one side only (ignoring IGNORED_KEYS)."""
    flat_a = {k: v for k, v in leaves(a).items() if k.split("/")[0] not in IGNORED_KEYS}
    flat_b = {k: v for k, v in leaves(b).items() if k.split("/")[0] not in IGNORED_KEYS}
    return sorted(k for k in flat_a.keys() | flat_b.keys()
                  if k not in flat_a or k not in flat_b or not same(flat_a[k], flat_b[k]))


def load(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)


def verdict(diffs: list[str]) -> str:
    if not diffs:
        return "identical"
    shown = ", ".join(diffs[:4]) + (f" (+{len(diffs) - 4} more)" if len(diffs) > 4 else "")
    return f"differs: {shown}"


def compare_final(reference: Path, crashed: Path) -> dict[str, Any]:
    """The final checkpoint, models/generator.pt and the plot files of both copies."""
    found = [last_checkpoints(d / "checkpoints") for d in (reference, crashed)]
    if any(len(f) != 1 for f in found):
        return {"verdict": f"expected one checkpoints/*/last.pt in each copy, found {[len(f) for f in found]}"}
    diffs = [f"checkpoint:{p}" for p in differences(load(found[0][0]), load(found[1][0]))]
    diffs += [f"generator.pt:{p}" for p in differences(load(reference / "models/generator.pt"),
                                                       load(crashed / "models/generator.pt"))]
    diffs += [name for name in REPORTS if (reference / name).read_bytes() != (crashed / name).read_bytes()]
    return {"verdict": verdict(diffs), "differences": diffs, "step": int(load(found[1][0])["step"])}


# ---------------------------------------------------------------- the benchmark


@dataclass
class Kill:
    number: int
    mode: str  # "random" or "checkpoint"
    seconds: float = 0.0
    during_write: bool = False
    temp_left: bool = False
    step_on_disk: int | None = None  # of last.pt after the kill (None: no checkpoint yet)
    resumed_from: str = "?"  # what the next run printed: a step, "scratch", or "?" when killed before
    verdict: str = ""  # the checkpoint on disk against the reference's of the same step


def resumed_from(stdout: str) -> str:
    match = RESUMED.search(stdout)
    if not match:
        return "?"
    return match.group(2) if match.group(2) else "scratch"


def reference_run(root: Path, logs: Path, snapshots: Path, checkpoint_every: int) -> dict[str, Any]:
    """The uninterrupted run, timed: the kill windows are sized from its startup and its steps/s."""
    run = Run(root, logs / "reference")
    watched = wait_for(run, None, None, snapshots)
    out, err = run.output()
    done = DONE.search(out)
    if watched["returncode"] != 0 or not done:
        raise RuntimeError(f"the reference `dvc repro train` failed:\n{out[-2000:]}\n{err[-2000:]}")
    steps, seconds = int(done.group(1)), float(done.group(2))
    rate = steps / seconds
    startup = max(0.0, (watched["first_write"] or 0.0) - checkpoint_every / rate)
    return {"seconds": watched["seconds"], "steps_per_second": round(rate, 1), "startup_seconds": round(startup, 2)}


def reference_steps(snapshots: Path) -> dict[int, Path]:
    """{step: the reference's checkpoint at that step}, from the links kept while it ran."""
    return {int(load(p)["step"]): p for p in snapshots.glob("*.pt")}


def step_on_disk(root: Path) -> int | None:
    found = last_checkpoints(root / "checkpoints")
    return int(load(found[0])["step"]) if found else None


def check_against_reference(root: Path, by_step: dict[int, Path]) -> str:
    step = step_on_disk(root)
    if step is None:
        return "no checkpoint yet"
    if step not in by_step:
        return f"no reference checkpoint at step {step}"
    return verdict(differences(load(by_step[step]), load(last_checkpoints(root / "checkpoints")[0])))


def attempt(root: Path, log: Path, findings: dict[str, list[str]], kill_after_s: float | None = None,
            kill_at_write: int | None = None) -> tuple[Run, dict]:
    """One `dvc repro train`, watched; when DVC refuses to start because a kill left a lock behind,
    clean up as its message tells a user to, note it, and start again."""
    for tries in range(3):
        run = Run(root, log.with_name(f"{log.name}-{tries}"))
        watched = wait_for(run, kill_after_s, kill_at_write)
        out, err = run.output()
        if "had been killed. Auto removed it" in err:
            findings["dvc_cleared_by_itself"].append(f"{log.name}: DVC removed the killed process from its rwlock")
        if watched["killed"] or watched["returncode"] == 0:
            return run, watched
        if not any(text in err for text in LOCK_ERRORS):
            raise RuntimeError(f"`dvc repro train` failed in {root}:\n{out[-2000:]}\n{err[-2000:]}")
        named = re.search(r"remove '([^']+)'", err)
        stale = Path(named.group(1)) if named else Path(".dvc/tmp/lock" if "acquire lock" in err else ".dvc/tmp/rwlock")
        (stale if stale.is_absolute() else root / stale).unlink(missing_ok=True)
        findings["removed_by_hand"].append(f"{log.name}: {err.strip().splitlines()[0][:160]} -> removed {stale}")
    raise RuntimeError(f"`dvc repro train` in {root} still refused after removing its locks; see {log}*")


@dataclass
class Setup:
    """The two copies and what the reference run measured."""

    reference: Path
    crashed: Path
    logs: Path
    steps: int
    checkpoint_every: int
    timing: dict[str, Any]
    by_step: dict[int, Path]


def kill_plan(setup: Setup, mode: str, kills_left: int, rng: random.Random) -> tuple[float | None, int | None]:
    """When to kill: (seconds after start, n-th checkpoint write of the run).

    Each kill may use at most 0.8/kills_left of the training still to do, so every kill lands
    before the run ends. A checkpoint kill waits for the run's 2nd write or a later one, so that
    the run it kills has checkpointed and the next one must resume."""
    done = step_on_disk(setup.crashed) or 0
    remaining_s = (setup.steps - done) / setup.timing["steps_per_second"]
    startup = setup.timing["startup_seconds"]
    if mode == "random":
        return rng.uniform(0.0, startup + 0.8 * remaining_s / kills_left), None
    writes = (setup.steps - done) // setup.checkpoint_every
    return None, min(max(1, writes), rng.randint(2, max(2, int(0.8 * writes / kills_left))))


def inject(setup: Setup, kills: int, rng: random.Random, findings: dict[str, list[str]]) -> list[Kill]:
    """N kills of `dvc repro train` in the second copy, each checked against the reference."""
    modes = ["random"] * ((kills + 1) // 2) + ["checkpoint"] * (kills // 2)
    rng.shuffle(modes)
    rows: list[Kill] = []
    for number, mode in enumerate(modes, 1):
        kill_after, kill_at_write = kill_plan(setup, mode, kills - number + 1, rng)
        run, watched = attempt(setup.crashed, setup.logs / f"kill{number:02d}", findings, kill_after, kill_at_write)
        if rows:
            rows[-1].resumed_from = resumed_from(run.output()[0])
        row = Kill(number, mode, watched["seconds"])
        rows.append(row)
        if not watched["killed"]:
            row.verdict = "ended before the kill"
            break
        row.during_write, row.temp_left = watched["during_write"], watched["temp_left"]
        row.step_on_disk = step_on_disk(setup.crashed)
        row.verdict = check_against_reference(setup.crashed, setup.by_step)
        print(f"  kill {number:2d} ({mode}) at {row.seconds:6.2f}s: step on disk {row.step_on_disk}, {row.verdict}",
              flush=True)
    return rows


def finish(setup: Setup, rows: list[Kill], findings: dict[str, list[str]]) -> dict[str, Any]:
    """The last `dvc repro train`, which must complete; then the bit-for-bit comparison."""
    run, watched = attempt(setup.crashed, setup.logs / "final", findings)
    if watched["killed"] or watched["returncode"] != 0:
        raise RuntimeError("the final `dvc repro train` did not complete")
    if rows:
        rows[-1].resumed_from = resumed_from(run.output()[0])
    final = compare_final(setup.reference, setup.crashed)
    final["temp_files_left"] = len(temp_files(setup.crashed / "checkpoints"))
    status = dvc(setup.crashed, "status", "train").stdout
    final["dvc_status_clean"] = "up to date" in status
    final["rwlock_dead_pids"] = dead_lock_holders(setup.crashed / ".dvc/tmp/rwlock")
    return final


def dead_lock_holders(rwlock: Path) -> list[int]:
    """PIDs of killed processes still listed in DVC's rwlock: DVC drops one only when it blocks a
    later command, so a killed run's read locks on its deps stay behind."""
    try:
        lock = json.loads(rwlock.read_text() or "{}")
    except (OSError, ValueError):  # none, or unreadable: `dvc status` above would have said so
        return []
    holders = [info for infos in lock.get("read", {}).values() for info in infos]
    holders += list(lock.get("write", {}).values())
    return sorted({int(h["pid"]) for h in holders if not Path(f"/proc/{h['pid']}").exists()})


def mismatched_resumes(rows: list[Kill]) -> list[int]:
    """Kills after which the next run did not resume from the checkpoint left on disk."""
    def expected(row: Kill) -> str:
        return "scratch" if row.step_on_disk is None else str(row.step_on_disk)

    return [r.number for r in rows if r.resumed_from not in ("?", expected(r))]


def print_table(rows: list[Kill], final: dict[str, Any], findings: dict[str, list[str]]) -> None:
    print(f"\n{'kill':>4} {'mode':<10} {'s after start':>13} {'in ckpt write':>13} {'tmp left':>8} "
          f"{'ckpt step':>9} {'next run resumed':>16}  checkpoint vs reference")
    for r in rows:
        print(f"{r.number:>4} {r.mode:<10} {r.seconds:>13.2f} {'yes' if r.during_write else 'no':>13} "
              f"{'yes' if r.temp_left else 'no':>8} {str(r.step_on_disk):>9} {r.resumed_from:>16}  {r.verdict}")
    killed = [r for r in rows if r.verdict != "ended before the kill"]
    print(f"\nkills: {len(killed)} ({sum(r.mode == 'checkpoint' for r in killed)} aimed at a checkpoint write); "
          f"during a write: {sum(r.during_write for r in killed)}; temp file left after the kill: "
          f"{sum(r.temp_left for r in killed)}; still in checkpoints/ at the end: {final.get('temp_files_left')}")
    print(f"checkpoints identical to the reference's at the same step: "
          f"{sum(r.verdict == 'identical' for r in killed)} of {sum(r.step_on_disk is not None for r in killed)}")
    print(f"resumed from another step than the one on disk: {mismatched_resumes(rows) or 'none'}")
    print(f"DVC locks: cleared by DVC itself {len(findings['dvc_cleared_by_itself'])} times, "
          f"removed by hand {len(findings['removed_by_hand'])} times")
    for line in findings["removed_by_hand"]:
        print(f"  {line}")
    print(f"`dvc status train` afterwards clean: {final.get('dvc_status_clean')}; killed PIDs still in "
          f".dvc/tmp/rwlock: {len(final.get('rwlock_dead_pids', []))}")
    print(f"final state (checkpoint, models/generator.pt, {', '.join(REPORTS)}) at step {final.get('step')}: "
          f"{final['verdict']}")


def passed(rows: list[Kill], kills: int, final: dict[str, Any]) -> bool:
    landed = [r for r in rows if r.verdict != "ended before the kill"]
    return (final["verdict"] == "identical" and len(landed) == kills and not mismatched_resumes(rows)
            and all(r.verdict == "identical" or r.step_on_disk is None or r.verdict.startswith("no reference")
                    for r in landed))


def prepare_copies(base: Path, steps: int, rev: str | None) -> Setup:
    """Both copies with upstream stages done, and the timed reference run in the first."""
    params = small_params(steps)
    reference, crashed, logs, snapshots = (base / n for n in ("reference", "crashed", "logs", "reference_ckpts"))
    for folder in (reference, logs, snapshots):
        folder.mkdir()
    make_copy(reference, params, rev)
    dvc(reference, "repro", "features")
    init_mlflow_store(reference)
    clone_copy(reference, crashed)
    if "Running stage" in dvc(crashed, "repro", "features").stdout:
        raise RuntimeError(f"`dvc repro features` in the clone {crashed} ran a stage: upstream was not done")
    timing = reference_run(reference, logs, snapshots, params["train"]["checkpoint_every"])
    return Setup(reference, crashed, logs, steps, params["train"]["checkpoint_every"], timing,
                 reference_steps(snapshots))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0, help="of the kill schedule (the runs use params.yaml's)")
    parser.add_argument("--steps", type=int, default=4000, help="train.steps of both copies")
    parser.add_argument("--rev", help="copy this git commit (e.g. HEAD) instead of the working tree")
    parser.add_argument("--keep", action="store_true", help="keep the temporary copies and the logs")
    parser.add_argument("--json", type=Path, help="write the table and the verdict here")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="fault-injection-"))
    try:
        result = benchmark(base, args)
    except RuntimeError as exc:  # a run that failed for another reason than a kill: its output says why
        print(f"fault_injection: error: {exc}", file=sys.stderr)
        return 2
    finally:
        if args.keep:
            print(f"kept: {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    print("PASS: every state identical to the uninterrupted run" if result["identical"] else "FAIL")
    return 0 if result["identical"] else 1


def benchmark(base: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Copies, reference, kills, final run and comparison; returns what --json writes."""
    started = time.monotonic()
    findings: dict[str, list[str]] = {"dvc_cleared_by_itself": [], "removed_by_hand": []}
    setup = prepare_copies(base, args.steps, args.rev)
    print(f"copies and reference ready after {time.monotonic() - started:.1f}s; reference: {args.steps} steps, "
          f"{setup.timing}, {len(setup.by_step)} checkpoints kept", flush=True)
    rows = inject(setup, args.kills, random.Random(args.seed), findings)
    final = finish(setup, rows, findings)
    print_table(rows, final, findings)
    seconds = round(time.monotonic() - started, 1)
    print(f"benchmark took {seconds}s")
    return {"identical": passed(rows, args.kills, final), "kills": [asdict(r) for r in rows], "final": final,
            "findings": findings, "reference": setup.timing, "seed": args.seed, "steps": args.steps,
            "params": small_params(args.steps), "seconds": seconds}


if __name__ == "__main__":
    sys.exit(main())
