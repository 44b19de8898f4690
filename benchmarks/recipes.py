"""Run every recipe of recipes/ over seeds, as users run them, and write the results table.

    python benchmarks/recipes.py                        # every recipe and ablation, seeds 0 1 2
    python benchmarks/recipes.py --only grid25 --seeds 3 4 5
    python benchmarks/recipes.py --update-docs          # also replace these tables' blocks in docs/recipes.md

Each run is `gan recipe run NAME --seed S [-- -S ablation]`, i.e. a whole `dvc exp run`, in a
scratch clone of this checkout (tracked and untracked files that git does not ignore), so the
seconds per run are what a user waits for: prepare, train, generate and evaluate, with the
features stage reused from the DVC run cache across runs on the same data. The metrics are
read from each experiment's reports/metrics.json. The table (mean ± std over seeds, seconds
per run, the machine) goes to reports/benchmarks/recipes.md; with --update-docs (alias
--update-readme) it also replaces, in docs/recipes.md, the marked block of each table it just made
(`<!-- recipes-table:NAME -->` ... `<!-- /recipes-table:NAME -->`) and leaves the other blocks as they
are. Rows cited from papers are marked as such and are not measured here. Each finished run is
appended to reports/benchmarks/recipes.runs.jsonl (beside --out) with a digest of the code it ran (the git
tree without benchmarks/, docs/ and README.md): run again after a crash or a stop, the benchmark reuses
the runs of the same code and runs the rest.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "reports" / "benchmarks" / "recipes.md"
DOCS = ROOT / "docs" / "recipes.md"  # the page whose marked blocks --update-docs replaces


@dataclass(frozen=True)
class Row:
    label: str
    recipe: str | None  # None: plain `dvc exp run` with the overrides on params.yaml's defaults
    overrides: tuple[str, ...] = ()  # extra `-S key=value`: the ablation
    suffix: str = ""  # read `<key><suffix>` of the same runs (a paired task's baseline `_bicubic`, `_real`): no new run
    keys: tuple[tuple[str, str], ...] = ()  # (column's key, the key this row reads instead; "" = no such number)


@dataclass(frozen=True)
class Table:
    recipe: str
    columns: tuple[tuple[str, str, int], ...]  # (heading, metrics.json key without the _Nk suffix, decimals)
    rows: tuple[Row, ...]
    cited: tuple[tuple[str, tuple[str, ...]], ...] = field(default=())  # (label, cells) from papers
    source: str = ""  # where the cited rows come from


# the whole mixture: the exact earth mover's distance to fresh draws of it, and the same between two draws (floor)
TRANSPORT = (("EMD", "emd", 3), ("EMD floor", "emd_floor", 3))
MODES = (("modes (of 25)", "modes_captured", 1), ("high quality %", "high_quality_pct", 1),
         ("reverse KL", "reverse_kl", 3), ("spread ratio", "spread_ratio", 2)) + TRANSPORT
RING = (("modes (of 8)", "modes_captured", 1),) + MODES[1:]
IMAGES = (("FID (domain)", "fid_domain", 2), ("precision", "precision_domain", 3), ("recall", "recall_domain", 3),
          ("coverage", "coverage_domain", 3), ("classes (of 10)", "classes_covered_domain", 1))
FACES = (("KID (domain)", "kid_domain", 3), ("FID (domain)", "fid_domain", 1), ("precision", "precision_domain", 3),
         ("recall", "recall_domain", 3), ("coverage", "coverage_domain", 3), ("copying C_T", "copying_ct_domain", 2))
DIFFAUGMENT = ("Zhao et al. 2020 (DiffAugment), low-shot generation: StyleGAN2 on 100 images of Obama at 256 px, "
               "Inception FID; another network, resolution and extractor, so only the direction compares; not run here")
# a paired task's scores; {n} is the held-out pair count as metric keys write it (1k, 470)
TRANSLATION = (("PSNR (Y, pooled)", "psnr_y_pooled", 2), ("SSIM (Y)", "ssim_y_crop0", 3),
               ("FID (domain)", "fid_domain_{n}", 2), ("classifier accuracy", "accuracy_domain_{n}", 3))
INPAINTING = TRANSLATION[:1] + (("PSNR in holes", "psnr_y_pooled_hole", 2),) + TRANSLATION[1:]
SUPER_RESOLUTION = (("PSNR (Y, crop 4)", "psnr_y_crop4", 2), ("SSIM (Y, crop 4)", "ssim_y_crop4", 3),
                    ("FID (domain)", "fid_domain_{n}", 2), ("classifier accuracy", "accuracy_domain_{n}", 3))
# text-to-image: the requested digit's accuracy and the attributes' rank correlation, per phrasing (docs/text.md)
TEXT = (("digit accuracy, held-out words", "accuracy_prompt_held_out", 3),
        ("digit accuracy, seen words", "accuracy_prompt_seen", 3),
        ("thickness ρ, held-out", "spearman_thickness_held_out", 2), ("thickness ρ, seen", "spearman_thickness_seen", 2),
        ("slant ρ, held-out", "spearman_slant_held_out", 2), ("slant ρ, seen", "spearman_slant_seen", 2),
        ("FID (domain)", "fid_domain_{n}", 2))
PIX2PIX = ("Isola et al. 2017 (pix2pix), Table 1: Cityscapes labels -> photo, 256 px, FCN-8s per-pixel accuracy of "
           "the outputs (our analogue: the domain classifier's accuracy); another data set and network, so only the "
           "order of the rows compares; not run here")
SRGAN = ("Ledig et al. 2017 (SRGAN), Table 2: Set5 x4, PSNR on Y with 4 border pixels cropped; natural photographs "
         "at full size, so only the direction compares (the GAN gives up PSNR for realism); not run here")
# the 2-D recipes before the spread inside the modes was matched (issue 20): PacGAN's numbers only
PREVIOUS = ("train.mmd_weight=0", "train.r1_weight=0")
PACGAN = "Lin et al. 2018 (PacGAN), Table 1: 2,500 samples, mean of 10 runs, about 400k iterations; not run here"

# the text2digit recipe's GAN with class labels instead of captions: today's class-conditional route
CLASS_CONDITIONAL = ("task.name=generation", "model.conditional=true")
# what that row reads for the text columns: the classifier's agreement with the label asked for; no attributes
CLASS_CONDITIONAL_KEYS = (("accuracy_prompt_held_out", "class_agreement_domain"), ("accuracy_prompt_seen", ""),
                          ("spearman_thickness_held_out", ""), ("spearman_thickness_seen", ""),
                          ("spearman_slant_held_out", ""), ("spearman_slant_seen", ""),
                          ("fid_domain_{n}", "fid_domain"))

TABLES = (
    Table("grid25", MODES, (
        Row("recipe (MMD term, R1)", "grid25"),
        Row("previous recipe (no MMD term, no R1)", "grid25", PREVIOUS),
        Row("− MMD term", "grid25", ("train.mmd_weight=0",)),
        Row("− R1", "grid25", ("train.r1_weight=0",)),
        Row("− latent components", "grid25", ("model.latent_components=0",)),
        Row("− EMA", "grid25", ("train.ema_half_life_images=0",)),
        Row("− lr decay", "grid25", ("train.lr_decay_start=1.0",)),
        Row("− batch norm in G", "grid25", ("model.g_norm=none",)),
        Row("batches of 1,024", "grid25", ("train.batch_size=1024",)),
        Row("params.yaml defaults with only", None, ("data.name=grid25", "model.arch=mlp")),
    ), (("GAN (cited)", ("17.3", "94.8", "0.70", "–", "–", "–")),
        ("PacGAN2 (cited)", ("23.8", "91.3", "0.13", "–", "–", "–")),
        ("PacGAN4 (cited)", ("24.8", "93.6", "0.04", "–", "–", "–"))), PACGAN),
    Table("ring8", RING, (
        Row("recipe (MMD term, R1)", "ring8"),
        Row("previous recipe (no MMD term, no R1)", "ring8", PREVIOUS),
        Row("− MMD term", "ring8", ("train.mmd_weight=0",)),
        Row("− R1", "ring8", ("train.r1_weight=0",)),
        Row("− latent components", "ring8", ("model.latent_components=0",)),
        Row("− EMA", "ring8", ("train.ema_half_life_images=0",)),
        Row("− lr decay", "ring8", ("train.lr_decay_start=1.0",)),
        Row("− batch norm in G", "ring8", ("model.g_norm=none",)),
        Row("lr 1e-3", "ring8", ("train.lr_g=0.001", "train.lr_d=0.001")),
        Row("params.yaml defaults with only", None, ("data.name=ring8", "model.arch=mlp")),
    ), (("GAN (cited)", ("6.3", "98.2", "0.45", "–", "–", "–")),
        ("PacGAN2 (cited)", ("7.9", "95.6", "0.07", "–", "–", "–")),
        ("PacGAN4 (cited)", ("7.8", "95.9", "0.07", "–", "–", "–"))), PACGAN),
    Table("mnist5k", IMAGES, (
        Row("recipe (transposed-conv upsampling)", "mnist5k"),
        Row("resize-convolution upsampling, half the steps (about the same wall time)", "mnist5k",
            ("model.upsample=nearest", "train.steps=2000")),
    )),
    Table("faces100", FACES, (
        Row("recipe (DiffAugment: color, translation, cutout)", "faces100"),
        Row("− DiffAugment", "faces100", ("train.augment=[]",)),
    ), (("StyleGAN2, 100-shot Obama, Inception FID at 256 px (cited)", ("–", "80.20", "–", "–", "–", "–")),
        ("StyleGAN2 + DiffAugment, same (cited)", ("–", "46.87", "–", "–", "–", "–"))), DIFFAUGMENT),
    Table("edges2digit", TRANSLATION, (
        Row("the edges themselves (baseline, from the recipe's runs)", "edges2digit", suffix="_source"),
        Row("L1 only", "edges2digit", ("task.adversarial_weight=0",)),
        Row("cGAN only", "edges2digit", ("task.content_weight=0",)),
        Row("L1 + cGAN (recipe, 16 x 16 PatchGAN)", "edges2digit"),
        Row("L1 + cGAN, 1 x 1 PixelGAN", "edges2digit", ("model.patch=1",)),
        Row("L1 + cGAN, whole-image D", "edges2digit", ("model.patch=0",)),
        Row("real digits (held out; FID: as many training digits)", "edges2digit", suffix="_real"),
    ), (("L1 (cited)", ("–", "–", "–", "0.42")), ("cGAN (cited)", ("–", "–", "–", "0.57")),
        ("L1 + cGAN (cited)", ("–", "–", "–", "0.66")), ("ground truth (cited)", ("–", "–", "–", "0.80"))), PIX2PIX),
    Table("inpaint", INPAINTING, (
        Row("the masked input (baseline, from the recipe's runs)", "inpaint", suffix="_source"),
        Row("L1 only", "inpaint", ("task.adversarial_weight=0",)),
        Row("cGAN only", "inpaint", ("task.content_weight=0",)),
        Row("L1 + cGAN (recipe, 16 x 16 PatchGAN)", "inpaint"),
        Row("real digits (held out; FID: as many training digits)", "inpaint", suffix="_real"),
    )),
    Table("inpaint-small", INPAINTING, (
        Row("the masked input (baseline, from the recipe's runs)", "inpaint-small", suffix="_source"),
        Row("L1 only", "inpaint-small", ("task.adversarial_weight=0",)),
        Row("L1 + cGAN (recipe, 16 x 16 PatchGAN)", "inpaint-small"),
        Row("real digits (held out; FID: as many training digits)", "inpaint-small", suffix="_real"),
    )),
    Table("sr4", SUPER_RESOLUTION, (
        Row("bicubic (baseline, from the recipe's runs)", "sr4", suffix="_bicubic"),
        Row("content only (L1: the SRResNet analogue)", "sr4", ("task.adversarial_weight=0",)),
        Row("adversarial only", "sr4", ("task.content_weight=0",)),
        Row("content + adversarial 5e-3 (recipe: the SRGAN analogue)", "sr4"),
        Row("real digits (held out; FID: as many training digits)", "sr4", suffix="_real"),
    ), (("bicubic (cited)", ("28.43", "–", "–", "–")), ("SRResNet (cited)", ("32.05", "–", "–", "–")),
        ("SRGAN (cited)", ("29.40", "–", "–", "–"))), SRGAN),
    Table("sr4-photos", SUPER_RESOLUTION[:3], (
        Row("bicubic (baseline, from the recipe's runs)", "sr4-photos", suffix="_bicubic"),
        Row("content only (L1: the SRResNet analogue)", "sr4-photos", ("task.adversarial_weight=0",)),
        Row("adversarial only", "sr4-photos", ("task.content_weight=0",)),
        Row("content + adversarial 5e-3 (recipe: the SRGAN analogue)", "sr4-photos"),
        Row("recipe + feature matching on D's activations", "sr4-photos", ("task.feature_weight=1",)),
        Row("other photos (training patches; FID only, a distance between photographs, not a floor)",
            "sr4-photos", suffix="_real"),
    ), (("bicubic (cited)", ("28.43", "–", "–")), ("SRResNet (cited)", ("32.05", "–", "–")),
        ("SRGAN (cited)", ("29.40", "–", "–"))), SRGAN),
    Table("text2digit", TEXT, (
        Row("recipe (WordLlama token vectors, judge, matching-aware D)", "text2digit"),
        Row("from-scratch word encoder", "text2digit", ("task.encoder=scratch",)),
        Row("− judge (each network trains its own encoder)", "text2digit", ("task.align_weight=0",)),
        Row("class-conditional G of the labels (baseline: digit only; accuracy = the classifier's agreement)",
            "text2digit", CLASS_CONDITIONAL, keys=CLASS_CONDITIONAL_KEYS),
    )),
)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{cpu}, {os.cpu_count()} cores, {gpu}, torch {torch.__version__}, Python {platform.python_version()}"


def scratch_clone(dest: Path) -> dict[str, str]:
    """This checkout's files as a new git repository (what a user's clone holds), and the env to run in it."""
    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import copy_repository  # the tests' clone: tracked and untracked-but-not-ignored files

    return copy_repository(dest, {})[1]


def run_one(repo: Path, env: dict[str, str], row: Row, seed: int, log) -> tuple[dict[str, float], float]:
    # `dvc exp run` leaves its params in the workspace: every run starts from the committed params.yaml
    subprocess.run(["git", "checkout", "--", "params.yaml"], cwd=repo, env=env, check=True, capture_output=True)
    sets = [a for o in row.overrides for a in ("-S", o)]
    if row.recipe is None:
        argv = [sys.executable, "-m", "dvc", "exp", "run", "-S", f"seed={seed}", *sets]
    else:
        argv = [sys.executable, "-m", "gan", "recipe", "run", row.recipe, "--seed", str(seed)]
        argv += ["--", *sets] if sets else []
    started = time.perf_counter()
    result = subprocess.run(argv, cwd=repo, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    log.write(f"$ {' '.join(argv)}\n{result.stdout}{result.stderr}\n")
    log.flush()
    if result.returncode:
        raise SystemExit(f"{row.label} (seed {seed}) failed with exit {result.returncode}; see {log.name}:\n"
                         f"{result.stderr[-2000:]}")
    return json.loads((repo / "reports" / "metrics.json").read_text()), seconds


def metric(metrics: dict[str, float], key: str, suffix: str = "") -> float | None:
    """The value of `key` (+ `suffix`) whatever its sample-count suffix (`fid_domain` -> `fid_domain_5k`; a
    paired task's `fid_domain_{n}` -> `fid_domain_1k`); None where a row has no such number (the PSNR of
    the real targets)."""
    import re

    if "{n}" in key:
        pattern = re.compile(re.escape(key + suffix).replace(re.escape("{n}"), r"\d+k?") + "$")
        found = [v for k, v in metrics.items() if pattern.match(k)]
    elif key + suffix in metrics:
        found = [metrics[key + suffix]]
    else:
        found = [v for k, v in metrics.items() if k.rsplit("_", 1)[0] == key and k.rsplit("_", 1)[1].endswith("k")]
    if suffix and not found:
        return None
    if len(found) != 1:
        raise SystemExit(f"expected one metric {key}{suffix} in reports/metrics.json, found {len(found)}")
    return None if found[0] is None else float(found[0])


def row_value(metrics: dict[str, float], key: str, row: Row) -> float | None:
    """A column's number for this row: the column's key, or the one the row reads instead (None: no such number)."""
    key = dict(row.keys).get(key, key)
    return metric(metrics, key, row.suffix) if key else None


def cell(values: list[float | None], decimals: int) -> str:
    """mean ± std [lowest, highest] over seeds: a bar that must hold on every seed is read off the range."""
    if any(v is None for v in values):
        return "–"
    a = np.asarray(values)
    if len(a) == 1:
        return f"{a[0]:.{decimals}f}"
    return f"{a.mean():.{decimals}f} ± {a.std():.{decimals}f} [{a.min():.{decimals}f}, {a.max():.{decimals}f}]"


def markers(recipe: str) -> tuple[str, str]:
    """The lines around a table's block in docs/recipes.md, one pair per entry of TABLES."""
    return f"<!-- recipes-table:{recipe} -->", f"<!-- /recipes-table:{recipe} -->"


