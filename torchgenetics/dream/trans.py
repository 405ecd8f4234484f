"""Trans model: every trans feature as a dose-response curve of the cell's cis expression.

For feature ``f`` and cell ``i``::

    theta_f ~ curve priors (see :mod:`~torchgenetics.dream.curves`), with on/off gates
    y_{i f} ~ family(curve_f(x_true_i; theta_f), tech_{c(i) f}, noise_f, size_factor_i)

``x_true`` is the posterior mean from the cis fit (or given), technical effects
and negative-binomial overdispersion come from a technical fit of the same
modality when there is one. The gates' relaxed-Bernoulli temperature is a model
argument, annealed during fitting (:func:`temperature_schedule`).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pyro
import pyro.distributions as dist
import torch

from ..errors import InputError
from ..memory import plan_block
from .batches import CellRows
from .curves import CurveSpec, curve_mean, sample_curve
from .data import DreamData
from .likelihoods import get_family
from .priors import PriorReport, hill_priors, normalized_values

__all__ = ["TransModel", "trans_model", "temperature_schedule"]


def temperature_schedule(n_steps: int, start: float = 1.0, end: float = 0.1):
    """Geometric annealing of the gate temperature, as a ``step_kwargs`` function.

    Parameters
    ----------
    n_steps : int
        Steps of the fit.
    start, end : float
        First and last temperature.

    Returns
    -------
    callable
        ``f(i) -> {"temperature": t_i}``.

    Examples
    --------
    >>> f = temperature_schedule(3, 1.0, 0.01)
    >>> [round(f(i)["temperature"], 3) for i in range(3)]
    [1.0, 0.1, 0.01]
    """
    if start <= 0 or end <= 0:
        raise InputError("gate temperatures must be positive")
    ratio = end / start

    def step(i: int) -> dict:
        frac = min(i / max(n_steps - 1, 1), 1.0)
        return {"temperature": start * ratio**frac}

    return step


class TransModel:
    """Pyro model of trans features as curves of x_true (call with ``subsample_size=``, ``temperature=``).

    Parameters
    ----------
    spec : CurveSpec
        Curve form, family and priors.
    rows : CellRows
        cells x features (x categories) observations.
    x_true : torch.Tensor
        (cells,) cis expression.
    size_factor : torch.Tensor
        (cells,) size factors.
    group : torch.Tensor
        (cells,) technical group codes.
    tech : torch.Tensor or None
        (groups, features [, categories - 1]) fixed technical effects on the link scale.
    noise_priors : dict of torch.Tensor
        ``scale`` per feature (residual scale of normal / Student-t features).
    fixed_noise : dict, optional
        Plug-in noise (``phi`` from a technical fit).
    denominator : CellRows, optional
        Binomial totals.

    Examples
    --------
    >>> from torchgenetics.dream.likelihoods import get_family
    >>> pri = {"A_mean": torch.ones(2), "V_mean": torch.ones(2), "scale": torch.ones(2), "cv": 1.0,
    ...        "K_loc": 0.0, "K_scale": 0.5}
    >>> spec = CurveSpec("single", get_family("normal"), pri)
    >>> m = TransModel(spec, CellRows(np.zeros((5, 2)), dtype=torch.float32), torch.ones(5), torch.ones(5),
    ...                torch.zeros(5, dtype=torch.long), None, {"scale": torch.ones(2)})
    >>> pyro.poutine.trace(m).get_trace(temperature=0.5).nodes["obs"]["value"].shape
    torch.Size([5, 2])
    """

    def __init__(self, spec: CurveSpec, rows: CellRows, x_true, size_factor, group, tech, noise_priors: dict,
                 fixed_noise: dict | None = None, denominator: CellRows | None = None, x_sd=None):
        self.spec = spec
        self.family = spec.family
        self.rows = rows
        self.log_x = torch.log(x_true)
        # log2 x_true uncertainty per cell: x_true becomes a latent with the cis posterior as prior
        self.log2_x_loc = None if x_sd is None else self.log_x / math.log(2.0)
        self.log2_x_sd = x_sd
        self.size_factor = size_factor
        self.group = group.to(torch.long)
        self.tech = tech
        self.noise_priors = noise_priors
        self.fixed_noise = fixed_noise
        self.denominator = denominator
        self.n_cells = rows.shape[0]
        self.n_features = rows.shape[1]

    def __call__(self, subsample_size: int | None = None, temperature: float | None = None):
        fam = self.family
        features = pyro.plate("features", self.n_features, dim=-1)
        params = sample_curve(self.spec, features, temperature)
        noise = fam.sample_noise(features, self.noise_priors, self.fixed_noise)
        with pyro.plate("cells", self.n_cells, subsample_size=subsample_size, dim=-2) as ind:
            if self.log2_x_sd is None:
                log_x = self.log_x[ind].unsqueeze(-1)
            else:
                log2_x = pyro.sample("log2_x_true", dist.Normal(self.log2_x_loc[ind].unsqueeze(-1),
                                                                self.log2_x_sd[ind].unsqueeze(-1)))
                log_x = log2_x * math.log(2.0)
            mean = curve_mean(self.spec, params, log_x)
            t = None if self.tech is None else self.tech[self.group[ind]]
            sf = self.size_factor[ind].unsqueeze(-1) if fam.size_factors else None
            den = None if self.denominator is None else self.denominator(ind)
            with features:
                pyro.sample("obs", fam.observation(mean, t, noise, sf, den), obs=self.rows(ind))

    def init_values(self) -> dict:
        """Starting values: prior means for floors and amplitudes, flat slopes, half-open gates.

        Examples
        --------
        >>> from torchgenetics.dream.likelihoods import get_family
        >>> pri = {"A_mean": torch.ones(2), "V_mean": torch.ones(2), "scale": torch.ones(2), "cv": 1.0,
        ...        "K_loc": 0.0, "K_scale": 0.5}
        >>> spec = CurveSpec("single", get_family("normal"), pri)
        >>> m = TransModel(spec, CellRows(np.zeros((5, 2))), torch.ones(5), torch.ones(5),
        ...                torch.zeros(5, dtype=torch.long), None, {"scale": torch.ones(2)})
        >>> sorted(m.init_values())
        ['A', 'K', 'Vmax', 'gate', 'n', 'sigma']
        """
        spec, p = self.spec, self.spec.priors
        ref = p["scale"]
        half = torch.full_like(ref, 0.5)
        k0 = torch.full_like(ref, math.exp(p["K_loc"] + p["K_scale"] ** 2 / 2))
        out = {}
        fam = self.family.name
        if fam == "multinomial":
            out["p_low"] = p["A_mean"]
        elif fam == "binomial":
            out["A"] = p["A_mean"]
        else:
            out["A"] = p["A_mean"] + (0.5 * p["V_mean"] if spec.form == "polynomial" else 0.0)
        if spec.form == "polynomial":
            k = p["conc"].shape[-1] if fam == "multinomial" else None
            shape = ref.shape + ((k - 1, spec.degree) if k else (spec.degree,))
            out["coef"] = torch.zeros(shape, dtype=ref.dtype, device=ref.device)
            out["gate"] = half
        elif spec.form == "additive":
            for j in (1, 2):
                if fam == "multinomial":
                    out[f"p_high{j}"] = p["A_mean"]
                elif fam == "binomial":
                    out[f"Vfrac{j}"] = half
                else:
                    out[f"Vmax{j}"] = p["V_mean"]
                out[f"K{j}"], out[f"n{j}_abs"], out[f"gate{j}"] = k0, torch.full_like(ref, 2.0), half
        else:
            if fam == "multinomial":
                out["p_high"] = p["A_mean"]
            elif fam == "binomial":
                out["Vfrac"] = half
            else:
                out["Vmax"] = p["V_mean"]
            if spec.form == "nested":
                out.update(K_in=k0, n_in_abs=torch.full_like(ref, 2.0), K_out=half)
                out["n_out_abs" if fam == "multinomial" else "n_out"] = torch.full_like(ref, 1.0)
            else:
                out["K"] = k0
                out["n_abs" if fam == "multinomial" else "n"] = torch.full_like(ref, 1.0 if fam == "multinomial" else 0.0)
            out["gate"] = half
        if fam in ("normal", "studentt"):
            out["sigma"] = self.noise_priors["scale"]
        if fam == "studentt":
            out["df"] = torch.full_like(ref, 10.0)
        if fam == "negbinom" and not (self.fixed_noise and "phi" in self.fixed_noise):
            out["o"] = torch.full_like(ref, 0.3)
        if self.log2_x_sd is not None:
            out["log2_x_true"] = self.log2_x_loc.unsqueeze(-1)
        return out


def trans_model(data: DreamData, modality: str, x_true: np.ndarray, *, technical=None, form: str = "single",
                gate_prior: float = 0.2, n_scale: float = 3.0, degree: int = 3, prior_cv: float = 1.0,
                min_cells: int = 3, x_sd=None, device=None, dtype=torch.float64,
                budget=None) -> tuple[TransModel, PriorReport]:
    """Build the trans model of a modality against a given x_true.

    Parameters
    ----------
    data : DreamData
        The screen.
    modality : str
        Modality whose trans features are fitted (the cis feature is left out of
        the primary counts).
    x_true : numpy.ndarray
        (cells,) positive cis expression (e.g. ``CisFit.x_true``).
    technical : TechnicalFit, optional
        Technical fit of the same modality: group effects and (negative binomial)
        overdispersion are plugged in. Without one, several groups trigger a warning.
    form : {"single", "additive", "nested", "polynomial"}
        Curve form.
    gate_prior, n_scale, degree, prior_cv
        Prior settings (see :class:`~torchgenetics.dream.curves.CurveSpec`).
    min_cells : int
        Usable cells a guide needs for its mean to enter the priors.
    device, dtype, budget
        Where tensors live and the memory budget for densifying sparse counts.

    Returns
    -------
    model : TransModel
    report : PriorReport

    Examples
    --------
    >>> from torchgenetics.dream.simulate import simulate_screen
    >>> from torchgenetics.dream.data import prepare_data
    >>> sim = simulate_screen(n_cells=60, n_features=3, n_groups=1, seed=0)
    >>> model, report = trans_model(prepare_data(sim.counts, sim.cells, sim.cis_gene), "counts",
    ...                             sim.truth["x_true"])
    >>> model.n_features, report.guide_level
    (3, 3)
    """
    mod = data.modality(modality)
    fam = get_family(mod.family)
    x_true = np.asarray(x_true, dtype=np.float64)
    if x_true.shape != (data.n_cells,):
        raise InputError(f"x_true has shape {x_true.shape}, expected ({data.n_cells},)")
    if not (np.all(np.isfinite(x_true)) and np.all(x_true > 0)):
        raise InputError("x_true must be positive and finite for every cell")
    idx = data.trans_index(modality)
    if idx.size == 0:
        raise InputError(f"modality {modality!r} has no trans features")
    values = mod.values[:, idx] if mod.values.ndim == 2 else mod.values[:, idx, :]
    den = None if mod.denominator is None else mod.denominator[:, idx]
    features = [mod.features[i] for i in idx]
    group = data.group_code
    tech = None
    fixed = None
    if technical is not None:
        if technical.modality != modality or list(technical.features) != list(mod.features):
            raise InputError(
                f"the technical fit is of modality {technical.modality!r}; fit_technical({modality!r}) first"
            )
        tech = technical.tech_mean[:, idx].to(dtype=dtype, device=device)
        if fam.name == "negbinom" and technical.phi is not None:
            fixed = {"phi": technical.phi[idx].to(dtype=dtype, device=device)}
    elif data.n_groups > 1:
        warnings.warn(
            f"fit_trans({modality!r}) without a technical fit: effects of the {data.n_groups} technical "
            "groups are not corrected (run fit_technical first)",
            stacklevel=3,
        )
    tech_np = None if tech is None else tech.detach().cpu().numpy()
    step = plan_block(len(idx), data.n_cells * 8 * max(values.shape[2] if values.ndim == 3 else 1, 1),
                      live_copies=4, budget=budget, device="cpu")

    def blocks():
        # normalised observations, a few columns at a time
        for a in range(0, len(idx), step):
            cols = slice(a, min(a + step, len(idx)))
            block = values[:, cols]
            block = block.toarray() if hasattr(block, "toarray") else np.asarray(block, dtype=np.float64)
            yield normalized_values(mod.family, block, size_factor=data.size_factor,
                                    denominator=None if den is None else den[:, cols],
                                    tech=None if tech_np is None else tech_np[:, cols][group])

    priors_np, report = hill_priors(blocks(), mod.family, data.assignment, x_true, features=features,
                                    min_cells=min_cells, cv=prior_cv)
    priors = {k: (torch.as_tensor(v, dtype=dtype, device=device) if isinstance(v, np.ndarray) else v)
              for k, v in priors_np.items()}
    cell_sd = priors.pop("cell_sd")
    spec = CurveSpec(form, fam, priors, gate_prior=gate_prior, n_scale=n_scale, degree=degree)
    t = lambda v: torch.as_tensor(v, dtype=dtype, device=device)  # noqa: E731
    model = TransModel(
        spec,
        CellRows(values, device=device, dtype=dtype, budget=budget),
        t(x_true),
        t(data.size_factor),
        torch.as_tensor(group, device=device),
        tech,
        {"scale": cell_sd},
        fixed,
        None if den is None else CellRows(den, device=device, dtype=dtype, budget=budget),
        None if x_sd is None else t(np.asarray(x_sd, dtype=np.float64)),
    )
    return model, report
