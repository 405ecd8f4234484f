"""Mapping functional outcomes onto an evenly spaced power-of-two grid."""

from __future__ import annotations

import pytest
import torch

from torchgenetics.errors import InputError
from torchgenetics.susie.functional.grid import to_grid


def _Y(n, T, seed=0, dtype=torch.float64):
    return torch.randn(n, T, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def test_power_of_two_evenly_spaced_is_unchanged():
    Y = _Y(5, 16)
    Yg, grid = to_grid(Y)
    assert Yg is Y
    assert grid.tolist() == list(range(16))
    pos = torch.arange(16) * 250.0 + 1000.0
    Yg, grid = to_grid(Y, pos)
    assert Yg is Y
    assert torch.equal(grid, pos.double())
    Yg, grid = to_grid(Y[:, :1])  # scalar outcome: T = 1
    assert Yg.shape == (5, 1) and torch.equal(Yg, Y[:, :1]) and grid.tolist() == [0.0]


def test_uneven_positions_are_interpolated_linearly():
    pos = torch.tensor([10.0, 11.0, 15.0, 16.0, 30.0, 31.0, 33.0, 40.0], dtype=torch.float64)
    a, b = torch.tensor([[1.0], [-2.0], [0.5]], dtype=torch.float64), torch.tensor([[0.3], [1.0], [-4.0]],
                                                                                     dtype=torch.float64)
    Y = a + b * pos  # linear in position: reproduced exactly by linear interpolation
    Yg, grid = to_grid(Y, pos)
    assert Yg.shape == (3, 8)
    assert torch.allclose(grid, torch.linspace(10, 40, 8, dtype=torch.float64))
    assert torch.allclose(Yg, a + b * grid, atol=1e-12)


def test_non_power_of_two_and_cap():
    Y = _Y(4, 5)
    Yg, grid = to_grid(Y)
    assert Yg.shape == (4, 8) and grid.shape == (8,)
    assert torch.allclose(Yg[:, 0], Y[:, 0]) and torch.allclose(Yg[:, -1], Y[:, -1])
    # grid point 2 sits at 4 * 2/7 = 8/7 between columns 1 and 2
    w = 8 / 7 - 1
    assert torch.allclose(Yg[:, 2], (1 - w) * Y[:, 1] + w * Y[:, 2], atol=1e-14)
    Yg, grid = to_grid(_Y(2, 40), max_log2=4)
    assert Yg.shape == (2, 16) and grid[0] == 0 and grid[-1] == 39
    Yg, _ = to_grid(_Y(2, 64), max_log2=5)  # a power of two above the cap is reduced too
    assert Yg.shape == (2, 32)
    Yg, _ = to_grid(_Y(2, 2000))
    assert Yg.shape == (2, 1024)


def test_dtype_device_and_gradient_follow_Y():
    Y = _Y(3, 6, dtype=torch.float32).requires_grad_()
    Yg, grid = to_grid(Y, pos=[0, 1, 2, 4, 8, 9])
    assert Yg.dtype == torch.float32 and grid.dtype == torch.float64
    Yg.sum().backward()
    assert Y.grad is not None and torch.allclose(Y.grad.sum(1), torch.full((3,), 8.0))
    Yg, _ = to_grid([[1, 2, 3]])
    assert Yg.dtype == torch.float64


def test_bad_inputs_are_named():
    Y = _Y(4, 6)
    with pytest.raises(InputError, match=r"pos\[3\] = 2 follows pos\[2\] = 5"):
        to_grid(Y, pos=[0, 1, 5, 2, 7, 9])
    with pytest.raises(InputError, match=r"pos\[2\] = 1 follows"):
        to_grid(Y, pos=[0, 1, 1, 2, 7, 9])
    with pytest.raises(InputError, match="expected 6 positions"):
        to_grid(Y, pos=[0, 1, 2])
    with pytest.raises(InputError, match="not finite"):
        to_grid(Y, pos=[0, 1, float("nan"), 2, 7, 9])
    Y_nan = Y.clone()
    Y_nan[2, 4] = float("nan")
    with pytest.raises(InputError, match="row 2"):
        to_grid(Y_nan)
    with pytest.raises(InputError, match="2-D"):
        to_grid(torch.zeros(6))
    with pytest.raises(InputError, match="2-D"):
        to_grid(torch.zeros(2, 3, 4))
    with pytest.raises(InputError, match="no columns"):
        to_grid(torch.zeros(3, 0))
    with pytest.raises(InputError, match="max_log2"):
        to_grid(Y, max_log2=-1)
