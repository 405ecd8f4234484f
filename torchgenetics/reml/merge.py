"""Z-score merge of weak variance components (GPU_REML's one-shot merge).

Fit the fine components; compute Wald z-scores ``z_g = s2_g / SE_g`` from the
inverse average information; keep components with ``z_g >= 1.6448536269514722``
(one-sided 5%); merge all weaker ones into one background GRM over the union of
their variants; refit once. Both fits are returned.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from ..errors import InputError
from ..operators import GRMStack
from .fit import REMLFit
from .model import reml

__all__ = ["Z_THRESHOLD", "MergeResult", "reml_merge", "z_scores"]

#: One-sided 5% normal quantile used by GPU_REML to keep a component.
Z_THRESHOLD = 1.6448536269514722


def z_scores(fit: REMLFit) -> torch.Tensor:
    """Wald z-scores ``s2_g / SE_g`` of the genetic components (0 when both are 0).

    Examples
    --------
    >>> from torchgenetics.reml.fit import _example_fit
    >>> bool(z_scores(_example_fit())[0] > 3)
    True
    """
    var, se = fit.variances[:-1], fit.se[:-1]
    return torch.where(se > 0, var / torch.where(se > 0, se, torch.ones_like(se)),
                       torch.where(var > 0, torch.full_like(var, math.inf), torch.zeros_like(var)))


@dataclass
class MergeResult:
    """The two fits of a z-score merge.

    Attributes
    ----------
    fine : REMLFit
        Fit of the fine components.
    merged : REMLFit
        Refit with kept components plus one background kernel (the fine fit
        itself when no component was weak).
    z : torch.Tensor
        (G,) z-scores of the fine components.
    kept : list of str
        Fine components with ``z >= threshold``.
    weak : list of str
        Components merged into the background.
    background : str or None
        Name of the background component (None when nothing was merged).
    threshold : float
    refit : bool
        Whether a second fit was run.

    Examples
    --------
    >>> from torchgenetics.reml.fit import _example_fit
    >>> fit = _example_fit()
    >>> MergeResult(fit, fit, z_scores(fit), ["G"], [], None, Z_THRESHOLD, False).to_frame().index.tolist()
    ['G']
    """

    fine: REMLFit
    merged: REMLFit
    z: torch.Tensor
    kept: list
    weak: list
    background: str | None
    threshold: float
    refit: bool

    def to_frame(self) -> pd.DataFrame:
        """One row per fine component: ``variance, se, z, kept``.

        Examples
        --------
        See :func:`reml_merge`.
        """
        names = list(self.fine.names)
        return pd.DataFrame({
            "variance": self.fine.variances[:-1].tolist(), "se": self.fine.se[:-1].tolist(),
            "z": self.z.tolist(), "kept": [n in self.kept for n in names],
        }, index=pd.Index(names, name="component"))

    def summary(self) -> str:
        """Both fits and the merge decision as text.

        Examples
        --------
        See :func:`reml_merge`.
        """
        head = (f"z-score merge (threshold {self.threshold:.4f}): kept {len(self.kept)} of "
                f"{len(self.fine.names)} components; merged {len(self.weak)} into "
                f"{self.background!r}" if self.weak else
                f"z-score merge (threshold {self.threshold:.4f}): every component kept, no refit")
        return "\n".join([head, self.to_frame().to_string(), "", "fine fit:", self.fine.summary(),
                          "", "merged fit:", self.merged.summary()])


def reml_merge(y, stack: GRMStack, covariates=None, *, threshold=Z_THRESHOLD, background="background",
               **reml_kwargs) -> MergeResult:
    """Fit fine components, merge those with ``z < threshold`` into one kernel, refit.

    Parameters
    ----------
    y : array-like (n,)
    stack : GRMStack
        The fine components (e.g. from :func:`~torchgenetics.reml.grm_stack`).
    covariates : optional
        As in :func:`~torchgenetics.reml.reml`.
    threshold : float
        Keep components with ``s2_g / SE_g >= threshold`` (default one-sided 5%).
    background : str
        Name of the merged component.
    **reml_kwargs
        Passed to both fits (``method``, ``seed``, tolerances, ``report``, ...).
        The refit starts from the fine estimates (kept variances, and the
        trace-weighted sum of the weak ones for the background).

    Returns
    -------
    MergeResult

    Examples
    --------
    >>> from torchgenetics.datasets import simulate_genotypes, simulate_phenotype
    >>> from torchgenetics.operators import GRMStack
    >>> sim = simulate_genotypes(300, 400, seed=0)
    >>> ph = simulate_phenotype(sim, h2=[0.6, 0.0, 0.0, 0.0], n_causal=[60, 0, 0, 0],
    ...                         components=[range(0, 100), range(100, 200), range(200, 300), range(300, 400)], seed=1)
    >>> S = GRMStack(sim.to_genotypes(), [range(0, 100), range(100, 200), range(200, 300), range(300, 400)])
    >>> res = reml_merge(ph.y, S)
    >>> res.merged.names[-1] == "background" or not res.weak
    True
    >>> res.to_frame().columns.tolist()
    ['variance', 'se', 'z', 'kept']
    """
    if not isinstance(stack, GRMStack):
        raise InputError(f"reml_merge needs a GRMStack of fine components, got {type(stack).__name__}")
    if "init" in reml_kwargs or "names" in reml_kwargs:
        raise InputError("reml_merge sets init and names itself; do not pass them")
    fine = reml(y, stack, covariates, **reml_kwargs)
    z = z_scores(fine)
    names = list(fine.names)
    keep = [bool(v >= threshold) for v in z.tolist()]
    kept = [nm for nm, k in zip(names, keep, strict=True) if k]
    weak = [nm for nm, k in zip(names, keep, strict=True) if not k]
    if not weak:
        return MergeResult(fine, fine, z, kept, weak, None, float(threshold), False)
    if background in kept:
        raise InputError(f"background name {background!r} is already a kept component's name")
    comps = stack.components
    genotypes = comps[0].genotypes
    sets = [comps[g].variant_index for g, k in enumerate(keep) if k]
    sets.append(np.unique(np.concatenate([comps[g].variant_index for g, k in enumerate(keep) if not k])))
    merged_stack = GRMStack(genotypes, sets, device=stack.device, dtype=stack.dtype, resident=stack.resident,
                            names=kept + [background], distributed=stack.distributed, group=stack.group)
    t = fine.trace_scale
    theta = fine.variances
    weak_idx = [g for g, k in enumerate(keep) if not k]
    bg = float(sum(theta[g] * t[g] for g in weak_idx)) / float(sum(t[g] for g in weak_idx) / len(weak_idx))
    init = [float(theta[g]) for g, k in enumerate(keep) if k] + [max(bg, 0.0), float(theta[-1])]
    merged = reml(y, merged_stack, covariates, init=init, **reml_kwargs)
    return MergeResult(fine, merged, z, kept, weak, background, float(threshold), True)
