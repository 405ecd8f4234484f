"""Linear algebra on covariance operators: block PCG, stochastic traces, SLQ, preconditioners.

Everything accepts a symmetric ``A`` as a ``torch.Tensor``, a
``linear_operator.LinearOperator`` or a matmul callable (with its size).

Examples
--------
>>> import torch
>>> from torchgenetics import linalg
>>> _ = torch.manual_seed(0)
>>> Z = torch.randn(200, 400, dtype=torch.float64)
>>> K = Z @ Z.T / 400
>>> V = 0.5 * K + 0.5 * torch.eye(200, dtype=torch.float64)
>>> P = linalg.ProjectedCorePreconditioner.from_kernels([K], [0.5], 0.5, rank=20, generator=0)
>>> X = linalg.block_cg(V, torch.randn(200, 5, dtype=torch.float64), P, tol=1e-8).solution
>>> est = linalg.slq_logdet(V, num_probes=20, lanczos_steps=25, preconditioner=P, generator=1)
>>> abs(float(est.value - torch.logdet(V))) < 4 * float(est.se) + 1e-6
True
"""

from torchgenetics.linalg._operator import Operator, as_operator
from torchgenetics.linalg.banded import BlockTridiagonalKernel, ShiftedFactor
from torchgenetics.linalg.cg import CGResult, ConvergenceWarning, block_cg, solve
from torchgenetics.linalg.exact import (
    EXACT_CROSSOVER_N,
    EigenKernel,
    choose_method,
    exact_max_n,
    exact_solve_logdet,
    woodbury_solve_logdet,
)
from torchgenetics.linalg.preconditioners import (
    PivotedCholeskyPreconditioner,
    PreconditionedLinearOperator,
    Preconditioner,
    PreconditionerLinearOperator,
    ProjectedCorePreconditioner,
    pivoted_cholesky,
    preconditioner_override,
    randomized_range_finder,
    with_preconditioner,
)
from torchgenetics.linalg.probes import Estimate, estimate_from_samples, make_probes
from torchgenetics.linalg.slq import LanczosResult, lanczos, slq_logdet, slq_trace
from torchgenetics.linalg.trace import hutch_plus_plus, hutchinson, trace_of_inverse_product

__all__ = [
    "Operator",
    "as_operator",
    "CGResult",
    "ConvergenceWarning",
    "block_cg",
    "solve",
    "EXACT_CROSSOVER_N",
    "EigenKernel",
    "BlockTridiagonalKernel",
    "ShiftedFactor",
    "choose_method",
    "exact_max_n",
    "exact_solve_logdet",
    "woodbury_solve_logdet",
    "Preconditioner",
    "ProjectedCorePreconditioner",
    "PivotedCholeskyPreconditioner",
    "PreconditionerLinearOperator",
    "PreconditionedLinearOperator",
    "pivoted_cholesky",
    "preconditioner_override",
    "randomized_range_finder",
    "with_preconditioner",
    "Estimate",
    "estimate_from_samples",
    "make_probes",
    "LanczosResult",
    "lanczos",
    "slq_logdet",
    "slq_trace",
    "hutchinson",
    "hutch_plus_plus",
    "trace_of_inverse_product",
]
