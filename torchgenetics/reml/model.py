"""``reml``: fit ``y = X b + sum_g u_g + e``, ``V = sum_g s2_g K_g + s2_e I``, by AI-REML."""

from __future__ import annotations

import math
import warnings

import torch

from ..errors import InputError, MemoryBudgetError
from ..linalg import (
    EXACT_CROSSOVER_N,
    BlockTridiagonalKernel,
    ConvergenceWarning,
    EigenKernel,
    choose_method,
    exact_max_n,
)
from ..memory import available_bytes, dtype_bytes, format_bytes
from .aireml import optimize
from .data import prepare_design
from .exact import (
    PRECISIONS,
    BandREML,
    DenseREML,
    SpectralREML,
    builds_from_genotypes,
    dense_kernel,
)
from .fit import REMLFit, derived
from .kernelset import as_kernel_set
from .moments import he_regression
from .stochastic import StochasticREML

__all__ = ["reml", "resolve_method", "METHODS"]

METHODS = ("auto", "exact", "stochastic")


# One dense kernel takes the block tridiagonal path, whose whole fit crosses the
# stochastic path's far above the dense-Cholesky crossover: fitted n ~ 51,000 (CPU
# seconds; 63,000 wall) from `benchmarks/reml_scaling.py --memory-budget 16GiB`
# (m = 20,000, one thread: exact 156 s vs stochastic 355 s at n = 16,000). In practice
# the memory budget (3 n^2 doubles) decides first.
BAND_CROSSOVER_N = 50000


def _exact_bytes(ks) -> int:
    """Working set of the exact path.

    One low-rank GRM: three n x m factors. One dense kernel: the kernel, reduced in
    place, its reflectors (half of it) and a float32 block product (half), 2.5 n^2
    values with a margin. Several: the kernels, V, its inverse and the block
    product, (G + 3) n^2.
    """
    if ks.G == 1:
        factor_m = _low_rank_m(ks)
        if factor_m is not None:
            return 3 * ks.n * factor_m * dtype_bytes(ks.dtype)
        return 3 * ks.n * ks.n * dtype_bytes(ks.dtype)
    return (ks.G + 3) * ks.n * ks.n * dtype_bytes(ks.dtype)


def _low_rank_m(ks):
    from ..operators import GRM

    if ks.eigen is None and len(ks.operators) == 1 and isinstance(ks.operators[0], GRM):
        m = ks.operators[0].m_eff
        return m if m < ks.n else None
    return None


def resolve_method(method: str, ks) -> str:
    """``"exact"`` or ``"stochastic"`` for a requested method and kernel set.

    ``"auto"``: exact for one low-rank GRM (m < n, Woodbury) with m below the
    crossover, or for a precomputed EigenKernel; otherwise
    :func:`~torchgenetics.linalg.choose_method` on n (crossover
    :data:`BAND_CROSSOVER_N` for one dense kernel, ``EXACT_CROSSOVER_N`` for several)
    and the memory budget.

    Examples
    --------
    >>> from torchgenetics.reml.kernelset import KernelSet
    >>> resolve_method("auto", KernelSet([torch.eye(5, dtype=torch.float64)], n=5))
    'exact'
    """
    if method not in METHODS:
        raise InputError(f"method must be one of {METHODS}, got {method!r}")
    if method != "auto":
        return method
    m = _low_rank_m(ks)
    if ks.eigen is not None or (m is not None and m <= exact_max_n()):
        return "exact"
    budget = available_bytes(ks.device)
    fits = _exact_bytes(ks) <= budget
    limit = exact_max_n(BAND_CROSSOVER_N if ks.G == 1 else EXACT_CROSSOVER_N)
    return "exact" if fits and choose_method(ks.n, exact_max=limit) == "exact" else "stochastic"


