"""Technical model: per-feature baseline, technical-group effects and noise, fitted on NTC cells.

For feature ``f`` and a cell ``i`` of technical group ``c(i)``::

    baseline_f                      family baseline prior (data-driven)
    tech_{c f} ~ StudentT(3, 0, s)  for c = 1..C-1 (group 0 is the baseline: tech = 0)
    y_{i f} ~ family(baseline_f, tech_{c(i) f}, noise_f, size_factor_i)

with the technical effect on the family's link scale (log, identity, logit or
log-ratio) and noise the negative-binomial overdispersion, Gaussian/Student-t
scale and degrees of freedom. The cells plate may be subsampled.
"""

from __future__ import annotations

import numpy as np
import pyro
import pyro.distributions as dist
import torch

from ..errors import InputError
from .batches import CellRows
from .data import DreamData
from .likelihoods import Family, get_family
from .priors import PriorReport, baseline_priors, normalized_values

__all__ = ["TechnicalModel", "technical_model"]


class TechnicalModel:
    """Pyro model of technical-group effects (call with ``subsample_size=``).

    Parameters
    ----------
    family : str or Family
        Observation family.
    rows : CellRows
        cells x features (x categories) observations.
    size_factor : torch.Tensor
        (cells,) size factors.
    group : torch.Tensor
        (cells,) technical group codes, 0 = baseline.
    n_groups : int
        Number of groups.
    priors : dict of torch.Tensor
        ``mean`` and ``scale`` from :func:`~torchgenetics.dream.priors.baseline_priors`.
    denominator : CellRows, optional
        Binomial totals.

    Examples
    --------
    >>> import numpy as np
    >>> y = CellRows(np.random.default_rng(0).poisson(5.0, (40, 3)))
    >>> pri = {"mean": torch.full((3,), 5.0, dtype=torch.float64), "scale": torch.ones(3, dtype=torch.float64)}
    >>> m = TechnicalModel("negbinom", y, torch.ones(40, dtype=torch.float64),
    ...                    torch.arange(40) % 2, 2, pri)
    >>> tr = pyro.poutine.trace(m).get_trace(subsample_size=10)
    >>> tr.nodes["tech"]["value"].shape, tr.nodes["obs"]["value"].shape
    (torch.Size([1, 3]), torch.Size([10, 3]))
    """

    def __init__(self, family, rows: CellRows, size_factor: torch.Tensor, group: torch.Tensor, n_groups: int,
                 priors: dict, denominator: CellRows | None = None):
        self.family: Family = get_family(family) if isinstance(family, str) else family
        self.rows = rows
        self.size_factor = size_factor
        self.group = group.to(torch.long)
        self.n_groups = int(n_groups)
        self.priors = priors
        self.denominator = denominator
        self.n_cells = rows.shape[0]
        self.n_features = rows.shape[1]
        self.n_categories = rows.shape[2] if len(rows.shape) == 3 else 1

    def tech_shape(self) -> tuple:
        """Shape of the sampled technical effects (groups - 1, features [, categories - 1]).

        Examples
        --------
        >>> import numpy as np
        >>> pri = {"mean": torch.ones(2, dtype=torch.float64), "scale": torch.ones(2, dtype=torch.float64)}
        >>> TechnicalModel("normal", CellRows(np.zeros((4, 2))), torch.ones(4, dtype=torch.float64),
        ...                torch.zeros(4, dtype=torch.long), 3, pri).tech_shape()
        (2, 2)
        """
        extra = (self.n_categories - 1,) if self.family.categorical else ()
        return (self.n_groups - 1, self.n_features) + extra

    def __call__(self, subsample_size: int | None = None):
        fam = self.family
        features = pyro.plate("features", self.n_features, dim=-1)
        baseline = fam.sample_baseline(features, self.priors)
        noise = fam.sample_noise(features, self.priors)
        tech_all = None
        if self.n_groups > 1:
            shape = self.tech_shape()
            scale = fam.tech_scale(self.priors)  # scalar or per feature
            loc = torch.zeros(shape, dtype=self.size_factor.dtype, device=self.size_factor.device)
            prior = dist.StudentT(torch.full_like(loc, 3.0), loc, scale * torch.ones_like(loc))
            if fam.categorical:
                prior = prior.to_event(1)
            with pyro.plate("groups", self.n_groups - 1, dim=-2), features:
                tech = pyro.sample("tech", prior)
            tech_all = torch.cat([torch.zeros_like(tech[:1]), tech], dim=0)
        with pyro.plate("cells", self.n_cells, subsample_size=subsample_size, dim=-2) as ind:
            y = self.rows(ind)
            t = None if tech_all is None else tech_all[self.group[ind]]
            sf = self.size_factor[ind].unsqueeze(-1) if fam.size_factors else None
            den = None if self.denominator is None else self.denominator(ind)
            with features:
                pyro.sample("obs", fam.observation(baseline, t, noise, sf, den), obs=y)

    def init_values(self) -> dict:
        """Starting values of the latent sites (baseline at its prior mean, no group effects).

        Examples
        --------
        >>> import numpy as np
        >>> pri = {"mean": torch.ones(2, dtype=torch.float64), "scale": torch.ones(2, dtype=torch.float64)}
        >>> m = TechnicalModel("normal", CellRows(np.zeros((4, 2))), torch.ones(4, dtype=torch.float64),
        ...                    torch.zeros(4, dtype=torch.long), 1, pri)
        >>> sorted(m.init_values())
        ['baseline', 'sigma']
        """
        ref = self.size_factor
        out = {"baseline": self.priors["mean"]}
        if self.n_groups > 1:
            out["tech"] = torch.zeros(self.tech_shape(), dtype=ref.dtype, device=ref.device)
        if self.family.name in ("normal", "studentt"):
            out["sigma"] = self.priors["scale"]
        if self.family.name == "studentt":
            out["df"] = torch.full_like(self.priors["scale"], 10.0)
        if self.family.name == "negbinom":
            out["o"] = torch.full_like(self.priors["scale"], 0.3)
        return out


