"""Latent arithmetic: the attributes measure what they say, directions point the right way, and walking
a trained generator along a direction changes its samples' attribute in that direction."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gan.arithmetic import WALK, Explorer, attributes, direction, parse
from gan.errors import UserError


def _line(points: list[tuple[int, int]], width: int = 1) -> np.ndarray:
    image = np.zeros((28, 28, 1), dtype=np.uint8)
    for y, x in points:
        image[y, max(0, x - width // 2):x + (width + 1) // 2] = 255
    return image


def test_thickness_is_the_share_of_ink_and_slant_leans_right_when_positive():
    lean_right = _line([(y, 20 - y // 2) for y in range(4, 24)])  # top right to bottom left: "/"
    lean_left = _line([(y, 8 + y // 2) for y in range(4, 24)])  # "\"
    upright = _line([(y, 14) for y in range(4, 24)])
    thick = _line([(y, 14) for y in range(4, 24)], width=3)
    found = attributes(np.stack([lean_right, lean_left, upright, thick]))
    assert found["slant"][0] > 0.3 and found["slant"][1] < -0.3 and abs(found["slant"][2]) < 1e-6
    assert found["thickness"][3] == pytest.approx(3 * found["thickness"][2])


def test_a_direction_points_from_the_low_to_the_high_end_of_the_attribute():
    z = torch.randn(400, 8, generator=torch.Generator().manual_seed(0))
    d = direction(z, (2 * z[:, 3] - z[:, 5]).numpy())
    assert d[3] > 1.0 and d[5] < -0.4 and d[[0, 1, 2, 4, 6, 7]].abs().max() < 0.35


def test_class_expressions_parse_into_signed_terms_and_bad_ones_say_how_to_write_them():
    assert parse("7 - 1 + 4") == [(1, 7), (-1, 1), (1, 4)]
    assert parse("3") == [(1, 3)]
    with pytest.raises(UserError, match="write classes joined by"):
        parse("7 minus 1")


class _InkGenerator(torch.nn.Module):
    """A generator whose first latent sets the stroke width and second the lean: a known answer."""

    latent_dim = 4

    def forward(self, z: torch.Tensor, y=None) -> torch.Tensor:
        rows = torch.arange(28.0).view(1, 28, 1)
        cols = torch.arange(28.0).view(1, 1, 28)
        centre = 14 + z[:, 1].view(-1, 1, 1) * (14 - rows) * 0.3  # lean right with z_1 > 0
        width = 1.5 + torch.sigmoid(z[:, 0]).view(-1, 1, 1) * 3
        ink = ((cols - centre).abs() < width) & (rows > 4) & (rows < 24)
        return (ink.float() * 2 - 1).unsqueeze(1)


def test_walking_along_a_found_direction_moves_the_attribute_that_way():
    explorer = Explorer(_InkGenerator().eval(), 4, 500, seed=0)
    for name in ("thickness", "slant"):
        _, measured = explorer.walks(name)
        means = measured.mean(0)
        assert np.all(np.diff(means) > 0), (name, means, WALK)