def render_header(seeds: list[int], command: str, threads: int | None = None) -> list[str]:
    threads_note = f", {threads} thread{'s' if threads > 1 else ''} per run" if threads else ""
    return [f"Made by `{command}` on {time.strftime('%Y-%m-%d')}; machine: {machine()}{threads_note}.",
            f"Each measured row: mean ± std [min, max] over seeds {', '.join(map(str, seeds))} of one whole `dvc exp run` "
            f"each (`gan recipe run NAME --seed S`, ablations add `-- -S key=value`); s/run is its wall time.", ""]


def render_table(table: Table, rows: list[tuple[Row, list[dict[str, float]], list[float]]]) -> list[str]:
    heads = [h for h, _, _ in table.columns]
    lines = [f"**{table.recipe}**", "", "| variant | " + " | ".join(heads) + " | s/run |",
             "|---" * (len(heads) + 2) + "|"]
    for row, runs, seconds in rows:
        cells = [cell([row_value(m, key, row) for m in runs], d) for _, key, d in table.columns]
        change = f" (`{'`, `'.join(row.overrides)}`)" if row.overrides else ""
        took = "–" if row.suffix else f"{np.mean(seconds):.0f}"  # a baseline row ran nothing of its own
        lines.append(f"| {row.label}{change} | " + " | ".join(cells) + f" | {took} |")
    for label, cells in table.cited:
        lines.append(f"| {label} | " + " | ".join(cells) + " | |")
    if table.cited:
        lines += ["", f"Cited rows: {table.source}."]
    return lines + [""]


