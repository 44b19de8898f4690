"""Text-to-image (task.name=text) through the same stages as generation.

A tiny pipeline runs every stage script on mnist5k with captions: prepare writes the captions and their
tokens, train fits a text-conditional DCGAN with GAN-CLS's matching-aware D, generate draws the held-out
captions, the requests in both phrasings and prompts.png, evaluate scores the prompts and registers
gan-mnist5k-text-dcgan, and `gan sample --prompt` draws from the registered model.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from conftest import TINY, assert_refused, run_gan, run_pipeline
from gan import captions, text
from gan.config import parse_params
from gan.data import load_prepared
from gan.errors import UserError

STAGES = ("prepare", "features", "reference", "train", "generate", "evaluate")
TEXT = {**TINY, "task": {"name": "text", "align_steps": 60}, "features": {"epochs": 1, "ssl_steps": 20},
        "train": {**TINY["train"], "steps": 40, "batch_size": 32, "sample_every": 20, "checkpoint_every": 20,
                  "eval_every": 40}}


@pytest.fixture(scope="session")
def text_pipeline(tmp_path_factory):
    return run_pipeline(tmp_path_factory.mktemp("text-pipeline"), TEXT, STAGES)


def test_prepare_writes_captions_of_each_image_and_their_tokens_under_the_data_hash(text_pipeline, tmp_path):
    prepared = load_prepared(text_pipeline / "data" / "prepared")
    k = parse_params(yaml.safe_load((text_pipeline / "params.yaml").read_text())).task.captions
    assert prepared.train_caption.shape == (len(prepared.train_x), k) and prepared.train_caption.dtype.kind == "U"
    assert prepared.train_tokens.shape == (len(prepared.train_x), k, prepared.meta["text"]["max_len"])
    # each caption names its own image's digit (as a numeral: the seen phrasing) and its measured levels
    levels = captions.levels(prepared.train_x[:200], prepared.train_y[:200], prepared.meta["text"]["thresholds"])
    for caption, digit, (thickness, slant) in zip(prepared.train_caption[:200, 0], prepared.train_y[:200], levels):
        assert str(digit) in caption.split(" ") or f"{digit}," in caption, caption
        assert ({0: "thin", 1: None, 2: "thick"}[thickness] or "") in caption
        assert captions.SEEN.slant[slant][0] in caption
    assert text.vocabulary(torch.as_tensor(prepared.train_tokens)) == prepared.meta["text"]["vocabulary"]
    # the captions are data: an edited caption is refused like an edited image
    with np.load(text_pipeline / "data/prepared/train.npz") as saved:
        arrays = dict(saved)
    arrays["caption"][0, 0] = "a thick 3 leaning left"
    (tmp_path / "prepared").mkdir()
    for name in ("test.npz", "meta.json"):
        (tmp_path / "prepared" / name).write_bytes((text_pipeline / "data" / "prepared" / name).read_bytes())
    np.savez(tmp_path / "prepared" / "train.npz", **arrays)
    with pytest.raises(UserError, match="do not match meta.json"):
        load_prepared(tmp_path / "prepared")


def test_evaluate_scores_the_prompts_in_both_phrasings_and_registers_a_text_model(text_pipeline):
    metrics = json.loads((text_pipeline / "reports" / "metrics.json").read_text())
    for phrasing in ("seen", "held_out"):
        assert 0 <= metrics[f"accuracy_prompt_{phrasing}"] <= 1
        assert -1 <= metrics[f"spearman_thickness_{phrasing}"] <= 1 and -1 <= metrics[f"spearman_slant_{phrasing}"] <= 1
    assert "fid_domain_200" in metrics
    header = (text_pipeline / "reports" / "train" / "history.tsv").read_text().splitlines()[0].split("\t")
    assert header == ["step", "loss_d", "loss_g", "d_real", "d_fake", "loss_adversarial", "loss_match"]
    protocol = json.loads((text_pipeline / "reports" / "evaluate" / "protocol.json").read_text())
    assert protocol["task"]["name"] == "text" and protocol["task"]["encoder"] == "wordllama"
    samples = np.load(text_pipeline / "data" / "generated" / "samples.npz")
    assert samples["prompt_held_out_x"].shape == (900, 28, 28, 1) and samples["prompt_held_out_request"].shape == (900, 3)
    figure = Image.open(text_pipeline / "reports" / "generate" / "prompts.png")
    assert figure.size[0] > figure.size[1]  # the prompt text beside each row of samples
    from mlflow import MlflowClient

    client = MlflowClient()  # the session's store (conftest)
    run_id = json.loads((text_pipeline / "reports" / "train" / "run.json").read_text())["run_id"]
    assert run_id in {v.run_id for v in client.search_model_versions("name = 'gan-mnist5k-text-dcgan'")}


def test_gan_sample_draws_each_prompt_from_the_registered_model(text_pipeline, tmp_path):
    env = {}  # the session's store (conftest)
    uri = "models:/gan-mnist5k-text-dcgan@best"
    prompts = ["a thick 7 leaning right", "a thin 1 upright"]
    result = run_gan("sample", "--model", uri, "--prompt", prompts[0], "--prompt", prompts[1], "-n", "4",
                     "-o", str(tmp_path / "s.npz"), env=env)
    assert result.returncode == 0, result.stderr
    drawn = np.load(tmp_path / "s.npz")
    assert drawn["x"].shape == (8, 28, 28, 1) and list(drawn["prompt"]) == [prompts[0]] * 4 + [prompts[1]] * 4
    assert not np.array_equal(drawn["x"][:4], drawn["x"][4:])  # the same latents, other words: other images
    # the same model from the generator file gives the same images
    local = run_gan("sample", "--model", str(text_pipeline / "models" / "generator.pt"), "--prompt", prompts[0],
                    "--prompt", prompts[1], "-n", "4", "-o", str(tmp_path / "local.npz"))
    assert local.returncode == 0 and np.array_equal(np.load(tmp_path / "local.npz")["x"], drawn["x"])
    assert run_gan("sample", "--model", uri, "--prompt", "a 3", "-o", str(tmp_path / "s.png"), env=env).returncode == 0
    assert Image.open(tmp_path / "s.png").size[0] > 0
    missing = run_gan("sample", "--model", uri, "-o", str(tmp_path / "t.png"), env=env)
    last = missing.stderr.strip().splitlines()[-1]  # after MLflow's download progress
    assert missing.returncode == 2 and last.startswith("gan sample: error: ") and "--prompt" in last
    other = run_gan("interpolate", "--model", uri, "-o", str(tmp_path / "i.png"), env=env)
    assert other.returncode == 2 and "text-to-image model" in other.stderr


def test_the_prompt_scores_read_digits_and_levels_off_the_pixels(text_pipeline):
    """Real held-out digits stand in for G's images: asked for their own digit and levels they score high;
    asked for shuffled levels, the attribute correlations fall to about 0."""
    from gan.evaluator import load_evaluator
    from gan.tasks import prompting

    prepared = load_prepared(text_pipeline / "data" / "prepared")
    evaluator = load_evaluator(text_pipeline / "models" / "evaluator.pt")
    images, labels = prepared.test_x, prepared.test_y
    wanted = np.column_stack([labels, captions.levels(images, labels, prepared.meta["text"]["thresholds"])])
    arrays = {"prompt_seen_x": images, "prompt_seen_request": wanted}
    scores = prompting.score_prompts(evaluator, arrays, 500, torch.device("cpu"))
    assert scores["accuracy_prompt_seen"] > 0.5  # the tiny classifier of the fixture
    assert scores["spearman_thickness_seen"] > 0.8 and scores["spearman_slant_seen"] > 0.8
    shuffled = wanted.copy()
    shuffled[:, 1:] = np.random.default_rng(0).permutation(wanted[:, 1:])
    arrays["prompt_seen_request"] = shuffled
    scores = prompting.score_prompts(evaluator, arrays, 500, torch.device("cpu"))
    assert abs(scores["spearman_thickness_seen"]) < 0.15 and abs(scores["spearman_slant_seen"]) < 0.15


def test_the_matching_aware_d_learns_to_reject_a_real_image_with_the_wrong_caption(text_pipeline):
    """GAN-CLS: D's steps on reals beside their own captions and beside a batch-mate's; with task.mismatch
    off, D never sees a wrong caption and cannot tell the pairs apart."""
    from gan.state import Batches
    from gan.tasks import make_task
    from gan.training import build_state
    from gan.updates import d_update_on, make_plan

    prepared = load_prepared(text_pipeline / "data" / "prepared")
    gaps = {}
    for mismatch in (True, False):
        raw = yaml.safe_load((text_pipeline / "params.yaml").read_text())
        raw["task"]["mismatch"] = mismatch
        cfg = parse_params(raw)
        task = make_task(cfg, prepared.meta)
        state = build_state(cfg, tuple(prepared.meta["shape"]), torch.device("cpu"), 0, task=task)
        batches = Batches(prepared.train_x, "images", torch.device("cpu"), state.index_rng, None, None,
                          prepared.train_tokens)
        plan = make_plan(cfg, 0, None, torch.device("cpu"), task=task)
        for _ in range(150):  # D alone, with G's (untrained) output as the fakes
            batch = task.draw(batches, 32)
            fake, condition = task.fake(state, plan, batch, graph=False)
            d_update_on(state, plan, batch.real, batch.condition, fake, condition, batch.mismatch)
        batch = task.draw(batches, 512)
        state.discriminator.eval()
        with torch.no_grad():
            right = state.discriminator(batch.real, **batch.condition)
            wrong = state.discriminator(batch.real, y=batch.condition["y"].roll(1, 0))
        gaps[mismatch] = float((right - wrong).mean())
    assert gaps[True] > 1.0 and gaps[True] > 5 * abs(gaps[False]), gaps


def test_the_image_text_judge_learns_to_match_pictures_to_their_captions(text_pipeline):
    """gan.alignment on the training pairs: far above chance at picking a held-out image's own caption among
    a batch's, and G's match term is low for real images with their own captions, high with shuffled ones."""
    from gan import alignment

    prepared = load_prepared(text_pipeline / "data" / "prepared")
    judge = alignment.Alignment(1, "wordllama", prepared.meta["text"]["vocabulary"], dim=32)
    fitted = alignment.fit(judge, prepared.train_x, prepared.train_tokens, 150, 64, torch.Generator().manual_seed(0))
    assert fitted["retrieval_top1"] > 0.2  # chance: 1/64
    assert not any(p.requires_grad for p in judge.parameters())  # frozen
    from gan.images import to_tensor

    images, tokens = to_tensor(prepared.test_x[:256], "cpu"), torch.as_tensor(prepared.test_tokens[:256, 0])
    with torch.no_grad():
        right = float(judge.match_loss(images, tokens))
        wrong = float(judge.match_loss(images, tokens.roll(1, 0)))
    assert right < wrong - 1.0, (right, wrong)


@pytest.mark.parametrize("overrides, says", [
    ({"task": {"name": "text"}, "data": {"name": "ring8"}, "model": {"arch": "mlp"}},
     "task.name=text needs captions, which data.name=ring8 does not have"),
    ({"task": {"name": "text"}, "model": {"conditional": True}},
     "model.conditional=true is not implemented for task.name=text; set model.conditional: false"),
    ({"task": {"name": "text"}, "model": {"arch": "unet"}},
     "model.arch=unet cannot be conditioned on text (task.name=text); set model.arch: dcgan"),
    ({"generate": {"prompts": ["a 7"]}}, "generate.prompts applies to task.name=text, not generation"),
    ({"task": {"encoder": "scratch"}}, "task.encoder applies to task.name=text, not generation"),
    ({"task": {"name": "text", "encoder": "bert"}}, "task.encoder must be one of wordllama, scratch"),
    ({"task": {"name": "text"}, "generate": {"prompts": ["a 7", " "]}}, "generate.prompts must be a non-empty list"),
    ({"task": {"name": "text", "align_steps": 0}}, "task.align_weight > 0 needs a fitted judge"),
])
def test_text_params_are_checked_before_any_work(overrides, says):
    assert_refused(overrides, says)


@pytest.mark.parametrize("encoder", ["wordllama", "scratch"])
def test_both_encoders_build_a_text_conditional_pair_that_reads_the_caption(encoder):
    from gan import models

    vocabulary = text.vocabulary(text.tokenize(["a thick 7 leaning right", "a thin 1 upright"]))
    g, d = models.build("dcgan", (28, 28, 1), 16, 8, task_inputs={"text": {"encoder": encoder, "vocabulary": vocabulary,
                                                                           "dim": 8, "max_len": 16}})
    tokens = text.tokenize(["a thick 7 leaning right", "a thin 1 upright"])
    z = torch.randn(2, 16)
    with torch.no_grad():  # FiLM starts at plain batch norm: perturb it so the caption shows
        for p in g.parameters():
            p.add_(0.05 * torch.randn_like(p))
    g.eval()
    out = g(z[:1].repeat(2, 1), tokens)
    assert out.shape == (2, 1, 28, 28) and not torch.allclose(out[0], out[1])
    assert d(out, tokens).shape == (2,)
    with pytest.raises(ValueError, match="caption tokens"):
        g(z, None)


RESUME = {"task": {"name": "text", "align_steps": 40}, "model": {"arch": "dcgan", "width": 8},
          "features": {"epochs": 1, "ssl_steps": 20},
          "train": {"steps": 80, "batch_size": 16, "checkpoint_every": 20, "sample_every": 40, "log_every": 10,
                    "eval_every": 40, "eval_samples": 100}}


@pytest.mark.system
def test_a_killed_text_run_resumes_with_its_judge_and_ends_bit_identical_to_an_uninterrupted_one(tmp_path):
    """The judge is fitted once, before step 0, and comes back from the checkpoint: a resumed run neither refits
    it nor trains on another one, and its batches draw the same captions."""
    from conftest import crash_and_resume

    straight, crashed, resumed, _ = crash_and_resume(tmp_path, RESUME)
    assert "judge fitted" not in resumed.stdout
    a, b = (torch.load(d / "models/generator.pt", weights_only=True)["state_dict"] for d in (straight, crashed))
    assert any(k.startswith("alignment.") for k in a) and all(torch.equal(a[k], b[k]) for k in a)
    for report in ("history.tsv", "eval.tsv"):
        assert (straight / "reports/train" / report).read_text() == (crashed / "reports/train" / report).read_text()


def test_a_text_step_runs_in_bf16_with_channels_last_on_the_cpu(text_pipeline):
    """The CUDA fast path (bf16 autocast, channels_last) on the text pair with its judge, run where CI can: the
    CPU. G learns, the judge does not move."""
    from gan import alignment
    from gan.state import Batches
    from gan.tasks import make_task
    from gan.training import build_state
    from gan.updates import make_plan, train_step

    prepared = load_prepared(text_pipeline / "data" / "prepared")
    raw = yaml.safe_load((text_pipeline / "params.yaml").read_text())
    raw["train"].update(precision="bf16", batch_size=8)
    cfg = parse_params(raw)
    cpu = torch.device("cpu")
    task = make_task(cfg, prepared.meta)
    state = build_state(cfg, tuple(prepared.meta["shape"]), cpu, 0, task=task)
    task.alignment = state.generator.alignment  # an unfitted judge: this test is about the step, not the fit
    alignment.freeze(task.alignment)
    plan = make_plan(cfg, 0, None, cpu, task=task)
    assert plan.precision == "bf16" and plan.channels_last
    judge = {k: v.clone() for k, v in task.alignment.state_dict().items()}
    before = [p.detach().clone() for p in state.generator.net.parameters()]
    batches = Batches(prepared.train_x, "images", cpu, state.index_rng, None, None, prepared.train_tokens)
    stats = train_step(state, plan, batches)
    assert set(stats) == set(task.columns) and all(torch.isfinite(v) for v in stats.values())
    assert any(not torch.equal(a, b) for a, b in zip(before, state.generator.net.parameters()))
    assert all(torch.equal(judge[k], v) for k, v in task.alignment.state_dict().items())


def write_captioned_shapes(root, count: int = 48) -> None:
    """A folder of the user's captioned pictures: red or blue circles and squares as PNG files, each with a .txt
    of two captions beside it."""
    from PIL import ImageDraw

    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    for i in range(count):
        color, shape = ("red", "blue")[i % 2], ("circle", "square")[(i // 2) % 2]
        image = Image.new("RGB", (32, 32), "white")
        box = [int(v) for v in rng.integers(2, 8, size=2)] + [int(v) for v in rng.integers(24, 30, size=2)]
        (ImageDraw.Draw(image).ellipse if shape == "circle" else ImageDraw.Draw(image).rectangle)(box, fill=color)
        image.save(root / f"{i:03d}.png")
        (root / f"{i:03d}.txt").write_text(f"a {color} {shape}\n{shape}, {color}\n")


def test_a_folder_of_captioned_pictures_trains_and_samples_from_its_own_words(tmp_path):
    """The user's route: images with a .txt of captions beside each, through every stage and `gan sample`."""
    root = tmp_path / "run"
    write_captioned_shapes(root / "pictures")
    prompts = ["a red circle", "a blue square"]
    params = {**TEXT, "data": {"name": "folder", "root": "pictures", "image_size": 32},
              "task": {**TEXT["task"], "captions": 2}, "generate": {**TINY["generate"], "prompts": prompts},
              "train": {**TEXT["train"], "batch_size": 16}, "evaluate": {"num_samples": 40}}
    run_pipeline(root, params, STAGES)

    prepared = load_prepared(root / "data" / "prepared")
    assert "thresholds" not in prepared.meta["text"]  # no labels, no attributes: the user's words only
    words = {prepared.meta["text"]["vocabulary"].count(int(i)) for i in text.tokenize(["circle square red blue"])[0] if i}
    assert words == {1}  # every word of the sidecars is in the training vocabulary
    firsts = {str(c) for c in prepared.train_caption[:, 0]}
    assert firsts <= {"a red circle", "a blue circle", "a red square", "a blue square"} and len(firsts) == 4
    metrics = json.loads((root / "reports" / "metrics.json").read_text())
    assert any(k.startswith("fid_domain") for k in metrics) and not any("prompt" in k for k in metrics)
    assert Image.open(root / "reports" / "generate" / "prompts.png").size[1] > 0
    result = run_gan("sample", "--model", str(root / "models" / "generator.pt"), "--prompt", prompts[0],
                     "--prompt", prompts[1], "-n", "3", "-o", str(tmp_path / "s.npz"))
    assert result.returncode == 0, result.stderr
    drawn = np.load(tmp_path / "s.npz")
    assert drawn["x"].shape == (6, 32, 32, 3) and list(drawn["prompt"]) == [prompts[0]] * 3 + [prompts[1]] * 3