def technical_model(data: DreamData, modality: str, cells, *, device=None, dtype=torch.float64,
                    budget=None) -> tuple[TechnicalModel, PriorReport, np.ndarray]:
    """Build the technical model of a modality on the chosen cells.

    Parameters
    ----------
    data : DreamData
        The screen.
    modality : str
        Modality to fit.
    cells : {"ntc", "all"} or array of bool
        Cells to fit on (default in :meth:`BayesDream.fit_technical`: NTC cells).
    device, dtype
        Where and how tensors are held.
    budget : int, optional
        Memory budget for densifying sparse counts.

    Returns
    -------
    model : TechnicalModel
    report : PriorReport
        How the baseline priors were obtained.
    rows : numpy.ndarray
        Positions of the cells used.

    Raises
    ------
    InputError
        No NTC cells, or a technical group without any of the chosen cells.

    Examples
    --------
    >>> from torchgenetics.dream.simulate import simulate_screen
    >>> from torchgenetics.dream.data import prepare_data
    >>> sim = simulate_screen(n_cells=80, n_features=3, seed=0)
    >>> model, report, rows = technical_model(prepare_data(sim.counts, sim.cells, sim.cis_gene), "counts", "ntc")
    >>> model.n_features, report.n_features
    (4, 4)
    """
    mod = data.modality(modality)
    if isinstance(cells, str):
        if cells == "ntc":
            mask = data.ntc_mask
            if not mask.any():
                raise InputError(
                    "no NTC cells (target == non-targeting label) for the technical fit; "
                    "label control guides' target as 'ntc' or pass cells='all'"
                )
        elif cells == "all":
            mask = np.ones(data.n_cells, dtype=bool)
        else:
            raise InputError(f"cells must be 'ntc', 'all' or a boolean mask, got {cells!r}")
    else:
        mask = np.asarray(cells, dtype=bool)
        if mask.shape != (data.n_cells,):
            raise InputError(f"cell mask has shape {mask.shape}, expected ({data.n_cells},)")
        if not mask.any():
            raise InputError("the cell mask selects no cells for the technical fit")
    rows = np.flatnonzero(mask)
    group = data.group_code[rows]
    present = np.bincount(group, minlength=data.n_groups)
    if (present == 0).any():
        missing = [data.groups[g] for g in np.flatnonzero(present == 0)]
        raise InputError(
            f"technical group(s) {missing} have no cells in the technical fit "
            f"({'NTC cells' if isinstance(cells, str) and cells == 'ntc' else 'selected cells'}); "
            "their effects cannot be estimated"
        )
    values = mod.values[rows]
    sf = data.size_factor[rows]
    den = None if mod.denominator is None else mod.denominator[rows]
    ref = group == 0
    dense = values[ref].toarray() if hasattr(values, "toarray") else np.asarray(values[ref])
    norm = normalized_values(mod.family, dense, size_factor=sf[ref], denominator=None if den is None else den[ref])
    priors_np, report = baseline_priors(norm, mod.family, features=mod.features)
    priors = {k: torch.as_tensor(v, dtype=dtype, device=device) for k, v in priors_np.items()}
    model = TechnicalModel(
        mod.family,
        CellRows(values, device=device, dtype=dtype, budget=budget),
        torch.as_tensor(sf, dtype=dtype, device=device),
        torch.as_tensor(group, device=device),
        data.n_groups,
        priors,
        None if den is None else CellRows(den, device=device, dtype=dtype, budget=budget),
    )
    return model, report, rows
