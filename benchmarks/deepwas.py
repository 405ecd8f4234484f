"""DeepWAS training step: exact vs iterative region likelihood, and where they cross.

One training step on one LD region whose ``p`` variants are all scored: an MLP prior
(6 annotations, 64-64 hidden) gives ``f``, the region NLL is computed and
backpropagated to the network.

* exact: dense LD; per step ``C = sigma I + B F B^T`` (r x r), float64 Cholesky,
  autograd. Its one-off setup (eigendecomposition of ``R_ww``, whitening;
  ``RegionLikelihood.prepare``) is timed separately (``setup``) and amortised over
  training.
* iterative: the same LD kept banded (matrix-free products), block PCG to ``--tol`` for
  ``[z, probes]``, preconditioned SLQ (``--probes`` x ``--lanczos-steps``),
  preconditioner ``--preconditioner`` (auto: banded Cholesky of K, rebuilt every
  ``--precond-refresh`` steps, stale in between), surrogate gradient.

Each step is a real AdamW step, so the prior (and K) moves between steps.

LD: banded (``--band`` SNPs) correlations of simulated genotypes (``--n-ref``
samples), ridge-repaired with ``--ridge`` so ``R_ww`` is positive definite for both
paths. The script prints per size: exact setup and step, iterative step, CG iterations,
the iterative NLL's error against the exact one in units of its standard error, and
the crossover: the first measured size where the iterative step is faster, plus the
crossover of ``a p^3`` and ``b p`` cost models fitted to the two largest sizes.

Usage::

    .venv/bin/python benchmarks/deepwas.py                      # p = 500 ... 10000
    .venv/bin/python benchmarks/deepwas.py --sizes 500 2000 --steps 5
"""

from __future__ import annotations

import argparse
import copy
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from torchgenetics.datasets import simulate_genotypes  # noqa: E402
from torchgenetics.deepwas import MLPPrior, Region, RegionLikelihood  # noqa: E402
from torchgenetics.deepwas.likelihood import BANDED_EXACT_MAX, EXACT_MAX_VARIANTS  # noqa: E402
from torchgenetics.operators import BandedLD  # noqa: E402


def make_region(p: int, n_ref: int, band: int, ridge: float, seed: int):
    """A region of p scored variants: banded LD (repaired), z from the model, features."""
    sim = simulate_genotypes(n_ref, p, seed=seed)
    ld = BandedLD.from_genotypes(sim.to_genotypes(), window=band).repaired("ridge", ridge)
    g = torch.Generator().manual_seed(seed + 1)
    feats = torch.randn(p, 6, generator=g, dtype=torch.float64)
    N = 20_000.0
    f = torch.full((p,), 0.2 / p, dtype=torch.float64)
    beta = torch.randn(p, generator=g, dtype=torch.float64) * f.sqrt()
    # z = sqrt(N) R beta + e, e ~ N(0, R) through a dense root (benchmark set-up only)
    R = ld.to_dense()
    lam, U = torch.linalg.eigh(R)
    e = U @ (lam.clamp_min(0).sqrt() * torch.randn(p, generator=g, dtype=torch.float64))
    z = math.sqrt(N) * (R @ beta) + e
    ids = np.array([f"v{i}" for i in range(p)], dtype=object)
    sqrt_n = torch.full((p,), math.sqrt(N), dtype=torch.float64)
    win = torch.arange(p)
    dense = Region("dense", "1", ids, R, win, z, sqrt_n, feats)
    banded = Region("banded", "1", ids, ld, win, z, sqrt_n, feats)
    return dense, banded


