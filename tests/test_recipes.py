"""Recipes are files: `gan recipe` validates recipes/<name>.yaml against params.yaml and runs it as
`dvc exp run -S ...`, on a real git + DVC copy of the repository."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, benchmark_script, copy_repository, dvc, run
from gan import recipes
from gan.config import flatten, parse_params

GAN = [sys.executable, "-m", "gan"]


def shipped() -> list[str]:
    return recipes.available(ROOT)


def test_the_readme_recipes_ship():
    assert {"grid25", "ring8", "mnist5k"} <= set(shipped())


@pytest.mark.parametrize("name", shipped())
def test_every_shipped_recipe_is_valid_over_params_yaml_and_described(name):
    changes = yaml.safe_load((ROOT / "recipes" / f"{name}.yaml").read_text())
    base = yaml.safe_load((ROOT / "params.yaml").read_text())
    cfg = parse_params(recipes.merge(base, changes))
    flat = cfg.flat()
    for key, value in flatten(changes).items():
        assert flat[key] == (list(value) if isinstance(value, tuple) else value), key
    assert "seed" not in changes, "seeds are chosen at run time (gan recipe run NAME --seed N)"
    assert recipes.description(ROOT / "recipes" / f"{name}.yaml"), "a recipe starts with comment lines"


def set_pairs(line: str) -> dict[str, object]:
    """The -S key=value pairs of a printed `dvc exp run` line, values read back as DVC reads them (YAML)."""
    argv = shlex.split(line)
    assert argv[:3] == ["dvc", "exp", "run"]
    pairs = [argv[i + 1] for i, a in enumerate(argv) if a == "-S"]
    return {p.split("=", 1)[0]: yaml.safe_load(p.split("=", 1)[1]) for p in pairs}


@pytest.mark.parametrize("name", shipped())
def test_show_prints_every_key_of_the_recipe_and_the_seed(name):
    out = run([*GAN, "recipe", "show", name, "--seed", "3"], ROOT, env=None).stdout
    expected = flatten(yaml.safe_load((ROOT / "recipes" / f"{name}.yaml").read_text()))
    assert set_pairs(out) == {**expected, "seed": 3}


def test_values_survive_the_command_line():
    values = {"a.list": [0.5, 0.999], "a.words": ["color", "cutout"], "a.flag": False, "a.small": 1e-4, "a.tiny": 1e-5,
              "a.text": "mlp", "a.yes": "yes", "a.empty": [], "a.prompts": ["a thick 7", "2, thin, upright", "x: [y]"]}
    line = shlex.join(["dvc", "exp", "run", *recipes.set_args(values)])
    assert set_pairs(line) == values


def user_repo(tmp_path: Path, recipe: str, name: str = "mine") -> Path:
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / f"{name}.yaml").write_text(recipe)
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    return tmp_path


@pytest.mark.parametrize(("recipe", "words"), [
    ("model:\n  widht: 3\n", ["recipes/mine.yaml", "model.widht", "did you mean 'width'"]),
    ("train:\n  lr_g: -1\n", ["recipes/mine.yaml", "train.lr_g must be > 0"]),
    ("model:\n  arch: resnet\n", ["recipes/mine.yaml", "data.image_size must be one of 32"]),
    ("- just a list\n", ["recipes/mine.yaml", "non-empty mapping"]),
    ("train: [\n", ["recipes/mine.yaml", "not valid YAML"]),
])
def test_a_bad_recipe_is_one_line_naming_the_file_and_key(tmp_path, recipe, words):
    root = user_repo(tmp_path, recipe)
    result = run([*GAN, "recipe", "show", "mine"], root, env=None, ok=False)
    assert result.returncode == 2 and not result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gan recipe: error: "), result.stderr
    for word in words:
        assert word in lines[0]


def test_an_unknown_recipe_names_the_ones_there_are(tmp_path):
    root = user_repo(tmp_path, "seed: 1\n", name="other")
    result = run([*GAN, "recipe", "run", "nope"], root, env=None, ok=False)
    assert result.returncode == 2
    assert "no recipe 'nope'" in result.stderr and "choose one of other" in result.stderr


def test_list_shows_each_recipe_with_its_description():
    out = run([*GAN, "recipe", "list"], ROOT, env=None).stdout
    for name in shipped():
        line = next(x for x in out.splitlines() if x.startswith(f"{name}: "))
        assert line == f"{name}: {recipes.description(ROOT / 'recipes' / f'{name}.yaml')}"


@pytest.mark.system
def test_a_recipe_runs_as_a_dvc_experiment_with_exactly_its_params(tmp_path):
    small = {"data": {"num_points": 1000}, "train": {"sample_every": 50, "checkpoint_every": 50, "eval_every": 0},
             "generate": {"num_samples": 500}, "evaluate": {"num_samples": 500}}
    root, env = copy_repository(tmp_path, small)
    env["OMP_NUM_THREADS"] = "1"
    (root / "recipes" / "tiny.yaml").write_text(
        "# a tiny 2-D run\ndata:\n  name: ring8\nmodel:\n  arch: mlp\n  width: 16\n  latent_dim: 2\n"
        "train:\n  steps: 60\n  batch_size: 20\n  betas_g: [0.6, 0.99]\n")
    result = run([*GAN, "recipe", "run", "tiny", "--seed", "4", "-n", "tiny-4"], root, env)
    assert result.stdout.splitlines()[0].startswith("dvc exp run -n tiny-4 -S data.name=ring8")
    shown = json.loads(dvc(root, env, "exp", "show", "--json").stdout)
    exps = [e for row in shown for e in (row.get("experiments") or []) if e.get("name") == "tiny-4"]
    assert len(exps) == 1
    data = exps[0]["revs"][0]["data"]
    params = data["params"]["params.yaml"]["data"]
    assert params["seed"] == 4 and params["data"]["name"] == "ring8" and params["model"]["width"] == 16
    assert params["train"]["betas_g"] == [0.6, 0.99] and params["train"]["steps"] == 60
    metrics = data["metrics"]["reports/metrics.json"]["data"]
    assert 0 <= metrics["modes_captured_500"] <= 8


def test_every_benchmark_row_is_a_valid_run_of_a_shipped_recipe():
    bench = benchmark_script("recipes")
    base = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert {t.recipe for t in bench.TABLES} <= set(shipped())
    for table in bench.TABLES:
        assert table.rows[0].recipe == table.recipe and not table.rows[0].overrides  # the recipe itself first
        data = parse_params(recipes.merge(base, yaml.safe_load((ROOT / "recipes" / f"{table.recipe}.yaml")
                                                               .read_text()))).data.name
        for row in table.rows:
            params = recipes.merge(base, yaml.safe_load((ROOT / "recipes" / f"{row.recipe}.yaml").read_text())
                                   if row.recipe else {})
            flat = flatten(params)
            for override in row.overrides:
                key, value = override.split("=", 1)
                assert key in flat, f"{table.recipe} / {row.label}: {key} is not a params.yaml key"
                section, name = key.split(".")
                params = recipes.merge(params, {section: {name: yaml.safe_load(value)}})
            assert parse_params(params).data.name == data, f"{table.recipe} / {row.label}: every row on the same data"


def table_block(text: str, bench, recipe: str) -> str:
    """What stands between the two marker lines of `recipe`'s table."""
    begin, end = bench.markers(recipe)
    return text.split(begin, 1)[1].split(end, 1)[0]


