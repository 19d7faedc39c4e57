"""The second stage: a small 3D CNN that looks at a patch around each candidate lesion and says
not a lesion / CMB / iron deposit (after Dou et al., IEEE TMI 2016; microbleednet).

The U-Net finds candidates slice by slice; a microbleed is a sphere and a vein a tube across slices,
which only a 3D view tells apart. Input: the model's modalities on its working grid plus the
candidate's own mask, a patch of :data:`..lesions.patches.PATCH_SHAPE` working voxels around it.
"""

import torch
from torch import nn

from .blocks import double_conv


class CandidateVerifier(nn.Module):
    """One 3D convolution, then two 3D convolution blocks (``base_filters`` doubling), pooled to one vector,
    then class logits: small enough to train on a CPU in minutes.

    The first pooling halves only the in-plane axes, so a grid with slices twice as thick as it is wide
    becomes isotropic."""

    def __init__(self, in_channels: int, n_classes: int = 3, base_filters: int = 8):
        super().__init__()
        widths = [base_filters, 2 * base_filters, 4 * base_filters]
        self.features = nn.Sequential(
            nn.Conv3d(in_channels, widths[0], 3, padding=1, bias=False),
            nn.BatchNorm3d(widths[0]),
            nn.ReLU(inplace=True),
            nn.MaxPool3d((2, 2, 1)),
            double_conv(widths[0], widths[1], dims=3),
            nn.MaxPool3d(2),
            double_conv(widths[1], widths[2], dims=3),
            nn.AdaptiveAvgPool3d(1),
            nn.Flatten(),
        )
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(widths[2], n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
