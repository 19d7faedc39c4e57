"""The convolution block both networks are built from."""

from torch import nn

_LAYERS = {2: (nn.Conv2d, nn.BatchNorm2d), 3: (nn.Conv3d, nn.BatchNorm3d)}


def double_conv(in_channels: int, out_channels: int, dims: int) -> nn.Sequential:
    """Two 3x3(x3) convolutions, each followed by BatchNorm and ReLU (the paper's encoder/decoder block);
    ``dims`` 2 for the U-Net's slices, 3 for the verifier's patches."""
    conv, norm = _LAYERS[dims]
    return nn.Sequential(
        conv(in_channels, out_channels, 3, padding=1, bias=False),
        norm(out_channels),
        nn.ReLU(inplace=True),
        conv(out_channels, out_channels, 3, padding=1, bias=False),
        norm(out_channels),
        nn.ReLU(inplace=True),
    )
