"""``torchgen mfsusie``: fine-map one region for several functional (or scalar) outcomes.

Outcome files are PLINK-style sample tables (see :mod:`torchgenetics.io.tables`):
whitespace- or tab-separated, ``FID IID`` (or ``IID`` alone) then one column per
position of the outcome; a scalar outcome has one value column. When every value
column name of the header is a number, the names are the positions (e.g.
``#FID IID 1000 1250 1500 ...``); otherwise, or without a header, positions are
evenly spaced unless a positions file is given with ``--pos``. Missing values are
``NA``, ``.`` or ``nan``; a sample with a missing value in any outcome is left out
(and counted). Samples are matched to the genotypes on (FID, IID) and kept in
genotype order.
"""

from __future__ import annotations

import argparse
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

__all__ = ["OUTCOME_MISSING", "Outcome", "read_outcome", "read_positions", "align_outcomes",
           "add_parser", "run"]

# -9 is a legitimate value of a log-scale or centred profile, so it is not a missing code here.
OUTCOME_MISSING = ("NA", ".", "nan")
_SHOW = 5


@dataclass
class Outcome:
    """One outcome file as read: its table, name and positions.

    Attributes
    ----------
    name : str
        Outcome name (the file name without its extension, unless given).
    path : str
        The file.
    table : pandas.DataFrame
        Indexed by (fid, iid), one float64 column per position (NaN = missing).
    pos : numpy.ndarray or None
        The positions of the columns (None: evenly spaced).
    complete : numpy.ndarray
        Boolean mask of the rows without a missing value.

    Examples
    --------
    >>> import tempfile, os
    >>> f = os.path.join(tempfile.mkdtemp(), "atac.tsv")
    >>> _ = open(f, "w").write("FID IID 10 20 40\\nf1 s1 0.1 0.2 0.3\\nf2 s2 NA 1 2\\n")
    >>> out = read_outcome(f)
    >>> out.name, out.pos.tolist(), out.complete.tolist()
    ('atac', [10.0, 20.0, 40.0], [True, False])
    """

    name: str
    path: str
    table: pd.DataFrame
    pos: np.ndarray | None
    complete: np.ndarray = field(repr=False)

    @property
    def n_positions(self) -> int:
        """Number of value columns (1 for a scalar outcome)."""
        return int(self.table.shape[1])


def read_positions(path, n_expected: int | None = None) -> np.ndarray:
    """Read a positions file: numbers separated by whitespace or newlines (``#`` comments).

    Parameters
    ----------
    path : str or path-like
        The file.
    n_expected : int, optional
        Number of positions the outcome needs.

    Returns
    -------
    numpy.ndarray
        float64 positions, strictly increasing.

    Raises
    ------
    FileFormatError
        A token that is not a number (line named), the wrong count, or positions
        not strictly increasing (the first offending position named).

    Examples
    --------
    >>> import tempfile, os
    >>> f = os.path.join(tempfile.mkdtemp(), "pos.txt")
    >>> _ = open(f, "w").write("# bp\\n100\\n150 400\\n")
    >>> read_positions(f, 3).tolist()
    [100.0, 150.0, 400.0]
    """
    from torchgenetics.errors import FileFormatError, MissingFileError

    path = Path(path)
    if not path.is_file():
        raise MissingFileError(path, "positions")
    values = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        for token in line.split("#", 1)[0].split():
            try:
                values.append(float(token))
            except ValueError:
                raise FileFormatError(path, f"position {token!r} is not a number", line=number) from None
    pos = np.asarray(values, dtype=np.float64)
    if n_expected is not None and pos.size != n_expected:
        raise FileFormatError(path, f"holds {pos.size} positions but the outcome has {n_expected} columns")
    _check_increasing(pos, path, "position")
    return pos


