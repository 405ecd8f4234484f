"""``GWASResult``: per-variant association statistics for one or more phenotypes."""

from __future__ import annotations

import gzip
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as _stats

from ..errors import InputError, MissingFileError
from ..io.store import load_h5, save_h5
from .pvalues import format_pvalue

__all__ = ["GWASResult", "STAT_COLUMNS"]

_FORMAT = "GWASResult"
#: Name of the test-statistic column per method (plink2 ``--glm`` / BOLT-LMM style).
STAT_COLUMNS = {"linear": "T_STAT", "lmm": "CHISQ"}
_MEDIAN_CHI2 = float(_stats.chi2.ppf(0.5, 1))
_ARRAYS = ("a1_freq", "obs_ct", "beta", "se", "stat", "p", "log10_p", "errcode")


@dataclass
class GWASResult:
    """Association statistics of every variant with every phenotype.

    Arrays are ``m x k`` (variants x phenotypes). Alleles follow plink2: the
    tested allele ``A1`` is ``ALT`` (the .bim's fifth column, the allele the
    dosages count) and ``BETA`` is the effect of one more copy of it.

    Attributes
    ----------
    variants : pandas.DataFrame
        ``chrom, pos, id, ref, alt`` per variant (``a1 = alt``).
    phenotypes : list of str
    method : {"linear", "lmm"}
        Per-variant linear regression (statistic ``T_STAT``, t test) or the
        mixed-model score test (statistic ``CHISQ``, 1-df chi-square).
    a1_freq : numpy.ndarray
        Frequency of A1 among the samples in each test.
    obs_ct : numpy.ndarray of int64
        Samples in each test (non-missing genotype and phenotype).
    beta, se, stat, p, log10_p : numpy.ndarray
        Effect, standard error, statistic, p-value (0 where it underflows) and
        ``log10 p`` (exact below 1e-300 too). NaN when the test was not run.
    errcode : numpy.ndarray of str
        ``"."`` or why the test was not run, with plink2's codes
        (``CONST_OMITTED_ALLELE``, ``SAMPLE_CT<=PREDICTOR_CT``, ``CORR_TOO_HIGH``,
        ``VIF_TOO_HIGH``).
    n_samples : numpy.ndarray of int64
        (k,) samples with the phenotype (before per-variant missing genotypes).
    covariate_names : list of str
        Covariates adjusted for (``intercept`` included).
    info : dict
        Method details (LMM: variance components, calibration factors, LOCO groups).

    Examples
    --------
    >>> from torchgenetics.gwas import gwas
    >>> from torchgenetics.genotypes import Genotypes
    >>> G = Genotypes.from_array(np.array([[0, 1], [1, 2], [2, 0], [1, 1], [0, 2.]]))
    >>> res = gwas(G, [0.1, 0.9, 2.2, 1.1, 0.3])
    >>> res.to_frame()[["ID", "BETA"]].round(3).values.tolist()
    [['v0', 0.971], ['v1', -0.686]]
    """

    variants: pd.DataFrame
    phenotypes: list
    method: str
    a1_freq: np.ndarray
    obs_ct: np.ndarray
    beta: np.ndarray
    se: np.ndarray
    stat: np.ndarray
    p: np.ndarray
    log10_p: np.ndarray
    errcode: np.ndarray
    n_samples: np.ndarray
    covariate_names: list = field(default_factory=list)
    info: dict = field(default_factory=dict)

    @property
    def n_variants(self) -> int:
        """Number of variants tested.

        Examples
        --------
        >>> _example().n_variants
        2
        """
        return len(self.variants)

    @property
    def stat_name(self) -> str:
        """``"T_STAT"`` (linear) or ``"CHISQ"`` (LMM).

        Examples
        --------
        >>> _example().stat_name
        'T_STAT'
        """
        return STAT_COLUMNS[self.method]

    def _column(self, phenotype) -> int:
        if phenotype is None:
            return 0
        if isinstance(phenotype, (int, np.integer)) and not isinstance(phenotype, bool):
            if not 0 <= phenotype < len(self.phenotypes):
                raise InputError(f"phenotype number {phenotype} out of range; there are {len(self.phenotypes)}")
            return int(phenotype)
        if phenotype not in self.phenotypes:
            raise InputError(f"unknown phenotype {phenotype!r}; this result has {self.phenotypes}")
        return self.phenotypes.index(phenotype)

    def to_frame(self, phenotype=None) -> pd.DataFrame:
        """The results as a table with plink2 ``--glm`` column names.

        Parameters
        ----------
        phenotype : str or int, optional
            One phenotype. Default: the only one, or all of them stacked with a
            leading ``PHENO`` column.

        Returns
        -------
        pandas.DataFrame
            ``#CHROM POS ID REF ALT A1 A1_FREQ OBS_CT BETA SE T_STAT|CHISQ P LOG10_P ERRCODE``.

        Examples
        --------
        >>> list(_example().to_frame().columns)[:6]
        ['#CHROM', 'POS', 'ID', 'REF', 'ALT', 'A1']
        """
        if phenotype is None and len(self.phenotypes) > 1:
            frames = [self.to_frame(j).assign(PHENO=name) for j, name in enumerate(self.phenotypes)]
            out = pd.concat(frames, ignore_index=True)
            return out[["PHENO", *[c for c in out.columns if c != "PHENO"]]]
        j = self._column(phenotype)
        v = self.variants
        return pd.DataFrame({
            "#CHROM": v["chrom"].to_numpy(), "POS": v["pos"].to_numpy(), "ID": v["id"].to_numpy(),
            "REF": v["ref"].to_numpy(), "ALT": v["alt"].to_numpy(), "A1": v["alt"].to_numpy(),
            "A1_FREQ": self.a1_freq[:, j], "OBS_CT": self.obs_ct[:, j], "BETA": self.beta[:, j],
            "SE": self.se[:, j], self.stat_name: self.stat[:, j], "P": self.p[:, j],
            "LOG10_P": self.log10_p[:, j], "ERRCODE": self.errcode[:, j],
        })

    def write(self, prefix, compress: bool = False) -> list[Path]:
        """Write ``PREFIX.<phenotype>.glm.tsv`` (``.gz`` if ``compress``) per phenotype.

        Numbers are printed with 6 significant digits as plink2 does; ``P`` is
        printed from ``LOG10_P``, so values below 1e-308 appear (e.g. ``3.1e-412``).

        Parameters
        ----------
        prefix : str or path
            Output prefix; its folder must exist.
        compress : bool, default False
            Gzip the files.

        Returns
        -------
        list of pathlib.Path
            The files written, in phenotype order.

        Examples
        --------
        >>> import tempfile, os
        >>> paths = _example().write(os.path.join(tempfile.mkdtemp(), "out"))
        >>> paths[0].name
        'out.PHENO1.glm.tsv'
        """
        prefix = Path(prefix)
        if not prefix.parent.is_dir():
            raise MissingFileError(prefix.parent, "output directory")
        written = []
        for j, name in enumerate(self.phenotypes):
            path = prefix.parent / f"{prefix.name}.{name}.glm.tsv{'.gz' if compress else ''}"
            frame = self.to_frame(j)
            for col in ("A1_FREQ", "BETA", "SE", self.stat_name, "LOG10_P"):
                frame[col] = _format(frame[col].to_numpy())
            frame["P"] = format_pvalue(self.log10_p[:, j])
            opener = gzip.open if compress else open
            with opener(path, "wt", encoding="utf-8", newline="") as handle:
                frame.to_csv(handle, sep="\t", index=False)
            written.append(path)
        return written

    def lambda_gc(self, phenotype=None) -> float:
        """Genomic control factor: median chi-square (from P) over its null median 0.4549.

        Parameters
        ----------
        phenotype : str or int, optional
            Default the first phenotype.

        Returns
        -------
        float

        Examples
        --------
        >>> _example().lambda_gc() > 0
        True
        """
        j = self._column(phenotype)
        p = self.p[:, j]
        p = p[np.isfinite(p)]
        if p.size == 0:
            return float("nan")
        return float(np.median(_stats.chi2.isf(p, 1)) / _MEDIAN_CHI2)

    def summary(self) -> str:
        """A short report: method, counts, lambda_GC and top hit per phenotype.

        Examples
        --------
        >>> print(_example().summary().splitlines()[0])
        linear association: 2 variants, 1 phenotype, covariates: intercept
        """
        k = len(self.phenotypes)
        lines = [f"{self.method} association: {self.n_variants:,} variants, {k} phenotype"
                 f"{'s' if k > 1 else ''}, covariates: {', '.join(self.covariate_names)}"]
        for j, name in enumerate(self.phenotypes):
            tested = int(np.isfinite(self.p[:, j]).sum())
            line = f"  {name}: n = {int(self.n_samples[j]):,}, {tested:,} tested"
            if tested:
                best = int(np.nanargmin(self.log10_p[:, j]))
                line += (f", lambda_GC = {self.lambda_gc(j):.3f}, top {self.variants['id'].iloc[best]} "
                         f"(P = {format_pvalue([self.log10_p[best, j]])[0]})")
            lines.append(line)
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (f"GWASResult(method={self.method!r}, n_variants={self.n_variants}, "
                f"phenotypes={self.phenotypes})")

    # -- persistence -----------------------------------------------------------------------
    def save(self, path) -> None:
        """Write the result to HDF5 (:meth:`load` reads it back).

        Examples
        --------
        >>> import tempfile, os
        >>> f = os.path.join(tempfile.mkdtemp(), "gwas.h5")
        >>> res = _example(); res.save(f)
        >>> np.array_equal(GWASResult.load(f).beta, res.beta)
        True
        """
        data = asdict(self)
        data["errcode"] = np.asarray(self.errcode, dtype=np.str_)
        data["variants"] = self.variants.reset_index(drop=True)
        save_h5(path, data, format_name=_FORMAT)

    @classmethod
    def load(cls, path) -> "GWASResult":
        """Read a result written by :meth:`save`.

        Examples
        --------
        See :meth:`save`.
        """
        data = load_h5(path, format_name=_FORMAT)
        missing = [f.name for f in fields(cls) if f.name not in data]
        if missing:
            raise InputError(f"{path}: GWASResult file lacks fields {missing}")
        for name in _ARRAYS + ("n_samples",):
            data[name] = np.asarray(data[name])
        data["errcode"] = data["errcode"].astype(object)
        data["phenotypes"] = list(data["phenotypes"])
        data["covariate_names"] = list(data["covariate_names"])
        return cls(**{f.name: data[f.name] for f in fields(cls)})


def _format(values: np.ndarray) -> list[str]:
    return ["NA" if not np.isfinite(v) else f"{v:.6g}" for v in values.tolist()]


def _example() -> GWASResult:
    """A tiny result for the docstring examples."""
    from ..genotypes import Genotypes
    from .marginal import gwas

    G = Genotypes.from_array(np.array([[0, 1], [1, 2], [2, 0], [1, 1], [0, 2.0]]))
    return gwas(G, [0.1, 0.9, 2.2, 1.1, 0.3])