def _initial(init, ks, t, vy, dtype, device) -> torch.Tensor:
    G = ks.G
    if init is None:
        return torch.cat([vy / (G + 1) / t, torch.full((1,), vy / (G + 1), dtype=dtype, device=device)])
    if isinstance(init, REMLFit):
        if init.n_components != G:
            raise InputError(f"init fit has {init.n_components} components ({init.names}); this model has {G} ({ks.names})")
        vals = init.variances
    elif isinstance(init, dict):
        keys = list(ks.names) + ["residual"]
        unknown = [k for k in init if k not in keys]
        if unknown or len(init) != len(keys):
            raise InputError(f"init dict must give exactly the variances {keys}, got keys {list(init)}")
        vals = [init[k] for k in keys]
    else:
        vals = init
    theta = torch.as_tensor(vals if torch.is_tensor(vals) else [float(v) for v in vals], dtype=dtype).to(device).reshape(-1)
    if theta.numel() != G + 1:
        raise InputError(f"init has {theta.numel()} values; expected {G + 1} (one per component, then the residual)")
    if not bool(torch.isfinite(theta).all()) or bool((theta < 0).any()) or not float(theta[-1]) > 0:
        raise InputError(f"init variances must be finite, >= 0, with a positive residual; got {theta.tolist()}")
    return theta


def _moment_start(he: torch.Tensor, default: torch.Tensor) -> torch.Tensor:
    """Haseman-Elston estimates as the AI-REML start, each kept >= 5% of the default start."""
    if not bool(torch.isfinite(he).all()):
        return default
    return torch.maximum(he, 0.05 * default)


def _check_options(max_iter, tol, param_tol, num_probes, slq_probes, lanczos_steps, precond_rank, cg_tol,
                   probe_tol=None):
    checks = [
        (int(max_iter) >= 1, f"max_iter must be >= 1, got {max_iter}"),
        (float(tol) > 0, f"tol must be > 0, got {tol}"),
        (param_tol is None or float(param_tol) > 0, f"param_tol must be > 0, got {param_tol}"),
        (int(num_probes) >= 2, f"num_probes must be >= 2 (the Monte Carlo SE needs two), got {num_probes}"),
        (int(slq_probes) >= 2, f"slq_probes must be >= 2 (the Monte Carlo SE needs two), got {slq_probes}"),
        (int(lanczos_steps) >= 1, f"lanczos_steps must be >= 1, got {lanczos_steps}"),
        (int(precond_rank) >= 0, f"precond_rank must be >= 0 (0 disables it), got {precond_rank}"),
        (float(cg_tol) > 0, f"cg_tol must be > 0, got {cg_tol}"),
        (probe_tol is None or 0 < float(probe_tol) < 1, f"probe_tol must be in (0, 1), got {probe_tol}"),
    ]
    for ok, message in checks:
        if not ok:
            raise InputError(message)


def _inverse(ai: torch.Tensor) -> torch.Tensor:
    L, info = torch.linalg.cholesky_ex(0.5 * (ai + ai.mT))
    if int(info) == 0:
        return torch.cholesky_inverse(L)
    warnings.warn("the average information matrix is not positive definite at the estimate; "
                  "standard errors use its pseudo-inverse", RuntimeWarning, stacklevel=3)
    return torch.linalg.pinv(ai, hermitian=True)


def _report_counts(report):
    if report is None:
        return 0, {}
    rep = getattr(report, "report", report)
    if not hasattr(rep, "n_dropped"):
        raise InputError(f"report must be an AlignmentReport or Alignment, got {type(report).__name__}")
    return int(rep.n_dropped), {str(k): int(v) for k, v in dict(rep.dropped).items()}


