"""Write pysusie's fits on N3finemapping to ``tests/susie/data/pysusie_n3_reference.npz``.

pysusie (PyPI, a Python port of susieR) is the peer that ``test_peer.py`` holds
torchgen against; saving its output lets the comparison run where pysusie is not
installed. Reproduce with::

    /work/main/.venv/bin/pip install pysusie==0.1.0
    cd /work/main && .venv/bin/python tests/susie/make_reference.py [N3_DIR]

``N3_DIR`` defaults to ``$TORCHGEN_N3_DIR`` or ``/work/shared/data/n3finemapping``
(susieR's ``data(N3finemapping)``: X 574 x 1001, phenotype column 1 of Y).
Every setting uses ``L=10, tol=1e-4`` (pysusie's own default tol is 1e-3).
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

OUT = Path(__file__).with_name("data") / "pysusie_n3_reference.npz"

# name -> (entry point, keyword arguments)
SETTINGS = {
    "em": ("susie", {"estimate_prior_method": "EM"}),
    "fixed": ("susie", {"estimate_prior_variance": False}),
    "optim": ("susie", {"estimate_prior_method": "optim"}),
    "rss_em": ("susie_rss", {"estimate_prior_method": "EM", "estimate_residual_variance": True}),
}


def load_n3(directory):
    """X (574 x 1001) and y (phenotype 1) of N3finemapping."""
    directory = Path(directory)
    X = pd.read_csv(directory / "N3finemapping_X.csv.gz", header=None).to_numpy(np.float64)
    y = pd.read_csv(directory / "N3finemapping_Y.csv", header=None).to_numpy(np.float64)[:, 0]
    return X, y


def univariate_z(X, y):
    """z-scores of the p simple regressions of y on each column of X (with intercept)."""
    n = X.shape[0]
    Xc, yc = X - X.mean(0), y - y.mean()
    xtx = (Xc * Xc).sum(0)
    bhat = Xc.T @ yc / xtx
    resid = yc[:, None] - Xc * bhat
    shat = np.sqrt((resid * resid).sum(0) / (n - 2) / xtx)
    return bhat / shat


def main(directory):
    import pysusie

    X, y = load_n3(directory)
    z = univariate_z(X, y)
    R = np.corrcoef(X, rowvar=False)
    out = {"z": z, "pysusie_version": np.array(pysusie.__version__)}
    for name, (entry, kwargs) in SETTINGS.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if entry == "susie":
                fit = pysusie.susie(X, y, L=10, tol=1e-4, **kwargs)
            else:
                fit = pysusie.susie_rss(z=z, R=R, n=X.shape[0], L=10, tol=1e-4, **kwargs)
        cs = fit["sets"]["cs"] or []
        out[f"{name}_alpha"] = fit["alpha"]
        out[f"{name}_pip"] = fit["pip"]
        out[f"{name}_elbo"] = np.asarray(fit["elbo"])
        out[f"{name}_V"] = np.asarray(fit["V"])
        out[f"{name}_pi"] = np.asarray(fit["pi"])
        out[f"{name}_sigma2"] = np.array(fit["sigma2"])
        out[f"{name}_niter"] = np.array(fit["niter"])
        out[f"{name}_cs_members"] = np.concatenate([np.asarray(c) for c in cs]) if cs else np.zeros(0, int)
        out[f"{name}_cs_sizes"] = np.array([len(c) for c in cs], dtype=int)
    OUT.parent.mkdir(exist_ok=True)
    np.savez_compressed(OUT, **out)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else
         os.environ.get("TORCHGEN_N3_DIR", Path(__file__).resolve().parents[3] / "shared" / "data" / "n3finemapping"))
