"""The DeepWAS step of ``torchgen demo``: the seed's comparison of priors and objectives, in miniature."""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["demo_deepwas"]


def demo_deepwas(n_variants: int = 4500, epochs: int = 12, seed: int = 0) -> dict:
    """Train linear and MLP priors on simulated statistics and compare held-out likelihoods.

    The true effect variance is a non-linear function of the annotations
    (:func:`~torchgenetics.deepwas.simulate.nonlinear_prior`); chromosome 3 is held
    out. Three fits: a linear prior and an MLP on the full likelihood, and the same MLP
    on the LDSC-style objective. Each line gives the held-out NLL per variant minus
    the ``F -> 0`` null's (lower is better) and the correlation of predicted and true
    log-variance on the held-out variants.

    Parameters
    ----------
    n_variants : int
        Simulated variants (three chromosomes, LD blocks of 150).
    epochs : int
        Training epochs per fit.
    seed : int

    Returns
    -------
    dict
        ``{label: held-out change in NLL per variant}`` plus ``"truth"``.

    Examples
    --------
    >>> out = demo_deepwas()  # doctest: +SKIP
    """
    from .datamodule import RegionDataModule
    from .fit import feature_stats
    from .likelihood import RegionLikelihood
    from .module import DeepWASModule
    from .predict import predict_variance
    from .priors import LinearPrior, MLPPrior
    from .simulate import simulate_example
    from .trainer import Trainer

    ex = simulate_example(n_variants=n_variants, n_reference=400, block_size=150, chromosomes=3,
                          N=20_000, h2=0.2, seed=seed)
    k = ex.annotations.values.shape[1]
    mean, sd = feature_stats(ex.annotations)
    held = ex.annotations.chrom == "3"
    true_log = np.log(ex.variance)[held]
    print(f"simulated {n_variants:,} variants in {len(ex.regions)} LD regions, {k} annotations, "
          f"N = 20,000; non-linear true prior; chromosome 3 held out")
    results = {}
    for label, make, objective in (("linear prior, full likelihood", lambda: LinearPrior(k), "likelihood"),
                                   ("MLP prior, full likelihood", lambda: MLPPrior(k, (32, 32)), "likelihood"),
                                   ("MLP prior, LDSC-style objective", lambda: MLPPrior(k, (32, 32)), "ldsc")):
        dm = RegionDataModule(ex.regions, batch_size=4, val_chromosomes=["3"], seed=seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            module = DeepWASModule(make(), likelihood={"method": "exact"}, objective=objective,
                                   log_scale=dm.moment_log_variance(), optim={"lr": 0.01},
                                   feature_mean=mean, feature_sd=sd)
        hist = Trainer(max_epochs=epochs).fit(module, dm)
        m = module.evaluate(dm.val_regions)
        pred = predict_variance(module, ex.annotations.subset(np.flatnonzero(held)))
        r = float(np.corrcoef(pred["log_variance"], true_log)[0, 1])
        results[label] = m["delta"]
        print(f"  {label:34s} held-out NLL change {m['delta']:+.4f}/variant, "
              f"corr(log f) {r:.2f}, {hist.n_steps} steps in {hist.seconds:.1f} s")
    dm = RegionDataModule(ex.regions, val_chromosomes=["3"])
    lik = RegionLikelihood("exact")
    tot = null = n = 0.0
    for reg in dm.val_regions:
        f = torch.as_tensor(ex.variance[ex.annotations.positions_of(reg.variant_ids)])
        tot += lik(reg, f).value
        null += lik.null(reg).value
        n += reg.n_scored
    results["truth"] = (tot - null) / n
    print(f"  {'true prior':34s} held-out NLL change {results['truth']:+.4f}/variant")
    return results
