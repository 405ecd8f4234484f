"""Dose-response parameters as Pyro sample sites, and the curve mean they give.

For each form (``single``, ``additive``, ``nested``, ``polynomial``) and family the
parameters get the data-driven priors of :mod:`~torchgenetics.dream.priors`:

* negative binomial: ``A``, ``Vmax`` log-normal (mean-preserving, CV ``cv``);
* normal / Student-t: ``A ~ Normal(A_mean, scale)``, ``Vmax`` log-normal;
* binomial: ``A ~ Beta(1, (1 - A_mean) / A_mean)`` and the fraction of the room
  above ``A`` used by the curve, ``Vfrac ~ Beta(v / (1 - v), 1)``, so that
  ``A + Vmax <= 1``;
* multinomial: compositions ``p_low``, ``p_high ~ Dirichlet(K * mean proportions)``.

``K`` is log-normal (see :func:`~torchgenetics.dream.priors.hill_priors`), signed
slopes ``n ~ Normal(0, n_scale)``, positive slopes log-normal. Every curve term is
multiplied by an on/off gate ``gate ~ RelaxedBernoulli(temperature, gate_prior)``:
features without a response get gates near 0.
"""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine

from ..errors import InputError
from .hill import FORMS, hill_shape, inflection_point
from .likelihoods import Family
from .priors import lognormal_params

__all__ = ["CurveSpec", "sample_curve", "curve_params", "curve_mean", "derived_quantities"]


class CurveSpec:
    """Form, family and prior settings of a trans curve.

    Parameters
    ----------
    form : {"single", "additive", "nested", "polynomial"}
        Curve form.
    family : Family
        Observation family.
    priors : dict of torch.Tensor
        From :func:`~torchgenetics.dream.priors.hill_priors`, as tensors.
    gate_prior : float, default 0.2
        Prior probability that a feature responds.
    n_scale : float, default 3
        Prior sd of signed Hill coefficients.
    degree : int, default 3
        Polynomial degree.

    Examples
    --------
    >>> from torchgenetics.dream.likelihoods import get_family
    >>> CurveSpec("single", get_family("normal"), {}).gated_sites
    ('gate',)
    """

    def __init__(self, form: str, family: Family, priors: dict, gate_prior: float = 0.2,
                 n_scale: float = 3.0, degree: int = 3):
        if form not in FORMS:
            raise InputError(f"unknown curve form {form!r}; choose from {FORMS}")
        if not (0 < gate_prior < 1):
            raise InputError(f"gate_prior must be in (0, 1), got {gate_prior}")
        if form == "polynomial" and int(degree) < 1:
            raise InputError(f"polynomial degree must be >= 1, got {degree}")
        self.form = form
        self.family = family
        self.priors = priors
        self.gate_prior = float(gate_prior)
        self.n_scale = float(n_scale)
        self.degree = int(degree)

    @property
    def gated_sites(self) -> tuple:
        """Names of the gate sites."""
        return ("gate1", "gate2") if self.form == "additive" else ("gate",)


def _c(ref: torch.Tensor, value) -> torch.Tensor:
    return torch.as_tensor(value, dtype=ref.dtype, device=ref.device)


def _lognormal(name: str, mean: torch.Tensor, cv) -> torch.Tensor:
    loc, scale = lognormal_params(mean.detach().cpu().numpy(), cv)
    return pyro.sample(name, dist.LogNormal(_c(mean, loc), _c(mean, scale)))


def _gate(name: str, spec: CurveSpec, ref: torch.Tensor, temperature) -> torch.Tensor:
    t = _c(ref, 1.0 if temperature is None else temperature)
    probs = torch.full_like(ref, spec.gate_prior)
    return pyro.sample(name, dist.RelaxedBernoulli(t, probs=probs))


def _slope(name: str, ref: torch.Tensor, sign: int | None, spec: CurveSpec) -> torch.Tensor:
    if sign is None:
        return pyro.sample(name, dist.Normal(torch.zeros_like(ref), _c(ref, spec.n_scale)))
    magnitude = pyro.sample(name + "_abs", dist.LogNormal(_c(ref, math.log(2.0)), _c(ref, 0.6)).expand(ref.shape))
    return sign * magnitude


