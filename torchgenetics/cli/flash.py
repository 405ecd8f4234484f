"""``torchgen flash``: empirical Bayes matrix factorization of a matrix file.

Reads ``Y`` from a TSV (optional header row and row-name column, ``NA``/empty
for missing), a ``.npy`` array or an HDF5 dataset, runs
:func:`torchgenetics.flash.flash`, and writes ``PREFIX.loadings.tsv``,
``PREFIX.factors.tsv`` (posterior mean, sd and lfsr per factor),
``PREFIX.priors.tsv``, ``PREFIX.elbo.tsv`` (the ELBO trace),
``PREFIX.summary.tsv`` and ``PREFIX.fit.h5`` (to resume with ``--init``), and
with ``--plots`` the scree, heatmap and ELBO PNGs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import FileFormatError, InputError, MissingFileError

_MISSING = {"", "na", "nan", "null", "."}


def add_parser(subparsers) -> None:
    """Register ``torchgen flash``.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        The top-level parser's subcommand registry.

    Examples
    --------
    >>> import argparse
    >>> parser = argparse.ArgumentParser(); sub = parser.add_subparsers(dest="command")
    >>> add_parser(sub)
    >>> parser.parse_args(["flash", "--matrix", "Y.tsv", "--out", "res"]).backfit
    'none'
    """
    parser = subparsers.add_parser(
        "flash",
        help="empirical Bayes matrix factorization (flash) of a data matrix",
        description="Fit Y ~ L F' + E with EBNM priors on loadings and factors (flashier's flash).",
    )
    parser.add_argument("--matrix", required=True, metavar="FILE", help="Y as .tsv/.txt, .npy or .h5")
    parser.add_argument("--dataset", default=None, help="dataset name inside an HDF5 file (default: the only one, or 'Y')")
    parser.add_argument("--se", metavar="FILE", default=None, help="standard errors of Y, same shape and format")
    parser.add_argument("--out", required=True, metavar="PREFIX", help="output prefix")
    parser.add_argument("--prior", default="point_normal",
                        help="EBNM family of loadings and factors (point_normal, point_laplace, point_exponential, "
                             "normal, normal_scale_mixture, unimodal_symmetric)")
    parser.add_argument("--loadings-prior", default=None, help="family of the loadings (overrides --prior)")
    parser.add_argument("--factors-prior", default=None, help="family of the factors (overrides --prior)")
    parser.add_argument("--var-type", default="0", choices=["0", "1", "2", "none"],
                        help="residual variance: 0 constant, 1 by row, 2 by column, none (only --se)")
    parser.add_argument("--greedy-max", type=int, default=50, help="maximum number of factors added greedily")
    parser.add_argument("--backfit", default="none", choices=["none", "sequential", "parallel"])
    parser.add_argument("--no-nullcheck", action="store_true", help="keep factors that do not raise the ELBO")
    parser.add_argument("--intercept", choices=["row", "column"], default=None, help="add an intercept factor")
    parser.add_argument("--init", metavar="FIT.h5", default=None, help="warm start from a saved fit")
    parser.add_argument("--maxiter", type=int, default=500)
    parser.add_argument("--tol", type=float, default=None, help="convergence tolerance (default n p sqrt(eps))")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None, help="torch device (cpu, cuda)")
    parser.add_argument("--plots", action="store_true", help="also write scree, heatmap and ELBO PNGs")
    parser.add_argument("--verbose", action="store_true")
    parser.set_defaults(func=run)


def _is_number(text: str) -> bool:
    if text.strip().lower() in _MISSING:
        return True
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_matrix(path, dataset: str | None = None) -> tuple[np.ndarray, list | None, list | None]:
    """Read a matrix file: TSV (header and row names detected), ``.npy``, or HDF5.

    Returns
    -------
    (numpy.ndarray, list or None, list or None)
        Values (NaN for missing), row names and column names.

    Examples
    --------
    >>> import tempfile, os
    >>> f = os.path.join(tempfile.mkdtemp(), "y.tsv")
    >>> _ = open(f, "w").write("gene\\ts1\\ts2\\ng1\\t1\\tNA\\ng2\\t0.5\\t2\\n")
    >>> Y, rows, cols = read_matrix(f)
    >>> Y.shape, rows, cols
    ((2, 2), ['g1', 'g2'], ['s1', 's2'])
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(path, "matrix")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            Y = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as err:
            raise FileFormatError(path, f"not a readable .npy array ({err})") from None
        if Y.ndim != 2 or Y.dtype.kind not in "biuf":
            raise FileFormatError(path, f"expected a 2-D numeric array, got shape {Y.shape} of {Y.dtype}")
        return Y.astype(np.float64), None, None
    if suffix in (".h5", ".hdf5"):
        return _read_h5(path, dataset), None, None
    return _read_tsv(path)


def _read_h5(path: Path, dataset: str | None) -> np.ndarray:
    import h5py

    try:
        handle = h5py.File(path, "r")
    except OSError as err:
        raise FileFormatError(path, f"not a readable HDF5 file ({err})") from None
    with handle:
        names = [k for k in handle.keys() if isinstance(handle[k], h5py.Dataset)]
        name = dataset or (names[0] if len(names) == 1 else "Y")
        if name not in handle or not isinstance(handle[name], h5py.Dataset):
            raise FileFormatError(path, f"no dataset {name!r}; datasets here: {names} (choose one with --dataset)")
        Y = np.asarray(handle[name][()])
    if Y.ndim != 2 or Y.dtype.kind not in "biuf":
        raise FileFormatError(path, f"dataset {name!r} is not a 2-D numeric matrix (shape {Y.shape}, {Y.dtype})")
    return Y.astype(np.float64)


