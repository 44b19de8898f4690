"""The FID Inception extractor: equal to pytorch-fid (and torch-fidelity) on one weights file, and
finding, hashing and checking that file. No download: the weights are random values of the real
shapes, written where torch hub caches the real file.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.models.inception import InceptionA, InceptionC, InceptionE

from gan.errors import UserError
from gan.checkpoint import file_sha256
from gan.images import to_tensor
from gan.metrics.frechet import frechet_distance, gaussian_stats
from gan.metrics.inception import (WEIGHTS_FILE, WEIGHTS_KEY, WEIGHTS_URL, FIDInceptionV3, InceptionFeatures,
                                   InceptionWeightsMissing, hub_weights_path, load_network,
                                   resolve_weights, weights_id)

IMAGES_PER_SET = 40  # every image is resized to 299 px: ~50-80 ms per network on 2 idle CPU cores
FID_DIMS = 32  # < IMAGES_PER_SET, so that the projected covariances have full rank


def random_inception_weights(seed: int) -> dict[str, torch.Tensor]:
    """A state dict of the FID Inception's keys and shapes, scaled so that signals survive 94 layers.

    He-scaled convolutions and BN gains near 1 keep activations O(1) to the last block: with
    uniformly tiny values the features would be the BN biases alone and every comparison in this
    file would pass whatever the network did to the image.
    """
    generator = torch.Generator().manual_seed(seed)
    state = FIDInceptionV3().state_dict()
    for name, tensor in state.items():
        if not tensor.is_floating_point():
            continue  # num_batches_tracked
        if name.endswith("conv.weight"):
            tensor.normal_(0.0, (2.0 / tensor[0].numel()) ** 0.5, generator=generator)
        elif name.endswith("bn.weight"):
            tensor.uniform_(0.8, 1.2, generator=generator)
        elif name.endswith("running_var"):
            tensor.uniform_(0.5, 1.5, generator=generator)  # a variance: must be positive
        elif name == "fc.weight":
            tensor.normal_(0.0, tensor.shape[1] ** -0.5, generator=generator)
        else:  # BN biases and running means, the fc bias
            tensor.normal_(0.0, 0.05, generator=generator)
    return state


def gray_images(count: int, size: int, high: int, seed: int) -> np.ndarray:
    """uint8 (count, size, size, 1) noise in [0, high)."""
    return np.random.default_rng(seed).integers(0, high, (count, size, size, 1), dtype=np.uint8)


@pytest.fixture(scope="module")
def torch_home(tmp_path_factory) -> Path:
    """A TORCH_HOME whose hub cache holds random weights under the real file name."""
    home = tmp_path_factory.mktemp("torch_home")
    path = home / "hub" / "checkpoints" / WEIGHTS_FILE
    path.parent.mkdir(parents=True)
    torch.save(random_inception_weights(seed=0), path)
    return home


@pytest.fixture(scope="module")
def weights_path(torch_home) -> Path:
    return torch_home / "hub" / "checkpoints" / WEIGHTS_FILE


@pytest.fixture(scope="module")
def extractor(weights_path) -> InceptionFeatures:
    return InceptionFeatures(weights_path, device="cpu")


@pytest.fixture(scope="module")
def image_sets() -> tuple[np.ndarray, np.ndarray]:
    """Two differently distributed sets of 28x28 gray images, so that their FID is clearly > 0."""
    return gray_images(IMAGES_PER_SET, 28, 256, seed=1), gray_images(IMAGES_PER_SET, 28, 128, seed=2)


@pytest.fixture(scope="module")
def ours(extractor, image_sets) -> list[tuple[np.ndarray, np.ndarray]]:
    """Our (features, unbiased logits) of both image sets."""
    # 16 does not divide 40: the comparisons below also cover a short last batch.
    return [extractor.embed(images, batch_size=16) for images in image_sets]


@pytest.fixture(scope="module")
def pytorch_fid_features(torch_home, image_sets) -> list[np.ndarray]:
    """pytorch-fid's 2048-d features of the same images, its network loaded from the hub cache."""
    from pytorch_fid.inception import InceptionV3

    def no_download(url, *args, **kwargs):
        raise AssertionError(f"pytorch-fid tried to download {url}")

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TORCH_HOME", str(torch_home))
        patch.setattr(torch.hub, "download_url_to_file", no_download)
        # normalize_input=False: we hand it what our pipeline feeds the network, [-1, 1] floats.
        network = InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[2048]], resize_input=True,
                              normalize_input=False, use_fid_inception=True).eval()
    with torch.inference_mode():
        return [network(to_tensor(images).repeat(1, 3, 1, 1))[0].flatten(1).double().numpy()
                for images in image_sets]


def relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    return float(np.abs(actual - expected).max() / np.abs(expected).max())


# ---------------------------------------------------------------------------- against the references


def test_features_equal_pytorch_fid(ours, pytorch_fid_features):
    for (features, _), reference in zip(ours, pytorch_fid_features, strict=True):
        assert features.shape == (IMAGES_PER_SET, 2048) and features.dtype == np.float64
        assert relative_error(features, reference) < 1e-5


# The blocks as torchvision has them (padding counted in the averages; Mixed_7c averages).
TORCHVISION_BLOCKS = {
    "Mixed_5b": lambda: InceptionA(192, pool_features=32),
    "Mixed_6e": lambda: InceptionC(768, channels_7x7=192),
    "Mixed_7b": lambda: InceptionE(1280),
    "Mixed_7c": lambda: InceptionE(2048),
}


@pytest.mark.parametrize("block", list(TORCHVISION_BLOCKS))
def test_the_random_weights_show_each_tf_pooling_change(weights_path, image_sets, ours, block):
    """Guards the comparisons above: with these weights, putting back any one block as torchvision
    has it must move the features far beyond their 1e-5 tolerance (it moves them by 6e-3 to 0.3)."""
    network = load_network(weights_path)
    plain = TORCHVISION_BLOCKS[block]()
    plain.load_state_dict(getattr(network, block).state_dict())
    setattr(network, block, plain.eval())
    with torch.inference_mode():
        features = network(to_tensor(image_sets[0][:2])).double().numpy()
    assert relative_error(features, ours[0][0][:2]) > 1e-3


@pytest.mark.filterwarnings("ignore:The `disp` argument is deprecated:DeprecationWarning")
def test_fid_equals_pytorch_fid(ours, pytorch_fid_features):
    """A random projection to 32 dims: scipy's sqrtm of a 2048x2048 product takes ~25 s on 2
    cores, and with 40 images the full covariances would be singular anyway. The projection
    mixes all 2048 features, so a difference in any of them still shows."""
    from pytorch_fid.fid_score import calculate_frechet_distance

    projection = np.random.default_rng(3).normal(size=(2048, FID_DIMS))
    our_stats = [gaussian_stats(features @ projection) for features, _ in ours]
    their_stats = [(f @ projection).mean(axis=0) for f in pytorch_fid_features]
    their_covs = [np.cov(f @ projection, rowvar=False) for f in pytorch_fid_features]
    expected = calculate_frechet_distance(their_stats[0], their_covs[0], their_stats[1], their_covs[1])
    fid = frechet_distance(*our_stats[0], *our_stats[1])
    assert fid > 1.0
    assert fid == pytest.approx(float(expected), rel=1e-4)


