"""Fine-mapping loci: from genotypes plus a region list, or summary statistics plus LD blocks.

A :class:`Locus` is a name, the table of its variants and a loader that
returns the locus' data in the form :func:`~torchgenetics.susie.susie_batch`
takes (``{"X": ..., "y": ...}`` or ``{"z": ..., "R": ..., "n": ...}``), or, for a
functional locus, the arguments of :func:`~torchgenetics.susie.functional.mfsusie`
(``{"X": ..., "Y": [Y_1, ...], "pos": [...]}``), so a genome scan reads one chunk
of loci at a time. Genotype loci are mean-imputed
and, with the phenotype, residualised on the covariates (see
:mod:`torchgenetics.susie.covariates`).
"""

from __future__ import annotations

import numbers
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch

from ..errors import FileFormatError, InputError, MissingFileError
from .covariates import CovariateProjector

__all__ = [
    "Locus",
    "as_loci",
    "parse_regions",
    "read_regions",
    "read_sumstats",
    "loci_from_regions",
    "loci_from_sumstats",
    "loci_from_files",
]

_REGION = re.compile(r"^\s*(?:chr)?([^:\s]+)(?::([\d,]+)-([\d,]+))?\s*$", re.IGNORECASE)
_ID_COLUMNS = ("id", "snp", "variant", "variant_id", "rsid", "marker", "snpid")
_Z_COLUMNS = ("z", "zscore", "z_score", "zstat")
_BETA_COLUMNS = ("beta", "b", "effect", "bhat")
_SE_COLUMNS = ("se", "stderr", "standard_error", "shat")
_N_COLUMNS = ("n", "n_eff", "neff", "obs_ct", "nobs")