def test_the_recipes_page_holds_one_benchmark_block_per_table():
    bench = benchmark_script("recipes")
    text = bench.DOCS.read_text()
    assert bench.DOCS == ROOT / "docs" / "recipes.md"
    for table in bench.TABLES:
        begin, end = bench.markers(table.recipe)
        assert text.count(begin) == 1 and text.count(end) == 1, table.recipe
        assert text.index(begin) < text.index(end), table.recipe
        block = table_block(text, bench, table.recipe)
        assert "Made by `python benchmarks/recipes.py" in block, table.recipe
        assert f"**{table.recipe}**" in block and "| variant |" in block, table.recipe


def test_updating_one_table_block_leaves_every_other_byte_of_the_page_as_it_was(tmp_path):
    bench = benchmark_script("recipes")
    page = tmp_path / "recipes.md"
    page.write_bytes(bench.DOCS.read_bytes())
    before = page.read_bytes().decode()
    made = "Made by `python benchmarks/recipes.py --only ring8` on 2099-01-01; machine: none.\n\n**ring8**\n\n| variant | x |\n"
    bench.update_docs({"ring8": made}, page)
    after = page.read_bytes().decode()
    for table in bench.TABLES:
        assert all(after.count(marker) == 1 for marker in bench.markers(table.recipe)), table.recipe
    assert table_block(after, bench, "ring8") == "\n" + made
    for other in ("grid25", "mnist5k"):
        assert table_block(after, bench, other).encode() == table_block(before, bench, other).encode(), other
    begin, end = bench.markers("ring8")
    assert after.split(begin, 1)[0] == before.split(begin, 1)[0]
    assert after.split(end, 1)[1] == before.split(end, 1)[1]