def render(results: dict[str, list[tuple[Row, list[dict[str, float]], list[float]]]], seeds: list[int],
           command: str, threads: int | None = None) -> str:
    """The table file: who made it and how, then every table measured."""
    lines = render_header(seeds, command, threads)
    for table in TABLES:
        if table.recipe in results:
            lines += render_table(table, results[table.recipe])
    return "\n".join(lines)


def render_blocks(results: dict[str, list[tuple[Row, list[dict[str, float]], list[float]]]], seeds: list[int],
                  command: str, threads: int | None = None) -> dict[str, str]:
    """Each measured table under its own 'Made by' line: the body of its block in docs/recipes.md."""
    header = render_header(seeds, command, threads)
    return {t.recipe: "\n".join(header + render_table(t, results[t.recipe])) for t in TABLES if t.recipe in results}


def replace_block(text: str, recipe: str, body: str, page: Path) -> str:
    """`text` with the block of `recipe`'s table replaced by `body`; everything else byte for byte as it was."""
    begin, end = markers(recipe)
    start = text.find(begin)
    stop = text.find(end, start + len(begin)) if start >= 0 else -1
    if start < 0 or stop < 0:
        raise SystemExit(f"{page}: no block {begin} ... {end} to replace; add those two lines where the "
                         f"{recipe} table belongs")
    return f"{text[:start + len(begin)]}\n{body.strip()}\n{text[stop:]}"