def step_time(region, lik, prior, steps: int, lr: float, warmup: bool = True):
    """Mean seconds of ``steps`` AdamW training steps (after one untimed warm-up step).

    The prior moves every step (as in training), so a cached preconditioner goes stale
    between its rebuilds (every ``precond_refresh`` calls). Returns the mean time and
    the mean number of PCG iterations.
    """
    times, iters = [], []
    scale = math.log(0.2 / region.n_variants)
    opt = torch.optim.AdamW(prior.parameters(), lr=lr)
    for i in range(steps + int(warmup)):
        t = time.perf_counter()
        opt.zero_grad()
        f = (prior(region.features) + scale).exp()
        out = lik(region, f)
        out.loss.backward()
        opt.step()
        if i >= int(warmup):
            times.append(time.perf_counter() - t)
            iters.append(out.info.get("cg_iterations", 0))
    return statistics.mean(times), statistics.mean(iters)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[500, 1000, 2000, 4000, 10000])
    ap.add_argument("--steps", type=int, default=10,
                    help="timed iterative steps per size (one preconditioner refresh cycle)")
    ap.add_argument("--exact-steps", type=int, default=1, help="timed exact steps per size")
    ap.add_argument("--lr", type=float, default=0.01, help="AdamW rate moving the prior between steps")
    ap.add_argument("--n-ref", type=int, default=1000, help="reference-panel samples")
    ap.add_argument("--band", type=int, default=100, help="LD band half-width in SNPs")
    ap.add_argument("--ridge", type=float, default=0.05)
    ap.add_argument("--probes", type=int, default=16)
    ap.add_argument("--lanczos-steps", type=int, default=30)
    ap.add_argument("--tol", type=float, default=1e-6)
    ap.add_argument("--preconditioner", default="auto",
                    choices=("auto", "banded", "projected_core", "none"))
    ap.add_argument("--precond-rank", type=int, default=64)
    ap.add_argument("--precond-refresh", type=int, default=10)
    ap.add_argument("--iterative-ld", choices=("banded", "dense"), default="banded",
                    help="LD representation of the iterative path (dense: projected core)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), float64; LD band {args.band} SNPs, "
          f"ridge {args.ridge}, n_ref {args.n_ref}; iterative: {args.probes} probes x "
          f"{args.lanczos_steps} Lanczos steps, PCG tol {args.tol:g}, preconditioner "
          f"{args.preconditioner} (rebuilt every {args.precond_refresh} steps); AdamW lr {args.lr}")
    print(f"{'p':>6} {'exact setup':>12} {'exact step':>11} {'iter step':>10} {'CG it':>6} "
          f"{'NLL exact':>12} {'iter - exact':>13} {'(SE)':>8}")
    rows = []
    for p in args.sizes:
        dense, banded = make_region(p, args.n_ref, args.band, args.ridge, args.seed)
        torch.manual_seed(args.seed)
        prior = MLPPrior(6, hidden=(64, 64))
        exact = RegionLikelihood("exact")
        iterative = RegionLikelihood("iterative", num_probes=args.probes,
                                     lanczos_steps=args.lanczos_steps, tol=args.tol,
                                     preconditioner=args.preconditioner,
                                     precond_rank=args.precond_rank,
                                     precond_refresh=args.precond_refresh, seed=args.seed)
        state = copy.deepcopy(prior.state_dict())
        t = time.perf_counter()
        exact.prepare(dense)
        ex_setup = time.perf_counter() - t
        ex_step, _ = step_time(dense, exact, prior, args.exact_steps, args.lr, warmup=False)
        prior.load_state_dict(state)
        it_region = banded
        if args.iterative_ld == "dense":
            it_region = Region("dense-it", "1", dense.variant_ids, dense.ld, dense.window, dense.z,
                               dense.sqrt_n, dense.features)
        it_step, it_iters = step_time(it_region, iterative, prior, args.steps, args.lr)
        # accuracy at the final prior (the iterative preconditioner one step stale)
        with torch.no_grad():
            f = (prior(dense.features) + math.log(0.2 / p)).exp()
        ex_out, it_out = exact(dense, f), iterative(it_region, f)
        err = it_out.value - ex_out.value
        rows.append((p, ex_step, it_step))
        print(f"{p:>6} {ex_setup:>11.2f}s {ex_step:>10.3f}s {it_step:>9.3f}s "
              f"{it_iters:>6.1f} {ex_out.value:>12.2f} {err:>+13.2f} "
              f"{it_out.se:>8.2f}", flush=True)
    faster = [p for p, e, i in rows if i < e]
    print(f"first measured size where the iterative step is faster: "
          f"{faster[0] if faster else 'none (exact faster at every size)'}")
    if len(rows) >= 2:
        (p1, e1, i1), (p2, e2, i2) = rows[-2], rows[-1]
        a = statistics.mean([e1 / p1**3, e2 / p2**3])
        b = statistics.mean([i1 / p1, i2 / p2])
        print(f"cost models from p = {p1}, {p2}: exact {a:.3g} p^3 s, iterative {b:.3g} p s; "
              f"they cross at p ~ {math.sqrt(b / a):.0f} "
              f"(torchgenetics.deepwas: BANDED_EXACT_MAX = {BANDED_EXACT_MAX}, dense LD "
              f"EXACT_MAX_VARIANTS = {EXACT_MAX_VARIANTS})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