def _check_increasing(pos: np.ndarray, path, what: str) -> None:
    from torchgenetics.errors import FileFormatError

    if not np.isfinite(pos).all():
        i = int(np.flatnonzero(~np.isfinite(pos))[0])
        raise FileFormatError(path, f"{what} {i + 1} ({pos[i]}) is not finite")
    bad = np.flatnonzero(np.diff(pos) <= 0)
    if bad.size:
        i = int(bad[0]) + 1
        raise FileFormatError(path, f"{what}s must be strictly increasing: {what} {i + 1} ({pos[i]:g}) "
                                    f"follows {what} {i} ({pos[i - 1]:g})")


def read_outcome(path, name: str | None = None, pos=None) -> Outcome:
    """Read one outcome file (see the module docstring for the format).

    Parameters
    ----------
    path : str or path-like
        The outcome table.
    name : str, optional
        Outcome name (default: the file name up to its first dot).
    pos : str, path-like or array-like, optional
        Positions file (see :func:`read_positions`) or the positions themselves;
        default: the header's column names when they are all numbers.

    Returns
    -------
    Outcome

    Raises
    ------
    MissingFileError, FileFormatError, PhenotypeError, SampleError
        Missing file, ragged lines, non-numeric values (file, line and value named),
        repeated samples, or positions not strictly increasing.

    Examples
    --------
    >>> import tempfile, os
    >>> f = os.path.join(tempfile.mkdtemp(), "expr.txt")
    >>> _ = open(f, "w").write("#FID IID level\\nf1 s1 0.5\\n")
    >>> read_outcome(f).n_positions, read_outcome(f).pos is None
    (1, True)
    """
    from torchgenetics.io import read_table

    path = Path(path)
    table = read_table(path, kind="phenotype", missing=OUTCOME_MISSING)
    if name is None:
        name = path.name.split(".")[0] or path.name
    if pos is not None:
        if isinstance(pos, (str, Path)):
            positions = read_positions(pos, table.shape[1])
        else:
            positions = np.asarray(pos, dtype=np.float64).reshape(-1)
            if positions.size != table.shape[1]:
                from torchgenetics.errors import InputError

                raise InputError(f"{path}: {positions.size} positions given for {table.shape[1]} columns")
            _check_increasing(positions, path, "position")
    else:
        try:
            positions = np.array([float(c) for c in table.columns], dtype=np.float64)
        except ValueError:
            positions = None
        if positions is not None and positions.size > 1:
            _check_increasing(positions, path, "header position")
    if positions is not None and positions.size == 1:
        positions = None
    complete = ~np.isnan(table.to_numpy()).any(axis=1)
    return Outcome(str(name), str(path), table, positions, complete)


def _table_rows(table: pd.DataFrame, samples: pd.DataFrame) -> np.ndarray:
    """Row of ``table`` holding each of ``samples`` (fid, iid); -1 when absent."""
    if table.attrs.get("iid_only", False):
        return pd.Index(table.index.get_level_values(1).astype(str)).get_indexer(
            pd.Index(samples["iid"].astype(str)))
    index = pd.MultiIndex.from_arrays([table.index.get_level_values(0).astype(str),
                                       table.index.get_level_values(1).astype(str)])
    return index.get_indexer(pd.MultiIndex.from_arrays([samples["fid"].astype(str),
                                                        samples["iid"].astype(str)]))