def update_docs(blocks: dict[str, str], page: Path = DOCS) -> None:
    """Replace the blocks of these tables in `page`, leaving every other block alone; a missing block writes nothing."""
    text = page.read_text()
    for recipe, body in blocks.items():
        text = replace_block(text, recipe, body, page)
    page.write_text(text)


def code_version(repo: Path, env: dict[str, str]) -> str:
    """What a run's result depends on: the sha256 of the git tree listing of `repo` without the benchmark scripts
    and the pages (benchmarks/, docs/, README.md), which a table's runs do not read."""
    import hashlib

    listing = subprocess.run(["git", "ls-tree", "-r", "HEAD"], cwd=repo, env=env, check=True, capture_output=True,
                             text=True).stdout.splitlines()
    kept = [line for line in listing
            if not line.split("\t", 1)[1].startswith(("benchmarks/", "docs/")) and not line.endswith("\tREADME.md")]
    return hashlib.sha256("\n".join(kept).encode()).hexdigest()


def finished_runs(ledger: Path, tree: str) -> dict[tuple, tuple[dict[str, float], float]]:
    """The runs a crashed or stopped benchmark finished on this very code (the scratch clone's git tree): a rerun
    reuses them instead of starting over; runs of other code are ignored."""
    done: dict[tuple, tuple[dict[str, float], float]] = {}
    if ledger.is_file():
        for line in ledger.read_text().splitlines():
            entry = json.loads(line)
            if entry["tree"] == tree:
                done[(entry["recipe"], tuple(entry["overrides"]), entry["seed"])] = (entry["metrics"], entry["seconds"])
    return done


