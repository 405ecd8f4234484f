"""Exact (dense Cholesky) vs iterative (block PCG + SLQ) REML evaluation: where do they cross?

One REML evaluation at fixed variances needs ``V^{-1} [X | y | probes]`` and
``log|V|`` for ``V = 0.5 K + 0.5 I`` with ``K = Z Z^T / m`` (``m = 2n`` standardized
random genotypes, K held densely so both paths see the same kernel):

* exact: form V, Cholesky, ``cholesky_solve`` of the ``k = p + 1 + probes``
  right-hand sides, ``log|V| = 2 sum log diag L``;
* iterative: projected-core preconditioner update, :func:`~torchgenetics.linalg.block_cg`
  of the same right-hand sides to ``--tol``, and
  :func:`~torchgenetics.linalg.slq_logdet` (``--slq-probes`` x ``--lanczos-steps``,
  preconditioned); the one-off basis build (randomized range finder) is amortised over
  ``--evals-per-fit`` evaluations.

The script prints both times per n, the accuracy of the iterative path against the
exact one, and the crossover n*: the first measured n where the iterative path is
faster, and the crossover of ``a n^3`` (exact) and ``b n^2`` (iterative) cost models
fitted to the sizes >= 2000.
``torchgenetics.linalg.exact.EXACT_CROSSOVER_N`` holds the value measured here.

Usage::

    .venv/bin/python benchmarks/crossover.py                      # n = 500 ... 6000
    .venv/bin/python benchmarks/crossover.py --sizes 300 600 --repeats 1
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from torchgenetics.linalg import (  # noqa: E402
    EXACT_CROSSOVER_N,
    ProjectedCorePreconditioner,
    block_cg,
    exact_solve_logdet,
    make_probes,
    slq_logdet,
)


def random_grm(n: int, m: int, seed: int) -> torch.Tensor:
    """``Z Z^T / m`` of standardized random 0/1/2 genotypes (float32 GEMM, float64 result)."""
    g = torch.Generator().manual_seed(seed)
    p = 0.05 + 0.45 * torch.rand(m, generator=g)
    X = (torch.rand(n, m, generator=g) < p).float() + (torch.rand(n, m, generator=g) < p).float()
    sd = X.std(0).clamp_min(1e-6)
    Z = (X - X.mean(0)) / sd
    return (Z @ Z.T).double() / m


def best_of(fn, repeats: int):
    best, out = math.inf, None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def measure(n: int, args) -> dict:
    K = random_grm(n, 2 * n, args.seed + n)
    eye = torch.eye(n, dtype=torch.float64)
    k = args.covariates + 1 + args.probes
    B = make_probes(n, k, generator=args.seed, distribution="gaussian")

    def exact():
        V = 0.5 * K + 0.5 * eye
        return exact_solve_logdet(V, B)

    t_exact, (X_ex, ld_ex) = best_of(exact, args.repeats)

    rank = min(args.rank, n // 5)
    t0 = time.perf_counter()
    P = ProjectedCorePreconditioner.from_kernels([K], [0.5], 0.5, rank=rank, generator=args.seed)
    t_build = time.perf_counter() - t0
    base = make_probes(P.root_size, args.slq_probes, generator=args.seed + 1)
    V = 0.5 * K + 0.5 * eye

    def iterative():
        P.update([0.5], 0.5)
        res = block_cg(V, B, P, tol=args.tol, raise_on_fail=True)
        ld = slq_logdet(V, lanczos_steps=args.lanczos_steps, preconditioner=P, probes=base)
        return res, ld

    t_iter, (res, ld) = best_of(iterative, args.repeats)
    t_iter_amortised = t_iter + t_build / args.evals_per_fit
    sol_err = float(((res.solution - X_ex).norm(dim=0) / X_ex.norm(dim=0)).max())
    return {
        "n": n,
        "exact": t_exact,
        "iterative": t_iter_amortised,
        "build": t_build,
        "cg_iters": res.n_iter,
        "sol_err": sol_err,
        "ld_err": float(ld.value - ld_ex),
        "ld_se": float(ld.se),
    }


def fitted_crossover(rows, min_n: int = 2000) -> tuple[float, float, float, list] | None:
    """Crossover of the flop-count models ``t_exact = a n^3`` and ``t_iter = b n^2``.

    CG iterations and Lanczos steps do not grow with n here, so one iterative
    evaluation costs O(n^2) (dense matvecs) and the exact one O(n^3) (Cholesky).
    ``a`` and ``b`` are medians of ``t / n^3`` and ``t / n^2`` over sizes ``>= min_n``
    (medians resist timing noise on a shared machine); returns ``(n*, a, b, sizes used)``.
    """
    tail = [r for r in rows if r["n"] >= min_n] or rows[-2:]
    if not tail:
        return None
    a = statistics.median(r["exact"] / r["n"] ** 3 for r in tail)
    b = statistics.median(r["iterative"] / r["n"] ** 2 for r in tail)
    return b / a, a, b, [r["n"] for r in tail]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[500, 1000, 2000, 3000, 4000, 6000])
    ap.add_argument("--covariates", type=int, default=4, help="p fixed-effect columns")
    ap.add_argument("--probes", type=int, default=30, help="Hutchinson probes solved with X and y")
    ap.add_argument("--slq-probes", type=int, default=30)
    ap.add_argument("--lanczos-steps", type=int, default=20)
    ap.add_argument("--rank", type=int, default=100, help="projected-core rank (capped at n/5)")
    ap.add_argument("--tol", type=float, default=1e-8)
    ap.add_argument("--evals-per-fit", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1: small GEMMs on oversubscribed shared cores stall when threaded)",
    )
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    k = args.covariates + 1 + args.probes
    print(
        f"REML evaluation, V = 0.5 K + 0.5 I, K = ZZ^T/m (m = 2n), {k} right-hand sides, CG tol {args.tol:g}, "
        f"SLQ {args.slq_probes} x {args.lanczos_steps}, float64, {torch.get_num_threads()} threads, "
        f"torch {torch.__version__}"
    )
    print(
        f"{'n':>6}{'exact s':>10}{'iter s':>10}{'build s':>9}{'CG it':>7}{'sol err':>10}{'logdet err':>12}{'SE':>8}"
    )
    rows = []
    for n in sorted(args.sizes):
        r = measure(n, args)
        rows.append(r)
        print(
            f"{n:>6}{r['exact']:>10.3f}{r['iterative']:>10.3f}{r['build']:>9.3f}{r['cg_iters']:>7d}"
            f"{r['sol_err']:>10.1e}{r['ld_err']:>12.3f}{r['ld_se']:>8.3f}"
        )
    measured = next((r["n"] for r in rows if r["iterative"] < r["exact"]), None)
    fitted = fitted_crossover(rows)
    if measured is not None:
        print(f"measured crossover n* = {measured} (first n where the iterative path is faster)")
    else:
        print(f"the exact path is faster at every measured n (up to {rows[-1]['n']})")
    if fitted is not None:
        n_star, a, b, used = fitted
        print(
            f"model t_exact = {a:.3g} n^3 s, t_iter = {b:.3g} n^2 s (medians over n = {used}): "
            f"crossover n* ~ {n_star:.0f}"
        )
    print(f"current EXACT_CROSSOVER_N = {EXACT_CROSSOVER_N}")


if __name__ == "__main__":
    main()
