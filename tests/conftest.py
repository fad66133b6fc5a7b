import os

import pytest
import torch

os.environ.setdefault("LANDSCAPE_PROGRESS", "0")
# Tiny models gain nothing from intra-op threads, and on a busy 2-core machine
# oversubscription makes them many times slower: tests run single-threaded.
torch.set_num_threads(1)


@pytest.fixture
def tiny_cnn():
    """A small CNN for 1x8x8 inputs (digits) wrapped as an EnergyModel."""
    from landscape.energy import EnergyModel
    from landscape.models import create_model

    torch.manual_seed(0)
    net = create_model("smallcnn", in_channels=1, n_classes=10, width=8, hidden=32)
    return EnergyModel(net, "identity", input_shape=(1, 8, 8), n_classes=10).eval()


@pytest.fixture(scope="session")
def trained_digits_model():
    """A small CNN trained for a few seconds on digits (test accuracy above 80%)."""
    from torch.nn import functional as F

    from landscape.data import load_dataset, to_tensors
    from landscape.energy import EnergyModel
    from landscape.models import create_model

    torch.manual_seed(0)
    x, y = to_tensors(load_dataset("digits", "train"))
    net = create_model("smallcnn", in_channels=1, n_classes=10, width=8, hidden=32)
    model = EnergyModel(net, "identity", input_shape=(1, 8, 8), n_classes=10, metadata={"name": "digits-cnn"})
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(8):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), 128):
            idx = perm[i:i + 128]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()
