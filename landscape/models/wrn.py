"""Wide-ResNet of the JEM family (Zagoruyko & Komodakis 2016, as used by JEM,
JEM++, SADA-JEM and EB-JDAT).

Parameter names follow the JEM family's checkpoints, so their state_dicts load
with prefix handling alone (DESIGN.md section 2)::

    f.conv1.{weight,bias}
    f.layer{1,2,3}.{i}.{bn1,conv1,bn2,conv2,shortcut.0}.*
    f.bn1.*                       (BatchNorm variants only)
    class_output.{weight,bias}    the classifier head
    energy_output.{weight,bias}   JEM's unused energy head (kept so weights load)

Pre-activation blocks, LeakyReLU(0.2), 3x3 convolutions with biases, a final
average pool of 8 (global for 32x32 inputs).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import LandscapeError
from .registry import register_model

NORMS = ("none", "batch")


def _norm(channels: int, norm: str) -> nn.Module:
    return nn.BatchNorm2d(channels) if norm == "batch" else nn.Identity()


class WideBasic(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int, norm: str, dropout: float, leak: float):
        super().__init__()
        self.bn1 = _norm(in_planes, norm)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, padding=1, bias=True)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.bn2 = _norm(planes, norm)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=True)
        self.act = nn.LeakyReLU(leak)
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride=stride, bias=True))
        else:
            self.shortcut = nn.Sequential()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.dropout(self.conv1(self.act(self.bn1(x))))
        out = self.conv2(self.act(self.bn2(out)))
        return out + self.shortcut(x)


class WRNTrunk(nn.Module):
    """The feature extractor (everything under ``f.``); returns pooled features."""

    def __init__(self, depth: int, width: int, norm: str, dropout: float, in_channels: int, leak: float):
        super().__init__()
        n = (depth - 4) // 6
        stages = [16, 16 * width, 32 * width, 64 * width]
        self.conv1 = nn.Conv2d(in_channels, stages[0], 3, padding=1, bias=True)
        in_planes = stages[0]
        layers = []
        for stage, stride in zip(stages[1:], (1, 2, 2)):
            blocks = []
            for i in range(n):
                blocks.append(WideBasic(in_planes, stage, stride if i == 0 else 1, norm, dropout, leak))
                in_planes = stage
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = layers
        self.bn1 = _norm(stages[3], norm)
        self.act = nn.LeakyReLU(leak)
        self.last_dim = stages[3]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layer3(self.layer2(self.layer1(self.conv1(x))))
        out = self.act(self.bn1(out))
        # JEM pools with a fixed window of 8, which is global on 32x32 inputs;
        # global pooling is the same there and also serves 28x28 inputs.
        return F.adaptive_avg_pool2d(out, 1).flatten(1)


class WideResNet(nn.Module):
    """Wide-ResNet of the JEM family: WRN-depth-width, LeakyReLU(0.2), conv biases."""

    def __init__(self, depth: int = 28, width: int = 10, norm: str = "none", dropout: float = 0.0,
                 in_channels: int = 3, n_classes: int = 10, leak: float = 0.2, energy_head: bool = True):
        super().__init__()
        if depth < 10 or (depth - 4) % 6 != 0:
            raise LandscapeError(f"WRN depth must be 6n+4 with n >= 1 (10, 16, 22, 28, 34, 40...), got {depth}")
        if width < 1:
            raise LandscapeError(f"WRN width must be >= 1, got {width}")
        if norm not in NORMS:
            raise LandscapeError(f"WRN norm must be one of {NORMS}, got {norm!r}")
        if not 0.0 <= dropout < 1.0:
            raise LandscapeError(f"dropout must be in [0, 1), got {dropout}")
        self.f = WRNTrunk(depth, width, norm, dropout, in_channels, leak)
        self.class_output = nn.Linear(self.f.last_dim, n_classes)
        # JEM's unnormalised-density head: never used for energies here (the
        # energy is the logsumexp of the class logits) but kept so weights load.
        self.energy_output = nn.Linear(self.f.last_dim, 1) if energy_head else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.class_output(self.f(x))


@register_model("wrn")
def wrn(depth: int = 28, width: int = 10, norm: str = "none", dropout: float = 0.0,
        in_channels: int = 3, n_classes: int = 10, leak: float = 0.2, energy_head: bool = True) -> WideResNet:
    """Wide-ResNet of the JEM family (JEM: norm none; JEM++/SADA-JEM: norm batch)."""
    return WideResNet(depth, width, norm, dropout, in_channels, n_classes, leak, energy_head)
