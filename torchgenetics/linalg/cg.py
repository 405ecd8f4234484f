"""Block preconditioned conjugate gradients with per-column convergence.

:func:`block_cg` solves ``A X = B`` for many right-hand sides at once (the REML
system ``V^{-1} [X | y | probes]``). Every column has its own relative-residual
test; a converged column is frozen and drops out of the matvecs, so late columns
do not pay for early ones. :func:`solve` is the differentiable wrapper that models
call: it picks the exact or iterative path and backpropagates by implicit
differentiation (one more block solve in the backward pass).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from linear_operator.operators import LinearOperator

from torchgenetics.errors import ConvergenceError, InputError
from torchgenetics.linalg._operator import MatmulLike, as_operator, as_solver

__all__ = ["CGResult", "ConvergenceWarning", "block_cg", "solve"]

DEFAULT_TOL = 1e-8
DEFAULT_MAX_ITER = 1000


class ConvergenceWarning(RuntimeWarning):
    """An iterative method stopped before reaching its tolerance (result flagged, not raised)."""


@dataclass
class CGResult:
    """Outcome of :func:`block_cg`.

    Attributes
    ----------
    solution : Tensor (n, k) or (n,)
        Approximate ``A^{-1} B`` (same shape as ``B``).
    iterations : Tensor (k,) int64
        CG iterations each column ran.
    residual_norms : Tensor (k,)
        ``||B - A X||`` per column, from the CG recurrence.
    relative_residuals : Tensor (k,)
        ``residual_norms / ||B||`` (0 for zero columns).
    converged : Tensor (k,) bool
        Columns that met ``relative_residual <= tol``.
    tol : float
    max_iter : int

    Examples
    --------
    >>> A = torch.diag(torch.arange(1.0, 5.0, dtype=torch.float64))
    >>> res = block_cg(A, torch.ones(4, 2, dtype=torch.float64))
    >>> bool(res.all_converged), res.n_iter <= 4
    (True, True)
    """

    solution: torch.Tensor
    iterations: torch.Tensor
    residual_norms: torch.Tensor
    relative_residuals: torch.Tensor
    converged: torch.Tensor
    tol: float
    max_iter: int

    @property
    def all_converged(self) -> bool:
        """True when every column converged."""
        return bool(self.converged.all())

    @property
    def n_iter(self) -> int:
        """Largest number of iterations over columns."""
        return int(self.iterations.max()) if self.iterations.numel() else 0


def _check_tol(tol: float, max_iter: int) -> None:
    if not (tol > 0):
        raise InputError(f"tol must be a positive relative residual, got {tol}")
    if int(max_iter) < 1:
        raise InputError(f"max_iter must be >= 1, got {max_iter}")


def block_cg(
    A: MatmulLike,
    B: torch.Tensor,
    preconditioner=None,
    tol: float = DEFAULT_TOL,
    max_iter: int = DEFAULT_MAX_ITER,
    x0: torch.Tensor | None = None,
    raise_on_fail: bool = False,
) -> CGResult:
    """Solve ``A X = B`` for symmetric positive definite ``A`` by preconditioned CG.

    Parameters
    ----------
    A : Tensor (n, n), LinearOperator or callable
        SPD matrix; a callable maps an (n, k) tensor to ``A @ X`` (n is taken from ``B``).
    B : Tensor (n, k) or (n,)
        Right-hand sides.
    preconditioner : callable or object with ``.solve``, optional
        Applies ``M^{-1}`` (SPD) to an (n, j) tensor, e.g. a
        :class:`~torchgenetics.linalg.preconditioners.ProjectedCorePreconditioner`.
    tol : float
        Relative residual ``||b_j - A x_j|| / ||b_j||`` at which column j stops.
        Always explicit (linear_operator's default CG tolerance of 1 is never used).
        Below ~1e-5 requires float64.
    max_iter : int
        Iteration cap per column.
    x0 : Tensor, optional
        Initial guess (same shape as ``B``), e.g. the previous REML step's solution.
    raise_on_fail : bool
        Raise :class:`~torchgenetics.errors.ConvergenceError` if a column fails;
        otherwise flag it in ``converged`` and emit a :class:`ConvergenceWarning`.

    Returns
    -------
    CGResult
        The solution is detached (CG is not differentiated; use :func:`solve`).

    Examples
    --------
    >>> _ = torch.manual_seed(0)
    >>> Z = torch.randn(50, 20, dtype=torch.float64)
    >>> V = 0.5 * Z @ Z.T / 20 + 0.5 * torch.eye(50, dtype=torch.float64)
    >>> B = torch.randn(50, 3, dtype=torch.float64)
    >>> res = block_cg(V, B, tol=1e-10)
    >>> torch.allclose(res.solution, torch.linalg.solve(V, B), atol=1e-8)
    True
    """
    _check_tol(tol, max_iter)
    if B.dim() not in (1, 2):
        raise InputError(f"B must be (n,) or (n, k), got shape {tuple(B.shape)}")
    op = as_operator(A, size=B.shape[0])
    if B.shape[0] != op.n:
        raise InputError(f"B has {B.shape[0]} rows but A is {op.n} x {op.n}")
    msolve = as_solver(preconditioner)
    is_vector = B.dim() == 1
    with torch.no_grad():
        B2 = B.detach().reshape(op.n, -1)
        if op.dtype is not None:
            B2 = B2.to(torch.promote_types(op.dtype, B2.dtype))
        X, iters, rnorm, bnorm, converged = _pcg(op.matmul, B2, msolve, tol, int(max_iter), x0)
    rel = torch.where(bnorm > 0, rnorm / torch.where(bnorm > 0, bnorm, 1.0), rnorm)
    result = CGResult(
        solution=X.reshape(B.shape) if is_vector else X,
        iterations=iters,
        residual_norms=rnorm,
        relative_residuals=rel,
        converged=converged,
        tol=float(tol),
        max_iter=int(max_iter),
    )
    if not result.all_converged:
        bad = int((~converged).sum())
        msg = (
            f"block CG: {bad} of {converged.numel()} right-hand sides did not reach relative residual "
            f"{tol:g} within {max_iter} iterations (worst {float(rel.max()):.3g}); check that A is positive "
            "definite, raise max_iter or use a preconditioner"
        )
        if raise_on_fail:
            raise ConvergenceError(msg)
        warnings.warn(msg, ConvergenceWarning, stacklevel=2)
    return result


def _pcg(matmul, B, msolve, tol, max_iter, x0):
    """Vectorised PCG over the active columns; returns X, iterations, ||r||, ||b||, converged."""
    n, k = B.shape
    dev = B.device
    bnorm = B.norm(dim=0)
    thresh = tol * bnorm
    if x0 is None:
        X = torch.zeros_like(B)
        R = B.clone()
    else:
        if x0.numel() != B.numel():
            raise InputError(f"x0 has shape {tuple(x0.shape)}; expected {tuple(B.shape)}")
        X = x0.detach().reshape(n, k).to(B.dtype).clone()
        X[:, bnorm == 0] = 0  # the solution of a zero column is zero
        R = B - matmul(X)
    rnorm = R.norm(dim=0)
    converged = rnorm <= thresh
    iters = torch.zeros(k, dtype=torch.int64, device=dev)
    idx = torch.nonzero(~converged).squeeze(1)
    if idx.numel() == 0:
        return X, iters, rnorm, bnorm, converged

    Ra, Xa = R[:, idx], X[:, idx]
    Za = msolve(Ra) if msolve is not None else Ra
    Pa = Za.clone()
    rz = (Ra * Za).sum(0)
    for _ in range(max_iter):
        APa = matmul(Pa)
        pAp = (Pa * APa).sum(0)
        # breakdown (A or M not positive definite, or non-finite values): freeze the column
        bad = ~(pAp > 0) | ~(rz > 0) | ~torch.isfinite(pAp)
        alpha = torch.where(
            bad, torch.zeros_like(pAp), rz / torch.where(bad, torch.ones_like(pAp), pAp)
        )
        Xa.addcmul_(Pa, alpha)
        Ra.addcmul_(APa, alpha, value=-1.0)
        iters[idx] += 1
        rn = Ra.norm(dim=0)
        rnorm[idx] = torch.where(bad, rnorm[idx], rn)
        done = (rn <= thresh[idx]) & ~bad
        keep = ~(done | bad)
        if not bool(keep.all()):
            X[:, idx[~keep]] = Xa[:, ~keep]
            converged[idx[done]] = True
            idx, Ra, Xa, Pa, rz = idx[keep], Ra[:, keep], Xa[:, keep], Pa[:, keep], rz[keep]
            if idx.numel() == 0:
                break
        Za = msolve(Ra) if msolve is not None else Ra
        rz_new = (Ra * Za).sum(0)
        beta = rz_new / rz
        Pa = Za + Pa * beta
        rz = rz_new
    if idx.numel():
        X[:, idx] = Xa
    return X, iters, rnorm, bnorm, converged


class _CGSolve(torch.autograd.Function):
    """``X = A^{-1} B`` by block CG with an implicit-function backward pass."""

    @staticmethod
    def forward(ctx, spec, B, *params):
        X = block_cg(spec["op"], B, x0=spec["x0"], **spec["cg"]).solution
        ctx.spec = spec
        ctx.save_for_backward(X, *params)
        return X

    @staticmethod
    def backward(ctx, grad):
        X, *params = ctx.saved_tensors
        spec = ctx.spec
        G = block_cg(spec["op"], grad.contiguous(), **spec["cg"]).solution
        X2, G2 = (X.unsqueeze(-1), G.unsqueeze(-1)) if X.dim() == 1 else (X, G)
        if spec["kind"] == "tensor":
            param_grads = [-(G2 @ X2.mT)] if ctx.needs_input_grad[2] else [None]
        elif spec["kind"] == "linear_operator" and any(ctx.needs_input_grad[2:]):
            op = spec["tree"](*params)
            param_grads = list(op._bilinear_derivative(-G2, X2))
        else:
            param_grads = [None] * len(params)
        return (None, G if ctx.needs_input_grad[1] else None, *param_grads)


def solve(
    A: MatmulLike,
    B: torch.Tensor,
    method: str = "auto",
    preconditioner=None,
    tol: float = DEFAULT_TOL,
    max_iter: int = DEFAULT_MAX_ITER,
    x0: torch.Tensor | None = None,
    raise_on_fail: bool = False,
) -> torch.Tensor:
    """Differentiable ``A^{-1} B`` for SPD ``A`` by Cholesky or preconditioned CG.

    Parameters
    ----------
    A : Tensor (n, n), LinearOperator or callable
        SPD matrix. Gradients flow to a tensor ``A`` and to the tensors that
        represent a LinearOperator ``A`` (not into a plain callable).
    B : Tensor (n, k) or (n,)
    method : {"auto", "exact", "cg"}
        ``"auto"`` uses :func:`~torchgenetics.linalg.exact.choose_method` on n.
    preconditioner, tol, max_iter, x0, raise_on_fail
        Passed to :func:`block_cg` (iterative path only).

    Returns
    -------
    Tensor
        Same shape as ``B``. The CG path backpropagates by solving ``A G = dL/dX``
        (a second block CG); ``dL/dB = G`` and ``dL/dA = -G X^T``.

    Examples
    --------
    >>> V = torch.tensor([[2.0, 0.5], [0.5, 1.0]], dtype=torch.float64, requires_grad=True)
    >>> b = torch.tensor([1.0, 1.0], dtype=torch.float64)
    >>> x = solve(V, b, method="cg", tol=1e-12)
    >>> torch.allclose(x, torch.linalg.solve(V, b))
    True
    >>> x.sum().backward(); V.grad.shape
    torch.Size([2, 2])
    """
    from torchgenetics.linalg.exact import choose_method, exact_solve_logdet

    op = as_operator(A, size=B.shape[0])
    if method == "auto":
        method = choose_method(op.n)
    if method == "exact":
        return exact_solve_logdet(op, B, logdet=False)[0]
    if method not in ("cg", "iterative"):
        raise InputError(f"method must be 'auto', 'exact' or 'cg', got {method!r}")
    cg = dict(
        preconditioner=preconditioner, tol=tol, max_iter=max_iter, raise_on_fail=raise_on_fail
    )
    if op.kind == "tensor":
        params, tree = (op.source,), None
    elif op.kind == "linear_operator":
        params, tree = tuple(op.source.representation()), op.source.representation_tree()
    else:
        params, tree = (), None
    needs_grad = torch.is_grad_enabled() and (
        B.requires_grad or any(p.requires_grad for p in params)
    )
    if not needs_grad:
        return block_cg(op, B, x0=x0, **cg).solution
    if isinstance(op.source, LinearOperator):
        # rebuild from detached parts so the CG matvecs never record a graph
        op = as_operator(tree(*[p.detach() for p in params]))
    elif op.kind == "tensor":
        op = as_operator(op.source.detach())
    spec = {"op": op, "kind": op.kind, "tree": tree, "cg": cg, "x0": x0}
    return _CGSolve.apply(spec, B, *params)