def test_a_missing_table_block_is_one_line_naming_the_page_and_the_marker_and_writes_nothing(tmp_path):
    bench = benchmark_script("recipes")
    page = tmp_path / "recipes.md"
    begin, end = bench.markers("grid25")
    page.write_text(f"{begin}\nold\n{end}\n")  # grid25's block only: ring8's is missing
    with pytest.raises(SystemExit) as raised:
        bench.update_docs({"grid25": "new", "ring8": "new"}, page)
    message = str(raised.value)
    assert "\n" not in message and str(page) in message and "<!-- recipes-table:ring8 -->" in message
    assert page.read_text() == f"{begin}\nold\n{end}\n"


def test_a_rerun_benchmark_reuses_the_finished_runs_of_the_same_code_only(tmp_path):
    bench = benchmark_script("recipes")
    ledger = tmp_path / "recipes.runs.jsonl"
    bench.record_run(ledger, "tree-a", ("text2digit", ("task.encoder=scratch",), 1), {"fid_domain_1k": 20.5}, 250.0)
    bench.record_run(ledger, "tree-b", ("text2digit", (), 0), {"fid_domain_1k": 19.0}, 240.0)
    assert bench.finished_runs(ledger, "tree-a") == {
        ("text2digit", ("task.encoder=scratch",), 1): ({"fid_domain_1k": 20.5}, 250.0)}
    assert bench.finished_runs(tmp_path / "none.jsonl", "tree-a") == {}


def test_a_row_may_read_another_key_or_none_for_a_column():
    """The class-conditional baseline of text2digit: its accuracy is the classifier's agreement, no attributes."""
    bench = benchmark_script("recipes")
    row = bench.Row("baseline", "text2digit", keys=(("accuracy_prompt_held_out", "class_agreement_domain"),
                                                   ("spearman_slant_seen", "")))
    metrics = {"class_agreement_domain_1k": 0.97, "fid_domain_1k": 18.0}
    assert bench.row_value(metrics, "accuracy_prompt_held_out", row) == 0.97
    assert bench.row_value(metrics, "spearman_slant_seen", row) is None
    assert bench.row_value(metrics, "fid_domain_{n}", row) == 18.0


def test_a_table_cell_shows_the_worst_and_the_best_seed():
    """The recipes' bars hold on every seed, so a cell gives the range beside mean ± std."""
    bench = benchmark_script("recipes")
    assert bench.cell([0.001, 0.027, 0.002], 3) == "0.010 ± 0.012 [0.001, 0.027]"
    assert bench.cell([25.0], 1) == "25.0"


# the paired-task recipes end to end under DVC, shortened; the README's tables run them whole. 200 steps
# beat the baseline on translation; super-resolution starts at bilinear upsampling, under bicubic, and
# passes it after a few hundred steps of the recipe's lr (200 steps: 11.3 dB against bicubic's 11.9)
SHORT = {"edges2digit": 200, "inpaint": 200, "sr4": 600, "sr4-photos": 200}
PAIRED_RECIPES = {"edges2digit": ("gan-mnist5k-translation-edges-unet", "psnr_y_pooled", "psnr_y_pooled_source"),
                  "inpaint": ("gan-mnist5k-translation-mask-unet", "psnr_y_pooled_hole", "psnr_y_pooled_hole_source"),
                  "sr4": ("gan-mnist5k-super_resolution-x4-srresnet", "psnr_y_crop4", "psnr_y_crop4_bicubic"),
                  "sr4-photos": ("gan-photos-super_resolution-x4-srresnet", None, None)}