def _read_tsv(path: Path):
    lines = [line.rstrip("\n\r") for line in path.read_text().splitlines() if line.strip()]
    if not lines:
        raise FileFormatError(path, "the file is empty")
    rows = [line.split("\t") for line in lines]
    rest_named = len(rows) > 1 and any(not _is_number(r[0]) for r in rows[1:])
    first = [not _is_number(v) for v in rows[0]]
    header = any(first[1:]) or (first[0] and not rest_named)
    body = rows[1:] if header else rows
    if not body:
        raise FileFormatError(path, "no data rows after the header")
    names_col = any(not _is_number(r[0]) for r in body)
    width = len(body[0])
    values, row_names = [], []
    for i, r in enumerate(body):
        line_no = i + 1 + int(header)
        if len(r) != width:
            raise FileFormatError(path, f"expected {width} tab-separated fields, found {len(r)}", line=line_no)
        cells = r[1:] if names_col else r
        if names_col:
            row_names.append(r[0])
        parsed = []
        for j, v in enumerate(cells):
            text = v.strip()
            if text.lower() in _MISSING:
                parsed.append(np.nan)
                continue
            try:
                parsed.append(float(text))
            except ValueError:
                raise FileFormatError(path, f"field {j + 1 + int(names_col)} is not a number: {v!r}", line=line_no) from None
        values.append(parsed)
    col_names = None
    if header:
        head = rows[0]
        n_values = width - int(names_col)
        if len(head) == width:
            col_names = head[int(names_col):]
        elif len(head) == n_values:
            col_names = head
        else:
            raise FileFormatError(path, f"the header has {len(head)} fields but rows have {width}", line=1)
    return np.asarray(values, dtype=np.float64), (row_names or None), col_names


def _prior(args):
    base = args.prior
    if args.loadings_prior or args.factors_prior:
        return (args.loadings_prior or base, args.factors_prior or base)
    return base


def _write_tsv(frame: pd.DataFrame, path: str, index: bool = True) -> None:
    frame.to_csv(path, sep="\t", index=index, na_rep="NA", float_format="%.8g")


def run(args) -> int:
    """Fit flash and write the outputs.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed ``torchgen flash`` arguments.

    Returns
    -------
    int
        Exit status 0.

    Examples
    --------
    >>> from torchgenetics.cli.main import main
    >>> main(["flash", "--matrix", "Y.tsv", "--out", "res"])  # doctest: +SKIP
    """
    import torch

    from ..flash import FlashFit, flash

    Y, row_names, col_names = read_matrix(args.matrix, args.dataset)
    S = None
    if args.se is not None:
        S, _, _ = read_matrix(args.se, args.dataset)
        if S.shape != Y.shape:
            raise InputError(f"--se has shape {S.shape} but --matrix has {Y.shape}")
    frame = pd.DataFrame(
        Y,
        index=row_names if row_names is not None else [f"row{i + 1}" for i in range(Y.shape[0])],
        columns=col_names if col_names is not None else [f"col{j + 1}" for j in range(Y.shape[1])],
    )
    var_type = None if args.var_type == "none" else int(args.var_type)
    init = FlashFit.load(args.init) if args.init else None
    out = Path(args.out)
    if out.parent and not out.parent.exists():
        raise MissingFileError(out.parent, "output directory")
    fit = flash(
        frame, S=S, prior=_prior(args), var_type=var_type, greedy_max=args.greedy_max,
        backfit=False if args.backfit == "none" else args.backfit, nullcheck=not args.no_nullcheck,
        intercept=args.intercept, init=init, tol=args.tol, maxiter=args.maxiter, verbose=args.verbose,
        seed=args.seed, dtype=torch.float64, device=args.device,
    )
    prefix = str(out)
    tables = fit.frames()
    _write_tsv(tables["loadings"], f"{prefix}.loadings.tsv")
    _write_tsv(tables["factors"], f"{prefix}.factors.tsv")
    _write_tsv(fit.priors_frame(), f"{prefix}.priors.tsv", index=False)
    _write_tsv(fit.history, f"{prefix}.elbo.tsv", index=False)
    _write_tsv(fit.summary(), f"{prefix}.summary.tsv", index=False)
    fit.save(f"{prefix}.fit.h5")
    written = ["loadings.tsv", "factors.tsv", "priors.tsv", "elbo.tsv", "summary.tsv", "fit.h5"]
    if args.plots:
        import matplotlib

        matplotlib.use("Agg")
        from ..flash.plots import plot_elbo_trace, plot_heatmap, plot_scree

        plot_scree(fit).savefig(f"{prefix}.scree.png", dpi=120, bbox_inches="tight")
        plot_heatmap(fit, "loadings").savefig(f"{prefix}.loadings.png", dpi=120, bbox_inches="tight")
        plot_elbo_trace({args.backfit if args.backfit != "none" else "greedy": fit},
                        step="backfit" if args.backfit != "none" else "greedy").savefig(
            f"{prefix}.elbo.png", dpi=120, bbox_inches="tight")
        written += ["scree.png", "loadings.png", "elbo.png"]
    print(f"flash: {fit.n_factors} factors on {Y.shape[0]} x {Y.shape[1]} "
          f"({int(np.isnan(Y).sum())} missing), ELBO {fit.elbo:.6g}")
    if fit.n_factors:
        print("PVE: " + ", ".join(f"{v:.3f}" for v in fit.pve.tolist()))
    if fit.backfit_info.get("fallback"):
        print(f"backfit: {fit.backfit_info['fallback']}")
    print("wrote " + ", ".join(f"{prefix}.{w}" for w in written))
    return 0
