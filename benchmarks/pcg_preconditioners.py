"""PCG iterations on ``V = 0.5 K + 0.5 I``: no preconditioner vs projected core vs pivoted Cholesky.

``K = Z Z^T / m`` is built densely (for speed) from standardized simulated genotypes
in two cohorts:

* ``ld``: ``torchgenetics.datasets.simulate_genotypes`` (founder-mosaic haplotypes,
  realistic LD, one homogeneous population);
* ``structured``: a latent-ancestry (Balding-Nichols style) cohort: each sample has
  ``L`` ancestry coordinates, allele frequencies shift along ``L`` axes whose share of
  the divergence (total ``F_ST``) decays like ``1/k``, the smooth decay of biobank PCs;
* ``lowrank``: "low-rank-ish" genotypes whose haplotype liabilities share 150 factors
  (80% of their variance, factor k carrying a share ~1/k), so SNPs are strongly
  correlated and K has ~150 large, decaying eigenvalues over a small bulk.

For each cohort the script solves ``V X = B`` (``B``: ``--rhs`` Rademacher columns) to
relative residual ``--tol`` with :func:`torchgenetics.linalg.block_cg` and prints the
iterations, the setup time of each preconditioner and the iteration ratio
plain / preconditioned (goal: projected core >= 3x). It also prints the spectrum
summary that explains the result: a rank-r preconditioner removes the top r
eigenvalues, so the best it can do is ``sqrt(kappa)`` of the remaining bulk.

Usage::

    .venv/bin/python benchmarks/pcg_preconditioners.py              # n=4000, m=20000, ranks 200 and 1000
    .venv/bin/python benchmarks/pcg_preconditioners.py --n 1000 --m 5000 --ranks 50 100
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from torchgenetics.linalg import (  # noqa: E402
    PivotedCholeskyPreconditioner,
    ProjectedCorePreconditioner,
    block_cg,
    make_probes,
)


def _accumulate_grm(blocks, n: int) -> tuple[torch.Tensor, int]:
    """``K = sum_b Z_b Z_b^T / m`` from raw dosage blocks (float32 GEMMs, float64 result)."""
    K = torch.zeros(n, n, dtype=torch.float64)
    m_used = 0
    for X in blocks:
        X = torch.as_tensor(X, dtype=torch.float32)
        sd = X.std(0)
        keep = sd > 0
        Z = (X[:, keep] - X[:, keep].mean(0)) / sd[keep]
        K += (Z @ Z.T).double()
        m_used += int(keep.sum())
    return K / m_used, m_used


def ld_cohort(n: int, m: int, seed: int):
    """GRM of a homogeneous cohort with LD (``simulate_genotypes`` defaults)."""
    from torchgenetics.datasets.simulate import simulate_genotypes

    X = simulate_genotypes(n, m, seed=seed, dtype=np.float32).dosages
    return _accumulate_grm((X[:, a : a + 2000] for a in range(0, m, 2000)), n)


def structured_cohort(n: int, m: int, seed: int, axes: int = 50, fst: float = 0.05):
    """GRM of a cohort with continuous ancestry along ``axes`` latent axes (total ``fst``)."""
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(n, axes, generator=g)
    share = torch.arange(1, axes + 1, dtype=torch.float32).reciprocal()
    share = share / share.sum()

    def blocks():
        for a in range(0, m, 2000):
            b = min(a + 2000, m)
            p = 0.05 + 0.9 * torch.rand(b - a, generator=g)
            shift = torch.randn(axes, b - a, generator=g) * (share * fst).sqrt().unsqueeze(1)
            P = (p + (u @ shift) * (p * (1 - p)).sqrt()).clamp(0.01, 0.99)
            h1 = (torch.rand(n, b - a, generator=g) < P).float()
            yield h1 + (torch.rand(n, b - a, generator=g) < P).float()

    return _accumulate_grm(blocks(), n)


def lowrank_cohort(n: int, m: int, seed: int, factors: int = 150, shared: float = 0.8):
    """GRM of genotypes driven by ``factors`` shared haplotype factors (low-rank-ish Z).

    Each haplotype carries the allele at SNP j when its liability
    ``sqrt(shared) f_h . a_j + sqrt(1 - shared) e_hj`` falls below the ``p_j`` quantile;
    the unit loading vectors ``a_j`` put a share ``~1/k`` of their weight on factor k.
    SNPs are strongly correlated through the factors (long-range LD / few ancestral
    haplotypes), so K has about ``factors`` large, smoothly decaying eigenvalues over a
    small bulk.
    """
    g = torch.Generator().manual_seed(seed)
    normal = torch.distributions.Normal(0.0, 1.0)
    f1 = torch.randn(n, factors, generator=g)
    f2 = torch.randn(n, factors, generator=g)
    scale = torch.arange(1, factors + 1, dtype=torch.float32).rsqrt().unsqueeze(1)

    def blocks():
        for a in range(0, m, 2000):
            b = min(a + 2000, m)
            w = torch.randn(factors, b - a, generator=g) * scale
            w = w / w.norm(dim=0)
            q = normal.icdf(0.05 + 0.45 * torch.rand(b - a, generator=g))
            out = torch.zeros(n, b - a)
            for f in (f1, f2):
                liab = shared**0.5 * (f @ w) + (1 - shared) ** 0.5 * torch.randn(
                    n, b - a, generator=g
                )
                out += (liab < q).float()
            yield out

    return _accumulate_grm(blocks(), n)


def cg_iteration_bound(kappa: float, tol: float) -> int:
    """Chebyshev bound: CG iterations to reduce the A-norm error by ``tol`` at condition ``kappa``.

    Examples
    --------
    >>> cg_iteration_bound(1.0, 1e-6)
    1
    >>> cg_iteration_bound(100.0, 1e-6)
    73
    """
    if kappa <= 1.0 + 1e-12:
        return 1
    root = math.sqrt(kappa)
    return math.ceil(math.log(2.0 / tol) / math.log((root + 1.0) / (root - 1.0)))


def run(name: str, K: torch.Tensor, ranks: list[int], tol: float, rhs: int, seed: int) -> dict:
    """Iterations of plain and preconditioned block CG on ``0.5 K + 0.5 I``, with spectral bounds.

    The bound columns are the Chebyshev iteration counts for the condition number of
    ``V`` (plain) and of the best any rank-r preconditioner can leave,
    ``(1 + lambda_{r+1}) / (1 + lambda_min)`` (exact deflation of the top r
    eigenvalues of K): the ceiling on what a low-rank preconditioner can cut.
    """
    n = K.shape[0]
    V = 0.5 * K + 0.5 * torch.eye(n, dtype=torch.float64)
    B = make_probes(n, rhs, generator=seed)
    lam = torch.linalg.eigvalsh(K).flip(0).clamp_min(0.0)
    lam_min = float(lam[-1])

    def bound(top: float) -> int:
        return cg_iteration_bound((1.0 + top) / (1.0 + lam_min), tol)

    rows = []
    t0 = time.perf_counter()
    plain = block_cg(V, B, tol=tol, max_iter=2000)
    rows.append(("none", 0.0, plain, time.perf_counter() - t0, bound(float(lam[0]))))
    for rank in ranks:
        t0 = time.perf_counter()
        core = ProjectedCorePreconditioner.from_kernels([K], [0.5], 0.5, rank=rank, generator=seed)
        setup = time.perf_counter() - t0
        t0 = time.perf_counter()
        res = block_cg(V, B, core, tol=tol)
        rows.append((f"projected core r={rank}", setup, res, time.perf_counter() - t0,
                     bound(float(lam[min(rank, n - 1)]))))
    rank = max(ranks)
    t0 = time.perf_counter()
    piv = PivotedCholeskyPreconditioner(K, noise=0.5, rank=rank, scale=0.5)
    setup = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = block_cg(V, B, piv, tol=tol)
    rows.append((f"pivoted Cholesky r={rank}", setup, res, time.perf_counter() - t0,
                 bound(float(lam[min(rank, n - 1)]))))

    shown = [i for i in (0, 9, 99, *ranks) if i < n]
    top = ", ".join(f"{i + 1}: {float(lam[i]):.2f}" for i in shown)
    print(f"\n[{name}] n={n}  eigenvalues of K ({top}; min {lam_min:.3f})")
    print(f"{'preconditioner':<26}{'setup s':>9}{'solve s':>9}{'iters':>7}{'ratio':>8}{'bound':>7}")
    for label, setup, res, solve_t, it_bound in rows:
        assert res.all_converged, f"{label} did not converge"
        ratio = plain.n_iter / max(res.n_iter, 1)
        print(f"{label:<26}{setup:>9.2f}{solve_t:>9.2f}{res.n_iter:>7d}{ratio:>7.2f}x{it_bound:>7d}")
    best = max(plain.n_iter / max(r[2].n_iter, 1) for r in rows[1:-1])
    ceiling = plain.n_iter / max(rows[-2][4], 1)
    print(f"goal >= 3x: best projected-core cut {best:.2f}x ({'met' if best >= 3 else 'missed'}); "
          f"ceiling of any rank-{ranks[-1]} preconditioner ~{ceiling:.2f}x "
          f"(plain iterations / rank-{ranks[-1]} bound)")
    return {label: res.n_iter for label, _, res, _, _ in rows}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=4000)
    ap.add_argument("--m", type=int, default=20000)
    ap.add_argument("--ranks", type=int, nargs="+", default=[200, 1000])
    ap.add_argument("--tol", type=float, default=1e-6)
    ap.add_argument("--rhs", type=int, default=8)
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1: small GEMMs on oversubscribed shared cores stall when threaded)",
    )
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--cohort", choices=["ld", "structured", "lowrank", "all"], default="all")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(
        f"PCG to relative residual {args.tol:g}, V = 0.5 K + 0.5 I, {args.rhs} right-hand sides, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    if args.cohort in ("ld", "all"):
        t0 = time.perf_counter()
        K, m_used = ld_cohort(args.n, args.m, args.seed)
        print(
            f"ld cohort: {m_used} polymorphic SNPs, GRM built in {time.perf_counter() - t0:.1f} s"
        )
        run("ld (simulate_genotypes)", K, args.ranks, args.tol, args.rhs, args.seed)
    if args.cohort in ("structured", "all"):
        t0 = time.perf_counter()
        K, m_used = structured_cohort(args.n, args.m, args.seed)
        print(f"\nstructured cohort: {m_used} SNPs, GRM built in {time.perf_counter() - t0:.1f} s")
        run("structured (50 ancestry axes, F_ST 0.05)", K, args.ranks, args.tol, args.rhs, args.seed)
    if args.cohort in ("lowrank", "all"):
        t0 = time.perf_counter()
        K, m_used = lowrank_cohort(args.n, args.m, args.seed)
        print(
            f"\nlow-rank-ish cohort: {m_used} SNPs, GRM built in {time.perf_counter() - t0:.1f} s"
        )
        run(
            "low-rank-ish (150 haplotype factors, 80% shared)",
            K,
            args.ranks,
            args.tol,
            args.rhs,
            args.seed,
        )


if __name__ == "__main__":
    main()
