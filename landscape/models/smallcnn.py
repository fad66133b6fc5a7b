"""A small convolutional network for 28x28 (Fashion-MNIST, MNIST), 32x32 and 8x8
inputs that trains at thousands of images per second on a CPU.

Two stages of two 3x3 convolutions with average pooling, a fifth convolution,
adaptive average pooling to 4x4 (so any input size of at least 4x4 works) and a
two-layer head. No normalisation layers, so SGLD and adversarial search
see the same function in train and eval mode (as JEM recommends for BN-free
nets), and a smooth-ish activation (LeakyReLU 0.2 by default, or SiLU) so input
gradients are informative for SGLD.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import LandscapeError
from .registry import register_model

ACTIVATIONS = {"leaky_relu": lambda: nn.LeakyReLU(0.2), "relu": nn.ReLU, "silu": nn.SiLU}


class SmallCNN(nn.Module):
    def __init__(self, in_channels: int = 1, n_classes: int = 10, width: int = 32, hidden: int = 256,
                 activation: str = "leaky_relu", dropout: float = 0.0):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise LandscapeError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        if width < 1 or hidden < 1:
            raise LandscapeError(f"width and hidden must be >= 1, got width={width} hidden={hidden}")
        act = ACTIVATIONS[activation]
        w = width
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, w, 3, padding=1), act(),
            nn.Conv2d(w, w, 3, padding=1), act(),
            nn.AvgPool2d(2),
            nn.Conv2d(w, 2 * w, 3, padding=1), act(),
            nn.Conv2d(2 * w, 2 * w, 3, padding=1), act(),
            nn.AvgPool2d(2),
            nn.Conv2d(2 * w, 4 * w, 3, padding=1), act(),
            nn.AdaptiveAvgPool2d(4),
            nn.Flatten(),
        )
        self.head = nn.Sequential(
            nn.Linear(4 * w * 16, hidden), act(),
            nn.Dropout(dropout) if dropout > 0 else nn.Identity(),
            nn.Linear(hidden, n_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] < 4 or x.shape[-2] < 4:
            raise LandscapeError(f"smallcnn needs inputs of at least 4x4 pixels, got {tuple(x.shape[-2:])}")
        return self.head(self.features(x))


@register_model("smallcnn")
def smallcnn(in_channels: int = 1, n_classes: int = 10, width: int = 32, hidden: int = 256,
             activation: str = "leaky_relu", dropout: float = 0.0) -> SmallCNN:
    """Small conv net for 28x28 / 32x32 (and 8x8) inputs; fast on CPU."""
    return SmallCNN(in_channels, n_classes, width, hidden, activation, dropout)