@pytest.fixture(scope="module")
def recipes_repo(tmp_path_factory):
    root, env = copy_repository(tmp_path_factory.mktemp("paired-recipes"), {"features": {"ssl_steps": 50}})
    return root, env


@pytest.mark.system
@pytest.mark.parametrize("name", sorted(PAIRED_RECIPES))
def test_each_image_to_image_recipe_runs_as_a_dvc_experiment(recipes_repo, name, tmp_path):
    root, env = recipes_repo
    registered, score, baseline = PAIRED_RECIPES[name]
    steps = SHORT[name]
    run([*GAN, "recipe", "run", name, "-n", f"{name}-short", "--", "-S", f"train.steps={steps}",
         "-S", f"train.eval_every={steps}", "-S", "train.sample_every=100", "-S", "train.checkpoint_every=100"],
        root, env)
    metrics = json.loads((root / "reports" / "metrics.json").read_text())
    if score:  # 200 steps on the digits beat the baseline; the photos' 8 x 8 inputs need the whole recipe
        assert metrics[score] > metrics[baseline], (score, metrics[score], baseline, metrics[baseline])
    else:
        assert {"psnr_y_crop4", "psnr_y_crop4_bicubic", "fid_domain_470_real"} <= set(metrics)
        assert not any(k.startswith("accuracy_domain") for k in metrics)  # the photos have no labels
    figures = {p.name for p in (root / "reports" / "generate").glob("*.png")}
    assert "triptych.png" in figures and ("zoom.png" in figures) == name.startswith("sr4")
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{root}/mlflow.db")  # the default store of the repository
    run_id = json.loads((root / "reports" / "train" / "run.json").read_text())["run_id"]
    assert run_id in {v.run_id for v in client.search_model_versions(f"name = '{registered}'")}
    dvc(root, env, "plots", "show", "-o", str(tmp_path / "plots"))
    assert (tmp_path / "plots" / "static" / "workspace_reports_generate_triptych.png").is_file()


def test_a_recipe_resets_what_the_previous_experiment_left_that_its_task_does_not_read(tmp_path):
    """`dvc exp run` leaves its params in params.yaml: after inpaint (translation, source mask, a U-Net),
    sr4 (super-resolution) resets task.source to its default instead of refusing it; its own keys win."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["task"].update(name="translation", source="mask")
    params["model"].update(arch="unet", patch=34)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    (tmp_path / "recipes").mkdir()
    for name in ("sr4", "mnist5k"):
        (tmp_path / "recipes" / f"{name}.yaml").write_text((ROOT / "recipes" / f"{name}.yaml").read_text())
    argv = recipes.command(tmp_path, "sr4")
    assert "task.source=edges" in argv and "model.patch=16" in argv and "task.name=super_resolution" in argv
    assert "task.mask=random" not in argv  # at its default already: nothing to reset
    argv = recipes.command(tmp_path, "mnist5k")  # back to generation: every task key the U-Net run left
    assert "task.source=edges" in argv and "model.arch=dcgan" in argv and "task.name=generation" in argv
    params["task"].update(hole=0.25)  # an inpainting key: edges2digit (translation from edges) does not read it
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    (tmp_path / "recipes" / "edges2digit.yaml").write_text((ROOT / "recipes" / "edges2digit.yaml").read_text())
    assert "task.hole=0.5" in recipes.command(tmp_path, "edges2digit")
    params["task"].update(name="text", hole=0.5)  # a text-to-image experiment with its own prompts
    params["generate"]["prompts"] = ["a 7"]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    argv = recipes.command(tmp_path, "mnist5k")
    assert "task.name=generation" in argv and any(a.startswith("generate.prompts=") for a in argv)
