import pytest
import torch

from landscape.errors import LandscapeError
from landscape.models import create_model, list_models, register_model


def conv(cin, cout, k):
    return cin * cout * k * k + cout  # weights + bias


def expected_wrn_params(depth, width, norm, in_ch=3, n_classes=10):
    """Parameter count of the JEM-family WRN, counted by hand from its definition."""
    n = (depth - 4) // 6
    bn = (lambda c: 2 * c) if norm == "batch" else (lambda c: 0)
    stages = [16, 16 * width, 32 * width, 64 * width]
    total = conv(in_ch, 16, 3)
    cin = 16
    for s in stages[1:]:
        for i in range(n):
            total += bn(cin) + conv(cin, s, 3) + bn(s) + conv(s, s, 3)
            if cin != s or i == 0 and s != stages[1]:
                total += conv(cin, s, 1)
            cin = s
    total += bn(stages[3])
    total += stages[3] * n_classes + n_classes  # class_output
    total += stages[3] + 1  # energy_output
    return total


def count(net):
    return sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize("depth,width,norm", [(10, 1, "none"), (16, 2, "batch"), (22, 4, "none"), (28, 10, "none"),
                                              (28, 10, "batch"), (34, 2, "batch")])
def test_wrn_parameter_counts(depth, width, norm):
    net = create_model("wrn", depth=depth, width=width, norm=norm)
    assert count(net) == expected_wrn_params(depth, width, norm)


def test_wrn_28_10_is_about_36_5_million():
    n = count(create_model("wrn", depth=28, width=10))
    assert 36.4e6 < n < 36.6e6


def test_wrn_keys_follow_the_jem_family_layout():
    jem = create_model("wrn", depth=10, width=2, norm="none").state_dict()
    assert {"f.conv1.weight", "f.conv1.bias", "f.layer1.0.conv1.weight", "f.layer1.0.conv2.bias",
            "f.layer2.0.shortcut.0.weight", "class_output.weight", "energy_output.weight"} <= set(jem)
    assert not any(".bn" in k for k in jem)  # JEM: no normalisation layers
    sada = create_model("wrn", depth=10, width=2, norm="batch").state_dict()
    assert {"f.bn1.running_mean", "f.layer1.0.bn1.weight", "f.layer3.0.bn2.num_batches_tracked"} <= set(sada)


@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 28, 28)])
def test_wrn_forward_shapes(shape):
    net = create_model("wrn", depth=10, width=1, in_channels=shape[0], n_classes=7).eval()
    assert net(torch.rand(2, *shape)).shape == (2, 7)


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32)])
def test_smallcnn_handles_its_input_sizes(shape):
    net = create_model("smallcnn", in_channels=shape[0], n_classes=10, width=8)
    assert net(torch.rand(3, *shape)).shape == (3, 10)
    assert net.arch_kwargs["in_channels"] == shape[0] and net.arch_kwargs["width"] == 8


def test_registry():
    assert {"wrn", "smallcnn"} <= set(list_models())
    with pytest.raises(LandscapeError, match="unknown architecture 'resnet999'"):
        create_model("resnet999")
    with pytest.raises(LandscapeError, match="unknown \\['depthh'\\]"):
        create_model("wrn", depthh=28)
    with pytest.raises(LandscapeError, match="depth must be 6n\\+4"):
        create_model("wrn", depth=27)
    with pytest.raises(LandscapeError, match="norm must be one of"):
        create_model("wrn", depth=10, norm="group")
    with pytest.raises(RuntimeError, match="registered twice"):
        register_model("wrn")(lambda: None)


def test_create_model_records_full_arguments():
    net = create_model("wrn", depth=16, width=2)
    assert net.arch_name == "wrn"
    assert net.arch_kwargs == {"depth": 16, "width": 2, "norm": "none", "dropout": 0.0, "in_channels": 3,
                               "n_classes": 10, "leak": 0.2, "energy_head": True}