def reml(y, kernels, covariates=None, *, method="auto", init=None, names=None, covariate_names=None,
         max_iter=50, tol=1e-6, param_tol=None, num_probes=100, slq_probes=30, lanczos_steps=15,
         precond_rank=100, cg_tol=1e-8, cg_max_iter=1000, probe_tol=None, seed=0, device=None,
         dtype=None, grm_precision="mixed", report=None, verbose=False) -> REMLFit:
    """Restricted maximum likelihood for ``V = sum_g s2_g K_g + s2_e I``.

    AI-REML with a bound-constrained (projected Newton) step, step halving and
    an EM fallback (see :mod:`torchgenetics.reml.aireml`). An intercept is always
    in the fixed effects.

    Parameters
    ----------
    y : array-like (n,)
        Phenotype, no missing values.
    kernels : kernel, list of kernels or dict name -> kernel
        GRM, GRMStack (one component per stack component, multiplied in one
        genotype pass), WeightedBlockGRM, any n x n LinearOperator or dense matrix,
        or a precomputed :class:`~torchgenetics.linalg.EigenKernel` (one component).
    covariates : array-like or DataFrame (n, c), optional
        Fixed-effect covariates; an intercept is added unless a constant column is
        present. Collinear columns raise :class:`~torchgenetics.errors.InputError`.
    method : {"auto", "exact", "stochastic"}
        ``"exact"``: for one kernel, one reduction to block tridiagonal form
        (level-3 BLAS, then O(n b^2) per iteration; an eigendecomposition off CPU,
        a thin SVD, i.e. Woodbury, for one GRM with m < n); dense Cholesky per
        iteration for several kernels, started from Haseman-Elston estimates.
        ``"stochastic"``: block PCG + Hutchinson + SLQ, never forming an n x n matrix.
        ``"auto"``: see :func:`resolve_method`.
    init : REMLFit, sequence of G+1 floats or dict, optional
        Starting variances (warm start from a previous or loaded fit). Default:
        the residual variance of ``y`` after the fixed effects split equally over
        the G+1 terms (each genetic share divided by ``tr(K_g)/n``).
    names : list of str, optional
        Component names.
    covariate_names : list of str, optional
    max_iter : int
        Maximum AI/EM steps.
    tol : float
        Convergence tolerance on the change of log-likelihood.
    param_tol : float, optional
        Tolerance on ``max |delta theta| / sum(theta)`` (default 1e-6 exact, 1e-5
        stochastic). Both tolerances must be met.
    num_probes : int
        Hutchinson probes for the score traces (stochastic).
    slq_probes, lanczos_steps : int
        SLQ probes and Lanczos steps for ``log|V|`` (stochastic). With the
        projected-core preconditioner the quadrature has converged to ~1e-5 (far
        below its Monte Carlo SE) by 10-12 steps even at h2 = 0.9 on the benchmark
        cohort (n = 1000, m = 20,000), hence 15.
    precond_rank : int
        Rank of the projected-core preconditioner (stochastic; 0 disables it).
    cg_tol, cg_max_iter : float, int
        Block PCG tolerance (relative residual) of ``V^-1 [X | y]`` and of the average
        information solves, and the iteration cap (stochastic).
    probe_tol : float, optional
        Relative-residual tolerance of the Hutchinson probe solves ``V^-1 Z``
        (stochastic; default 1e-6, never tighter than ``cg_tol``). Their error
        enters the traces far below the probes' own Monte Carlo error; because the
        solves are warm-started it also moves the score by a path-dependent amount
        of about that relative size, so it must stay below ``param_tol``.
    seed : int or torch.Generator
        Source of the probes (fixed for the whole fit: same seed, same trajectory).
    device, dtype : optional
        Default: those of the kernels (float64 CPU for dense inputs).
    grm_precision : {"mixed", "double"}
        How the exact path forms a dense GRM from genotypes: ``"mixed"`` multiplies
        float32 blocks of standardized genotypes and accumulates the block products
        in float64 (about twice as fast; GRM entries to ~1e-6 relative, the
        precision GCTA stores a GRM in), ``"double"`` multiplies in float64. The
        likelihood, its solves and factorisations are float64 either way.
    report : AlignmentReport or Alignment, optional
        From :func:`torchgenetics.io.align`; its dropped-sample counts go on the fit.
    verbose : bool
        tqdm bar over iterations.

    Returns
    -------
    REMLFit

    Raises
    ------
    PhenotypeError
        Missing values in ``y`` or a constant phenotype.
    InputError
        A kernel of the wrong size, dtype or device; collinear covariates; bad init.
    MemoryBudgetError
        ``method="exact"`` whose dense working set does not fit the memory budget.

    Examples
    --------
    >>> g = torch.Generator().manual_seed(1)
    >>> Z = torch.randn(300, 150, generator=g, dtype=torch.float64)
    >>> u = Z @ torch.randn(150, generator=g, dtype=torch.float64) * (0.5 / 150) ** 0.5
    >>> y = u + torch.randn(300, generator=g, dtype=torch.float64) * 0.5 ** 0.5
    >>> fit = reml(y, {"snps": Z @ Z.T / 150})
    >>> fit.method, fit.converged, 0.0 < fit.h2_total < 1.0
    ('exact-band', True, True)
    """
    _check_options(max_iter, tol, param_tol, num_probes, slq_probes, lanczos_steps, precond_rank, cg_tol,
                   probe_tol)
    if grm_precision not in PRECISIONS:
        raise InputError(f"grm_precision must be one of {PRECISIONS}, got {grm_precision!r}")
    n = len(y)
    ks = as_kernel_set(kernels, n, names=names, dtype=dtype, device=device)
    design = prepare_design(y, covariates, covariate_names, dtype=ks.dtype, device=ks.device)
    yv, X = design.y, design.X
    chosen = resolve_method(method, ks)
    if chosen == "exact" and method == "exact":
        need, budget = _exact_bytes(ks), available_bytes(ks.device)
        if need > budget:
            raise MemoryBudgetError(
                f"the exact path needs about {format_bytes(need)} for n = {n} and {ks.G} kernels but "
                f"{format_bytes(budget)} is available; use method='stochastic'"
            )
    gen = seed if isinstance(seed, torch.Generator) else torch.Generator().manual_seed(int(seed))
    if chosen == "exact":
        if ks.G == 1 and ks.eigen is None and _low_rank_m(ks) is None:
            K = dense_kernel(ks.operators[0], grm_precision)
            traces = K.diagonal().sum().reshape(1)
            if K.device.type == "cpu" and K.dtype == torch.float64 and not K.requires_grad:
                owned = builds_from_genotypes(ks.operators[0])  # reduce in place, no n x n copy
                evaluator = BandREML(BlockTridiagonalKernel.from_kernel(K, overwrite=owned), yv, X)
                label = "exact-band"
            else:
                evaluator = SpectralREML(EigenKernel.from_kernel(K), yv, X)
                label = "exact-eigh"
            del K
        elif ks.G == 1:
            eig = ks.eigen_kernel()
            evaluator = SpectralREML(eig, yv, X)
            label = "exact-woodbury" if eig.q < n else "exact-eigh"
            traces = eig.eigenvalues.clamp_min(0).sum().reshape(1)
        else:
            dense = [dense_kernel(k, grm_precision) for k in ks.operators]
            evaluator = DenseREML(dense, yv, X, symmetric=True)
            label = "exact-cholesky"
            traces = torch.stack([k.diagonal().sum() for k in dense])
    else:
        evaluator = StochasticREML(ks, yv, X, num_probes, slq_probes, lanczos_steps, precond_rank,
                                   cg_tol, cg_max_iter, gen, probe_tol=probe_tol)
        label = "stochastic"
        traces = ks.traces()
    t = traces / n
    if not bool((t > 0).all()):
        bad = [nm for nm, v in zip(ks.names, t.tolist(), strict=True) if not v > 0]
        raise InputError(f"kernels {bad} have a non-positive trace; a covariance kernel needs tr(K) > 0")
    resid = yv - X @ torch.linalg.lstsq(X, yv.unsqueeze(1), driver="gelsd").solution.squeeze(1)
    vy = float(resid @ resid) / (n - X.shape[1])
    theta0 = _initial(init, ks, t, vy, ks.dtype, ks.device)
    if init is None and label == "exact-cholesky":
        theta0 = _moment_start(he_regression(dense, yv, X), theta0)
    lower = torch.zeros_like(theta0)
    lower[-1] = 1e-6 * vy
    if label == "stochastic":
        evaluator.prepare(torch.maximum(theta0, lower))
    if param_tol is None:
        param_tol = 1e-5 if label == "stochastic" else 1e-6
    res = optimize(evaluator, theta0, lower, n, max_iter=max_iter, tol=tol, param_tol=param_tol,
                   verbose=verbose)
    if not res.converged:
        warnings.warn(f"REML did not converge: {res.message} (last changes: logL {res.delta_loglik:.3g}, "
                      f"theta {res.delta_theta:.3g})", ConvergenceWarning, stacklevel=2)
    return _build_fit(res, ks, design, t, label, report, dict(
        method_requested=method, max_iter=int(max_iter), tol=float(tol), param_tol=float(param_tol),
        num_probes=int(num_probes), slq_probes=int(slq_probes), lanczos_steps=int(lanczos_steps),
        precond_rank=int(precond_rank), cg_tol=float(cg_tol),
        seed=int(seed) if not isinstance(seed, torch.Generator) else -1, grm_precision=grm_precision,
        dtype=str(ks.dtype), device=str(ks.device)), evaluator)


