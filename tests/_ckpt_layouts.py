"""Checkpoints in each family's on-disk layout, built from tiny WRNs (for the checkpoint tests).

The layouts follow the families' released code (DESIGN.md section 2): JEM's
Wide_ResNet carries an unused ``f.linear``; JEM++'s YOPO Wide_ResNet registers
``f.layer_one`` (= f.conv1) and ``f.other_layers.0-3`` (= f.layer1-3, f.bn1) as
aliases of the same tensors; SADA-JEM has BatchNorm and nothing extra; DataParallel
saves prefix every key with ``module.``. ``jem_reference_logits`` is an
independent functional forward of the JEM-family network (avg_pool2d(8) as in
the original code) used to check the loaded model.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from landscape.models import create_model


def tiny_wrn(norm: str = "none", n_classes: int = 10, in_channels: int = 3, seed: int = 0,
             energy_head: bool = True, depth: int = 10, width: int = 1):
    torch.manual_seed(seed)
    net = create_model("wrn", depth=depth, width=width, norm=norm, n_classes=n_classes, in_channels=in_channels,
                       energy_head=energy_head)
    if norm == "batch":  # non-trivial running statistics, so that buffers must load too
        net.train()
        with torch.no_grad():
            for _ in range(3):
                net(torch.randn(16, in_channels, 32, 32) * 1.5 + 0.3)
    return net.eval()


def jem_layout(net, n_classes: int = 10) -> dict:
    """JEM: the state_dict plus JEM's unused head f.linear (built with its default 10 classes)."""
    sd = dict(net.state_dict())
    last = sd["class_output.weight"].shape[1]
    g = torch.Generator().manual_seed(1)
    sd["f.linear.weight"] = torch.randn(10, last, generator=g)
    sd["f.linear.bias"] = torch.randn(10, generator=g)
    return sd


def jempp_layout(net) -> dict:
    """JEM++ (YOPO model): aliases registered in the order the YOPO Wide_ResNet does."""
    sd = net.state_dict()
    out = {}
    for k, v in sd.items():
        if k.startswith("f.conv1."):
            out[k] = v
            out["f.layer_one." + k[len("f.conv1."):]] = v
    for i in (1, 2, 3):
        for k, v in sd.items():
            if k.startswith(f"f.layer{i}."):
                out[f"f.other_layers.{i - 1}." + k[len(f"f.layer{i}."):]] = v
    for k, v in sd.items():
        if k.startswith("f.bn1."):
            out["f.other_layers.3." + k[len("f.bn1."):]] = v
    for k, v in sd.items():
        out.setdefault(k, v)
    return out


def with_prefix(sd: dict, prefix: str = "module.") -> dict:
    return {prefix + k: v for k, v in sd.items()}


def replay_buffer(n: int = 12, channels: int = 3, seed: int = 2) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, channels, 32, 32, generator=g) * 2 - 1


def jem_reference_logits(sd: dict, pixels: torch.Tensor, depth: int, norm: str) -> torch.Tensor:
    """The JEM-family forward written out with torch.nn.functional on a canonical state_dict."""
    def bn(prefix, h):
        if norm != "batch":
            return h
        return F.batch_norm(h, sd[prefix + ".running_mean"], sd[prefix + ".running_var"], sd[prefix + ".weight"],
                            sd[prefix + ".bias"], False, 0.0, 1e-5)

    x = pixels * 2 - 1
    h = F.conv2d(x, sd["f.conv1.weight"], sd["f.conv1.bias"], padding=1)
    n = (depth - 4) // 6
    for stage, stride in zip((1, 2, 3), (1, 2, 2)):
        for i in range(n):
            p = f"f.layer{stage}.{i}"
            s = stride if i == 0 else 1
            out = F.conv2d(F.leaky_relu(bn(p + ".bn1", h), 0.2), sd[p + ".conv1.weight"], sd[p + ".conv1.bias"], padding=1)
            out = F.conv2d(F.leaky_relu(bn(p + ".bn2", out), 0.2), sd[p + ".conv2.weight"], sd[p + ".conv2.bias"],
                           stride=s, padding=1)
            short = (F.conv2d(h, sd[p + ".shortcut.0.weight"], sd[p + ".shortcut.0.bias"], stride=s)
                     if p + ".shortcut.0.weight" in sd else h)
            h = out + short
    h = F.leaky_relu(bn("f.bn1", h), 0.2)
    h = F.avg_pool2d(h, 8).flatten(1)
    return F.linear(h, sd["class_output.weight"], sd["class_output.bias"])