def test_network_and_logits_equal_torch_fidelity(weights_path, extractor):
    """torch-fidelity resizes like TF1 and scales uint8 by (x - 128) / 128, unlike pytorch-fid, so
    we compare at 299 px (its resize is then the identity, as is ours) on its scaling."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    reference = FeatureExtractorInceptionV3("inception-v3-compat", ["2048", "logits_unbiased", "logits"],
                                            feature_extractor_weights_path=str(weights_path))
    images = torch.from_numpy(np.random.default_rng(4).integers(0, 256, (2, 3, 299, 299), dtype=np.uint8))
    with torch.inference_mode():
        expected_features, expected_unbiased, expected_biased = reference(images)
        features = extractor.network((images.float() - 128) / 128)
        unbiased = extractor.network.class_logits(features, bias=False)
        biased = extractor.network.class_logits(features, bias=True)
    assert relative_error(features.numpy(), expected_features.numpy()) < 1e-5
    assert relative_error(unbiased.numpy(), expected_unbiased.numpy()) < 1e-5
    assert relative_error(biased.numpy(), expected_biased.numpy()) < 1e-5


# ---------------------------------------------------------------------------- embed


def test_embed_logits_are_the_fc_layer_without_bias_by_default(ours, weights_path):
    state = torch.load(weights_path, weights_only=True)
    features, logits = ours[0]
    assert logits.shape == (IMAGES_PER_SET, 1008) and logits.dtype == np.float32
    expected = features @ state["fc.weight"].double().numpy().T
    assert relative_error(logits, expected) < 1e-5
    assert relative_error(logits, expected + state["fc.bias"].double().numpy()) > 1e-2


def test_embed_gives_biased_logits_or_none_on_request(extractor, image_sets, ours):
    images = image_sets[0][:1]
    features, biased = extractor.embed(images, batch_size=1, logits="biased")
    unbiased = ours[0][1][:1]
    bias = extractor.network.fc.bias.double().numpy()
    assert relative_error(biased, unbiased + bias) < 1e-5
    assert extractor.embed(images, batch_size=1, logits=None)[1] is None


def test_gray_images_are_tiled_to_three_channels(extractor, image_sets, ours):
    gray = image_sets[0][:2]  # (2, 28, 28, 1)
    rgb, _ = extractor.embed(np.repeat(gray, 3, axis=-1), batch_size=2, logits=None)
    assert relative_error(rgb, ours[0][0][:2]) < 1e-5  # float32 rounding: another batch size


@pytest.mark.parametrize("size", [32, 64])
def test_any_input_size_is_resized_to_299(extractor, size):
    seen = []
    hook = extractor.network.Conv2d_1a_3x3.register_forward_pre_hook(lambda _, args: seen.append(args[0].shape))
    try:
        features, logits = extractor.embed(gray_images(1, size, 256, seed=size), batch_size=1)
    finally:
        hook.remove()
    assert seen == [torch.Size([1, 3, 299, 299])]
    assert features.shape == (1, 2048) and np.isfinite(features).all()
    assert logits.shape == (1, 1008)


def test_embed_rejects_images_that_are_not_uint8_nhwc(extractor):
    with pytest.raises(ValueError, match="uint8"):
        extractor.embed(np.zeros((1, 28, 28, 1), dtype=np.float32), batch_size=1)


# ---------------------------------------------------------------------------- the weights file


def test_hub_path_follows_torch_home(torch_home, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    assert hub_weights_path() == torch_home / "hub" / "checkpoints" / WEIGHTS_FILE


@pytest.mark.parametrize("configured", [None, ""])
def test_resolve_weights_finds_the_hub_cache_file_when_unset(torch_home, weights_path, monkeypatch, configured):
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    assert resolve_weights(configured) == weights_path


def test_resolve_weights_prefers_the_configured_path(weights_path, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_home"))
    assert resolve_weights(str(weights_path)) == weights_path


def test_missing_weights_say_where_we_looked_and_where_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_home"))
    hub_path = tmp_path / "empty_home" / "hub" / "checkpoints" / WEIGHTS_FILE
    with pytest.raises(InceptionWeightsMissing) as caught:
        resolve_weights(None)
    message = str(caught.value)
    assert isinstance(caught.value, UserError) and "\n" not in message
    for part in (WEIGHTS_FILE, WEIGHTS_URL, str(hub_path), WEIGHTS_KEY):
        assert part in message


def test_a_configured_path_that_does_not_exist_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_home"))
    configured = tmp_path / "nowhere" / WEIGHTS_FILE
    with pytest.raises(InceptionWeightsMissing, match=re.escape(str(configured))):
        resolve_weights(str(configured))


def test_a_corrupt_weights_file_is_a_user_error_naming_it(tmp_path):
    path = tmp_path / WEIGHTS_FILE
    path.write_bytes(b"not a torch file")
    with pytest.raises(UserError, match=re.escape(str(path))):
        InceptionFeatures(path, device="cpu")


def test_weights_of_the_wrong_shapes_are_a_user_error_naming_the_file(tmp_path, weights_path):
    state = torch.load(weights_path, weights_only=True)
    state["fc.weight"] = torch.zeros(1000, 2048)  # torchvision's ImageNet head, not the TF graph's
    path = tmp_path / "imagenet_head.pth"
    torch.save(state, path)
    with pytest.raises(UserError, match=f"{re.escape(str(path))}.*fc.weight"):
        load_network(path)


def test_weights_saved_without_batchnorm_counters_still_load(tmp_path, weights_path):
    """Files written by old torch versions lack num_batches_tracked; BatchNorm fills it in."""
    state = {name: value for name, value in torch.load(weights_path, weights_only=True).items()
             if not name.endswith("num_batches_tracked")}
    path = tmp_path / "old_format.pth"
    torch.save(state, path)
    network = load_network(path)
    assert torch.equal(network.fc.weight, state["fc.weight"])


def test_file_sha256_matches_hashlib(weights_path, extractor):
    expected = hashlib.sha256(weights_path.read_bytes()).hexdigest()
    assert file_sha256(weights_path) == expected == extractor.sha256
    assert weights_id(weights_path) == expected[:12]
    assert extractor.weights_path == weights_path
