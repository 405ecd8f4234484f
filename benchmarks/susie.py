"""SuSiE: torchgen against pysusie (a Python port of susieR), single loci, scans and banded RSS.

One run of each, side by side, with the ratios, the accuracy and a data-traffic floor:

1. One locus, n = 1,000, p = 1,000 and 5,000, L = 10: ``torchgenetics.susie.susie``
   (default Brent prior-variance search, susieR's; and ``prior_optimizer="newton"``)
   against ``pysusie.susie`` with the same data and ``tol = 1e-4`` (pysusie's own
   default is 1e-3). Best of ``--repeats`` runs of each, interleaved.
2. A scan of ``--loci`` loci of p = 1,000 (n = ``--scan-n``): ``susie_batch`` against
   ``susie`` one locus at a time (best of ``--scan-repeats`` interleaved runs of each),
   and pysusie in a loop timed on ``--pysusie-loci``
   evenly spaced loci and extrapolated (said in the output). The batched fits are
   checked to equal the one-by-one fits bit for bit. The same again for small loci
   (p = 200, n = 500), where per-call overhead, not memory traffic, dominates.
3. ``susie_rss`` with p = 20,000 and a banded LD operator (``BandedLD``): the peak
   memory the fit adds (process max RSS) against a dense p x p matrix, and the time
   per IBSS iteration.

Every time is reported twice: wall clock, and CPU time of the process (both sides
run on one thread, so CPU time is the work done, and it is less disturbed by other
processes on a shared machine). The floor: every effect update of individual data
needs ``X b`` and ``X^T (X b)``, so X is read at least once per update (torchgen's
one-pass product reads it exactly once) and no schedule can share those reads across
effects (updated in sequence) or loci (each has its own X). For one locus the
benchmark counts the updates, times one pass over X (a GEMV) and prints the time the
updates take at that rate. For the scans it times the products where they happen (with
the per-locus setup passes over X: column moments and ``X^T y``) during the
one-by-one run: that share of the one-by-one CPU time is data traffic no batching
can share, so ``1 / share`` caps what batching can gain over one by one; the
benchmark prints the cap next to the measured gain.

Simulated data: AR(1) Gaussian genotypes (correlation 0.9 between neighbours); 30% of
the scan's loci carry 1-3 causal variants (each explaining 2-4% of y's variance).
Everything runs on one thread (torch and numpy's BLAS).

Usage::

    .venv/bin/python benchmarks/susie.py
    .venv/bin/python benchmarks/susie.py --loci 50 --pysusie-loci 2   # quicker
    .venv/bin/python benchmarks/susie.py --parts 1                     # one-locus part only
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
from torchgenetics.susie import api as susie_api  # noqa: E402
from torchgenetics.susie import data as susie_data  # noqa: E402
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


class Clock:
    """Wall and CPU seconds of a call, and its result."""

    def __init__(self, fn):
        w, c = time.perf_counter(), time.process_time()
        self.out = fn()
        self.wall, self.cpu = time.perf_counter() - w, time.process_time() - c


def best(fns: dict, repeats: int) -> dict:
    """Interleaved repeats of each function; per name the run with the least CPU time."""
    runs = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            runs[name].append(Clock(fn))
    return {name: min(r, key=lambda c: c.cpu) for name, r in runs.items()}


class DataTraffic:
    """Counts and times (CPU seconds) the passes over each locus' X of individual-data fits.

    ``products``: the effect updates' ``X b`` and ``X^T X b`` (``IndividualData.products``);
    ``setup``: the per-locus passes before IBSS, the column moments and ``X^T y`` (the
    first ``IndividualData._arrays`` of a locus). Both read the locus' own X, so no
    batching across loci can share them.
    """

    def __init__(self):
        self.count = 0
        self.product_cpu = 0.0
        self.setup_cpu = 0.0
        self._products = susie_data.IndividualData.products
        self._arrays = susie_data.IndividualData._arrays
        self._moments = susie_api.column_moments

    def __enter__(self):
        traffic, products, arrays, moments = self, self._products, self._arrays, self._moments

        def timed_products(data, b):
            t = time.process_time()
            out = products(data, b)
            traffic.product_cpu += time.process_time() - t
            traffic.count += 1
            return out

        def timed_arrays(data):
            if data._engine is not None:
                return arrays(data)
            t = time.process_time()
            out = arrays(data)
            traffic.setup_cpu += time.process_time() - t
            return out

        def timed_moments(X):
            t = time.process_time()
            out = moments(X)
            traffic.setup_cpu += time.process_time() - t
            return out

        susie_data.IndividualData.products = timed_products
        susie_data.IndividualData._arrays = timed_arrays
        susie_api.column_moments = timed_moments
        return self

    def __exit__(self, *exc):
        susie_data.IndividualData.products = self._products
        susie_data.IndividualData._arrays = self._arrays
        susie_api.column_moments = self._moments

    @property
    def cpu(self) -> float:
        """CPU seconds of all passes over X."""
        return self.product_cpu + self.setup_cpu


def gemv_seconds(X: torch.Tensor, repeats: int = 20) -> float:
    """CPU seconds of one pass over X (the cheaper of ``X b`` and ``r^T X``)."""
    a = X.numpy()
    b, r = np.ones(a.shape[1]), np.ones(a.shape[0])
    out = []
    for f in (lambda: a @ b, lambda: r @ a):
        f()
        t = time.process_time()
        for _ in range(repeats):
            f()
        out.append((time.process_time() - t) / repeats)
    return min(out)


def pysusie_fit(X, y, L):
    import pysusie

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pysusie.susie(X.numpy(), y.numpy(), L=L, tol=1e-4)


def cs_sets(sets) -> list:
    return sorted(tuple(sorted(int(j) for j in np.asarray(c).tolist())) for c in (sets or []))


def single_locus(p: int, n: int, L: int, seed: int, repeats: int) -> None:
    rng = np.random.default_rng(seed)
    X, y = locus(n, p, rng, signal=True)
    with DataTraffic() as counter:
        susie(X, y, L=L)
    products = counter.count
    runs = best({"brent": lambda: susie(X, y, L=L),
                 "newton": lambda: susie(X, y, L=L, prior_optimizer="newton"),
                 "pysusie": lambda: pysusie_fit(X, y, L)}, repeats)
    fit, ref, py = runs["brent"].out, runs["pysusie"].out, runs["pysusie"]
    pip_diff = float(np.abs(fit.pip.numpy() - np.asarray(ref["pip"])).max())
    elbo_diff = abs(float(fit.elbo[-1]) - float(np.asarray(ref["elbo"])[-1]))
    same_cs = cs_sets([c.tolist() for c in fit.sets["cs"]]) == cs_sets(ref["sets"]["cs"])
    print(f"  p = {p:,} ({fit.n_iter} iterations; pysusie {int(ref['niter'])}): "
          f"|dPIP| {pip_diff:.1e}, |dELBO| {elbo_diff:.1e}, same CS: {same_cs}")
    print(f"    pysusie             wall {1e3 * py.wall:7.1f} ms   cpu {1e3 * py.cpu:7.1f} ms")
    for name in ("brent", "newton"):
        r = runs[name]
        dpip = float((r.out.pip - fit.pip).abs().max())
        print(f"    torchgen {name:<10} wall {1e3 * r.wall:7.1f} ms   cpu {1e3 * r.cpu:7.1f} ms"
              f"   -> {py.wall / r.wall:5.1f}x wall, {py.cpu / r.cpu:5.1f}x cpu"
              + (f"   (|dPIP| vs brent {dpip:.1e})" if name != "brent" else ""))
    g = gemv_seconds(X)
    floor = products * g
    print(f"    floor: {products} effect updates x 1 pass over X ({X.numel() * 8 / 2**20:.0f} MiB) "
          f"at {1e3 * g:.2f} ms each = {1e3 * floor:.1f} ms, {100 * floor / runs['brent'].cpu:.0f}% "
          f"of torchgen's CPU time; pysusie / floor = {py.cpu / floor:.1f}x (the most any "
          "implementation doing these products could gain)")


def scan(n_loci: int, n: int, p: int, L: int, n_py: int, seed: int, repeats: int,
         goal: float | None = None) -> None:
    """Batched vs one by one vs pysusie on ``n_loci`` simulated loci (30% with signal)."""
    rng = np.random.default_rng(seed)
    loci = [locus(n, p, rng, signal=rng.random() < 0.3) for _ in range(n_loci)]
    runs = {"batch": [], "one": []}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        susie_batch(loci[:2], L=L)  # warm-up
        for _ in range(repeats):  # interleaved; per side the run with the least CPU time
            with DataTraffic() as traffic:
                runs["batch"].append((Clock(lambda: susie_batch(loci, L=L)), traffic))
            with DataTraffic() as traffic:
                runs["one"].append((Clock(lambda: [susie(X, y, L=L) for X, y in loci]), traffic))
    batch, batch_data = min(runs["batch"], key=lambda r: r[0].cpu)
    one, one_data = min(runs["one"], key=lambda r: r[0].cpu)
    equal = all(torch.equal(a.alpha, b.alpha) and torch.equal(a.elbo, b.elbo)
                for a, b in zip(batch.out, one.out, strict=True))
    picks = np.linspace(0, n_loci - 1, n_py).round().astype(int)
    py = Clock(lambda: [pysusie_fit(*loci[i], L) for i in picks])
    per_py_wall, per_py_cpu = py.wall / len(picks), py.cpu / len(picks)
    iters = np.array([f.n_iter for f in one.out])
    print(f"  {n_loci} loci, n = {n:,}, p = {p:,} (IBSS iterations: median {np.median(iters):.0f}, "
          f"max {iters.max()}; {sum(bool(f.sets['cs']) for f in one.out)} loci with a CS); "
          f"torchgen times: best of {repeats} interleaved runs")
    print(f"  batched (susie_batch)   wall {batch.wall:7.2f} s  cpu {batch.cpu:7.2f} s  "
          f"{n_loci / batch.wall:7.1f} loci/s")
    print(f"  one by one (susie)      wall {one.wall:7.2f} s  cpu {one.cpu:7.2f} s  "
          f"{n_loci / one.wall:7.1f} loci/s   batching: {one.wall / batch.wall:.2f}x wall, "
          f"{one.cpu / batch.cpu:.2f}x cpu; fits bit-identical: {equal}")
    print(f"  pysusie loop            wall {per_py_wall * n_loci:7.2f} s  cpu {per_py_cpu * n_loci:7.2f} s  "
          f"{1 / per_py_wall:7.1f} loci/s   (extrapolated from {len(picks)} loci timed); "
          f"batched torchgen {per_py_cpu * n_loci / batch.cpu:.0f}x cpu")
    # What batching could share: everything but the passes over each locus' own X.
    share = one_data.cpu / one.cpu
    rest = one.cpu - one_data.cpu
    print(f"  one by one, measured: {one_data.count / n_loci:.1f} effect updates per locus, their "
          f"products (X b, X^T X b) {one_data.product_cpu:.2f} s cpu + per-locus setup passes "
          f"(column moments, X^T y) {one_data.setup_cpu:.2f} s = {one_data.cpu:.2f} s, "
          f"{100 * share:.0f}% of the one-by-one cpu; the rest (SER and Brent searches, "
          f"bookkeeping, credible sets, checks) {rest:.2f} s")
    print(f"  batched, measured: passes over X {batch_data.cpu:.2f} s cpu, the rest "
          f"{batch.cpu - batch_data.cpu:.2f} s")
    verdict = ""
    if goal is not None:
        verdict = f" (goal {goal:g}x{': out of reach' if 1 / share < goal else ''})"
    print(f"  -> every locus has its own X, so no batching can share those passes: even with the "
          f"rest reduced to zero, batching is capped at 1 / {share:.2f} = {1 / share:.1f}x over one "
          f"by one{verdict}; measured {one.cpu / batch.cpu:.2f}x cpu")
    # The same bound with every pass at the cost of one GEMV over X (a read of X at the
    # memory system's rate): one per effect update and one setup pass per locus.
    g = float(np.mean([gemv_seconds(X, repeats=5) for X, _ in loci[:: max(1, n_loci // 5)]]))
    floor = (one_data.count + n_loci) * g
    print(f"  -> at one GEMV ({1e3 * g:.3f} ms) per effect update and per locus setup, the passes "
          f"would still take {floor:.2f} s: batching capped at {one.cpu / floor:.1f}x")


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
    run = Clock(lambda: susie_rss(z, R, n=gwas_n, L=L))
    fit = run.out
    added = max(maxrss_bytes() - before, 0)
    dense = p * p * 8
    found = sum(any(int(j) in set(c.tolist()) for c in fit.sets["cs"]) for j in causal)
    v = torch.randn(p, 1, dtype=torch.float64)
    product = Clock(lambda: [R.matmul(v) for _ in range(20)])
    print(f"  p = {p:,}, band {window} (LD operator {bands.numel() * 8 / 2**20:.1f} MiB), L = {L}: "
          f"wall {run.wall:.2f} s, cpu {run.cpu:.2f} s, {fit.n_iter} iterations, "
          f"{1000 * run.wall / fit.n_iter:.0f} ms/iteration wall ({1000 * run.cpu / fit.n_iter:.0f} cpu); "
          f"{len(fit.sets['cs'])} CS hold {found} of 5 causal")
    print(f"  one product R v: {1000 * product.cpu / 20:.2f} ms cpu (BLAS dsbmv over the band)")
    print(f"  peak memory added by the fit {added / 2**20:.0f} MiB vs a dense p x p {dense / 2**30:.1f} GiB "
          f"({dense / max(added, 1):.0f}x less)")


def one_locus(repeats: int, seed: int) -> None:
    print("1. one locus, n = 1,000, L = 10: torchgen susie vs pysusie susie (tol 1e-4), "
          f"best of {repeats}")
    susie(*locus(200, 50, np.random.default_rng(0), True), L=5)  # warm-up
    for p in (1000, 5000):
        single_locus(p, n=1000, L=10, seed=seed + p, repeats=repeats)


def scans(args) -> None:
    print(f"2. scan: {args.loci} loci of p = 1,000, L = 10")
    scan(args.loci, n=args.scan_n, p=1000, L=10, n_py=args.pysusie_loci, seed=args.seed,
         repeats=args.scan_repeats, goal=5.0)
    print(f"2b. scan of small loci: {args.loci} loci of p = 200, n = 500, L = 10")
    scan(args.loci, n=500, p=200, L=10, n_py=args.pysusie_loci, seed=args.seed + 1,
         repeats=args.scan_repeats)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loci", type=int, default=200)
    parser.add_argument("--scan-n", type=int, default=1000)
    parser.add_argument("--pysusie-loci", type=int, default=5)
    parser.add_argument("--rss-p", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--scan-repeats", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--parts", default="1,2,3",
                        help="comma-separated parts to run (1: one locus, 2: scans, 3: banded RSS)")
    args = parser.parse_args(argv)
    parts = {part.strip() for part in args.parts.split(",")}
    torch.set_num_threads(1)
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"torch {torch.__version__}, 1 thread (torch and BLAS); float64 on CPU; "
          f"machine load average {load} on {os.cpu_count()} cores; "
          f"CUDA: {'available (not timed here)' if torch.cuda.is_available() else 'no device'}")
    if "3" in parts:
        print("3. susie_rss with a banded LD operator")
        banded_rss(args.rss_p, window=100, L=10, gwas_n=10000, seed=args.seed)
    if "1" in parts:
        one_locus(args.repeats, args.seed)
    if "2" in parts:
        scans(args)


if __name__ == "__main__":
    main()
