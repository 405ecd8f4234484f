"""Prior networks: shapes, specs, rebuilding, custom modules."""

import pytest
import torch
from torch import nn

from torchgenetics.deepwas.module import DeepWASModule
from torchgenetics.deepwas.priors import ConvPrior, LinearPrior, MLPPrior, build_prior
from torchgenetics.errors import InputError

DT = torch.float64


def test_linear_prior_is_log_linear():
    prior = LinearPrior(3)
    with torch.no_grad():
        prior.linear.weight.copy_(torch.tensor([[1.0, -2.0, 0.5]], dtype=DT))
        prior.linear.bias.fill_(0.25)
    x = torch.tensor([[1.0, 1.0, 2.0]], dtype=DT)
    assert prior(x).tolist() == [pytest.approx(0.25)]


def test_mlp_and_conv_shapes_and_specs():
    mlp = MLPPrior(4, hidden=(8, 8), dropout=0.1)
    assert mlp(torch.randn(5, 4, dtype=DT)).shape == (5,)
    assert mlp(torch.randn(5, 2, 2, dtype=DT)).shape == (5,)  # flattened
    conv = ConvPrior(2, 7, channels=(4, 4), kernel_size=3, hidden=8)
    assert conv(torch.randn(6, 2, 7, dtype=DT)).shape == (6,)
    with pytest.raises(InputError, match="windowed"):
        conv(torch.randn(6, 14, dtype=DT))
    for prior, shape in ((mlp, (4,)), (conv, (2, 7)), (LinearPrior(4), (4,))):
        twin = build_prior(prior.spec(), feature_shape=shape)
        twin.load_state_dict(prior.state_dict())
        x = torch.randn(3, *shape, dtype=DT)
        prior.eval()
        twin.eval()
        assert torch.allclose(prior(x), twin(x))


def test_build_prior_checks():
    with pytest.raises(InputError, match="kind"):
        build_prior({"kind": "transformer"}, (3,))
    with pytest.raises(InputError, match="windowed"):
        build_prior({"kind": "conv"}, (3,))
    with pytest.raises(InputError, match="bad arguments"):
        build_prior({"kind": "mlp", "depth": 3}, (3,))
    assert build_prior({"kind": "mlp", "hidden": [5]}, (2, 3)).n_features == 6


def test_any_module_plugs_in():
    class Quadratic(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Parameter(torch.tensor(0.5, dtype=DT))

        def forward(self, x):
            return self.a * x[:, 0] ** 2

    module = DeepWASModule(Quadratic(), log_scale=-3.0)
    x = torch.tensor([[2.0], [0.0]], dtype=DT)
    assert module.log_variance(x).tolist() == [pytest.approx(-1.0), pytest.approx(-3.0)]
    bad = DeepWASModule(nn.Linear(1, 2, dtype=DT))
    with pytest.raises(InputError, match="one log-variance per variant"):
        bad.log_variance(x)