def _K(name: str, ref: torch.Tensor, spec: CurveSpec) -> torch.Tensor:
    p = spec.priors
    return pyro.sample(name, dist.LogNormal(_c(ref, p["K_loc"]), _c(ref, p["K_scale"])).expand(ref.shape))


def _floor_and_room(spec: CurveSpec) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Sample the floor A; for binomial also return the room 1 - A."""
    p, fam = spec.priors, spec.family
    a = p["A_mean"]
    if fam.name == "negbinom":
        mean = a if spec.form != "polynomial" else a + 0.5 * p["V_mean"]
        return _lognormal("A", mean, p["cv"]), None
    if fam.name in ("normal", "studentt"):
        mean = a if spec.form != "polynomial" else a + 0.5 * p["V_mean"]
        return pyro.sample("A", dist.Normal(mean, p["scale"])), None
    if fam.name == "binomial":
        mean = a if spec.form != "polynomial" else (a + 0.5 * p["V_mean"]).clamp(max=0.999)
        A = pyro.sample("A", dist.Beta(torch.ones_like(mean), (1 - mean) / mean))
        return A, 1 - A
    return pyro.sample("p_low", dist.Dirichlet(p["conc"])), None


def _amplitude(name: str, spec: CurveSpec, room: torch.Tensor | None) -> torch.Tensor:
    """Sample one amplitude: Vmax (log-normal) or, for binomial, a fraction of the room."""
    p = spec.priors
    if spec.family.name == "binomial":
        v = (p["V_mean"] / (1 - p["A_mean"])).clamp(1e-3, 1 - 1e-6)
        frac = pyro.sample(name.replace("Vmax", "Vfrac"), dist.Beta(v / (1 - v), torch.ones_like(v)))
        return room * frac
    return _lognormal(name, p["V_mean"], p["cv"])


def sample_curve(spec: CurveSpec, features: pyro.plate, temperature=None) -> dict:
    """Sample every curve parameter of every feature inside the features plate.

    Parameters
    ----------
    spec : CurveSpec
        Form, family and priors.
    features : pyro.plate
        The features plate.
    temperature : float, optional
        Relaxed-Bernoulli temperature of the gates (default 1).

    Returns
    -------
    dict of torch.Tensor
        Parameters by name, each shaped ``(F,)`` (``(F, K)`` for compositions).

    Examples
    --------
    >>> from torchgenetics.dream.likelihoods import get_family
    >>> pri = {"A_mean": torch.ones(2), "V_mean": torch.ones(2), "scale": torch.ones(2), "cv": 1.0,
    ...        "K_loc": 0.0, "K_scale": 0.5}
    >>> spec = CurveSpec("single", get_family("negbinom"), pri)
    >>> sorted(sample_curve(spec, pyro.plate("features", 2)))
    ['A', 'K', 'Vmax', 'gate', 'n']
    """
    fam = spec.family
    ref = spec.priors["scale"]
    categorical = fam.categorical
    with features:
        A, room = _floor_and_room(spec)
        out = {"p_low": A} if categorical else {"A": A}
        if spec.form == "polynomial":
            shape = (fam_k(spec) - 1, spec.degree) if categorical else (spec.degree,)
            scale = spec.priors["V_mean"] if fam.name in ("normal", "studentt") else torch.ones_like(ref)
            scale = scale.reshape(scale.shape + (1,) * len(shape)).expand(scale.shape + shape)
            out["coef"] = pyro.sample("coef", dist.Normal(torch.zeros_like(scale), scale).to_event(len(shape)))
            out["gate"] = _gate("gate", spec, ref, temperature)
            return out
        if spec.form == "additive":
            for j, sign in ((1, 1), (2, -1)):
                if categorical:
                    out[f"p_high{j}"] = pyro.sample(f"p_high{j}", dist.Dirichlet(spec.priors["conc"]))
                else:
                    out[f"Vmax{j}"] = _amplitude(f"Vmax{j}", spec, room)
                    if room is not None:
                        room = room - out[f"Vmax{j}"]
                out[f"K{j}"] = _K(f"K{j}", ref, spec)
                out[f"n{j}"] = _slope(f"n{j}", ref, sign, spec)
                out[f"gate{j}"] = _gate(f"gate{j}", spec, ref, temperature)
            return out
        if categorical:
            out["p_high"] = pyro.sample("p_high", dist.Dirichlet(spec.priors["conc"]))
        else:
            out["Vmax"] = _amplitude("Vmax", spec, room)
        if spec.form == "nested":
            out["K_in"] = _K("K_in", ref, spec)
            out["n_in"] = _slope("n_in", ref, 1, spec)
            out["K_out"] = pyro.sample("K_out", dist.Beta(_c(ref, 2.0), _c(ref, 2.0)).expand(ref.shape))
            out["n_out"] = _slope("n_out", ref, 1 if categorical else None, spec)
        else:
            out["K"] = _K("K", ref, spec)
            out["n"] = _slope("n", ref, 1 if categorical else None, spec)
        out["gate"] = _gate("gate", spec, ref, temperature)
    return out


def curve_params(spec: CurveSpec, draws: dict) -> dict:
    """All curve parameters (sampled and derived, e.g. binomial ``Vmax``) from posterior draws.

    Runs :func:`sample_curve` conditioned on the draws, vectorised over a leading
    draws dimension; no observation is touched.

    Parameters
    ----------
    spec : CurveSpec
        Form, family and priors.
    draws : dict of torch.Tensor
        Latent-site draws shaped ``(S, F, ...)``.

    Returns
    -------
    dict of torch.Tensor
        Parameters shaped ``(S, F, ...)``.

    Examples
    --------
    >>> from torchgenetics.dream.likelihoods import get_family
    >>> pri = {"A_mean": torch.full((2,), 0.2), "V_mean": torch.full((2,), 0.4),
    ...        "scale": torch.ones(2), "cv": 1.0, "K_loc": 0.0, "K_scale": 0.5}
    >>> spec = CurveSpec("single", get_family("binomial"), pri)
    >>> d = {"A": torch.full((3, 2), 0.2), "Vfrac": torch.full((3, 2), 0.5), "K": torch.ones(3, 2),
    ...      "n": torch.ones(3, 2), "gate": torch.ones(3, 2)}
    >>> [round(v, 6) for v in curve_params(spec, d)["Vmax"][0].tolist()]
    [0.4, 0.4]
    """
    first = next(iter(draws.values()))
    n_draws, n_features = first.shape[0], first.shape[1]
    conditioned = poutine.condition(sample_curve, data=draws)
    with pyro.plate("draws", n_draws, dim=-2):
        return conditioned(spec, pyro.plate("features", n_features, dim=-1))


def fam_k(spec: CurveSpec) -> int:
    """Number of categories of a multinomial curve (1 otherwise).

    Examples
    --------
    >>> from torchgenetics.dream.likelihoods import get_family
    >>> fam_k(CurveSpec("single", get_family("multinomial"), {"conc": torch.ones(4, 3)}))
    3
    """
    return int(spec.priors["conc"].shape[-1]) if spec.family.categorical else 1


def _shape(spec: CurveSpec, params: dict, log_x: torch.Tensor, suffix: str = "") -> torch.Tensor:
    """Gated Hill fraction of one term."""
    if spec.form == "nested":
        inner = torch.nn.functional.logsigmoid(params["n_in"] * (log_x - torch.log(params["K_in"])))
        h = hill_shape(inner, torch.log(params["K_out"]), params["n_out"])
    else:
        h = hill_shape(log_x, torch.log(params["K" + suffix]), params["n" + suffix])
    return params["gate" + suffix] * h


def curve_mean(spec: CurveSpec, params: dict, log_x: torch.Tensor) -> torch.Tensor:
    """Mean of each feature at the given log doses, on the family's natural scale.

    Parameters
    ----------
    spec : CurveSpec
        Form and family.
    params : dict of torch.Tensor
        Parameters shaped ``batch + (F,)`` (``+ (K,)`` for compositions).
    log_x : torch.Tensor
        Log doses broadcastable to ``batch + (F,)`` (e.g. ``(cells, 1)``).

    Returns
    -------
    torch.Tensor
        ``batch + (F,)`` means (``+ (K,)`` for multinomial).

    Examples
    --------
    >>> from torchgenetics.dream.likelihoods import get_family
    >>> spec = CurveSpec("single", get_family("normal"), {})
    >>> p = {"A": torch.tensor([1.0]), "Vmax": torch.tensor([2.0]), "K": torch.tensor([1.0]),
    ...      "n": torch.tensor([50.0]), "gate": torch.tensor([1.0])}
    >>> curve_mean(spec, p, torch.tensor([[-1.0], [1.0]])).ravel().round().tolist()
    [1.0, 3.0]
    """
    fam = spec.family
    if spec.form == "polynomial":
        t = (log_x - spec.priors["log_x_center"]) / spec.priors["log_x_scale"]
        coef = params["coef"]
        powers = torch.stack([t ** (d + 1) for d in range(spec.degree)], dim=-1)
        if fam.categorical:
            poly = (powers.unsqueeze(-2) * coef).sum(-1) * params["gate"].unsqueeze(-1)
            logits = torch.log(params["p_low"]) + torch.nn.functional.pad(poly, (1, 0))
            return torch.softmax(logits, dim=-1)
        poly = (powers * coef).sum(-1) * params["gate"]
        if fam.name == "negbinom":
            return params["A"] * torch.exp(poly.clamp(max=30.0))
        if fam.name == "binomial":
            A = params["A"].clamp(1e-9, 1 - 1e-9)
            return torch.sigmoid(torch.log(A) - torch.log1p(-A) + poly)
        return params["A"] + poly
    if spec.form == "additive":
        terms = [(_shape(spec, params, log_x, str(j)), j) for j in (1, 2)]
        if fam.categorical:
            low = params["p_low"]
            out = low
            for h, j in terms:
                out = out + 0.5 * h.unsqueeze(-1) * (params[f"p_high{j}"] - low)
            return out
        return params["A"] + sum(params[f"Vmax{j}"] * h for h, j in terms)
    h = _shape(spec, params, log_x)
    if fam.categorical:
        return params["p_low"] + h.unsqueeze(-1) * (params["p_high"] - params["p_low"])
    return params["A"] + params["Vmax"] * h


def derived_quantities(spec: CurveSpec, params: dict) -> dict:
    """Quantities computed from posterior draws: amplitude, inflection point, fold change.

    ``effect`` is the mean at the largest guide-mean x_true minus the mean at the
    smallest (``x_hi``, ``x_lo`` of the priors) and ``log2fc`` the log2 ratio of the
    two (NaN where a mean is not positive). ``gate_on`` is 1 where a gate exceeds
    0.5: its posterior mean is the probability that the feature responds.

    Parameters
    ----------
    spec : CurveSpec
        Form, family and priors (``x_lo``, ``x_hi``).
    params : dict of torch.Tensor
        Draws shaped ``(S, F)`` (``(S, F, K)`` for compositions); binomial draws
        hold ``Vmax`` computed from ``Vfrac``.

    Returns
    -------
    dict of torch.Tensor

    Examples
    --------
    >>> from torchgenetics.dream.likelihoods import get_family
    >>> pri = {"x_lo": 1.0, "x_hi": 100.0}
    >>> spec = CurveSpec("single", get_family("normal"), pri)
    >>> p = {"A": torch.ones(1, 1), "Vmax": torch.ones(1, 1), "K": torch.full((1, 1), 10.0),
    ...      "n": torch.full((1, 1), 20.0), "gate": torch.ones(1, 1)}
    >>> out = derived_quantities(spec, p)
    >>> round(float(out["log2fc"]), 3), round(float(out["inflection"]), 2)
    (1.0, 9.95)
    """
    ref = next(iter(params.values()))
    lo = torch.log(_c(ref, spec.priors["x_lo"]))
    hi = torch.log(_c(ref, spec.priors["x_hi"]))
    f_lo = curve_mean(spec, params, lo)
    f_hi = curve_mean(spec, params, hi)
    out = {"mean_lo": f_lo, "mean_hi": f_hi, "effect": f_hi - f_lo}
    ok = (f_lo > 0) & (f_hi > 0)
    out["log2fc"] = torch.where(ok, torch.log2(f_hi.clamp(min=1e-300) / f_lo.clamp(min=1e-300)),
                                torch.full_like(f_lo, float("nan")))
    for gate in spec.gated_sites:
        out[f"{gate}_on"] = (params[gate] > 0.5).to(ref.dtype)
    if spec.form == "single":
        out["inflection"] = inflection_point(params["K"], params["n"])
    elif spec.form == "additive":
        out["inflection1"] = inflection_point(params["K1"], params["n1"])
        out["inflection2"] = inflection_point(params["K2"], params["n2"])
    return out
