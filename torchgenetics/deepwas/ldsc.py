"""LDSC-style baseline objective: fit the prior to chi^2 statistics instead of the likelihood.

Stratified LD score regression fits, for each scored variant j,

    E[chi2_j] = N_j sum_k R_jk^2 f_k + sigma R_jj        ((R o R) F + sigma diag(R))

by weighted least squares. The weights are S-LDSC's: ``1 / l_j`` (``l_j`` the LD score
of j with the other scored variants, at least 1) for the correlation between
neighbouring statistics, times ``1 / (2 E[chi2_j]^2)`` for their heteroscedasticity,
with ``E[chi2_j]`` taken at the current prior without gradient (iteratively
re-weighted least squares). Any prior can be trained on it, which reproduces the
seed's comparison of objectives on the same networks.
"""

from __future__ import annotations

import torch

from .likelihood import RegionNLL, _as_sigma, _check_variance
from .regions import Region, ld_dense, ld_matmul, ld_squared

__all__ = ["LDSCObjective", "ld_scores"]


class LDSCObjective:
    """Weighted regression of chi^2 on ``(R o R) F + sigma diag(R)``, region by region.

    Parameters
    ----------
    cache : bool
        Keep each region's squared LD rows and LD scores in ``region.cache``.

    Examples
    --------
    >>> import numpy as np
    >>> reg = Region("r", "1", np.array(["a", "b"], dtype=object),
    ...              torch.tensor([[1.0, 0.5], [0.5, 1.0]], dtype=torch.float64), torch.tensor([0, 1]),
    ...              torch.tensor([2.0, 1.0], dtype=torch.float64),
    ...              torch.full((2,), 10.0, dtype=torch.float64), torch.zeros(2, 1, dtype=torch.float64))
    >>> obj = LDSCObjective()
    >>> obj.expected_chi2(reg, torch.full((2,), 0.01, dtype=torch.float64)).tolist()
    [2.25, 2.25]
    >>> obj(reg, torch.full((2,), 0.01, dtype=torch.float64)).n_scored
    2
    """

    def __init__(self, cache: bool = True):
        self.cache = bool(cache)

    def _parts(self, region: Region) -> dict:
        parts = region.cache.get("ldsc") if self.cache else None
        if parts is not None:
            return parts
        w = region.window
        with torch.no_grad():
            if isinstance(region.ld, torch.Tensor):
                Rw = region.ld.index_select(0, w)
                R2w = Rw.square()
                diag = Rw.gather(1, w.unsqueeze(-1)).squeeze(-1)
                scores = R2w.index_select(1, w).sum(1)
                parts = {"R2w": R2w, "diag": diag, "scores": scores.clamp_min(1.0)}
            else:
                R2 = ld_squared(region.ld)
                ind = torch.zeros(region.n_variants, 1, dtype=region.dtype, device=region.device)
                ind[w] = 1.0
                scores = ld_matmul(R2, ind).squeeze(-1).index_select(0, w)
                parts = {"R2": R2, "diag": region.ld.bands[0].index_select(0, w),
                         "scores": scores.clamp_min(1.0)}
        if self.cache:
            region.cache["ldsc"] = parts
        return parts

    def expected_chi2(self, region: Region, variance: torch.Tensor, sigma=1.0) -> torch.Tensor:
        """``E[chi2_j] = N_j (R o R f)_j + sigma R_jj`` for the scored variants (q,).

        Examples
        --------
        >>> import numpy as np
        >>> reg = Region("r", "1", np.array(["a"], dtype=object), torch.eye(1, dtype=torch.float64),
        ...              torch.tensor([0]), torch.ones(1, dtype=torch.float64),
        ...              torch.full((1,), 10.0, dtype=torch.float64), torch.zeros(1, 1, dtype=torch.float64))
        >>> LDSCObjective().expected_chi2(reg, torch.full((1,), 0.02, dtype=torch.float64)).tolist()
        [3.0]
        """
        variance = _check_variance(region, variance)
        sigma = _as_sigma(sigma, variance)
        parts = self._parts(region)
        if "R2w" in parts:
            r2f = parts["R2w"] @ variance
        else:
            r2f = ld_matmul(parts["R2"], variance.unsqueeze(-1)).squeeze(-1).index_select(0, region.window)
        return region.sqrt_n.square() * r2f + sigma * parts["diag"]

    def __call__(self, region: Region, variance: torch.Tensor, sigma=1.0) -> RegionNLL:
        """The weighted squared error of the region's chi^2 statistics.

        Parameters
        ----------
        region : Region
        variance : torch.Tensor
            ``(p,)`` effect variances of the region's variants.
        sigma : float or torch.Tensor
            Noise scale.

        Returns
        -------
        RegionNLL
            ``loss`` is the weighted sum of squares (not a likelihood), ``method="ldsc"``.

        Examples
        --------
        >>> import numpy as np
        >>> reg = Region("r", "1", np.array(["a"], dtype=object), torch.eye(1, dtype=torch.float64),
        ...              torch.tensor([0]), torch.full((1,), 3.0 ** 0.5, dtype=torch.float64),
        ...              torch.full((1,), 10.0, dtype=torch.float64), torch.zeros(1, 1, dtype=torch.float64))
        >>> round(LDSCObjective()(reg, torch.full((1,), 0.02, dtype=torch.float64)).value, 12)
        0.0
        """
        expected = self.expected_chi2(region, variance, sigma)
        parts = self._parts(region)
        chi2 = region.z.square()
        weights = 1.0 / (parts["scores"] * 2.0 * expected.detach().square())
        loss = (weights * (chi2 - expected).square()).sum()
        return RegionNLL(loss, 0.0, region.n_scored, "ldsc", {})


def ld_scores(region: Region) -> torch.Tensor:
    """LD scores ``sum_k R_jk^2`` of the scored variants over the whole region (q,).

    Examples
    --------
    >>> import numpy as np
    >>> reg = Region("r", "1", np.array(["a", "b"], dtype=object),
    ...              torch.tensor([[1.0, 0.5], [0.5, 1.0]], dtype=torch.float64), torch.tensor([0]),
    ...              torch.ones(1, dtype=torch.float64), torch.ones(1, dtype=torch.float64),
    ...              torch.zeros(2, 1, dtype=torch.float64))
    >>> ld_scores(reg).tolist()
    [1.25]
    """
    R = ld_dense(region.ld) if isinstance(region.ld, torch.Tensor) else None
    if R is not None:
        return R.index_select(0, region.window).square().sum(1)
    ones = torch.ones(region.n_variants, 1, dtype=region.dtype, device=region.device)
    return ld_matmul(ld_squared(region.ld), ones).squeeze(-1).index_select(0, region.window)
