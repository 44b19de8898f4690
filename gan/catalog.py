"""The names params.yaml may use, and the little that validation must know about each.

Validating params.yaml reads only this file (and the metric names in gan.metrics.registry),
never the code behind the names: a dataset loader, a model, a loss or an augmentation is
imported only by the stages that run it, so `dvc.yaml` can list each stage's real code and
an edit reruns just the stages it affects. Each heavy registry (gan.data.datasets.DATASETS,
gan.models.ARCHITECTURES, gan.losses.LOSSES, gan.augment.TRANSFORMATIONS) has exactly these
keys; tests/test_config.py holds the two sides together.
"""

from __future__ import annotations

from dataclasses import dataclass

# data.name -> the kind of samples it gives: "images" (uint8 NHWC) or "points" (float32 2-D)
DATASET_KINDS: dict[str, str] = {
    "mnist5k": "images",
    "faces100": "images",
    "photos": "images",
    "ring8": "points",
    "grid25": "points",
    "mnist": "images",
    "fashion_mnist": "images",
    "cifar10": "images",
    "folder": "images",
}


# task.name: what G maps from and to (gan.tasks); each task trains the architectures that take its input
TASKS: tuple[str, ...] = ("generation", "translation", "super_resolution", "text")
# what generate writes and evaluate scores, per task: G's samples from noise; its outputs for the held-out pairs
# (beside the baseline and the real targets); or samples for captions and for prompted requests
OUTPUTS: dict[str, str] = {"generation": "samples", "translation": "paired", "super_resolution": "paired",
                           "text": "prompted"}
TEXT_ENCODERS: tuple[str, ...] = ("wordllama", "scratch")  # task.encoder: pretrained token vectors, or learned
CAPTIONED_DATASETS: tuple[str, ...] = ("mnist5k", "mnist", "folder")  # task.name=text: where captions come from
# task.source (translation): what G translates from, derived from the target images in prepare (gan.pairs)
TRANSLATION_SOURCES: tuple[str, ...] = ("edges", "skeleton", "thick", "mask")
MASK_PLACEMENTS: tuple[str, ...] = ("random", "centre")  # task.mask: where the inpainting hole is
SR_SCALES: tuple[int, ...] = (2, 4)  # task.scale (super_resolution)
PATCH_SIZES: tuple[int, ...] = (0, 1, 16, 34, 70)  # model.patch: PatchGAN receptive field; 0: the whole image


@dataclass(frozen=True)
class ArchitectureSpec:
    data_kinds: tuple[str, ...]  # "images", "points"
    image_sizes: tuple[int, ...] = ()  # empty: any size
    d_batch_norm: bool = False  # D normalises over the batch unless model.spectral_norm is on
    options: tuple[str, ...] = ()  # the keys of MODEL_OPTIONS this architecture reads
    convolutional: bool = False  # bf16 and channels_last pay off (train.precision: auto takes bf16 on CUDA)
    task: str = "generation"  # the task whose input G takes (task.name)
    text: bool = False  # also task.name=text: G and D take a sentence vector (vector-conditional batch norm)


# model.* keys that only some architectures read; each architecture's builder takes them as keywords
MODEL_OPTIONS: tuple[str, ...] = ("depth", "d_depth", "d_width", "g_norm", "d_activation", "upsample", "patch", "blocks")
G_NORMS: tuple[str, ...] = ("batch", "none")
D_ACTIVATIONS: tuple[str, ...] = ("maxout", "leaky_relu")
UPSAMPLES: tuple[str, ...] = ("transposed", "nearest")

ARCHITECTURES: dict[str, ArchitectureSpec] = {
    "mlp": ArchitectureSpec(("points", "images"), options=("depth", "d_depth", "d_width", "g_norm", "d_activation")),
    "dcgan": ArchitectureSpec(("images",), (28, 32, 64), d_batch_norm=True, options=("upsample",),
                              convolutional=True, text=True),
    "resnet": ArchitectureSpec(("images",), (32,), convolutional=True),
    # pix2pix: U-Net G (dropout as its noise) and a PatchGAN D on the (source, image) pair
    "unet": ArchitectureSpec(("images",), d_batch_norm=True, options=("patch",), convolutional=True,
                             task="translation"),
    # SRResNet G (residual blocks without batch norm, PixelShuffle) and a PatchGAN D (SRGAN)
    "srresnet": ArchitectureSpec(("images",), d_batch_norm=True, options=("patch", "blocks"), convolutional=True,
                                 task="super_resolution"),
}

LOSSES: tuple[str, ...] = ("nonsaturating", "minimax", "hinge", "wasserstein", "least_squares")
# losses whose D objective adds a per-sample gradient penalty (WGAN-GP): batch norm in D breaks it
GRADIENT_PENALTY_LOSSES: tuple[str, ...] = ("wasserstein",)

AUGMENT_POLICIES: tuple[str, ...] = ("color", "translation", "cutout")

# train.precision: auto is bf16 for conv nets on CUDA and fp32 otherwise (gan.updates.resolve_precision)
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16")

# features.extractor: what evaluate's domain features come from (gan.features); auto: the classifier on
# labelled data when it beats chance on the held-out split, else self_supervised
EXTRACTORS: tuple[str, ...] = ("auto", "classifier", "self_supervised", "random")

# evaluate.metrics: the names of gan.metrics.registry.METRICS, which says what each needs and measures
METRICS: tuple[str, ...] = (
    "fid_domain", "kid_domain", "pr_domain", "dc_domain", "is_domain",
    "fid_inception", "kid_inception", "pr_inception", "dc_inception", "is_inception",
    "fid_per_class_domain", "classes_domain", "agreement_domain", "copying_domain", "modes",
)