def align_outcomes(genotypes, outcomes: list[Outcome], covar=None):
    """Samples genotyped, with every outcome complete (and covariates), in genotype order.

    Parameters
    ----------
    genotypes : Genotypes or pandas.DataFrame
        Anything :func:`torchgenetics.io.align` accepts.
    outcomes : list of Outcome
        From :func:`read_outcome`.
    covar : path or DataFrame, optional
        Covariate table (see :func:`torchgenetics.io.align`).

    Returns
    -------
    alignment : torchgenetics.io.Alignment
        The kept samples and their covariates (intercept first).
    Y : list of torch.Tensor
        One (n, T_m) float64 matrix per outcome, rows in the alignment's order.
    report : str
        Per outcome file: rows, rows matching genotyped samples, incomplete rows
        dropped (a few named); then the alignment report.

    Raises
    ------
    SampleError
        An outcome file shares no sample with the genotypes, or no sample has every
        outcome (the counts per file are given).

    Examples
    --------
    >>> import tempfile, os
    >>> d = tempfile.mkdtemp(); f = os.path.join(d, "y.tsv")
    >>> _ = open(f, "w").write("FID IID 1 2\\na a 1 2\\nb b NA 3\\nc c 5 6\\n")
    >>> samples = pd.DataFrame({"fid": ["c", "b", "a"], "iid": ["c", "b", "a"]})
    >>> al, Y, report = align_outcomes(samples, [read_outcome(f)])
    >>> al.sample_index.tolist(), Y[0].tolist()
    ([0, 2], [[5.0, 6.0], [1.0, 2.0]])
    """
    from torchgenetics.errors import SampleError
    from torchgenetics.io import align

    lines, keep = [], None
    geno = align(genotypes, intercept=False).samples  # validated (fid, iid) of every genotyped sample
    for out in outcomes:
        rows = _table_rows(out.table, geno)
        present = rows >= 0
        if not present.any():
            shown = [" ".join(map(str, k)) for k in out.table.index[:3]]
            raise SampleError(f"no sample in common between the genotypes and the outcome file {out.path}; "
                              f"genotype samples (FID IID) start {geno.head(3).apply(' '.join, axis=1).tolist()}, "
                              f"the file starts {shown}")
        complete = present.copy()
        complete[present] = out.complete[rows[present]]
        missing = present & ~complete
        line = (f"  {out.name} ({out.path}): {len(out.table)} rows, {int(present.sum())} genotyped, "
                f"{out.n_positions} position(s)")
        if missing.any():
            ids = [f"{f} {i}" for f, i in geno.loc[missing, ["fid", "iid"]].head(_SHOW).itertuples(index=False)]
            line += f"; {int(missing.sum())} with missing values left out (e.g. {', '.join(ids)})"
        lines.append(line)
        keep = complete if keep is None else keep & complete
    if not keep.any():
        raise SampleError("no genotyped sample has a complete value in every outcome file:\n" + "\n".join(lines))
    keep_table = pd.DataFrame(index=pd.MultiIndex.from_frame(geno.loc[keep, ["fid", "iid"]],
                                                              names=["fid", "iid"]))
    alignment = align(genotypes, covar=covar, keep=keep_table)
    alignment.report.dropped = {("absent from or incomplete in an outcome file" if k == "not in keep file" else k): v
                                for k, v in alignment.report.dropped.items()}
    samples = alignment.samples
    Y = [torch.as_tensor(out.table.to_numpy(dtype=np.float64)[_table_rows(out.table, samples)])
         for out in outcomes]
    return alignment, Y, "outcomes:\n" + "\n".join(lines) + "\n" + str(alignment)


def _split(text: str | None) -> list[str] | None:
    return None if text is None else [t.strip() for t in text.split(",")]


