"""SuSiE: torchgen against pysusie (a Python port of susieR), single loci, scans and banded RSS.

One run of each, side by side, with the ratios and the accuracy beside the times:

1. One locus, n = 1,000, p = 1,000 and 5,000, L = 10: ``torchgenetics.susie.susie``
   against ``pysusie.susie`` (tol = 1e-4 for both: pysusie's default is 1e-3).
2. A scan of ``--loci`` loci of p = 1,000 (n = ``--scan-n``): ``susie_batch`` (one
   batched program) against ``susie`` one locus at a time, and pysusie in a loop
   timed on ``--pysusie-loci`` evenly spaced loci and extrapolated (said in the output).
   The batched fits are checked to equal the one-by-one fits. The same again for
   small loci (p = 200, n = 500), where per-call overhead, not memory traffic, dominates.
3. ``susie_rss`` with p = 20,000 and a banded LD operator (``BandedLD``): the peak
   memory the fit adds (process max RSS) against a dense p x p matrix, and the time
   per IBSS iteration.

Simulated data: AR(1) Gaussian genotypes (correlation 0.9 between neighbours); 30% of
the scan's loci carry 1-3 causal variants (each explaining 2-4% of y's variance).
Everything runs on one thread (torch and numpy's BLAS): the machine is shared, and a
second intra-op thread waiting for a busy core costs more than it gains.

Usage::

    .venv/bin/python benchmarks/susie.py
    .venv/bin/python benchmarks/susie.py --loci 50 --pysusie-loci 2   # quicker
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from scipy.signal import lfilter

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from torchgenetics.operators import BandedLD  # noqa: E402
from torchgenetics.susie import susie, susie_batch, susie_rss  # noqa: E402

RHO = 0.9


def ar1(n: int, p: int, rng: np.random.Generator) -> np.ndarray:
    """(n, p) stationary AR(1) rows: unit variance, correlation RHO^|i-j| between columns."""
    Z = rng.standard_normal((n, p))
    zi = RHO * rng.standard_normal((n, 1))
    return lfilter([np.sqrt(1 - RHO**2)], [1.0, -RHO], Z, axis=1, zi=zi)[0]


def locus(n: int, p: int, rng: np.random.Generator, signal: bool):
    X = ar1(n, p, rng)
    beta = np.zeros(p)
    if signal:
        k = rng.integers(1, 4)
        beta[rng.choice(p, k, replace=False)] = rng.choice([-1, 1], k) * np.sqrt(rng.uniform(0.02, 0.04, k))
    y = X @ beta + rng.standard_normal(n)
    return torch.from_numpy(X), torch.from_numpy(y)


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def pysusie_fit(X, y, L):
    import pysusie

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pysusie.susie(X.numpy(), y.numpy(), L=L, tol=1e-4)


def cs_sets(sets) -> list:
    return sorted(tuple(sorted(int(j) for j in np.asarray(c).tolist())) for c in (sets or []))


def single_locus(p: int, n: int, L: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    X, y = locus(n, p, rng, signal=True)
    fit, t_tg = timed(lambda: susie(X, y, L=L))
    ref, t_py = timed(lambda: pysusie_fit(X, y, L))
    pip_diff = float(np.abs(fit.pip.numpy() - np.asarray(ref["pip"])).max())
    elbo_diff = abs(float(fit.elbo[-1]) - float(np.asarray(ref["elbo"])[-1]))
    same_cs = cs_sets([c.tolist() for c in fit.sets["cs"]]) == cs_sets(ref["sets"]["cs"])
    print(f"  p = {p:>5,}: torchgen {t_tg:6.3f} s ({fit.n_iter} iter), pysusie {t_py:6.3f} s "
          f"({int(ref['niter'])} iter)  -> {t_py / t_tg:5.1f}x   |dPIP| {pip_diff:.1e}, "
          f"|dELBO| {elbo_diff:.1e}, same CS: {same_cs}")


def scan(n_loci: int, n: int, p: int, L: int, n_py: int, seed: int) -> None:
    """Batched vs one by one vs pysusie on ``n_loci`` simulated loci (30% with signal)."""
    rng = np.random.default_rng(seed)
    loci = [locus(n, p, rng, signal=rng.random() < 0.3) for _ in range(n_loci)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        batch, t_batch = timed(lambda: susie_batch(loci, L=L))
        one, t_one = timed(lambda: [susie(X, y, L=L) for X, y in loci])
    equal = all(torch.equal(a.alpha, b.alpha) and torch.equal(a.elbo, b.elbo)
                for a, b in zip(batch, one, strict=True))
    picks = np.linspace(0, n_loci - 1, n_py).round().astype(int)
    _, t_py = timed(lambda: [pysusie_fit(*loci[i], L) for i in picks])
    per_py = t_py / len(picks)
    iters = np.array([f.n_iter for f in one])
    print(f"  {n_loci} loci, n = {n:,}, p = {p:,} (IBSS iterations: median {np.median(iters):.0f}, "
          f"max {iters.max()}; {sum(bool(f.sets['cs']) for f in one)} loci with a CS)")
    print(f"  batched (susie_batch)   {t_batch:7.2f} s  {n_loci / t_batch:7.2f} loci/s")
    print(f"  one by one (susie)      {t_one:7.2f} s  {n_loci / t_one:7.2f} loci/s   "
          f"batching: {t_one / t_batch:.1f}x; fits bit-identical: {equal}")
    print(f"  pysusie loop            {per_py * n_loci:7.2f} s  {1 / per_py:7.2f} loci/s   "
          f"(extrapolated from {len(picks)} loci timed, {per_py:.2f} s each); "
          f"batched torchgen {per_py * n_loci / t_batch:.0f}x")


def maxrss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def banded_rss(p: int, window: int, L: int, gwas_n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    bands = torch.from_numpy(RHO ** np.arange(window + 1)[:, None] * np.ones((window + 1, p)))
    R = BandedLD(bands)
    beta = np.zeros(p)
    causal = rng.choice(p, 5, replace=False)
    beta[causal] = rng.choice([-1, 1], 5) * 0.08
    noise = ar1(1, p, rng)[0]  # N(0, AR(1) correlation), the z-score noise
    z = torch.from_numpy(np.sqrt(gwas_n) * R.matmul(torch.from_numpy(beta)).numpy() + noise)
    susie_rss(z[:200], BandedLD(bands[:, :200]), n=gwas_n, L=2)  # warm-up (first calls)
    before = maxrss_bytes()
    fit, seconds = timed(lambda: susie_rss(z, R, n=gwas_n, L=L))
    added = max(maxrss_bytes() - before, 0)
    dense = p * p * 8
    found = sum(any(int(j) in set(c.tolist()) for c in fit.sets["cs"]) for j in causal)
    print(f"  p = {p:,}, band {window} (LD operator {bands.numel() * 8 / 2**20:.1f} MiB), L = {L}: "
          f"{seconds:.2f} s, {fit.n_iter} iterations, {1000 * seconds / fit.n_iter:.0f} ms/iteration; "
          f"{len(fit.sets['cs'])} CS hold {found} of 5 causal")
    print(f"  peak memory added by the fit {added / 2**20:.0f} MiB vs a dense p x p {dense / 2**30:.1f} GiB "
          f"({dense / max(added, 1):.0f}x less)")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loci", type=int, default=200)
    parser.add_argument("--scan-n", type=int, default=1000)
    parser.add_argument("--pysusie-loci", type=int, default=5)
    parser.add_argument("--rss-p", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"torch {torch.__version__}, 1 thread (torch and BLAS); float64 on CPU; "
          f"machine load average {load} on {os.cpu_count()} cores")
    print("3. susie_rss with a banded LD operator")
    banded_rss(args.rss_p, window=100, L=10, gwas_n=10000, seed=args.seed)
    print("1. one locus, n = 1,000, L = 10: torchgen susie vs pysusie susie (tol 1e-4)")
    susie(*locus(200, 50, np.random.default_rng(0), True), L=5)  # warm-up
    for p in (1000, 5000):
        single_locus(p, n=1000, L=10, seed=args.seed + p)
    print(f"2. scan: {args.loci} loci of p = 1,000, L = 10")
    scan(args.loci, n=args.scan_n, p=1000, L=10, n_py=args.pysusie_loci, seed=args.seed)
    print(f"2b. scan of small loci: {args.loci} loci of p = 200, n = 500, L = 10")
    scan(args.loci, n=500, p=200, L=10, n_py=args.pysusie_loci, seed=args.seed + 1)


if __name__ == "__main__":
    main()
