"""A small CNN trained on the real training split; its penultimate layer is the feature space
of our FID-style scores, a domain-specific stand-in for Inception (like the LeNet FID used on
MNIST), and its predicted labels give class coverage.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gan.images import to_tensor
from gan.runtime import generator_for


class DomainClassifier(nn.Module):
    """Three conv blocks, adaptive max pooling to 2x2, a feature layer and a linear head.

    Input float (N, C, H, W) in [-1, 1], any H = W (28, 32, 64, ...). With num_classes = 0
    there is no head: the network only gives features.
    """

    def __init__(self, channels: int, image_size: int, num_classes: int, feature_dim: int = 128):
        super().__init__()
        self.channels, self.image_size = channels, image_size
        self.num_classes, self.feature_dim = num_classes, feature_dim
        self.body = nn.Sequential(
            *_conv_block(channels, 32), nn.MaxPool2d(2),  # (N, 32, H/2, W/2)
            *_conv_block(32, 64), nn.MaxPool2d(2),  # (N, 64, H/4, W/4)
            *_conv_block(64, 128),
            nn.AdaptiveMaxPool2d(2),  # (N, 128, 2, 2) whatever the image size
            nn.Flatten(),  # (N, 512)
        )
        self.embedding = nn.Linear(128 * 2 * 2, feature_dim)
        self.head = nn.Linear(feature_dim, num_classes) if num_classes > 0 else None

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, feature_dim).

        Taken before the ReLU: a unit that is dead on every image would give a zero-variance
        coordinate and a singular covariance in the Fréchet distance.
        """
        return self.embedding(self.body(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> logits (N, num_classes); (N, 0) when there is no head."""
        return self.classify(self.features(x))

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        """Features (N, feature_dim) -> logits (N, num_classes)."""
        if self.head is None:
            return features.new_zeros(len(features), 0)
        return self.head(F.relu(features))


def _conv_block(in_channels: int, out_channels: int) -> list[nn.Module]:
    return [nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)]


def new_classifier(channels: int, image_size: int, num_classes: int, seed: int,
                   feature_dim: int = 128) -> DomainClassifier:
    """A DomainClassifier whose initial weights depend only on `seed` (global RNGs untouched).

    Untrained and with num_classes = 0, it is the `random` feature extractor (features.extractor:
    random): a weak but fixed embedding, consistent across runs of one seed, so its distances rank
    models on that data set but mean less than a trained one's; gan.selfsupervised starts from it.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return DomainClassifier(channels, image_size, num_classes, feature_dim)


def train_classifier(train_x: np.ndarray, train_y: np.ndarray, num_classes: int, *, epochs: int,
                     batch_size: int, lr: float, seed: int,
                     device: torch.device | str = "cpu") -> DomainClassifier:
    """Train on uint8 (N, H, W, C) images and int labels with Adam and cross-entropy.

    The images stay on the device as one uint8 tensor; each epoch visits them in an order
    drawn from a seeded torch.Generator, so on the CPU the same seed (and thread count)
    gives the same weights bit for bit. Returns the model in eval mode.
    """
    device = torch.device(device)
    if num_classes <= 0 or train_y is None:
        raise ValueError("train_classifier needs labelled data (num_classes > 0)")
    _, size, _, channels = train_x.shape
    model = new_classifier(channels, size, num_classes, seed).to(device).train()
    images = torch.as_tensor(train_x, device=device)  # (N, H, W, C) uint8, 4x smaller than float
    labels = torch.as_tensor(np.asarray(train_y), dtype=torch.int64, device=device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    order_rng = generator_for(seed, "features.batches")
    for _ in range(epochs):
        order = torch.randperm(len(images), generator=order_rng).to(device)
        for start in range(0, len(order), batch_size):
            index = order[start:start + batch_size]
            loss = F.cross_entropy(model(to_tensor(images[index], device)), labels[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return model.eval()


def embed(model: DomainClassifier, images: np.ndarray, *, batch_size: int,
          device: torch.device | str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """uint8 (N, H, W, C) -> features float64 (N, feature_dim) and logits float32 (N, K)."""
    model = model.to(device).eval()
    features, logits = [], []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            x = to_tensor(images[start:start + batch_size], device)  # (B, C, H, W) in [-1, 1]
            hidden = model.features(x)
            features.append(hidden.double().cpu())
            logits.append(model.classify(hidden).float().cpu())
    if not features:
        return np.zeros((0, model.feature_dim)), np.zeros((0, model.num_classes), np.float32)
    return torch.cat(features).numpy(), torch.cat(logits).numpy()


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Share of rows whose largest logit is the true label."""
    return float(np.mean(np.asarray(logits).argmax(axis=1) == np.asarray(labels)))
