"""LinearOperators for covariances: GRMs, weighted block GRMs, LD matrices, and their sums.

Every operator is a ``linear_operator.LinearOperator`` with an exact dense twin
(``to_dense()``), so models share autograd, CG/Lanczos solves and log-determinants.

Examples
--------
>>> import torch
>>> from torchgenetics.operators import BlockLD, covariance
>>> R = BlockLD([torch.eye(2, dtype=torch.float64)])
>>> covariance([R], [0.5], 0.5).diagonal().tolist()
[1.0, 1.0]
"""

from .covariance import Covariance, covariance
from .grm import GRM
from .ld import BandedLD, BlockLD, load_ld, repair_psd
from .stack import GRMStack
from .weighted import WeightedBlockGRM

__all__ = [
    "GRM",
    "GRMStack",
    "WeightedBlockGRM",
    "BlockLD",
    "BandedLD",
    "load_ld",
    "repair_psd",
    "Covariance",
    "covariance",
]