@dataclass
class Locus:
    """One locus to fine-map.

    Attributes
    ----------
    name : str
        Label (e.g. ``"1:32000000-33000000"``).
    kind : {"individual", "rss", "ss", "functional"}
        Data kind of :meth:`load`.
    loader : callable
        Returns the data as a dict of ``susie`` / ``susie_rss`` / ``susie_ss`` arguments,
        or of ``mfsusie`` arguments (``X``, ``Y`` a list of outcomes, optionally ``pos``,
        ``outcome_names``, ``variable_names``) for a functional locus.
    n_variables : int
        Number of variables p.
    variants : pandas.DataFrame or None
        One row per variable (for genotype loci: chrom, id, cm, pos, a1, a2).

    Examples
    --------
    >>> X = torch.randn(50, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    >>> loc = Locus.from_data("toy", (X, X[:, 1]))
    >>> loc.kind, loc.n_variables, sorted(loc.load())
    ('individual', 4, ['X', 'y'])
    """

    name: str
    kind: str
    loader: Callable[[], dict]
    n_variables: int
    variants: pd.DataFrame | None = None

    def load(self) -> dict:
        """The locus data as keyword arguments of the matching fit function."""
        return self.loader()

    @classmethod
    def from_data(cls, name: str, data, variants: pd.DataFrame | None = None) -> "Locus":
        """A locus from in-memory data: ``(X, y)``, ``(z, R, n)``, ``(XtX, Xty, yty, n)`` or a dict.

        A dict with ``X`` and ``Y`` (a list of outcomes), or ``(X, [Y_1, ...])``, is a
        functional locus (fitted by ``mfsusie``).

        Examples
        --------
        >>> Locus.from_data("a", (torch.zeros(3), torch.eye(3), 100)).kind
        'rss'
        >>> Locus.from_data("f", {"X": torch.zeros(5, 2), "Y": [torch.zeros(5, 4)]}).kind
        'functional'
        """
        if isinstance(data, dict):
            content = dict(data)
        elif (isinstance(data, (tuple, list)) and len(data) == 2 and isinstance(data[1], (list, tuple))
              and len(data[1]) and not isinstance(data[1][0], numbers.Number)):
            content = {"X": data[0], "Y": list(data[1])}
        elif isinstance(data, (tuple, list)) and len(data) in (2, 3, 4):
            keys = {2: ("X", "y"), 3: ("z", "R", "n"), 4: ("XtX", "Xty", "yty", "n")}[len(data)]
            content = dict(zip(keys, data, strict=True))
        else:
            raise InputError(f"locus {name!r}: expected (X, y), (z, R, n), (XtX, Xty, yty, n), "
                             f"(X, [Y_1, ...]) or a dict, got {type(data).__name__}")
        kind = ("functional" if "X" in content and "Y" in content
                else "individual" if "X" in content else "ss" if "XtX" in content
                else "rss" if "R" in content else None)
        if kind is None:
            raise InputError(f"locus {name!r}: no X, XtX or R among {sorted(content)}")
        p = {"individual": lambda: content["X"].shape[1], "functional": lambda: content["X"].shape[1],
             "ss": lambda: len(content["Xty"]), "rss": lambda: content["R"].shape[0]}[kind]()
        return cls(name=str(name), kind=kind, loader=lambda: content, n_variables=int(p),
                   variants=variants)

    def fit(self, **options):
        """Fine-map this locus (``susie`` / ``susie_rss`` with ``options``; ``mfsusie`` for a functional locus).

        Returns
        -------
        SusieFit or MfsusieFit

        Examples
        --------
        >>> g = torch.Generator().manual_seed(0)
        >>> X = torch.randn(100, 10, generator=g, dtype=torch.float64)
        >>> y = X[:, 2] + torch.randn(100, generator=g, dtype=torch.float64)
        >>> Locus.from_data("toy", (X, y)).fit(L=3).sets["cs"][0].tolist()
        [2]
        """
        if self.kind == "functional":
            from .functional import mfsusie

            return mfsusie(**self.load(), **options)
        from .batch import susie_batch

        return susie_batch([self.load()], **options)[0]

    def annotate(self, fit) -> pd.DataFrame:
        """The variant table joined with the fit's per-variable results (``fit.to_frame()``).

        Examples
        --------
        >>> X = torch.eye(4, dtype=torch.float64).repeat(5, 1)
        >>> loc = Locus.from_data("t", (X, X[:, 0]), variants=pd.DataFrame({"id": list("abcd")}))
        >>> list(loc.annotate(loc.fit(L=1, min_abs_corr=0.0)).columns)[:3]
        ['locus', 'id', 'pip']
        """
        frame = fit.to_frame()
        if self.variants is not None:
            if len(self.variants) != len(frame):
                raise InputError(f"locus {self.name!r}: {len(self.variants)} variants but the fit has "
                                 f"{len(frame)} variables")
            frame = pd.concat([self.variants.reset_index(drop=True), frame.drop(columns="variable")],
                              axis=1)
        frame.insert(0, "locus", self.name)
        return frame


def as_loci(loci) -> list[Locus]:
    """Loci as :class:`Locus` objects (tuples and dicts are named ``locus1``, ``locus2``, ...).

    Examples
    --------
    >>> [loc.name for loc in as_loci([(torch.zeros(2), torch.eye(2), 10)])]
    ['locus1']
    """
    out = []
    for i, item in enumerate(loci):
        out.append(item if isinstance(item, Locus) else Locus.from_data(f"locus{i + 1}", item))
    names = [loc.name for loc in out]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise InputError(f"locus names must be unique; repeated: {dup[:5]}")
    return out


def _strip_chr(values) -> np.ndarray:
    return np.array([re.sub(r"^chr", "", str(v), flags=re.IGNORECASE) for v in values], dtype=object)


