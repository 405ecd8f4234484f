"""The torch discrete wavelet transform: exact inverse, orthogonality, filters, layout."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from torchgenetics.errors import InputError
from torchgenetics.susie.functional.wavelets import (
    WAVELETS,
    dwt,
    idwt,
    scale_index,
    wavelet_filter,
    wavelet_matrix,
)

# Daubechies' least asymmetric filter with 5 vanishing moments (wavethresh DaubLeAsymm
# filter.number = 5, the symlet "sym5"), as published to ~1e-12.
SYM5 = [0.027333068345077982, 0.029519490925774643, -0.039134249302383094, 0.1993975339773936,
        0.7234076904024206, 0.6339789634582119, 0.01660210576452232, -0.17532808990845047,
        -0.021101834024758855, 0.019538882735286728]


def _moments(wavelet):
    return 1 if wavelet == "haar" else int(wavelet.lstrip("adl")) // 2


@pytest.mark.parametrize("wavelet", WAVELETS)
def test_round_trip_batched_all_lengths(wavelet):
    g = torch.Generator().manual_seed(1)
    for T in (1, 2, 4, 8, 16, 64):
        x = torch.randn(3, 5, T, generator=g, dtype=torch.float64)
        c = dwt(x, wavelet)
        assert c.shape == x.shape
        assert torch.allclose(idwt(c, wavelet), x, atol=1e-12, rtol=0)
        # orthonormal: energy preserved, also when T is shorter than the filter
        assert torch.allclose(c.square().sum(-1), x.square().sum(-1), rtol=1e-12, atol=0)


@pytest.mark.parametrize("wavelet", ["haar", "d4", "la8", "la10", "la20"])
def test_wavelet_matrix_orthogonal_and_matches_dwt(wavelet):
    g = torch.Generator().manual_seed(2)
    for T in (1, 2, 4, 8, 32, 128):
        W = wavelet_matrix(T, wavelet)
        assert W.shape == (T, T) and W.dtype == torch.float64
        eye = torch.eye(T, dtype=torch.float64)
        assert torch.allclose(W @ W.T, eye, atol=1e-12, rtol=0)
        assert torch.allclose(W.T @ W, eye, atol=1e-12, rtol=0)
        x = torch.randn(7, T, generator=g, dtype=torch.float64)
        assert torch.allclose(dwt(x, wavelet), x @ W.T, atol=1e-12, rtol=0)
        assert torch.allclose(idwt(x, wavelet), x @ W, atol=1e-12, rtol=0)


def test_wavelet_matrix_is_a_copy_in_requested_dtype():
    W = wavelet_matrix(8, "la10", dtype=torch.float32)
    assert W.dtype == torch.float32
    W.zero_()
    assert wavelet_matrix(8, "la10").abs().sum() > 0


def test_haar_closed_form_T4():
    s = 2 ** -0.5
    expected = torch.tensor([[0.5, 0.5, 0.5, 0.5],
                             [0.5, 0.5, -0.5, -0.5],
                             [s, -s, 0.0, 0.0],
                             [0.0, 0.0, s, -s]], dtype=torch.float64)
    assert torch.allclose(wavelet_matrix(4, "haar"), expected, atol=1e-15, rtol=0)
    x = torch.tensor([2.0, -1.0, 4.0, 3.5], dtype=torch.float64)
    hand = torch.tensor([(2 - 1 + 4 + 3.5) / 2, (2 - 1 - 4 - 3.5) / 2, (2 + 1) * s, (4 - 3.5) * s],
                        dtype=torch.float64)
    assert torch.allclose(dwt(x), hand, atol=1e-15, rtol=0)


def _phase_nonlinearity(h):
    w = np.linspace(0, np.pi, 1025)[1:-1]
    phase = np.unwrap(np.angle(np.exp(-1j * np.outer(w, np.arange(len(h)))) @ h))
    design = np.stack([w, np.ones_like(w)], axis=1)
    fit = design @ np.linalg.lstsq(design, phase, rcond=None)[0]
    return np.abs(phase - fit).max()


def test_la10_filter_properties():
    h = wavelet_filter("la10")
    assert len(h) == 10
    assert h.sum() == pytest.approx(math.sqrt(2), abs=1e-14)
    for k in range(5):
        shifted = np.dot(h[2 * k:], h[:len(h) - 2 * k])
        assert shifted == pytest.approx(1.0 if k == 0 else 0.0, abs=1e-14)
    gh = h[::-1] * (-1.0) ** np.arange(10)
    n = np.arange(10.0)
    for k in range(5):  # 5 vanishing moments, and not 6
        assert abs(np.sum(n**k * gh)) < 1e-9 * max(1.0, np.sum(np.abs(n**k * gh)))
    assert abs(np.sum(n**5 * gh)) > 1e-3
    # the published coefficients
    assert np.allclose(h, SYM5, atol=1e-11, rtol=0)
    # same Daubechies polynomial as the extremal phase d10: equal autocorrelations
    d10 = wavelet_filter("d10")
    assert np.allclose(np.correlate(h, h, "full"), np.correlate(d10, d10, "full"), atol=1e-13)
    assert not np.allclose(h, d10) and not np.allclose(h, d10[::-1])
    # and much closer to linear phase
    assert _phase_nonlinearity(h) < 0.5 * _phase_nonlinearity(d10)


@pytest.mark.parametrize("wavelet", WAVELETS)
def test_every_filter_is_orthonormal_with_its_vanishing_moments(wavelet):
    h = wavelet_filter(wavelet)
    N = _moments(wavelet)
    assert len(h) == 2 * N
    assert h.sum() == pytest.approx(math.sqrt(2), abs=1e-13)
    for k in range(N):
        assert np.dot(h[2 * k:], h[:len(h) - 2 * k]) == pytest.approx(float(k == 0), abs=1e-13)
    gh = h[::-1] * (-1.0) ** np.arange(len(h))
    t = (np.arange(len(h)) - (len(h) - 1) / 2) / len(h)  # centred, scaled: well conditioned
    for k in range(N):
        assert abs(np.sum(t**k * gh)) < 1e-11
    assert abs(np.sum(t**N * gh)) > 1e-9


def test_layout_constant_and_alternating_signals():
    T = 32
    scales = scale_index(T)
    const = torch.full((T,), 3.0, dtype=torch.float64)
    alternating = torch.tensor([(-1.0) ** t for t in range(T)], dtype=torch.float64)
    for wavelet in ("haar", "d8", "la10", "la20"):
        c = dwt(const, wavelet)
        assert c[0] == pytest.approx(3.0 * math.sqrt(T), abs=1e-12)
        assert c[1:].abs().max() < 1e-12
        c = dwt(alternating, wavelet)
        finest = scales == int(math.log2(T))
        assert c[~finest].abs().max() < 1e-12
        assert c.square().sum() == pytest.approx(T, abs=1e-10)


def test_scale_index():
    assert scale_index(1).tolist() == [0]
    assert scale_index(2).tolist() == [0, 1]
    assert scale_index(8).tolist() == [0, 1, 2, 2, 3, 3, 3, 3]
    s = scale_index(1024)
    assert s.dtype == torch.long and s.shape == (1024,)
    assert torch.bincount(s).tolist() == [1] + [2 ** (k - 1) for k in range(1, 11)]


def test_single_localised_coefficient_reconstructs_a_wavelet_at_its_scale():
    T = 16
    c = torch.zeros(T, dtype=torch.float64)
    c[12] = 1.0  # finest scale (4), shift 4 of 8
    x = idwt(c, "haar")
    expected = torch.zeros(T, dtype=torch.float64)
    expected[8], expected[9] = 2 ** -0.5, -(2 ** -0.5)
    assert torch.allclose(x, expected, atol=1e-15)


def test_dtype_and_autograd():
    g = torch.Generator().manual_seed(3)
    x32 = torch.randn(4, 16, generator=g, dtype=torch.float32)
    assert dwt(x32, "la10").dtype == torch.float32
    assert torch.allclose(idwt(dwt(x32, "la10"), "la10"), x32, atol=1e-5)
    assert dwt(torch.arange(4)).dtype == torch.float64
    for wavelet, T in (("la8", 4), ("la10", 16), ("haar", 8)):
        x = torch.randn(2, T, generator=g, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(lambda v, w=wavelet: dwt(v, w), (x,))
        assert torch.autograd.gradcheck(lambda v, w=wavelet: idwt(v, w), (x,))


def test_bad_inputs():
    with pytest.raises(InputError, match="power of two"):
        dwt(torch.zeros(3, 6))
    with pytest.raises(InputError, match="power of two"):
        idwt(torch.zeros(0))
    with pytest.raises(InputError, match="power of two"):
        scale_index(12)
    with pytest.raises(InputError, match="unknown wavelet 'la9'"):
        dwt(torch.zeros(4), "la9")
    with pytest.raises(InputError, match="unknown wavelet"):
        wavelet_filter("d22")
    with pytest.raises(InputError, match="scalar"):
        dwt(torch.tensor(1.0))
