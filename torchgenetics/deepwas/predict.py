"""Per-variant prior variances from a trained DeepWAS prior, for any variant's annotations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from torchgenetics.errors import InputError

from .data import Annotations

__all__ = ["predict_variance", "write_predictions"]


def predict_variance(module, annotations: Annotations, batch_size: int = 65536,
                     device=None) -> pd.DataFrame:
    """Prior effect variance of every variant in ``annotations``.

    Parameters
    ----------
    module : DeepWASModule or DeepWASFit
        A trained prior (its feature standardization is applied).
    annotations : Annotations
        Features of the variants to score, shaped as in training (windowed tracks for a
        convolutional prior).
    batch_size : int
        Variants per forward pass.
    device : optional
        Where to run the network (default: the module's device).

    Returns
    -------
    pandas.DataFrame
        ``id`` (``chrom``, ``pos`` when known), ``log_variance`` and ``variance`` (per
        standardized genotype, unit phenotype variance).

    Examples
    --------
    >>> import numpy as np
    >>> from torchgenetics.deepwas.module import DeepWASModule
    >>> from torchgenetics.deepwas.priors import LinearPrior
    >>> m = DeepWASModule(LinearPrior(2), log_scale=-10.0)
    >>> predict_variance(m, Annotations(["a"], np.zeros((1, 2)), ["x", "y"]))["log_variance"].tolist()
    [-10.0]
    """
    module = getattr(module, "module", module)
    if int(batch_size) < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size}")
    param = module.log_scale
    device = param.device if device is None else torch.device(device)
    was_training = module.training
    module.eval()
    out = []
    try:
        with torch.no_grad():
            for a in range(0, annotations.n_variants, int(batch_size)):
                x = torch.as_tensor(annotations.values[a:a + int(batch_size)], dtype=param.dtype,
                                    device=device)
                out.append(module.log_variance(x).cpu())
    finally:
        module.train(was_training)
    log_f = torch.cat(out).numpy() if out else np.zeros(0)
    frame = pd.DataFrame({"id": annotations.ids.astype(str)})
    if annotations.chrom is not None:
        frame["chrom"] = annotations.chrom.astype(str)
    if annotations.pos is not None:
        frame["pos"] = annotations.pos
    frame["log_variance"] = log_f
    frame["variance"] = np.exp(log_f)
    return frame


def write_predictions(frame: pd.DataFrame, path) -> None:
    """Write predictions as a tab-separated file (full float precision).

    Parameters
    ----------
    frame : pandas.DataFrame
        Output of :func:`predict_variance`.
    path : str or path-like

    Examples
    --------
    >>> import tempfile, os
    >>> f = os.path.join(tempfile.mkdtemp(), "p.tsv")
    >>> write_predictions(pd.DataFrame({"id": ["a"], "variance": [1e-5]}), f)
    >>> open(f).read().splitlines()[1]
    'a\\t1e-05'
    """
    frame.to_csv(path, sep="\t", index=False, float_format="%.10g")
