"""The AI-REML optimizer shared by the exact and the stochastic likelihoods.

Parameters are ``theta = (s2_1, ..., s2_G, s2_e)``. Each iteration takes an average
information (AI) step ``AI^{-1} score`` on the free parameters (a variance at its
lower bound whose score points outwards stays fixed, so the step is a projected
Newton step in the box ``s2_g >= 0``, ``s2_e >= floor``), then halves the step
until the objective does not decrease. When the AI matrix is not positive
definite, or its step fails, an EM step ``theta_i + 2 theta_i^2 score_i / n`` is
tried instead. The fit stops when both the change of the log-likelihood and the
largest parameter change (relative to ``sum(theta)``) fall below their tolerances:
either the changes of the last accepted step, or those the AI step predicts
(``score' AI^-1 score / 2`` and the projected step), in which case that last,
small step is not taken (it would cost a full evaluation to move the estimate by
less than the tolerance).

An *evaluator* supplies ``evaluate(theta) -> Evaluation`` (likelihood, score, AI)
and ``objective(theta) -> Objective`` (likelihood only, for the line search). A
stochastic evaluator's objective uses fixed probes, so it is deterministic; a step
is then accepted unless the objective falls by more than two Monte Carlo standard
errors of the difference (from the same probes) combined with the score's own
Monte Carlo error along the step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

__all__ = ["Evaluation", "Objective", "OptimResult", "optimize"]


@dataclass
class Objective:
    """A restricted log-likelihood value (``-inf`` where V is not positive definite).

    Attributes
    ----------
    value : float
    samples : torch.Tensor or None
        Per-probe samples of the stochastic ``-log|V| / 2`` part (None when exact).
    error : float
        Bound on the deterministic numerical error of ``value`` (iterative solves).

    Examples
    --------
    >>> Objective(-3.0).value
    -3.0
    """

    value: float
    samples: torch.Tensor | None = None
    error: float = 0.0


@dataclass
class Evaluation:
    """Likelihood, score and average information at one parameter value.

    Attributes
    ----------
    theta : torch.Tensor
        (G+1,) variances, residual last.
    loglik : float
        Restricted log-likelihood (without the ``2 pi`` constant, as GCTA reports it).
    score : torch.Tensor
        (G+1,) ``-0.5 (tr(P K_i) - y'P K_i P y)``; ``K_{G+1} = I``.
    ai : torch.Tensor
        (G+1, G+1) ``0.5 y'P K_i P K_j P y``.
    quad, trace : torch.Tensor
        (G+1,) ``y'P K_i P y`` and ``tr(P K_i)``.
    beta, beta_cov : torch.Tensor
        GLS fixed effects and their covariance ``(X'V^-1X)^-1``.
    loglik_se : float
        Monte Carlo standard error of ``loglik`` (NaN when exact).
    score_cov : torch.Tensor or None
        Monte Carlo covariance of ``score`` (stochastic only).
    samples : torch.Tensor or None
        Per-probe samples behind ``loglik`` (stochastic only).
    info : dict
        Solver diagnostics (CG iterations, residuals).

    Examples
    --------
    >>> e = Evaluation(torch.ones(2), -1.0, torch.zeros(2), torch.eye(2), torch.ones(2),
    ...                torch.ones(2), torch.zeros(1), torch.eye(1))
    >>> e.loglik
    -1.0
    """

    theta: torch.Tensor
    loglik: float
    score: torch.Tensor
    ai: torch.Tensor
    quad: torch.Tensor
    trace: torch.Tensor
    beta: torch.Tensor
    beta_cov: torch.Tensor
    loglik_se: float = math.nan
    score_cov: torch.Tensor | None = None
    samples: torch.Tensor | None = None
    info: dict = field(default_factory=dict)


@dataclass
class OptimResult:
    """Outcome of :func:`optimize`.

    Attributes
    ----------
    evaluation : Evaluation
        At the final parameters.
    n_iter : int
    converged : bool
    delta_loglik, delta_theta : float
        Changes at the last accepted step (the convergence measures).
    history : list of dict
        One entry per iterate: ``iteration, step, step_size, loglik, loglik_se,
        delta_loglik, delta_theta, theta``.
    message : str

    Examples
    --------
    >>> OptimResult(None, 0, False, math.nan, math.nan, [], "").converged
    False
    """

    evaluation: Evaluation
    n_iter: int
    converged: bool
    delta_loglik: float
    delta_theta: float
    history: list
    message: str


def _ai_direction(ev: Evaluation, theta, lower):
    """Projected Newton direction on the free set, or None when AI is not PD there."""
    at_bound = (theta <= lower * (1 + 1e-12)) & (ev.score <= 0)
    free = ~at_bound
    if not bool(free.any()):
        return torch.zeros_like(theta), 0.0
    ai = ev.ai[free][:, free]
    L, info = torch.linalg.cholesky_ex(0.5 * (ai + ai.T))
    if int(info) != 0:
        return None, math.inf
    step = torch.cholesky_solve(ev.score[free].unsqueeze(1), L).squeeze(1)
    out = torch.zeros_like(theta)
    out[free] = step
    return out, float(ev.score[free] @ step)


def _em_direction(ev: Evaluation, theta, n):
    step = 2.0 * theta.square() * ev.score / n
    return step if bool(torch.isfinite(step).all()) and bool((step != 0).any()) else None


def _acceptable(old: Objective, new: Objective, step, score_cov) -> bool:
    """Whether ``new`` is not worse than ``old`` beyond numerical and Monte Carlo error.

    Exact objectives allow only rounding and solver error. A stochastic objective
    and the score come from different probes, so the objective may fall along a
    step the score calls uphill by Monte Carlo error alone: the allowance is two
    standard deviations of (objective difference from its fixed probes) plus
    (score error along the step, ``step' Cov(score) step``).
    """
    if not math.isfinite(new.value):
        return False
    slack = 1e-10 * max(1.0, abs(old.value)) + 2.0 * (old.error + new.error)
    if old.samples is not None and new.samples is not None and old.samples.numel() > 1:
        diff = new.samples - old.samples
        var = float(diff.var()) / diff.numel()
        if score_cov is not None:
            var += float(step @ score_cov @ step)
        slack += 2.0 * math.sqrt(var)
    return new.value >= old.value - slack


def _line_search(evaluator, theta, obj, direction, lower, max_halvings, score_cov):
    t = 1.0
    for _ in range(max_halvings + 1):
        trial = torch.maximum(theta + t * direction, lower)
        new = evaluator.objective(trial)
        if _acceptable(obj, new, trial - theta, score_cov):
            return t, trial, new
        t *= 0.5
    return None


def _entry(it, step, t, theta, obj, se, d_l, d_t):
    return {
        "iteration": int(it), "step": step, "step_size": float(t), "loglik": float(obj.value),
        "loglik_se": float(se), "delta_loglik": float(d_l), "delta_theta": float(d_t),
        "theta": [float(v) for v in theta],
    }


def optimize(evaluator, theta0, lower, n, max_iter=50, tol=1e-6, param_tol=1e-6, verbose=False,
             max_halvings=10) -> OptimResult:
    """Maximise the restricted likelihood by bound-constrained AI-REML with EM fallback.

    Parameters
    ----------
    evaluator : object
        With ``evaluate(theta) -> Evaluation`` and ``objective(theta) -> Objective``.
    theta0 : torch.Tensor
        (G+1,) starting variances (clamped to ``lower``).
    lower : torch.Tensor
        (G+1,) lower bounds (0 for genetic variances, a small positive floor for
        the residual).
    n : int
        Number of samples (scales the EM step).
    max_iter : int
        Maximum number of accepted steps.
    tol : float
        Absolute tolerance on the change of log-likelihood.
    param_tol : float
        Tolerance on ``max |delta theta| / sum(theta)``.
    verbose : bool
        Show a tqdm bar over iterations.
    max_halvings : int
        Step halvings before a step type is given up.

    Returns
    -------
    OptimResult

    Examples
    --------
    >>> from torchgenetics.reml.exact import DenseREML
    >>> g = torch.Generator().manual_seed(0)
    >>> Z = torch.randn(60, 30, generator=g, dtype=torch.float64)
    >>> y = Z @ torch.randn(30, generator=g, dtype=torch.float64) / 30 ** 0.5
    >>> y = y + torch.randn(60, generator=g, dtype=torch.float64)
    >>> ev = DenseREML([Z @ Z.T / 30], y, torch.ones(60, 1, dtype=torch.float64))
    >>> res = optimize(ev, torch.tensor([0.5, 0.5], dtype=torch.float64),
    ...                torch.tensor([0.0, 1e-6], dtype=torch.float64), n=60)
    >>> res.converged
    True
    """
    theta = torch.maximum(theta0.clone(), lower)
    ev = evaluator.evaluate(theta)
    obj = Objective(ev.loglik, ev.samples)
    history = [_entry(0, "init", 0.0, theta, obj, ev.loglik_se, math.nan, math.nan)]
    converged, message = False, "reached max_iter without meeting both tolerances"
    d_l = d_t = math.nan
    it = 0
    with tqdm(total=max_iter, desc="REML", disable=not verbose, leave=False) as bar:
        for it in range(1, max_iter + 1):
            found = None
            ai_dir, decrement = _ai_direction(ev, theta, lower)
            if ai_dir is not None:
                pred_l = 0.5 * decrement
                pred_t = float((torch.maximum(theta + ai_dir, lower) - theta).abs().max() / theta.sum())
                if abs(pred_l) < tol and pred_t < param_tol:
                    it -= 1
                    d_l, d_t = pred_l, pred_t
                    converged, message = True, "converged (the remaining AI step is below both tolerances)"
                    break
            for kind, direction in (("AI", ai_dir), ("EM", None)):
                if kind == "EM":
                    direction = _em_direction(ev, theta, n)
                if direction is None:
                    continue
                res = _line_search(evaluator, theta, obj, direction, lower, max_halvings, ev.score_cov)
                if res is not None:
                    found = (kind,) + res
                    break
            if found is None:
                it -= 1
                message = "stopped: neither an AI nor an EM step increased the likelihood"
                break
            kind, t, new_theta, new_obj = found
            d_l = new_obj.value - obj.value
            d_t = float((new_theta - theta).abs().max() / new_theta.sum())
            theta = new_theta
            ev = evaluator.evaluate(theta)
            obj = Objective(ev.loglik, ev.samples)
            history.append(_entry(it, kind, t, theta, obj, ev.loglik_se, d_l, d_t))
            bar.update(1)
            bar.set_postfix(loglik=f"{ev.loglik:.4f}", step=kind)
            if abs(d_l) < tol and d_t < param_tol:
                converged, message = True, "converged"
                break
    return OptimResult(ev, it, converged, d_l, d_t, history, message)
