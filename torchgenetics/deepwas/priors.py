"""Functional priors: networks mapping a variant's annotations to its log effect variance.

Every prior is an ``nn.Module`` taking features ``(n, ...)`` and returning ``(n,)``
log-variances (before the module's global scale). Any such module plugs into
:class:`~torchgenetics.deepwas.module.DeepWASModule`; the built-in ones also describe
themselves by :meth:`spec` so a fit can be saved and rebuilt by :func:`build_prior`.

* :class:`LinearPrior` -- ``a^T w + b``, the S-LDSC-like parametric baseline
  (linear in the annotations, on the log scale).
* :class:`MLPPrior` -- a multilayer perceptron.
* :class:`ConvPrior` -- 1-D convolutions over windowed feature tracks ``(n, C, L)``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from torchgenetics.errors import InputError

__all__ = ["LinearPrior", "MLPPrior", "ConvPrior", "build_prior", "PRIORS"]

_ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU, "silu": nn.SiLU, "tanh": nn.Tanh}


def _activation(name: str) -> nn.Module:
    if name not in _ACTIVATIONS:
        raise InputError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {name!r}")
    return _ACTIVATIONS[name]()


def _flat(x: torch.Tensor, n_features: int) -> torch.Tensor:
    x = x.reshape(x.shape[0], -1)
    if x.shape[1] != n_features:
        raise InputError(f"the prior expects {n_features} features per variant, got {x.shape[1]}")
    return x


def _small_output(layer: nn.Linear, scale: float = 0.01) -> None:
    """Start near a constant prior: tiny output weights, zero bias."""
    with torch.no_grad():
        layer.weight.mul_(scale)
        layer.bias.zero_()


class LinearPrior(nn.Module):
    """Log-linear prior ``log f_j = a_j^T w + b`` (S-LDSC-like baseline).

    Parameters
    ----------
    n_features : int
        Features per variant (windowed tracks are flattened).
    dtype : torch.dtype
        Parameter dtype (default float64).

    Examples
    --------
    >>> prior = LinearPrior(3)
    >>> prior(torch.zeros(5, 3, dtype=torch.float64)).shape
    torch.Size([5])
    """

    def __init__(self, n_features: int, dtype=torch.float64):
        super().__init__()
        self.n_features = int(n_features)
        self.linear = nn.Linear(self.n_features, 1, dtype=dtype)
        with torch.no_grad():
            self.linear.weight.zero_()
            self.linear.bias.zero_()

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear(_flat(features, self.n_features)).squeeze(-1)

    def spec(self) -> dict:
        """Constructor arguments (see :func:`build_prior`).

        Examples
        --------
        >>> LinearPrior(2).spec()
        {'kind': 'linear', 'n_features': 2}
        """
        return {"kind": "linear", "n_features": self.n_features}


class MLPPrior(nn.Module):
    """Multilayer perceptron prior.

    Parameters
    ----------
    n_features : int
        Features per variant (windowed tracks are flattened).
    hidden : sequence of int
        Widths of the hidden layers.
    activation : {"gelu", "relu", "silu", "tanh"}
    dropout : float
        Dropout after each hidden layer (training only).
    dtype : torch.dtype

    Examples
    --------
    >>> prior = MLPPrior(4, hidden=(8, 8))
    >>> prior(torch.randn(3, 4, dtype=torch.float64)).shape
    torch.Size([3])
    """

    def __init__(self, n_features: int, hidden=(64, 64), activation: str = "gelu",
                 dropout: float = 0.0, dtype=torch.float64):
        super().__init__()
        self.n_features = int(n_features)
        self.hidden = [int(h) for h in hidden]
        self.activation = activation
        self.dropout = float(dropout)
        if not 0.0 <= self.dropout < 1.0:
            raise InputError(f"dropout must be in [0, 1), got {dropout}")
        layers, width = [], self.n_features
        for h in self.hidden:
            layers += [nn.Linear(width, h, dtype=dtype), _activation(activation)]
            if self.dropout > 0:
                layers.append(nn.Dropout(self.dropout))
            width = h
        out = nn.Linear(width, 1, dtype=dtype)
        _small_output(out)
        self.net = nn.Sequential(*layers, out)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(_flat(features, self.n_features)).squeeze(-1)

    def spec(self) -> dict:
        """Constructor arguments (see :func:`build_prior`).

        Examples
        --------
        >>> MLPPrior(2, hidden=(4,)).spec()["hidden"]
        [4]
        """
        return {"kind": "mlp", "n_features": self.n_features, "hidden": list(self.hidden),
                "activation": self.activation, "dropout": self.dropout}


class ConvPrior(nn.Module):
    """Convolutional prior over windowed feature tracks ``(n, C, L)``.

    ``len(channels)`` 1-D convolutions (same padding) run along the window; the
    features at the window's centre and their mean over the window feed an MLP head.

    Parameters
    ----------
    n_tracks : int
        ``C``, tracks per position.
    window : int
        ``L``, positions per window (odd, the variant at the centre).
    channels : sequence of int
        Output channels of each convolution.
    kernel_size : int
        Odd convolution width.
    hidden : int
        Width of the head's hidden layer.
    activation : {"gelu", "relu", "silu", "tanh"}
    dropout : float
    dtype : torch.dtype

    Examples
    --------
    >>> prior = ConvPrior(n_tracks=2, window=9, channels=(4,), kernel_size=3, hidden=8)
    >>> prior(torch.randn(5, 2, 9, dtype=torch.float64)).shape
    torch.Size([5])
    """

    def __init__(self, n_tracks: int, window: int, channels=(16, 16), kernel_size: int = 5,
                 hidden: int = 32, activation: str = "gelu", dropout: float = 0.0,
                 dtype=torch.float64):
        super().__init__()
        if int(kernel_size) % 2 != 1 or int(window) % 2 != 1:
            raise InputError(f"kernel_size and window must be odd, got {kernel_size} and {window}")
        self.n_tracks, self.window = int(n_tracks), int(window)
        self.channels, self.kernel_size = [int(c) for c in channels], int(kernel_size)
        self.hidden, self.activation, self.dropout = int(hidden), activation, float(dropout)
        convs, width = [], self.n_tracks
        for c in self.channels:
            convs += [nn.Conv1d(width, c, self.kernel_size, padding=self.kernel_size // 2, dtype=dtype),
                      _activation(activation)]
            width = c
        self.convs = nn.Sequential(*convs)
        out = nn.Linear(self.hidden, 1, dtype=dtype)
        _small_output(out)
        head = [nn.Linear(2 * width, self.hidden, dtype=dtype), _activation(activation)]
        if self.dropout > 0:
            head.append(nn.Dropout(self.dropout))
        self.head = nn.Sequential(*head, out)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if features.dim() != 3 or tuple(features.shape[1:]) != (self.n_tracks, self.window):
            raise InputError(f"ConvPrior expects windowed tracks (n, {self.n_tracks}, {self.window}), "
                             f"got shape {tuple(features.shape)} (see Annotations.windowed)")
        h = self.convs(features)
        pooled = torch.cat([h[:, :, self.window // 2], h.mean(-1)], dim=1)
        return self.head(pooled).squeeze(-1)

    def spec(self) -> dict:
        """Constructor arguments (see :func:`build_prior`).

        Examples
        --------
        >>> ConvPrior(1, 3, channels=(2,), kernel_size=3, hidden=4).spec()["kind"]
        'conv'
        """
        return {"kind": "conv", "n_tracks": self.n_tracks, "window": self.window,
                "channels": list(self.channels), "kernel_size": self.kernel_size,
                "hidden": self.hidden, "activation": self.activation, "dropout": self.dropout}


PRIORS = {"linear": LinearPrior, "mlp": MLPPrior, "conv": ConvPrior}


def build_prior(spec: dict, feature_shape=None, dtype=torch.float64) -> nn.Module:
    """Build a built-in prior from a spec (``{"kind": ..., **arguments}``).

    Sizes missing from the spec (``n_features``; ``n_tracks``/``window`` for conv)
    are taken from ``feature_shape``, the shape of one variant's features.

    Parameters
    ----------
    spec : dict
        ``kind`` in ``{"linear", "mlp", "conv"}`` and constructor arguments.
    feature_shape : tuple, optional
        ``(K,)`` or ``(C, L)``.
    dtype : torch.dtype

    Returns
    -------
    torch.nn.Module

    Examples
    --------
    >>> build_prior({"kind": "mlp", "hidden": [8]}, feature_shape=(5,)).n_features
    5
    >>> build_prior({"kind": "conv", "channels": [4]}, feature_shape=(2, 7)).window
    7
    """
    spec = dict(spec)
    kind = spec.pop("kind", None)
    if kind not in PRIORS:
        raise InputError(f"prior kind must be one of {sorted(PRIORS)}, got {kind!r}")
    shape = None if feature_shape is None else tuple(int(s) for s in feature_shape)
    if kind == "conv":
        if shape is not None:
            if len(shape) != 2:
                raise InputError(f"a conv prior needs windowed tracks (C, L) per variant, got {shape}; "
                                 "set data.track_half_width in the config (Annotations.windowed)")
            spec.setdefault("n_tracks", shape[0])
            spec.setdefault("window", shape[1])
    elif shape is not None:
        spec.setdefault("n_features", math.prod(shape))
    try:
        return PRIORS[kind](**spec, dtype=dtype)
    except TypeError as err:
        raise InputError(f"bad arguments for a {kind} prior: {err}") from None