def parse_regions(regions) -> pd.DataFrame:
    """Regions as a table with columns ``name, chrom, start, end`` (1-based, inclusive).

    Parameters
    ----------
    regions : str, sequence of str, or pandas.DataFrame
        ``"chrom:start-end"`` strings (``chr`` prefix and thousands commas allowed;
        ``"chrom"`` alone is the whole chromosome), or a table with columns
        ``chrom``, ``start``, ``end`` (or ``stop``) and optionally ``name``.

    Returns
    -------
    pandas.DataFrame

    Raises
    ------
    InputError
        On a malformed region or ``start > end`` (the region is named).

    Examples
    --------
    >>> parse_regions(["chr1:1,000-2,000", "2"]).values.tolist()
    [['chr1:1,000-2,000', '1', 1000, 2000], ['2', '2', 0, 9223372036854775807]]
    """
    if isinstance(regions, str):
        regions = [regions]
    if isinstance(regions, pd.DataFrame):
        cols = {str(c).lower(): c for c in regions.columns}
        end = cols.get("end", cols.get("stop"))
        if "chrom" not in cols or "start" not in cols or end is None:
            raise InputError(f"a region table needs columns chrom, start and end; got {list(regions.columns)}")
        chrom = _strip_chr(regions[cols["chrom"]])
        start = regions[cols["start"]].astype(np.int64).to_numpy()
        stop = regions[end].astype(np.int64).to_numpy()
        if "name" in cols:
            names = regions[cols["name"]].astype(str).to_numpy()
        else:
            names = [f"{c}:{a}-{b}" for c, a, b in zip(chrom, start, stop, strict=True)]
        table = pd.DataFrame({"name": names, "chrom": chrom, "start": start, "end": stop})
    else:
        rows = []
        for text in regions:
            match = _REGION.match(str(text))
            if not match:
                raise InputError(f"region {text!r} is not of the form chrom:start-end (e.g. 1:1000000-2000000)")
            chrom, a, b = match.groups()
            start = 0 if a is None else int(a.replace(",", ""))
            stop = np.iinfo(np.int64).max if b is None else int(b.replace(",", ""))
            rows.append((str(text).strip(), chrom, start, stop))
        table = pd.DataFrame(rows, columns=["name", "chrom", "start", "end"])
        table["chrom"] = table["chrom"].astype(object)
    bad = table["start"] > table["end"]
    if bad.any():
        raise InputError(f"region {table['name'][bad].iloc[0]!r} has start > end")
    if table["name"].duplicated().any():
        raise InputError(f"region names repeat: {table['name'][table['name'].duplicated()].tolist()[:5]}")
    return table


