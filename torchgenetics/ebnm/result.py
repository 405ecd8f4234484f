"""``EBNMResult``: what an empirical-Bayes normal-means fit returns."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch

from .priors import Prior

__all__ = ["EBNMResult"]


@dataclass
class EBNMResult:
    """Result of :func:`~torchgenetics.ebnm.ebnm` (ebnm's field names, Python style).

    Attributes
    ----------
    posterior_mean, posterior_second_moment, lfsr : torch.Tensor
        Posterior summaries of each ``theta_i``, shaped like ``x``.
    prior : Prior
        The fitted prior ``g`` (batched: one per problem).
    log_likelihood : torch.Tensor
        Log marginal likelihood of each problem (a 0-d tensor for one problem).
    kl : torch.Tensor
        ``KL(q || g)`` of the posterior from the prior for each problem, from the
        identity ``log p(x | g) = E_q log N(x | theta, s^2) - KL(q || g)``.
    family : str
        Name of the prior family.

    Examples
    --------
    >>> from torchgenetics.ebnm import ebnm
    >>> res = ebnm(torch.tensor([0.0, 4.0]), 1.0, "normal")
    >>> res.posterior_sd.shape
    torch.Size([2])
    """

    posterior_mean: torch.Tensor
    posterior_second_moment: torch.Tensor
    lfsr: torch.Tensor
    prior: Prior
    log_likelihood: torch.Tensor
    kl: torch.Tensor
    family: str

    @property
    def posterior_sd(self) -> torch.Tensor:
        """Posterior standard deviation.

        Examples
        --------
        >>> from torchgenetics.ebnm import NormalPrior, ebnm
        >>> g = NormalPrior(torch.ones(1, dtype=torch.float64), torch.zeros(1, dtype=torch.float64))
        >>> round(float(ebnm(torch.tensor([1.0]), 1.0, "normal", g_init=g, fix_g=True).posterior_sd), 4)
        0.7071
        """
        return torch.sqrt(torch.clamp(self.posterior_second_moment - self.posterior_mean**2, min=0.0))

    def to_frame(self) -> pd.DataFrame:
        """Posterior summaries as a table (one row per observation; ``problem`` column when batched).

        Examples
        --------
        >>> from torchgenetics.ebnm import ebnm
        >>> list(ebnm(torch.tensor([0.0, 4.0]), 1.0, "normal").to_frame().columns)
        ['mean', 'sd', 'second_moment', 'lfsr']
        """
        mean = self.posterior_mean.detach().cpu()
        data = {
            "mean": mean.reshape(-1).numpy(),
            "sd": self.posterior_sd.detach().cpu().reshape(-1).numpy(),
            "second_moment": self.posterior_second_moment.detach().cpu().reshape(-1).numpy(),
            "lfsr": self.lfsr.detach().cpu().reshape(-1).numpy(),
        }
        frame = pd.DataFrame(data)
        if mean.ndim == 2:
            frame.insert(0, "problem", torch.arange(mean.shape[0]).repeat_interleave(mean.shape[1]).numpy())
        return frame