def add_parser(subparsers) -> None:
    """Register ``torchgen mfsusie``.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        The top-level parser's subcommand registry.

    Examples
    --------
    >>> root = argparse.ArgumentParser(); sub = root.add_subparsers(dest="command")
    >>> add_parser(sub)
    >>> args = root.parse_args(["mfsusie", "--bfile", "x", "--outcomes", "a.tsv,b.tsv",
    ...                         "--region", "1:1-2", "--out", "o"])
    >>> args.L, args.L_greedy, args.wavelet
    (20, 5, 'la10')
    """
    parser = subparsers.add_parser(
        "mfsusie",
        help="fine-map one region for several functional outcomes (multi-outcome functional SuSiE)",
        description="Fine-map one region jointly for M outcomes (curves over positions, or scalars) "
                    "with one set of effects shared across outcomes. Outcome files: FID IID then one "
                    "column per position (header = positions). Writes PREFIX.pip.tsv (per variant: "
                    "PIP, credible set, lbf), PREFIX.cs.tsv (credible sets), PREFIX.curves.tsv "
                    "(effect curves per credible set and outcome, with pointwise credible bands) and "
                    "PREFIX.h5 (the fit; torchgenetics.susie.functional.load_mfsusie).",
    )
    data = parser.add_argument_group("input")
    source = data.add_mutually_exclusive_group(required=True)
    source.add_argument("--bfile", metavar="PREFIX", help="PLINK 1 .bed/.bim/.fam prefix")
    source.add_argument("--pfile", metavar="PREFIX", help="PLINK 2 .pgen/.pvar/.psam prefix")
    data.add_argument("--outcomes", required=True, metavar="A.tsv,B.tsv",
                      help="comma-separated outcome files (FID IID then one column per position)")
    data.add_argument("--outcome-names", metavar="NAMES",
                      help="comma-separated outcome names (default: the file names)")
    data.add_argument("--pos", metavar="A.pos,B.pos",
                      help="comma-separated positions files, one per outcome ('-' keeps the header's "
                           "positions); default: the header, when its column names are numbers")
    data.add_argument("--covar", metavar="FILE",
                      help="covariate table; outcomes and genotypes are residualised on it")
    data.add_argument("--region", required=True, metavar="CHR:START-END", help="region (inclusive)")
    model = parser.add_argument_group("model")
    model.add_argument("--L", type=int, default=20, help="maximum number of effects (20)")
    model.add_argument("--L-greedy", dest="L_greedy", type=int, default=5,
                       help="start with this many effects and grow while needed (5; 0 = start with L)")
    model.add_argument("--prior", choices=("mixture_normal", "point_normal", "point_laplace"),
                       default="mixture_normal", help="prior of the wavelet coefficients (mixture_normal)")
    model.add_argument("--prior-scope", dest="prior_variance_scope", choices=("per_outcome", "per_scale"),
                       default="per_outcome", help="one mixture per outcome or per (outcome, scale)")
    model.add_argument("--residual-scope", dest="residual_variance_scope",
                       choices=("per_outcome", "per_scale"), default="per_outcome",
                       help="residual variance per outcome or per (outcome, scale)")
    model.add_argument("--wavelet", default="la10",
                       help="wavelet filter: haar, d4..d20, la8..la20 (la10)")
    model.add_argument("--max-log2", type=int, default=10,
                       help="at most 2^MAX_LOG2 grid positions per outcome (10)")
    model.add_argument("--coverage", type=float, default=0.95, help="credible-set coverage (0.95)")
    model.add_argument("--min-abs-corr", type=float, default=0.5, help="credible-set purity (0.5)")
    model.add_argument("--max-iter", type=int, default=100, help="IBSS iterations (100)")
    model.add_argument("--tol", type=float, default=1e-4, help="convergence tolerance (1e-4)")
    model.add_argument("--convergence", choices=("pip", "elbo"), default="pip",
                       help="stop on the PIP change (default) or the ELBO change")
    model.add_argument("--level", type=float, default=0.95, help="level of the curve bands (0.95)")
    model.add_argument("--seed", type=int, default=0, help="seed (purity subsample)")
    parser.add_argument("--out", required=True, metavar="PREFIX", help="output prefix")
    parser.set_defaults(func=run)


def _outcomes_from_args(args: argparse.Namespace) -> list[Outcome]:
    from torchgenetics.errors import InputError

    paths = _split(args.outcomes)
    if not paths or any(not p for p in paths):
        raise InputError(f"--outcomes {args.outcomes!r}: expected comma-separated file names")
    names = _split(args.outcome_names)
    pos = _split(args.pos)
    for what, given in (("--outcome-names", names), ("--pos", pos)):
        if given is not None and len(given) != len(paths):
            raise InputError(f"{what} lists {len(given)} entries for {len(paths)} outcome files")
    outcomes = [read_outcome(path, None if names is None else names[m],
                             None if pos is None or pos[m] in ("", "-") else pos[m])
                for m, path in enumerate(paths)]
    labels = [o.name for o in outcomes]
    if len(set(labels)) != len(labels):
        if names is not None:
            raise InputError(f"--outcome-names repeats a name: {labels}")
        for m, o in enumerate(outcomes):
            o.name = f"{o.name}{m + 1}"
    return outcomes


