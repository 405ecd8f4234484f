"""The five observation families: how a curve's mean, technical effects and noise become data.

Each family knows

* its technical effect's link scale (log for negative binomial, identity for
  normal and Student-t, logit for binomial, log-ratio to category 0 for
  multinomial), on which group effects have Student-t priors;
* its per-feature baseline prior (technical model) and noise parameters
  (overdispersion ``phi``, residual ``sigma``, Student-t degrees of freedom);
* the Pyro distribution of an observation.

Observation distributions are built with ``validate_args=False``: data are
checked once by :func:`~torchgenetics.dream.data.prepare_data`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import pyro
import pyro.distributions as dist
import torch

from ..errors import InputError

__all__ = ["Family", "FAMILY", "get_family"]


def _t(ref: torch.Tensor, value) -> torch.Tensor:
    return torch.as_tensor(value, dtype=ref.dtype, device=ref.device)


class Family(ABC):
    """Base class: one observation family.

    Subclasses set ``name``, ``proportion`` (mean confined to (0, 1)),
    ``categorical`` (multinomial) and implement the methods below.

    Examples
    --------
    >>> get_family("normal").name
    'normal'
    """

    name = ""
    proportion = False
    categorical = False
    size_factors = False

    def noise_sites(self) -> tuple:
        """Names of the per-feature noise sites this family samples.

        Examples
        --------
        >>> get_family("studentt").noise_sites()
        ('sigma', 'df')
        """
        return ()

    def tech_scale(self, priors: dict) -> torch.Tensor:
        """Scale of the Student-t prior of technical effects, on the link scale.

        Examples
        --------
        >>> float(get_family("negbinom").tech_scale({"scale": torch.ones(2)}))
        0.5
        """
        return _t(priors["scale"], 0.5)

    @abstractmethod
    def sample_baseline(self, features: pyro.plate, priors: dict) -> torch.Tensor:
        """Sample the per-feature baseline mean of the technical model.

        Parameters
        ----------
        features : pyro.plate
            The features plate.
        priors : dict of torch.Tensor
            ``mean`` and ``scale`` from :func:`~torchgenetics.dream.priors.baseline_priors`.

        Returns
        -------
        torch.Tensor
            Baseline mean per feature (per category for multinomial).

        Examples
        --------
        >>> import pyro
        >>> pri = {"mean": torch.tensor([2.0]), "scale": torch.tensor([1.0])}
        >>> get_family("negbinom").sample_baseline(pyro.plate("f", 1), pri).shape
        torch.Size([1])
        """

    def sample_noise(self, features: pyro.plate, priors: dict, fixed: dict | None = None) -> dict:
        """Sample (or take from ``fixed``) the noise parameters of each feature.

        Parameters
        ----------
        features : pyro.plate
            The features plate.
        priors : dict of torch.Tensor
            Needs ``scale`` (per feature) for normal and Student-t.
        fixed : dict, optional
            Plug-in values (e.g. ``{"phi": ...}`` from a technical fit).

        Returns
        -------
        dict of torch.Tensor

        Examples
        --------
        >>> get_family("binomial").sample_noise(None, {})
        {}
        """
        return {}

    @abstractmethod
    def observation(self, mean, tech, noise: dict, size_factor=None, denominator=None):
        """Distribution of the observations given the curve mean and technical effects.

        Parameters
        ----------
        mean : torch.Tensor
            Curve mean on the family's natural scale (cells x features [x categories]).
        tech : torch.Tensor or None
            Technical effect of each cell on the link scale.
        noise : dict of torch.Tensor
            From :meth:`sample_noise`.
        size_factor : torch.Tensor, optional
            Per-cell size factors (negative binomial), shaped to broadcast.
        denominator : torch.Tensor, optional
            Binomial totals.

        Returns
        -------
        pyro.distributions.Distribution

        Examples
        --------
        >>> get_family("normal").observation(torch.zeros(2), None, {"sigma": torch.ones(2)}).batch_shape
        torch.Size([2])
        """


class NegBinom(Family):
    """Negative binomial counts: mean ``size_factor * exp(tech) * mean``, overdispersion ``phi``.

    ``phi = 1 / o**2`` with ``o ~ Exponential(beta_o)``, ``beta_o ~ Gamma(9, 3)``.

    Examples
    --------
    >>> d = NegBinom().observation(torch.tensor([[4.0]]), None, {"phi": torch.tensor([10.0])},
    ...                            size_factor=torch.tensor([[0.5]]))
    >>> round(float(d.mean), 6)
    2.0
    """

    name = "negbinom"
    size_factors = True

    def noise_sites(self):
        return ("o",)

    def sample_baseline(self, features, priors):
        mean = priors["mean"]
        with features:
            return pyro.sample("baseline", dist.LogNormal(torch.log(mean), _t(mean, 1.0)))

    def sample_noise(self, features, priors, fixed=None):
        if fixed and "phi" in fixed:
            return {"phi": fixed["phi"]}
        ref = priors["scale"]
        beta = pyro.sample("beta_o", dist.Gamma(_t(ref, 9.0), _t(ref, 3.0)))
        with features:
            o = pyro.sample("o", dist.Exponential(beta))
        return {"phi": 1.0 / o.clamp(min=1e-4) ** 2}

    def observation(self, mean, tech, noise, size_factor=None, denominator=None):
        log_mu = torch.log(mean.clamp(min=1e-12))
        if size_factor is not None:
            log_mu = log_mu + torch.log(size_factor)
        if tech is not None:
            log_mu = log_mu + tech
        phi = noise["phi"]
        return dist.NegativeBinomial(total_count=phi, logits=log_mu - torch.log(phi), validate_args=False)


class Normal(Family):
    """Gaussian values: ``mean + tech`` with per-feature residual sd ``sigma``.

    Examples
    --------
    >>> float(Normal().observation(torch.tensor(1.0), torch.tensor(0.5), {"sigma": torch.tensor(2.0)}).mean)
    1.5
    """

    name = "normal"

    def noise_sites(self):
        return ("sigma",)

    def tech_scale(self, priors):
        return 0.5 * priors["scale"]

    def sample_baseline(self, features, priors):
        with features:
            return pyro.sample("baseline", dist.Normal(priors["mean"], 2.0 * priors["scale"]))

    def sample_noise(self, features, priors, fixed=None):
        if fixed and "sigma" in fixed:
            return {"sigma": fixed["sigma"]}
        scale = priors["scale"]
        with features:
            sigma = pyro.sample("sigma", dist.LogNormal(torch.log(scale), _t(scale, 1.0)))
        return {"sigma": sigma}

    def _loc(self, mean, tech):
        return mean if tech is None else mean + tech

    def observation(self, mean, tech, noise, size_factor=None, denominator=None):
        return dist.Normal(self._loc(mean, tech), noise["sigma"], validate_args=False)


class StudentT(Normal):
    """Heavy-tailed values: Student-t around ``mean + tech`` with per-feature ``sigma`` and ``df``.

    ``df ~ Gamma(2, 0.1)`` (mean 20).

    Examples
    --------
    >>> d = StudentT().observation(torch.tensor(0.0), None, {"sigma": torch.tensor(1.0), "df": torch.tensor(5.0)})
    >>> float(d.df)
    5.0
    """

    name = "studentt"

    def noise_sites(self):
        return ("sigma", "df")

    def sample_noise(self, features, priors, fixed=None):
        out = super().sample_noise(features, priors, fixed)
        if fixed and "df" in fixed:
            out["df"] = fixed["df"]
            return out
        ref = priors["scale"]
        with features:
            out["df"] = pyro.sample("df", dist.Gamma(_t(ref, 2.0), _t(ref, 0.1)))
        return out

    def observation(self, mean, tech, noise, size_factor=None, denominator=None):
        return dist.StudentT(noise["df"], self._loc(mean, tech), noise["sigma"], validate_args=False)


def _logit(p: torch.Tensor) -> torch.Tensor:
    p = p.clamp(1e-9, 1 - 1e-9)
    return torch.log(p) - torch.log1p(-p)


class Binomial(Family):
    """Counts out of a denominator (e.g. splice-junction PSI): ``logit p = logit(mean) + tech``.

    Examples
    --------
    >>> d = Binomial().observation(torch.tensor(0.25), None, {}, denominator=torch.tensor(8.0))
    >>> round(float(d.mean), 6)
    2.0
    """

    name = "binomial"
    proportion = True

    def sample_baseline(self, features, priors):
        m = priors["mean"]
        with features:
            return pyro.sample("baseline", dist.Beta(4.0 * m, 4.0 * (1 - m)))

    def observation(self, mean, tech, noise, size_factor=None, denominator=None):
        logits = _logit(mean) if tech is None else _logit(mean) + tech
        return dist.Binomial(total_count=denominator, logits=logits, validate_args=False)


class Multinomial(Family):
    """Category counts (e.g. isoform usage): probabilities ``softmax(log mean + [0, tech])``.

    The log-likelihood uses each cell's own total; ``mean`` has the categories last.

    Examples
    --------
    >>> d = Multinomial().observation(torch.tensor([[0.5, 0.5]]), None, {})
    >>> round(float(d.log_prob(torch.tensor([[1.0, 1.0]]))), 4)
    -0.6931
    """

    name = "multinomial"
    proportion = True
    categorical = True

    def sample_baseline(self, features, priors):
        m = priors["mean"]
        with features:
            return pyro.sample("baseline", dist.Dirichlet(m * m.shape[-1]))

    def observation(self, mean, tech, noise, size_factor=None, denominator=None):
        logits = torch.log(mean.clamp(min=1e-12))
        if tech is not None:
            logits = logits + torch.nn.functional.pad(tech, (1, 0))
        return dist.Multinomial(total_count=1, logits=logits, validate_args=False)


FAMILY = {cls.name: cls() for cls in (NegBinom, Normal, StudentT, Binomial, Multinomial)}


def get_family(name: str) -> Family:
    """The :class:`Family` object of a family name.

    Parameters
    ----------
    name : str
        One of ``negbinom, normal, studentt, binomial, multinomial``.

    Returns
    -------
    Family

    Raises
    ------
    InputError
        For an unknown name.

    Examples
    --------
    >>> get_family("binomial").proportion
    True
    """
    if name not in FAMILY:
        raise InputError(f"unknown likelihood family {name!r}; choose from {sorted(FAMILY)}")
    return FAMILY[name]
