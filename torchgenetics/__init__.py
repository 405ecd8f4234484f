"""torchgenetics: the Python package of torchgen.

Differentiable statistical-genetics models on one PyTorch backend, where every
covariance is a ``linear_operator.LinearOperator``.

Examples
--------
>>> import torchgenetics as tg
>>> G = tg.Genotypes.from_array([[0, 1, 2], [2, 1, 0]])
>>> G.shape
(2, 3)
"""

__version__ = "0.1.0"
