"""Loss for tiny lesions: soft Dice over the lesion classes (batch-wise) + class-weighted cross-entropy."""

import torch
from monai.losses import DiceLoss

#: Cross-entropy weights for background, CMB, iron: lesion voxels are rare even in lesion-centred patches.
CLASS_WEIGHTS = (1.0, 3.0, 2.0)


class LesionLoss(torch.nn.Module):
    """``dice + ce``: Dice ignores the background and pools the batch, so a patch without lesions
    does not produce an unstable per-image Dice; cross-entropy keeps every voxel in play."""

    def __init__(self, class_weights: tuple[float, ...] = CLASS_WEIGHTS):
        super().__init__()
        self.dice = DiceLoss(include_background=False, to_onehot_y=True, softmax=True, batch=True)
        self.register_buffer("class_weights", torch.tensor(class_weights, dtype=torch.float32))

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``logits`` (B, 3, H, W) and integer ``target`` (B, H, W)."""
        logits = logits.float()
        ce = torch.nn.functional.cross_entropy(logits, target, weight=self.class_weights)
        return self.dice(logits, target[:, None]) + ce
