"""Random probe vectors and the Monte Carlo :class:`Estimate` they produce.

Stochastic traces and log-determinants are averages over probe vectors. A fit
draws its probes once from a seeded generator and reuses them, so its objective
is a deterministic function of the parameters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from torchgenetics.errors import InputError

__all__ = ["Estimate", "make_probes", "as_generator", "estimate_from_samples"]

DISTRIBUTIONS = ("rademacher", "gaussian")


@dataclass
class Estimate:
    """A Monte Carlo estimate with its standard error.

    Attributes
    ----------
    value : Tensor
        0-d tensor, the estimate (mean of the per-probe samples, plus any exact part).
    se : Tensor
        0-d tensor, Monte Carlo standard error (sample standard deviation / sqrt(n));
        NaN when ``n < 2``.
    n : int
        Number of independent probe samples behind ``se``.
    samples : Tensor, optional
        The per-probe samples (their mean plus ``offset`` is ``value``).

    Examples
    --------
    >>> est = estimate_from_samples(torch.tensor([1.0, 2.0, 3.0]))
    >>> float(est.value), round(float(est.se), 4), est.n
    (2.0, 0.5774, 3)
    """

    value: torch.Tensor
    se: torch.Tensor
    n: int
    samples: torch.Tensor | None = None

    def __float__(self) -> float:
        return float(self.value)

    def interval(self, z: float = 1.96) -> tuple[float, float]:
        """Normal-approximation interval ``value +- z * se``.

        Examples
        --------
        >>> estimate_from_samples(torch.tensor([1.0, 3.0])).interval(1.0)
        (1.0, 3.0)
        """
        v, s = float(self.value), float(self.se)
        return v - z * s, v + z * s


def estimate_from_samples(samples: torch.Tensor, offset=0.0) -> Estimate:
    """Build an :class:`Estimate` from i.i.d. per-probe samples.

    Parameters
    ----------
    samples : Tensor (k,)
        Unbiased per-probe estimates.
    offset : float or Tensor
        An exact (non-random) part added to the mean, e.g. ``log|P|``.

    Returns
    -------
    Estimate

    Examples
    --------
    >>> float(estimate_from_samples(torch.tensor([1.0, 3.0]), offset=10.0).value)
    12.0
    """
    k = samples.numel()
    if k == 0:
        raise InputError("need at least one probe sample")
    value = samples.mean() + offset
    if k > 1:
        se = samples.std(correction=1) / math.sqrt(k)
    else:
        se = torch.full((), float("nan"), dtype=samples.dtype, device=samples.device)
    return Estimate(value=value, se=se, n=k, samples=samples)


def as_generator(generator, device=None) -> torch.Generator | None:
    """Accept ``None``, an int seed or a ``torch.Generator``.

    Examples
    --------
    >>> g = as_generator(7)
    >>> isinstance(g, torch.Generator)
    True
    """
    if generator is None or isinstance(generator, torch.Generator):
        return generator
    if isinstance(generator, int):
        g = torch.Generator(device=device if device is not None else "cpu")
        g.manual_seed(generator)
        return g
    raise InputError(
        f"generator must be None, an int seed or a torch.Generator, got {type(generator).__name__}"
    )


def make_probes(
    n: int,
    k: int,
    generator=None,
    dtype: torch.dtype = torch.float64,
    device=None,
    distribution: str = "rademacher",
) -> torch.Tensor:
    """Draw an n x k matrix of probe vectors with identity covariance.

    Parameters
    ----------
    n, k : int
        Rows (dimension) and number of probes.
    generator : torch.Generator or int, optional
        Source of randomness (an int is used as a seed). Numbers are drawn on the
        generator's device and moved to ``device``.
    dtype : torch.dtype
        Default float64.
    device : optional
        Device of the result (default: the generator's device, else CPU).
    distribution : {"rademacher", "gaussian"}
        Rademacher (+-1) probes give lower-variance traces; Gaussian probes are
        rotation invariant.

    Returns
    -------
    Tensor (n, k)

    Examples
    --------
    >>> Z = make_probes(4, 3, generator=0)
    >>> Z.shape, bool((Z.abs() == 1).all())
    (torch.Size([4, 3]), True)
    """
    if distribution not in DISTRIBUTIONS:
        raise InputError(f"distribution must be one of {DISTRIBUTIONS}, got {distribution!r}")
    if n < 1 or k < 1:
        raise InputError(f"need n >= 1 and k >= 1 probes, got n={n}, k={k}")
    gen = as_generator(generator)
    gen_device = gen.device if gen is not None else (device if device is not None else "cpu")
    if distribution == "rademacher":
        Z = torch.randint(0, 2, (n, k), generator=gen, device=gen_device).to(dtype).mul_(2).sub_(1)
    else:
        Z = torch.randn(n, k, generator=gen, device=gen_device, dtype=dtype)
    return Z if device is None else Z.to(device)