def _curves(fit, level: float) -> pd.DataFrame:
    curves = fit.curves(level=level)
    lead = fit.summary().set_index("cs")["lead_variable"] if len(fit.sets["cs"]) else pd.Series(dtype=object)
    curves.insert(2, "lead_variable", curves["cs"].map(lead))
    return curves


def run(args: argparse.Namespace) -> int:
    """Read, align, fine-map, print the credible sets and write the four outputs.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed arguments.

    Returns
    -------
    int
        Exit status 0.

    Examples
    --------
    >>> from torchgenetics.cli.main import main
    >>> main(["mfsusie", "--bfile", "data/x", "--outcomes", "a.tsv", "--region", "1:1-9",
    ...       "--out", "o"])  # doctest: +SKIP
    """
    from torchgenetics.errors import InputError
    from torchgenetics.io import read_pgen, read_plink
    from torchgenetics.susie import loci_from_regions
    from torchgenetics.susie.covariates import CovariateProjector
    from torchgenetics.susie.functional import mfsusie

    outcomes = _outcomes_from_args(args)
    genotypes = read_plink(args.bfile) if args.bfile is not None else read_pgen(args.pfile)
    alignment, Y, report = align_outcomes(genotypes, outcomes, covar=args.covar)
    # the locus' X: mean-imputed and residualised on the covariates as for `torchgen susie`
    with warnings.catch_warnings():  # an empty region is an error here, not a warning
        warnings.simplefilter("ignore", RuntimeWarning)
        loci = loci_from_regions(alignment.subset(genotypes), torch.zeros(alignment.n_samples),
                                 [args.region], alignment.covariates)
    if not loci:
        raise InputError(f"region {args.region} holds no variant of {args.bfile or args.pfile}")
    locus = loci[0]
    data = locus.load()
    project = CovariateProjector(alignment.covariates)
    Y = [project(y) for y in Y]
    fit = mfsusie(data["X"], Y, pos=[o.pos for o in outcomes], L=min(args.L, locus.n_variables),
                  L_greedy=args.L_greedy or None, prior=args.prior,
                  prior_variance_scope=args.prior_variance_scope,
                  residual_variance_scope=args.residual_variance_scope, wavelet=args.wavelet,
                  max_log2=args.max_log2, max_iter=args.max_iter, tol=args.tol,
                  convergence=args.convergence, coverage=args.coverage,
                  min_abs_corr=args.min_abs_corr, seed=args.seed,
                  variable_names=data["variable_names"], outcome_names=[o.name for o in outcomes])
    print(report)
    print(f"locus {locus.name}: {locus.n_variables} variants; {fit!r}")
    sets = fit.summary()
    for row in sets.itertuples():
        print(f"  {row.cs}: {row.size} variant(s), coverage {row.coverage:.3f}, min |r| "
              f"{row.min_abs_corr:.3f}, lead {row.lead_variable} (PIP {row.lead_pip:.3f})")
    locus.annotate(fit).to_csv(f"{args.out}.pip.tsv", sep="\t", index=False, na_rep="NA")
    sets.to_csv(f"{args.out}.cs.tsv", sep="\t", index=False, na_rep="NA")
    _curves(fit, args.level).to_csv(f"{args.out}.curves.tsv", sep="\t", index=False, na_rep="NA")
    fit.save(f"{args.out}.h5")
    print(f"wrote {args.out}.pip.tsv, {args.out}.cs.tsv, {args.out}.curves.tsv, {args.out}.h5")
    return 0
