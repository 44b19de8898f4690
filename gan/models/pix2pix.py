"""pix2pix (Isola, Zhu, Zhou & Efros 2017, "Image-to-Image Translation with Conditional Adversarial Networks").

G is a U-Net: 4x4 stride-2 convs with LeakyReLU(0.2) halve the side down to a bottleneck, 4x4
stride-2 transposed convs with ReLU double it back, and each decoder layer reads the encoder's
map of its side concatenated to its input (skip connections), so the fine detail of the source
reaches the output without squeezing through the bottleneck. Batch norm everywhere but on the
first and the innermost encoder layer, tanh out. G takes no z: dropout 0.5 in the decoder layers
next to the bottleneck, on at training time, is its noise (the paper's; it notes that G then
learns to ignore most of it).

The depth follows the image side: halve while it is even, so 28 -> 14 -> 7 (2 downsamplings,
bottleneck side 7), 32 -> 1 (5) and 64 -> 1 (6). pix2pix's 256 px U-Net ends at 1x1, where every
output pixel depends on every source pixel. A 7x7 bottleneck would leave each output pixel an
18 px receptive field on a 28 px image, so when the bottleneck side is > 1 two 3x3 convs (stride
1, padding 1, ReLU) mix it: the receptive field grows to 34 px and the central pixels see the
whole source. A 28 px image has room for only two decoder layers, the outer of which writes the
image, so it gets one dropout layer; 32 and 64 px get the paper's three.

D is the PatchGAN of pix2pix: a fully convolutional net whose scores each judge one `patch` x
`patch` window (1: PixelGAN, 16, 34, 70: NLayerDiscriminator with 1, 2, 3 stride-2 convs), or
with patch 0 strided convs and a linear head give one score on the whole image. The conditional
D judges the (source, image) pair stacked on channels. Weights start as N(0, 0.02), batch norm
gains as N(1, 0.02) (pix2pix's "normal" init).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from gan.models.dcgan import normal_init

DROPOUT_LAYERS = 3  # decoder layers next to the bottleneck with dropout (the paper's "CD512-CD512-CD512")
PATCH_LAYERS = {16: 1, 34: 2, 70: 3}  # receptive field -> NLayerDiscriminator's n_layers


def _plan(image_size: int) -> tuple[int, int]:
    """(number of stride-2 downsamplings, bottleneck side): halve while the side is even."""
    side, downs = image_size, 0
    while side % 2 == 0 and side > 1:
        side, downs = side // 2, downs + 1
    if downs == 0:
        raise ValueError(f"the U-Net halves the image side at least once, so it needs an even data.image_size, "
                         f"got {image_size}")
    return downs, side


class UNet(nn.Module):
    """Source image (N, source_channels, H, W) -> image (N, channels, H, W), both in [-1, 1]."""

    def __init__(self, image_size: int, source_channels: int, channels: int, width: int):
        super().__init__()
        if source_channels < 1:
            raise ValueError(f"the U-Net translates a source image: need source_channels >= 1, got {source_channels}")
        self.depth, self.bottleneck_side = _plan(image_size)
        widths = [width * min(2 ** i, 8) for i in range(self.depth)]
        innermost = self.depth - 1

        # The first layer reads the source itself: no activation before it, no batch norm after it.
        down: list[nn.Module] = [nn.Conv2d(source_channels, widths[0], 4, 2, 1)]
        for i in range(1, self.depth):
            layers: list[nn.Module] = [nn.LeakyReLU(0.2),  # not in place: the encoder's maps are also the skips
                                       nn.Conv2d(widths[i - 1], widths[i], 4, 2, 1, bias=i == innermost)]
            if i != innermost:  # BN's shift replaces the bias; the innermost map can be 1x1, which BN would flatten
                layers.append(nn.BatchNorm2d(widths[i]))
            down.append(nn.Sequential(*layers))
        self.down = nn.ModuleList(down)

        self.bottleneck: nn.Module = nn.Identity()
        if self.bottleneck_side > 1:  # see the module docstring: widen the receptive field to the whole image
            c = widths[innermost]
            self.bottleneck = nn.Sequential(nn.ReLU(), nn.Conv2d(c, c, 3, 1, 1), nn.ReLU(), nn.Conv2d(c, c, 3, 1, 1))

        up: list[nn.Module] = []  # innermost first, the order of the forward pass
        for i in range(innermost, -1, -1):
            in_ch = widths[i] if i == innermost else 2 * widths[i]  # the innermost layer has no skip beside it
            if i == 0:
                up.append(nn.Sequential(nn.ReLU(), nn.ConvTranspose2d(in_ch, channels, 4, 2, 1), nn.Tanh()))
                continue
            layers = [nn.ReLU(), nn.ConvTranspose2d(in_ch, widths[i - 1], 4, 2, 1, bias=False),
                      nn.BatchNorm2d(widths[i - 1])]
            if innermost - i < DROPOUT_LAYERS:
                layers.append(nn.Dropout(0.5))
            up.append(nn.Sequential(*layers))
        self.up = nn.ModuleList(up)
        normal_init(self)  # pix2pix's "normal" init is DCGAN's

    def forward(self, source: torch.Tensor) -> torch.Tensor:
        skips = []
        h = source
        for layer in self.down:
            h = layer(h)  # (N, w_i, H / 2^(i+1), W / 2^(i+1))
            skips.append(h)
        h = self.up[0](self.bottleneck(skips.pop()))  # the innermost map goes through, not beside
        for layer in self.up[1:]:
            h = layer(torch.cat([skips.pop(), h], dim=1))  # (N, 2 w_i, ...) -> twice the side
        return h  # (N, C, H, W) in [-1, 1]


class PatchDiscriminator(nn.Module):
    """(image, source) -> (N, P) logits, one per patch; P = 1 for patch 0 (the whole image)."""

    def __init__(self, image_size: int, channels: int, source_channels: int, width: int, patch: int,
                 batch_norm: bool = True):
        super().__init__()
        self.source_channels = source_channels
        self.patch = patch
        in_ch = channels + source_channels

        def norm(ch: int) -> list[nn.Module]:
            return [nn.BatchNorm2d(ch)] if batch_norm else []

        layers: list[nn.Module]
        self.head: nn.Module = nn.Flatten(1)  # (N, 1, h, w) -> (N, h * w)
        if patch == 1:  # PixelGAN: 1x1 convs judge each pixel's colour alone
            layers = [nn.Conv2d(in_ch, width, 1), nn.LeakyReLU(0.2),
                      nn.Conv2d(width, 2 * width, 1, bias=not batch_norm), *norm(2 * width), nn.LeakyReLU(0.2),
                      nn.Conv2d(2 * width, 1, 1)]
        elif patch in PATCH_LAYERS:
            n_layers = PATCH_LAYERS[patch]
            layers = [nn.Conv2d(in_ch, width, 4, 2, 1), nn.LeakyReLU(0.2)]
            ch = width
            for i in range(1, n_layers + 1):
                out = width * min(2 ** i, 8)
                stride = 2 if i < n_layers else 1  # n_layers stride-2 convs in all, then a stride-1 one
                layers += [nn.Conv2d(ch, out, 4, stride, 1, bias=not batch_norm), *norm(out), nn.LeakyReLU(0.2)]
                ch = out
            layers.append(nn.Conv2d(ch, 1, 4, 1, 1))
        elif patch == 0:  # DCGAN-like: stride down to about 4x4, then one linear score over every position
            layers = [nn.Conv2d(in_ch, width, 4, 2, 1), nn.LeakyReLU(0.2)]
            ch, side, i = width, image_size // 2, 1
            while side >= 8:
                out = width * min(2 ** i, 8)
                layers += [nn.Conv2d(ch, out, 4, 2, 1, bias=not batch_norm), *norm(out), nn.LeakyReLU(0.2)]
                ch, side, i = out, side // 2, i + 1
            self.head = nn.Sequential(nn.Flatten(1), nn.Linear(ch * side * side, 1))
        else:
            raise ValueError(f"model.patch must be one of 0, 1, 16, 34, 70, got {patch}")
        self.body = nn.Sequential(*layers)
        if output_side(self.body, image_size) < 1:
            raise ValueError(f"a patch-{patch} D leaves no score on {image_size} px images; "
                             f"set a smaller model.patch or a larger data.image_size")
        normal_init(self)  # pix2pix's "normal" init is DCGAN's

    def features(self, x: torch.Tensor, source: torch.Tensor | None = None) -> list[torch.Tensor]:
        """The activations after each LeakyReLU of the body: what feature matching compares (pix2pixHD)."""
        h = self._pair(x, source)
        out = []
        for layer in self.body:
            h = layer(h)
            if isinstance(layer, nn.LeakyReLU):
                out.append(h)
        return out

    def forward(self, x: torch.Tensor, source: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.body(self._pair(x, source)))  # (N, P) logits

    def _pair(self, x: torch.Tensor, source: torch.Tensor | None) -> torch.Tensor:
        if self.source_channels and source is None:
            raise ValueError(f"this D judges (source, image) pairs: pass the source ({self.source_channels} channels)")
        if not self.source_channels and source is not None:
            raise ValueError("this D judges images alone (source_channels=0) but was given a source")
        if source is not None:
            x = torch.cat([source, x], dim=1)  # (N, source_channels + C, H, W): the pair, judged together
        return x


def _convs(module_or_layers: nn.Module | Iterable[nn.Module]) -> list[nn.Conv2d]:
    modules = module_or_layers.modules() if isinstance(module_or_layers, nn.Module) else module_or_layers
    return [m for m in modules if isinstance(m, nn.Conv2d)]


def receptive_field(module_or_layers: nn.Module | Iterable[nn.Module]) -> int:
    """Side in pixels of the input window that one output position of a chain of square convs sees.

    Counts the Conv2d layers only, in order (a Sequential's order is its forward order): each adds
    (effective kernel - 1) times the product of the strides before it. Pointwise layers change
    nothing; a Linear head on top would make it the whole image, which this does not count.
    """
    field, jump = 1, 1
    for conv in _convs(module_or_layers):
        field += conv.dilation[0] * (conv.kernel_size[0] - 1) * jump
        jump *= conv.stride[0]
    return field


def output_side(module_or_layers: nn.Module | Iterable[nn.Module], side: int) -> int:
    """The side of the map a chain of square convs makes from a `side` x `side` input."""
    for conv in _convs(module_or_layers):
        kernel = conv.dilation[0] * (conv.kernel_size[0] - 1) + 1
        side = (side + 2 * conv.padding[0] - kernel) // conv.stride[0] + 1
    return side


def check_unconditional(arch: str, num_classes: int, pack: int) -> None:
    """The image-to-image models take their condition from an image: no class labels, no packed D."""
    if num_classes:
        raise ValueError(f"model.arch={arch} is conditioned on its input image, not on class labels "
                         f"(num_classes={num_classes}); set model.conditional: false")
    if pack != 1:
        raise ValueError(f"model.arch={arch} does not pack D's input (pack={pack}); set train.pack: 1")


def build(data_shape: tuple[int, ...], latent_dim: int, width: int, *, num_classes: int = 0, pack: int = 1,
          spectral_norm: bool = False, source_channels: int, patch: int = 16) -> tuple[nn.Module, nn.Module]:
    """(U-Net G, PatchGAN D) for target images of data_shape (H, W, C) and sources of `source_channels`.

    latent_dim is ignored: G takes no z (dropout is its noise). D judges (source, image) pairs and
    has no batch norm when spectral norm will be applied to it.
    """
    check_unconditional("unet", num_classes, pack)
    image_size, _, channels = data_shape
    return (UNet(image_size, source_channels, channels, width),
            PatchDiscriminator(image_size, channels, source_channels, width, patch, batch_norm=not spectral_norm))
