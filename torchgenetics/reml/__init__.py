"""REML heritability: multi-component, exact or matrix-free, differentiable.

Examples
--------
>>> import torch
>>> from torchgenetics.reml import reml
>>> g = torch.Generator().manual_seed(0)
>>> Z = torch.randn(200, 100, generator=g, dtype=torch.float64)
>>> y = Z @ torch.randn(100, generator=g, dtype=torch.float64) / 10 + torch.randn(200, generator=g, dtype=torch.float64)
>>> reml(y, Z @ Z.T / 100).converged
True
"""

from .fit import REMLFit
from .model import reml

__all__ = ["reml", "REMLFit"]
