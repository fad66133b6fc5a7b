import os

import pytest
import torch

os.environ.setdefault("LANDSCAPE_PROGRESS", "0")
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture
def tiny_cnn():
    """A small CNN for 1x8x8 inputs (digits) wrapped as an EnergyModel."""
    from landscape.energy import EnergyModel
    from landscape.models import create_model

    torch.manual_seed(0)
    net = create_model("smallcnn", in_channels=1, n_classes=10, width=8, hidden=32)
    return EnergyModel(net, "identity", input_shape=(1, 8, 8), n_classes=10).eval()
