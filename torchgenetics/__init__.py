"""torchgenetics: the Python package of torchgen.

Differentiable statistical-genetics models on one PyTorch backend, where every
covariance is a ``linear_operator.LinearOperator``. The model subpackages are also
their main function: ``tg.reml(y, kernels)``, ``tg.susie(X, y)``, ``tg.gwas(G, y)``,
``tg.flash(Y)``, while ``tg.susie.scan`` and friends stay reachable.

Examples
--------
>>> import torchgenetics as tg
>>> G = tg.Genotypes.from_array([[0, 1, 2], [2, 1, 0]])
>>> G.shape
(2, 3)
"""

__version__ = "0.1.0"

import importlib as _importlib

from torchgenetics import datasets, errors, io, linalg, memory, operators
from torchgenetics._callable import make_callable as _make_callable
from torchgenetics.datasets import example, simulate_genotypes, simulate_phenotype
from torchgenetics.describe import describe
from torchgenetics.genotypes import Genotypes, VariantStats
from torchgenetics.io import (
    ComponentSpec,
    align,
    load_h5,
    read_components,
    read_pgen,
    read_plink,
    read_table,
    save_h5,
)
from torchgenetics.operators import GRM, GRMStack, WeightedBlockGRM, covariance


def __getattr__(name):
    # Pyro-based models load on first use: ``import torchgenetics`` stays light.
    if name in ("dream", "optim"):
        return _importlib.import_module(f"torchgenetics.{name}")
    raise AttributeError(f"module 'torchgenetics' has no attribute {name!r}")


# Model subpackages, each callable as its main function.
_MODELS = {
    "reml": "reml",
    "gwas": "gwas",
    "susie": "susie",
    "flash": "flash",
    "deepwas": "fit_deepwas",
}
for _name, _function in _MODELS.items():
    _module = _importlib.import_module(f"torchgenetics.{_name}")
    globals()[_name] = _make_callable(_module, getattr(_module, _function))

__all__ = [
    "__version__",
    "datasets",
    "errors",
    "io",
    "linalg",
    "memory",
    "operators",
    "example",
    "simulate_genotypes",
    "simulate_phenotype",
    "describe",
    "Genotypes",
    "VariantStats",
    "ComponentSpec",
    "align",
    "load_h5",
    "read_components",
    "read_pgen",
    "read_plink",
    "read_table",
    "save_h5",
    "GRM",
    "GRMStack",
    "WeightedBlockGRM",
    "covariance",
    *_MODELS,
    "dream",
    "optim",
]
