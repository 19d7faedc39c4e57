"""The DEEPMIR 2D U-Net (Rashid et al. 2021), with width and depth as parameters."""

import torch
from torch import nn

from .blocks import double_conv


class DeepmirUNet(nn.Module):
    """U-Net on axial slices: ``depth`` resolution levels, filters doubling from ``base_filters``.

    The published network is ``base_filters=32, depth=6`` (32..512 filters, bottleneck 1024 at 8x8
    for 256x256 input). Inputs are modalities x neighbouring slices as channels (2.5D); H and W must be
    multiples of ``2 ** (depth - 1)`` (see :attr:`size_multiple`). Output: per-class logits.
    ``n_classes=3`` is the multiclass model (0 background, 1 CMB, 2 iron deposit); ``n_classes=2`` the
    single-class variant (0 background, 1 lesion), whose lesions are reported with its card's class.
    """

    def __init__(self, in_channels: int, n_classes: int = 3, base_filters: int = 32, depth: int = 6):
        super().__init__()
        if depth < 2:
            raise ValueError("depth must be at least 2")
        widths = [base_filters * 2**level for level in range(depth)]
        self.encoders = nn.ModuleList()
        channels = in_channels
        for width in widths:
            self.encoders.append(double_conv(channels, width, dims=2))
            channels = width
        self.pool = nn.MaxPool2d(2)
        self.upsamplers = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for width in reversed(widths[:-1]):
            self.upsamplers.append(nn.ConvTranspose2d(channels, width, kernel_size=2, stride=2))
            self.decoders.append(double_conv(2 * width, width, dims=2))
            channels = width
        self.head = nn.Conv2d(channels, n_classes, kernel_size=1)
        self.size_multiple = 2 ** (depth - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for level, encoder in enumerate(self.encoders):
            x = encoder(x if level == 0 else self.pool(x))
            skips.append(x)
        x = skips.pop()
        for upsample, decoder in zip(self.upsamplers, self.decoders):
            x = decoder(torch.cat([upsample(x), skips.pop()], dim=1))
        return self.head(x)
