"""Cis model: guide-level cis expression and each cell's true cis expression x_true.

On the log2 scale, with a non-centred Student-t hierarchy over guides::

    mu ~ Normal(mu_mean, mu_sd)           tau ~ HalfNormal(2)
    eps_g ~ StudentT(3, 0, 1)             log2 x_g = mu + tau * eps_g
    cell_scale ~ HalfNormal(1)            sigma_g ~ HalfNormal(cell_scale)
    log2 x_true_i ~ Normal(m_i, s_i)
    y_i ~ NegBinom(mean = size_factor_i * exp(tech_{c(i)}) * x_true_i, phi)

with ``m_i = log2 x_{g(i)}`` and ``s_i = sigma_{g(i)}`` for one guide per cell. In
high-MOI designs a cell's guides add up around the NTC level:
``m_i = r + sum_g A_ig (log2 x_g - r)`` where ``r`` is the cell-weighted mean of
the NTC guides, and ``s_i`` is the mean ``sigma_g`` of the cell's guides. The
technical effect ``tech`` and overdispersion ``phi`` of the cis feature come from
a technical fit when there is one (``phi`` is sampled otherwise).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pyro
import pyro.distributions as dist
import torch

from ..errors import InputError
from .data import DreamData
from .priors import PriorReport, cis_priors

__all__ = ["CisModel", "cis_model"]

_LN2 = math.log(2.0)


class CisModel:
    """Pyro model of guide-level and cell-level cis expression (call with ``subsample_size=``).

    Parameters
    ----------
    counts : torch.Tensor
        (cells,) cis counts.
    size_factor : torch.Tensor
        (cells,) size factors.
    tech : torch.Tensor
        (cells,) log technical effect of the cis feature (zeros without a technical fit).
    phi : torch.Tensor or None
        Fixed overdispersion, or None to sample it.
    priors : dict
        ``mu_mean``, ``mu_sd`` from :func:`~torchgenetics.dream.priors.cis_priors`.
    guide_code : torch.Tensor, optional
        (cells,) guide of each cell (low MOI).
    assignment : torch.Tensor, optional
        (cells, guides) 0/1 matrix (high MOI).
    ntc_guides : torch.Tensor, optional
        (guides,) bool, NTC guides (high MOI).

    Examples
    --------
    >>> y = torch.tensor([10.0, 12.0, 3.0, 2.0], dtype=torch.float64)
    >>> m = CisModel(y, torch.ones(4, dtype=torch.float64), torch.zeros(4, dtype=torch.float64), None,
    ...              {"mu_mean": 3.0, "mu_sd": 1.0}, guide_code=torch.tensor([0, 0, 1, 1]))
    >>> pyro.poutine.trace(m).get_trace(subsample_size=2).nodes["log2_x_true"]["value"].shape
    torch.Size([2])
    """

    def __init__(self, counts, size_factor, tech, phi, priors: dict, *, guide_code=None, assignment=None,
                 ntc_guides=None):
        if (guide_code is None) == (assignment is None):
            raise InputError("give exactly one of guide_code (one guide per cell) or assignment (high MOI)")
        self.counts = counts
        self.log_sf = torch.log(size_factor)
        self.tech = tech
        self.phi = phi
        self.priors = priors
        self.guide_code = None if guide_code is None else guide_code.to(torch.long)
        self.assignment = assignment
        self.n_cells = counts.shape[0]
        if assignment is not None:
            if ntc_guides is None or not bool(ntc_guides.any()):
                raise InputError("a high-MOI cis fit needs NTC guides to centre the guide effects")
            w = assignment.sum(0) * ntc_guides.to(assignment.dtype)
            self.ntc_weights = w / w.sum()
            self.guides_per_cell = assignment.sum(1).clamp(min=1)
            self.n_guides = assignment.shape[1]
        else:
            self.n_guides = int(self.guide_code.max()) + 1

    def _c(self, value) -> torch.Tensor:
        return torch.as_tensor(value, dtype=self.counts.dtype, device=self.counts.device)

    def __call__(self, subsample_size: int | None = None):
        mu = pyro.sample("mu", dist.Normal(self._c(self.priors["mu_mean"]), self._c(self.priors["mu_sd"])))
        tau = pyro.sample("tau", dist.HalfNormal(self._c(2.0)))
        cell_scale = pyro.sample("cell_scale", dist.HalfNormal(self._c(1.0)))
        with pyro.plate("guides", self.n_guides, dim=-1):
            eps = pyro.sample("eps_guide", dist.StudentT(self._c(3.0), self._c(0.0), self._c(1.0)))
            sigma = pyro.sample("sigma_guide", dist.HalfNormal(cell_scale))
        guide_log2 = mu + tau * eps
        if self.phi is None:
            beta = pyro.sample("beta_o", dist.Gamma(self._c(9.0), self._c(3.0)))
            o = pyro.sample("o", dist.Exponential(beta))
            phi = 1.0 / o.clamp(min=1e-4) ** 2
        else:
            phi = self.phi
        with pyro.plate("cells", self.n_cells, subsample_size=subsample_size, dim=-1) as ind:
            if self.guide_code is not None:
                code = self.guide_code[ind]
                m, s = guide_log2[..., code], sigma[..., code]
            else:
                a = self.assignment[ind]
                ref = (guide_log2 * self.ntc_weights).sum(-1, keepdim=True)
                m = ref[..., 0] + (a * (guide_log2 - ref).unsqueeze(-2)).sum(-1)
                s = (a * sigma.unsqueeze(-2)).sum(-1) / self.guides_per_cell[ind]
            log2_x = pyro.sample("log2_x_true", dist.Normal(m, s.clamp(min=0.02)))
            log_mu = _LN2 * log2_x + self.log_sf[ind] + self.tech[ind]
            pyro.sample(
                "obs",
                dist.NegativeBinomial(total_count=phi, logits=log_mu - torch.log(phi), validate_args=False),
                obs=self.counts[ind],
            )

    def init_values(self, guide_log2: np.ndarray) -> dict:
        """Starting values: x_true from the counts, guide levels from the guide means.

        Parameters
        ----------
        guide_log2 : numpy.ndarray
            (guides,) log2 guide means (``cis_priors(...)["guide_log2"]``).

        Returns
        -------
        dict of torch.Tensor

        Examples
        --------
        >>> m = CisModel(torch.ones(2, dtype=torch.float64), torch.ones(2, dtype=torch.float64),
        ...              torch.zeros(2, dtype=torch.float64), None, {"mu_mean": 0.0, "mu_sd": 1.0},
        ...              guide_code=torch.tensor([0, 1]))
        >>> sorted(m.init_values(np.array([0.0, 1.0])))
        ['cell_scale', 'eps_guide', 'log2_x_true', 'mu', 'sigma_guide', 'tau']
        """
        gl = torch.as_tensor(guide_log2, dtype=self.counts.dtype, device=self.counts.device)
        mu = gl.mean()
        tau = gl.std().clamp(min=0.5) if gl.numel() > 1 else self._c(0.5)
        x0 = torch.log2((self.counts + 0.5) / torch.exp(self.log_sf + self.tech))
        return {
            "mu": mu,
            "tau": tau,
            "cell_scale": self._c(0.5),
            "eps_guide": (gl - mu) / tau,
            "sigma_guide": torch.full_like(gl, 0.3),
            "log2_x_true": x0,
        }


def cis_model(data: DreamData, technical=None, *, device=None, dtype=torch.float64) -> tuple[CisModel, PriorReport, dict]:
    """Build the cis model of a screen, plugging in a technical fit of the primary counts.

    Parameters
    ----------
    data : DreamData
        The screen.
    technical : TechnicalFit, optional
        Technical fit of the ``"counts"`` modality (its cis-feature group effect and
        overdispersion are used). Without one, several technical groups trigger a warning.
    device, dtype
        Where and how tensors are held.

    Returns
    -------
    model : CisModel
    report : PriorReport
    init : dict of torch.Tensor
        Starting values of the latent sites.

    Examples
    --------
    >>> from torchgenetics.dream.simulate import simulate_screen
    >>> from torchgenetics.dream.data import prepare_data
    >>> sim = simulate_screen(n_cells=60, n_features=2, n_groups=1, seed=0)
    >>> model, report, init = cis_model(prepare_data(sim.counts, sim.cells, sim.cis_gene))
    >>> model.n_cells, report.guide_level
    (60, 1)
    """
    counts = data.cis_counts()
    sf = data.size_factor
    j = data.cis_index
    if technical is not None:
        tech_cells = technical.tech_mean[:, j].detach().cpu().numpy()[data.group_code]
        phi = None if technical.phi is None else torch.as_tensor(float(technical.phi[j]), dtype=dtype, device=device)
    else:
        if data.n_groups > 1:
            warnings.warn(
                f"fit_cis without a technical fit: effects of the {data.n_groups} technical groups on "
                f"{data.cis_gene} are not corrected (run fit_technical first)",
                stacklevel=3,
            )
        tech_cells = np.zeros(data.n_cells)
        phi = None
    priors, report = cis_priors(counts, sf, data.assignment, tech=tech_cells)
    t = lambda v: torch.as_tensor(v, dtype=dtype, device=device)  # noqa: E731
    kwargs = {}
    if data.high_moi:
        kwargs["assignment"] = t(data.assignment.toarray())
        kwargs["ntc_guides"] = torch.as_tensor(data.guides["is_ntc"].to_numpy(dtype=bool, copy=True), device=device)
    else:
        kwargs["guide_code"] = torch.as_tensor(data.guide_code(), device=device)
    model = CisModel(t(counts), t(sf), t(tech_cells), phi, {"mu_mean": priors["mu_mean"], "mu_sd": priors["mu_sd"]},
                     **kwargs)
    return model, report, model.init_values(priors["guide_log2"])