def read_regions(path) -> pd.DataFrame:
    """Read a regions file: one ``chrom:start-end`` per line, or a table with a header
    (``chrom start end [name]``, whitespace- or tab-separated). ``#`` starts a comment line.

    Examples
    --------
    >>> import tempfile, os
    >>> f = os.path.join(tempfile.mkdtemp(), "regions.txt")
    >>> _ = open(f, "w").write("1:100-200\\n# skipped\\n2:5-50\\n")
    >>> read_regions(f)["name"].tolist()
    ['1:100-200', '2:5-50']
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(path, "regions")
    lines = [(i + 1, ln.strip()) for i, ln in enumerate(path.read_text().splitlines())]
    lines = [(i, ln) for i, ln in lines if ln and not ln.startswith("#")]
    if not lines:
        raise FileFormatError(path, "no regions found")
    if _REGION.match(lines[0][1]) and ":" in lines[0][1]:
        for number, text in lines:
            if not _REGION.match(text):
                raise FileFormatError(path, f"expected chrom:start-end, got {text!r}", line=number)
        return parse_regions([text for _, text in lines])
    table = pd.read_csv(path, sep=r"\s+", comment="#")
    try:
        return parse_regions(table)
    except InputError as err:
        raise FileFormatError(path, str(err)) from None


def _pick(columns: dict, names, what: str, path, required: bool = True):
    for name in names:
        if name in columns:
            return columns[name]
    if required:
        raise FileFormatError(path, f"no {what} column (expected one of {', '.join(names)})")
    return None


def read_sumstats(source) -> pd.DataFrame:
    """Summary statistics as a table with columns ``id``, ``z`` (and ``n``, ``chrom``, ``pos`` when given).

    Parameters
    ----------
    source : path or pandas.DataFrame
        Whitespace/tab-separated file with a header, or a DataFrame. Column names
        are matched case-insensitively: the variant id (``id``, ``SNP``, ``rsid``,
        ...), ``z`` (or ``beta`` and ``se``), optionally ``n``, ``chrom``, ``pos``.

    Returns
    -------
    pandas.DataFrame

    Raises
    ------
    FileFormatError
        Missing columns, non-numeric statistics or repeated ids.

    Examples
    --------
    >>> read_sumstats(pd.DataFrame({"SNP": ["a", "b"], "BETA": [0.2, -0.1], "SE": [0.1, 0.1]}))["z"].tolist()
    [2.0, -1.0]
    """
    if isinstance(source, pd.DataFrame):
        table, path = source, "<table>"
    else:
        path = Path(source)
        if not path.is_file():
            raise MissingFileError(path, "summary statistics")
        table = pd.read_csv(path, sep=r"\s+")
    cols = {str(c).lower().lstrip("#"): c for c in table.columns}
    out = pd.DataFrame({"id": table[_pick(cols, _ID_COLUMNS, "variant id", path)].astype(str)})
    z_col = _pick(cols, _Z_COLUMNS, "z", path, required=False)
    try:
        if z_col is not None:
            out["z"] = pd.to_numeric(table[z_col]).astype(np.float64)
        else:
            beta = pd.to_numeric(table[_pick(cols, _BETA_COLUMNS, "z or beta", path)])
            se = pd.to_numeric(table[_pick(cols, _SE_COLUMNS, "se", path)])
            out["z"] = (beta / se).astype(np.float64)
        n_col = _pick(cols, _N_COLUMNS, "n", path, required=False)
        if n_col is not None:
            out["n"] = pd.to_numeric(table[n_col]).astype(np.float64)
    except (ValueError, TypeError) as err:
        raise FileFormatError(path, f"summary statistics must be numeric ({err})") from None
    for key, names in (("chrom", ("chrom", "chr", "chromosome")), ("pos", ("pos", "bp", "position"))):
        col = _pick(cols, names, key, path, required=False)
        if col is not None:
            out[key] = table[col].to_numpy()
    if out["id"].duplicated().any():
        raise FileFormatError(path, f"variant ids repeat: {out['id'][out['id'].duplicated()].tolist()[:5]}")
    return out.reset_index(drop=True)


def _impute_mean(block: np.ndarray) -> np.ndarray:
    """Replace missing dosages by the column mean of the observed ones (0 if none)."""
    missing = np.isnan(block)
    if missing.any():
        counts = (~missing).sum(axis=0)
        means = np.where(counts > 0, np.nansum(block, axis=0) / np.maximum(counts, 1), 0.0)
        block = np.where(missing, means[None, :], block)
    return block


def loci_from_regions(genotypes, y, regions, covariates=None, dtype=torch.float64) -> list[Locus]:
    """Genotype loci: the variants of each region, with y, residualised on the covariates.

    Missing genotype calls are imputed with the variant's mean dosage. y and each
    locus' X are residualised on the covariates (plus an intercept); X is read
    only when the locus is loaded.

    Parameters
    ----------
    genotypes : Genotypes
        Samples in the order of ``y`` (e.g. ``alignment.subset(genotypes)``).
    y : array-like
        (n,) phenotype, finite.
    regions : str, sequence of str, or pandas.DataFrame
        See :func:`parse_regions`.
    covariates : array-like, optional
        (n, k) covariates (e.g. ``alignment.covariates``).
    dtype : torch.dtype
        Precision of the loaded data.

    Returns
    -------
    list of Locus
        One per region with at least one variant (empty regions are skipped with
        a warning naming them).

    Examples
    --------
    >>> from torchgenetics.datasets import example
    >>> from torchgenetics.io import align, read_plink
    >>> ex = example(); G = read_plink(ex.bfile)
    >>> al = align(G, pheno=ex.pheno, covar=ex.covar)
    >>> loci = loci_from_regions(al.subset(G), al.y, ["1:32000000-32600000"], al.covariates)
    >>> loci[0].n_variables, loci[0].load()["X"].shape[0]
    (26, 990)
    """
    y = torch.as_tensor(y, dtype=dtype).reshape(-1)
    if y.shape[0] != genotypes.n_samples:
        raise InputError(f"y has {y.shape[0]} values but the genotypes have {genotypes.n_samples} samples; "
                         "subset the genotypes to the phenotyped samples (alignment.subset(genotypes))")
    if not bool(torch.isfinite(y).all()):
        raise InputError("y contains NaN or infinite values; drop those samples (torchgenetics.io.align)")
    C = torch.zeros((y.shape[0], 0), dtype=dtype) if covariates is None else covariates
    proj = CovariateProjector(C, dtype=dtype)
    y_res = proj(y)
    table = parse_regions(regions)
    variants = genotypes.variants
    chrom = _strip_chr(variants["chrom"])
    pos = variants["pos"].to_numpy(dtype=np.int64)
    loci, empty = [], []
    for name, c, start, stop in table.itertuples(index=False):
        idx = np.flatnonzero((chrom == str(c)) & (pos >= start) & (pos <= stop))
        if idx.size == 0:
            empty.append(name)
            continue
        ids = variants["id"].iloc[idx].astype(str).tolist()

        def load(idx=idx, ids=ids):
            X = torch.as_tensor(_impute_mean(genotypes.read(variants=idx)), dtype=dtype)
            return {"X": proj(X), "y": y_res, "variable_names": ids}

        loci.append(Locus(name=name, kind="individual", loader=load, n_variables=int(idx.size),
                          variants=variants.iloc[idx].reset_index(drop=True)))
    if empty:
        warnings.warn(f"{len(empty)} region(s) hold no variant and are skipped: {empty[:5]}",
                      RuntimeWarning, stacklevel=2)
    return loci


def _ld_ids(ld) -> np.ndarray:
    ids = getattr(ld, "variant_ids", None)
    if ids is None:
        raise InputError("the LD operator has no variant ids, so summary statistics cannot be matched "
                         "to its rows (build it with from_genotypes or set .variant_ids)")
    return np.asarray(ids, dtype=object).astype(str)


def loci_from_sumstats(sumstats, ld, n=None, dtype=torch.float64) -> list[Locus]:
    """Summary-statistic loci: one per LD block of a BlockLD, or one for any other LD operator.

    Variants are matched by id. In a block, LD variants without statistics are
    left out (the block is subset); with another operator they keep ``z = 0``
    (as ``susie_rss`` does for missing z). Both, and statistics of variants not in
    the LD, are counted in a warning.

    Parameters
    ----------
    sumstats : pandas.DataFrame or path
        See :func:`read_sumstats`.
    ld : BlockLD, BandedLD, LinearOperator with ``variant_ids``, or path
        LD matrix (an HDF5 path is read with :func:`torchgenetics.operators.load_ld`).
    n : int, optional
        GWAS sample size; default the median of the statistics' ``n`` column
        (susie_rss without n otherwise).
    dtype : torch.dtype
        Precision of z and R.

    Returns
    -------
    list of Locus

    Examples
    --------
    >>> from torchgenetics.operators import BlockLD
    >>> R = BlockLD([torch.eye(2, dtype=torch.float64), torch.eye(3, dtype=torch.float64)])
    >>> R.variant_ids = np.array(list("abcde"), dtype=object)
    >>> stats = pd.DataFrame({"id": list("abcde"), "z": [5.0, 0.1, 0.3, -0.2, 0.0]})
    >>> [(loc.name, loc.n_variables) for loc in loci_from_sumstats(stats, R, n=1000)]
    [('block1', 2), ('block2', 3)]
    """
    from ..operators import BlockLD, load_ld

    if isinstance(ld, (str, Path)):
        ld = load_ld(ld)
    stats = read_sumstats(sumstats)
    if n is None and "n" in stats:
        n = float(np.nanmedian(stats["n"].to_numpy()))
    ld_ids = _ld_ids(ld)
    lookup = pd.Series(np.arange(len(stats)), index=stats["id"].to_numpy())
    found = lookup.reindex(ld_ids).to_numpy()
    has_z = ~np.isnan(found)
    z_all = np.full(len(ld_ids), np.nan)
    z_all[has_z] = stats["z"].to_numpy()[found[has_z].astype(np.int64)]
    extra = int((~stats["id"].isin(set(ld_ids))).sum())
    missing = int((~has_z).sum())
    if extra or missing:
        warnings.warn(f"{missing} LD variant(s) have no summary statistics and {extra} statistic(s) "
                      "have no LD row; they are left out of fine-mapping", RuntimeWarning, stacklevel=2)
    frame = pd.DataFrame({"id": ld_ids, "z": z_all})
    for key in ("chrom", "pos"):
        if key in stats:
            col = np.full(len(ld_ids), None, dtype=object)
            col[has_z] = stats[key].to_numpy()[found[has_z].astype(np.int64)]
            frame[key] = col
    if not isinstance(ld, BlockLD):
        z = torch.as_tensor(np.nan_to_num(z_all, nan=0.0), dtype=dtype)
        data = {"z": z, "R": ld, "n": n, "variable_names": ld_ids.tolist()}
        return [Locus("all", "rss", lambda: data, len(ld_ids), frame)]
    loci = []
    for b, (idx, block) in enumerate(zip(ld.block_index, ld.blocks, strict=True)):
        keep = has_z[idx]
        if not keep.any():
            continue
        pos_keep = torch.as_tensor(np.flatnonzero(keep), device=block.device)
        R = block.index_select(0, pos_keep).index_select(1, pos_keep).to(dtype)
        z = torch.as_tensor(z_all[idx][keep], dtype=dtype, device=block.device)
        ids = ld_ids[idx][keep].tolist()
        data = {"z": z, "R": R, "n": n, "variable_names": ids}
        loci.append(Locus(f"block{b + 1}", "rss", lambda data=data: data, len(ids),
                          frame.iloc[idx[keep]].reset_index(drop=True)))
    return loci


def loci_from_files(*, bfile=None, pfile=None, pheno=None, pheno_name=None, covar=None,
                    regions=None, sumstats=None, ld=None, n=None):
    """Loci from files, as the command line gives them.

    Either genotypes (``bfile`` or ``pfile``) with a phenotype (and covariates) and
    regions, or summary statistics with an LD file.

    Parameters
    ----------
    bfile, pfile : str, optional
        PLINK 1 / PLINK 2 prefix.
    pheno, covar : str, optional
        Phenotype and covariate tables (see :func:`torchgenetics.io.align`).
    pheno_name : str, optional
        Phenotype column (needed when the file has several).
    regions : str, sequence of str or pandas.DataFrame
        Regions (see :func:`parse_regions`); a path to an existing file is read with
        :func:`read_regions`.
    sumstats, ld : str, optional
        Summary statistics table and LD HDF5 file (see :func:`loci_from_sumstats`).
    n : int, optional
        GWAS sample size for summary statistics.

    Returns
    -------
    loci : list of Locus
    report : str
        What was read: samples kept and dropped, or variants matched.

    Raises
    ------
    InputError
        Neither or both kinds of input, or a missing companion file.

    Examples
    --------
    >>> from torchgenetics.datasets import example
    >>> ex = example()
    >>> loci, report = loci_from_files(bfile=ex.bfile, pheno=ex.pheno, covar=ex.covar,
    ...                                regions="1:22000000-24000000")
    >>> loci[0].n_variables, report.splitlines()[0]
    (122, 'samples: 1000 genotyped, 990 used, 10 dropped')
    """
    from ..io import align, read_pgen, read_plink

    genotype_input = bfile is not None or pfile is not None
    if genotype_input == (sumstats is not None):
        raise InputError("give either genotypes (--bfile/--pfile with --pheno) or --sumstats with --ld")
    if sumstats is not None:
        if ld is None:
            raise InputError("summary statistics need an LD matrix (--ld LD.h5)")
        loci = loci_from_sumstats(sumstats, ld, n=n)
        total = sum(loc.n_variables for loc in loci)
        return loci, f"summary statistics: {len(loci)} locus/loci, {total} variants with LD"
    if pheno is None or regions is None:
        raise InputError("genotype input needs a phenotype (--pheno) and region(s)")
    genotypes = read_plink(bfile) if bfile is not None else read_pgen(pfile)
    al = align(genotypes, pheno=pheno, covar=covar, pheno_column=pheno_name)
    if isinstance(regions, (str, Path)) and Path(regions).is_file():
        regions = read_regions(regions)
    loci = loci_from_regions(al.subset(genotypes), al.y, regions, al.covariates)
    return loci, str(al)