def record_run(ledger: Path, tree: str, run_key: tuple, metrics: dict[str, float], seconds: float) -> None:
    recipe, overrides, seed = run_key
    with open(ledger, "a") as file:
        file.write(json.dumps({"tree": tree, "recipe": recipe, "overrides": list(overrides), "seed": seed,
                               "metrics": metrics, "seconds": seconds}) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--only", nargs="+", choices=[t.recipe for t in TABLES], help="these tables only")
    parser.add_argument("--recipes-only", action="store_true",
                        help="only each table's recipe row (no ablations): e.g. to check seeds it was not tuned on")
    parser.add_argument("--rows", type=int, metavar="N",
                        help="only each table's first N rows (the 2-D tables: 2 = the recipe and the previous one)")
    parser.add_argument("--defaults-only", action="store_true",
                        help="only the rows that run params.yaml's defaults (no recipe)")
    parser.add_argument("--update-docs", "--update-readme", dest="update_docs", action="store_true",
                        help=f"replace the marked block of each table made in {DOCS.relative_to(ROOT)}, "
                             "leaving the other tables' blocks alone (--update-readme: the old name)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch repository")
    parser.add_argument("--threads", type=int, help="torch threads of every run (GAN_THREADS; default: every core)")
    parser.add_argument("--out", type=Path, default=OUT, help="the table file (default: %(default)s)")
    args = parser.parse_args()
    tables = [t for t in TABLES if not args.only or t.recipe in args.only]
    if args.recipes_only:
        tables = [replace(t, rows=t.rows[:1]) for t in tables]
    if args.rows:
        tables = [replace(t, rows=t.rows[:args.rows]) for t in tables]
    if args.defaults_only:
        tables = [replace(t, rows=tuple(r for r in t.rows if r.recipe is None)) for t in tables]
    command = "python benchmarks/recipes.py" + (f" --seeds {' '.join(map(str, args.seeds))}"
                                                if args.seeds != [0, 1, 2] else "")
    command += f" --only {' '.join(args.only)}" if args.only else ""
    command += f" --threads {args.threads}" if args.threads else ""
    command += " --recipes-only" if args.recipes_only else ""
    command += f" --rows {args.rows}" if args.rows else ""
    command += " --defaults-only" if args.defaults_only else ""
    if args.update_docs:  # a missing block is found now, not after hours of runs
        for table in tables:
            replace_block(DOCS.read_text(), table.recipe, "", DOCS)
    out = args.out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="gan-recipes-"))
    results: dict[str, list] = {}
    try:
        env = scratch_clone(scratch)
        if args.threads:
            # GAN_THREADS is what each stage reads (gan.runtime.torch_threads); OMP_ for anything else
            env.update(GAN_THREADS=str(args.threads), OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
        tree = code_version(scratch, env)
        ledger = out.with_suffix(".runs.jsonl")
        with open(out.with_suffix(".log"), "a") as log:
            done = finished_runs(ledger, tree)  # a baseline row reads its recipe's runs; a rerun, the ledger's
            for table in tables:
                results[table.recipe] = []
                for row in table.rows:
                    runs, seconds = [], []
                    for seed in args.seeds:
                        run_key = (row.recipe, row.overrides, seed)
                        if run_key not in done:
                            done[run_key] = run_one(scratch, env, replace(row, suffix=""), seed, log)
                            record_run(ledger, tree, run_key, *done[run_key])
                        metrics, took = done[run_key]
                        runs.append(metrics)
                        seconds.append(took)
                        print(f"{table.recipe} | {row.label} | seed {seed}: "
                              + ", ".join(f"{k} {row_value(metrics, k, row)}" for _, k, _ in table.columns)
                              + f" | {took:.0f} s", flush=True)
                    results[table.recipe].append((row, runs, seconds))
                out.write_text(render(results, args.seeds, command, args.threads))  # partial results survive
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
    text = render(results, args.seeds, command, args.threads)
    out.write_text(text)
    print(f"\n{text}\nwritten to {out}")
    if args.update_docs:
        blocks = render_blocks(results, args.seeds, command, args.threads)
        update_docs(blocks)
        print(f"{DOCS.relative_to(ROOT)}: replaced the block of {', '.join(blocks)}")


if __name__ == "__main__":
    main()