def _build_fit(res, ks, design, t, label, report, settings, evaluator) -> REMLFit:
    ev = res.evaluation
    theta = ev.theta
    cov = _inverse(ev.ai)
    d = derived(theta, cov, t)
    mc_se = h2_mc_se = None
    h2_total_mc_se = math.nan
    if ev.score_cov is not None:
        mc_cov = cov @ ev.score_cov @ cov
        mc_se = mc_cov.diagonal().clamp_min(0).sqrt()
        dm = derived(theta, mc_cov, t)
        h2_mc_se, h2_total_mc_se = dm["h2_se"], dm["h2_total_se"]
    settings["kernel_products"] = int(ks.products)
    if ks.stack is not None:
        settings["genotype_passes"] = int(ks.stack.passes)
    if label == "stochastic":
        settings["probe_tol"] = float(evaluator.probe_tol)
        settings["cg_iterations"] = [int(v) for v in evaluator.cg_iterations]
        settings["cg_failures"] = int(evaluator.cg_failures)
    n_dropped, dropped = _report_counts(report)
    cpu = torch.device("cpu")
    return REMLFit(
        names=list(ks.names), variances=theta.to(cpu), se=cov.diagonal().clamp_min(0).sqrt().to(cpu),
        cov=cov.to(cpu), ai=ev.ai.to(cpu), trace_scale=t.to(cpu), h2=d["h2"].to(cpu),
        h2_se=d["h2_se"].to(cpu), h2_total=d["h2_total"], h2_total_se=d["h2_total_se"], vp=d["vp"],
        vp_se=d["vp_se"], beta=ev.beta.to(cpu), beta_se=ev.beta_cov.diagonal().clamp_min(0).sqrt().to(cpu),
        covariate_names=list(design.names), loglik=float(ev.loglik), loglik_se=float(ev.loglik_se),
        n_iter=int(res.n_iter), converged=bool(res.converged), delta_loglik=float(res.delta_loglik),
        delta_theta=float(res.delta_theta), message=res.message, history=res.history, method=label,
        n=design.n, n_dropped=n_dropped, dropped=dropped,
        mc_se=None if mc_se is None else mc_se.to(cpu),
        h2_mc_se=None if h2_mc_se is None else h2_mc_se.to(cpu), h2_total_mc_se=float(h2_total_mc_se),
        settings=settings,
    )
