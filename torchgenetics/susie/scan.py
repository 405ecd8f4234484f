"""``scan``: the two-pass genome scan of the mfsusieR vignette as one function.

First pass: every locus with a small iteration budget (batched, chunk by chunk).
Triage of each first-pass fit:

* converged without a credible set: ``null``, done;
* converged with credible sets: ``converged``, done (a converged fit is already
  the full-budget fit, bit for bit);
* not converged, no credible set and every PIP below ``flat_pip``: ``flat``,
  dropped (unlikely to show signal at any budget);
* otherwise: queued.

Second pass: the queued loci with the full budget, warm-started from their
first-pass fits (status ``refit``). Functional loci (kind ``"functional"``) are
fitted by :func:`~torchgenetics.susie.functional.mfsusie` with the same passes and
triage; the other loci of a chunk run as one :func:`susie_batch`. A checkpoint
file (HDF5) is written after every chunk, so a killed scan started again with the
same checkpoint resumes where it stopped and ends with the results of an
uninterrupted scan.
"""

from __future__ import annotations

import inspect
import json
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..errors import FileFormatError, InputError, TorchgenError
from ..io.store import load_h5, save_h5
from .batch import susie_batch
from .fit import SusieFit
from .loci import Locus, as_loci

__all__ = ["scan", "load_scan", "ScanResult", "SCAN_STATUSES"]

#: Outcome of each locus in a scan.
SCAN_STATUSES = ("null", "converged", "flat", "refit", "error")
_FORMAT = "SusieScan"
_KEEP = ("converged", "refit")  # statuses whose fits the result keeps
_COLUMNS = ["locus", "kind", "n_variables", "L", "status", "first_n_iter", "first_converged",
            "n_iter", "converged", "n_cs", "max_pip", "lead_variable", "elbo", "error"]


@dataclass
class ScanResult:
    """Outcome of :func:`scan`.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per locus: ``locus, kind, n_variables, L, status`` (see
        :data:`SCAN_STATUSES`), first-pass ``first_n_iter`` and ``first_converged``,
        final ``n_iter`` (both passes), ``converged``, ``n_cs``, ``max_pip``,
        ``lead_variable``, final ``elbo`` and ``error`` (message, for status ``error``).
    fits : dict of str to SusieFit (MfsusieFit for functional loci)
        Final fits of the loci with signal (status ``converged`` or ``refit``).

    Examples
    --------
    >>> ScanResult(pd.DataFrame(columns=_COLUMNS), {}).summary()
    {}
    """

    table: pd.DataFrame
    fits: dict = field(default_factory=dict)

    def summary(self) -> dict:
        """Number of loci per status.

        Examples
        --------
        >>> t = pd.DataFrame({"status": ["null", "refit", "null"]})
        >>> ScanResult(t).summary()
        {'null': 2, 'refit': 1}
        """
        return {k: int(v) for k, v in self.table["status"].value_counts(sort=False).items()}

    def cs_frame(self) -> pd.DataFrame:
        """Every credible set of the kept loci (``SusieFit.summary`` rows with a ``locus`` column).

        Examples
        --------
        >>> ScanResult(pd.DataFrame(columns=_COLUMNS)).cs_frame().empty
        True
        """
        frames = [fit.summary().assign(locus=name) for name, fit in self.fits.items()]
        frames = [f[["locus"] + [c for c in f.columns if c != "locus"]] for f in frames if len(f)]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["locus"])

    def pip_frame(self) -> pd.DataFrame:
        """Per-variable results (``SusieFit.to_frame``) of the kept loci, with a ``locus`` column.

        Examples
        --------
        >>> ScanResult(pd.DataFrame(columns=_COLUMNS)).pip_frame().empty
        True
        """
        frames = [fit.to_frame().assign(locus=name) for name, fit in self.fits.items()]
        frames = [f[["locus"] + [c for c in f.columns if c != "locus"]] for f in frames]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["locus"])


def _max_pip(fit: SusieFit) -> float:
    return float(fit.pip.max()) if fit.pip.numel() else 0.0


def _lead(fit: SusieFit):
    if not fit.pip.numel():
        return None
    j = int(fit.pip.argmax())
    return str(fit.variable_names[j]) if fit.variable_names is not None else str(j)


def _row(locus: Locus, L: int, status: str, first, final, error: str | None = None) -> dict:
    """One table row; ``first`` and ``final`` are fits (or None)."""
    row = {"locus": locus.name, "kind": locus.kind, "n_variables": locus.n_variables, "L": L,
           "status": status, "first_n_iter": -1, "first_converged": False, "n_iter": -1,
           "converged": False, "n_cs": 0, "max_pip": math.nan, "lead_variable": "",
           "elbo": math.nan, "error": error or ""}
    if first is not None:
        row["first_n_iter"], row["first_converged"] = first.n_iter, bool(first.converged)
    if final is not None:
        row.update(n_iter=final.n_iter + (first.n_iter if final is not first else 0),
                   converged=bool(final.converged), n_cs=len(final.sets["cs"]),
                   max_pip=_max_pip(final), lead_variable=_lead(final) or "",
                   elbo=float(final.elbo[-1]) if len(final.elbo) else math.nan)
    return row


def _triage(fit: SusieFit, flat_pip: float) -> str:
    if fit.converged:
        return "converged" if fit.sets["cs"] else "null"
    if not fit.sets["cs"] and _max_pip(fit) < flat_pip:
        return "flat"
    return "queued"


class _Checkpoint:
    """Scan state: table rows, first-pass fits of queued loci, kept fits; saved after each chunk."""

    def __init__(self, path, fingerprint: dict):
        self.path = None if path is None else Path(path)
        self.fingerprint = fingerprint
        self.rows: dict = {}      # locus index -> table row
        self.queued: dict = {}    # locus index -> first-pass fit
        self.fits: dict = {}      # locus index -> final fit (kept statuses)
        self.first_done = 0       # loci through the first pass (a prefix of the input)
        if self.path is not None and self.path.exists():
            self._load()

    def _load(self) -> None:
        content = load_h5(self.path, format_name=_FORMAT)
        if content["fingerprint"] != json.dumps(self.fingerprint, sort_keys=True):
            raise InputError(f"{self.path} is the checkpoint of another scan (different loci or "
                             "options); remove it or choose another checkpoint file")
        self.first_done = int(content["first_done"])
        self.rows = {int(k): v for k, v in content["rows"].items()}
        self.queued = {int(k): _fit_from_dict(v) for k, v in content["queued"].items()}
        self.fits = {int(k): _fit_from_dict(v) for k, v in content["fits"].items()}

    def save(self) -> None:
        if self.path is None:
            return
        content = {
            "fingerprint": json.dumps(self.fingerprint, sort_keys=True),
            "first_done": self.first_done,
            "rows": {str(k): v for k, v in self.rows.items()},
            "queued": {str(k): f.to_dict() for k, f in self.queued.items()},
            "fits": {str(k): f.to_dict() for k, f in self.fits.items()},
        }
        tmp = self.path.with_name(self.path.name + ".tmp")
        save_h5(tmp, content, format_name=_FORMAT)
        os.replace(tmp, self.path)  # a kill mid-write leaves the previous checkpoint intact


def _fingerprint(loci: list[Locus], L, first_max_iter, max_iter, flat_pip, options) -> dict:
    try:
        opts = json.dumps(options, sort_keys=True, default=repr)
    except TypeError as err:
        raise InputError(f"scan options must be plain values to be checkpointed: {err}") from None
    return {"loci": [[loc.name, loc.kind, loc.n_variables] for loc in loci], "L": L,
            "first_max_iter": first_max_iter, "max_iter": max_iter, "flat_pip": flat_pip,
            "options": opts}


def _fit_from_dict(content: dict):
    """A checkpointed fit: an MfsusieFit (functional locus) or a SusieFit."""
    if "prior_family" in content:
        from .functional import MfsusieFit

        return MfsusieFit.from_dict(content)
    return SusieFit.from_dict(content)


# scan sets these for every locus itself.
_SCAN_CONTROLLED = ("L", "max_iter", "init")


def _functional_options(options: dict, functional_options: dict | None) -> dict:
    """mfsusie keyword arguments of functional loci: the scan options mfsusie takes, then ``functional_options``."""
    from .functional import mfsusie

    accepted = set(inspect.signature(mfsusie).parameters) - {"X", "Y", "pos", *_SCAN_CONTROLLED}
    extra = dict(functional_options or {})
    unknown = sorted(set(extra) - accepted)
    if unknown:
        raise InputError(f"functional_options {unknown} are not mfsusie options (or are set by scan: "
                         f"{', '.join(_SCAN_CONTROLLED)})")
    return {**{k: v for k, v in options.items() if k in accepted}, **extra}


def _fit_functional(data: dict, L: int, init, max_iter: int, options: dict):
    """mfsusie on one functional locus; an error a fit raises is returned."""
    from .functional import mfsusie

    try:
        return mfsusie(**data, L=L, init=init, max_iter=max_iter, **options)
    except (TorchgenError, ValueError, RuntimeError) as err:
        return err


def _fit_chunk(loci: list[Locus], Ls: list[int], inits, max_iter: int, options: dict,
               functional: dict) -> list:
    data = [loc.load() for loc in loci]
    inits = [None] * len(loci) if inits is None else list(inits)
    out: list = [None] * len(loci)
    plain = [i for i, loc in enumerate(loci) if loc.kind != "functional"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # non-convergence is reported in the table
        if plain:
            starts = [inits[i] for i in plain]
            fits = susie_batch([data[i] for i in plain], L=[Ls[i] for i in plain],
                               init=None if all(f is None for f in starts) else starts,
                               max_iter=max_iter, on_error="return", **options)
            for i, fit in zip(plain, fits, strict=True):
                out[i] = fit
        for i, loc in enumerate(loci):
            if loc.kind == "functional":
                out[i] = _fit_functional(data[i], Ls[i], inits[i], max_iter, functional)
    return out


def scan(loci, L: int = 10, *, first_max_iter: int = 5, max_iter: int = 100,
         flat_pip: float = 0.5, chunk_size: int = 64, checkpoint=None, callback=None,
         verbose: bool = False, functional_options: dict | None = None, **options) -> ScanResult:
    """Fine-map many loci in two passes with triage, warm starts and a checkpoint.

    Parameters
    ----------
    loci : sequence of Locus, tuples or dicts
        From :func:`~torchgenetics.susie.loci_from_regions`,
        :func:`~torchgenetics.susie.loci_from_sumstats`, or the locus forms of
        :func:`~torchgenetics.susie.susie_batch` (named ``locus1``, ...).
    L : int
        Number of effects (``min(L, p)`` for loci with fewer variables).
    first_max_iter : int
        Iteration budget of the first pass.
    max_iter : int
        Iteration budget of the second (warm-started) pass.
    flat_pip : float
        A non-converged first-pass fit without credible sets whose PIPs are all
        below this is dropped (status ``flat``).
    chunk_size : int
        Loci loaded and fitted together (one batch, one checkpoint write).
    checkpoint : path, optional
        HDF5 file written after each chunk; if it exists (from an interrupted run
        of the same scan) the scan resumes from it.
    callback : callable, optional
        Called as ``callback(phase, names)`` after each chunk is checkpointed
        (``phase`` is "first" or "second", ``names`` the chunk's locus names).
    verbose : bool
        Print one line per chunk.
    functional_options : dict, optional
        Options of :func:`~torchgenetics.susie.functional.mfsusie` for functional
        loci (``L_greedy``, ``prior_variance_scope``, ...); they also receive those
        of ``**options`` that mfsusie has (``coverage``, ``tol``, ...).
    **options
        Options of ``susie`` / ``susie_rss`` (``coverage``, ``estimate_prior_method``, ...).

    Returns
    -------
    ScanResult
        The per-locus table and the fits of loci with signal.

    Raises
    ------
    InputError
        Bad options, or a checkpoint of another scan.

    Examples
    --------
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> X = torch.randn(200, 30, generator=g, dtype=torch.float64)
    >>> signal = X[:, 7] + 0.5 * torch.randn(200, generator=g, dtype=torch.float64)
    >>> noise = torch.randn(200, generator=g, dtype=torch.float64)
    >>> out = scan([(X, signal), (X, noise)], L=5, first_max_iter=3)
    >>> out.table[["locus", "status", "n_cs"]].values.tolist()
    [['locus1', 'refit', 1], ['locus2', 'null', 0]]
    """
    for name, value in (("first_max_iter", first_max_iter), ("max_iter", max_iter),
                        ("chunk_size", chunk_size), ("L", L)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InputError(f"{name} must be a positive integer, got {value!r}")
    if not 0 <= flat_pip <= 1:
        raise InputError(f"flat_pip must be in [0, 1], got {flat_pip}")
    loci = as_loci(loci)
    Ls = [min(L, loc.n_variables) if loc.n_variables > 0 else L for loc in loci]
    has_functional = any(loc.kind == "functional" for loc in loci)
    functional = _functional_options(options, functional_options) if has_functional else {}
    recorded = {**options, "functional_options": functional} if has_functional else options
    state = _Checkpoint(checkpoint, _fingerprint(loci, L, first_max_iter, max_iter, flat_pip, recorded))

    # First pass, chunk by chunk over the loci not yet done.
    while state.first_done < len(loci):
        idx = list(range(state.first_done, min(state.first_done + chunk_size, len(loci))))
        fits = _fit_chunk([loci[i] for i in idx], [Ls[i] for i in idx], None, first_max_iter, options,
                          functional)
        for i, fit in zip(idx, fits, strict=True):
            if isinstance(fit, Exception):
                state.rows[i] = _row(loci[i], Ls[i], "error", None, None, str(fit))
                continue
            status = _triage(fit, flat_pip)
            if status == "queued":
                state.queued[i] = fit
                continue
            state.rows[i] = _row(loci[i], Ls[i], status, fit, fit)
            if status in _KEEP:
                state.fits[i] = fit
        state.first_done = idx[-1] + 1
        _after_chunk(state, "first", [loci[i].name for i in idx], callback, verbose)

    # Second pass: the queued loci, warm-started from their first-pass fits.
    while state.queued:
        idx = sorted(state.queued)[:chunk_size]
        fits = _fit_chunk([loci[i] for i in idx], [Ls[i] for i in idx],
                          [state.queued[i] for i in idx], max_iter, options, functional)
        for i, fit in zip(idx, fits, strict=True):
            first = state.queued.pop(i)
            if isinstance(fit, Exception):
                state.rows[i] = _row(loci[i], Ls[i], "error", first, None, str(fit))
                continue
            state.rows[i] = _row(loci[i], Ls[i], "refit", first, fit)
            state.fits[i] = fit
        _after_chunk(state, "second", [loci[i].name for i in idx], callback, verbose)

    table = pd.DataFrame([state.rows[i] for i in range(len(loci))], columns=_COLUMNS)
    return ScanResult(table=table, fits={loci[i].name: state.fits[i] for i in sorted(state.fits)})


def _after_chunk(state: _Checkpoint, phase: str, names: list, callback, verbose: bool) -> None:
    state.save()
    if verbose:
        print(f"scan {phase} pass: {len(names)} loci done ({names[0]} .. {names[-1]}); "
              f"{len(state.queued)} queued")
    if callback is not None:
        callback(phase, names)


def load_scan(path) -> ScanResult:
    """The result of a finished scan from its checkpoint file.

    Raises
    ------
    FileFormatError
        If the scan is not finished.

    Examples
    --------
    >>> import torch
    >>> import tempfile, os
    >>> X = torch.eye(6, dtype=torch.float64).repeat(10, 1)
    >>> path = os.path.join(tempfile.mkdtemp(), "scan.h5")
    >>> _ = scan([(X, X[:, 1])], L=2, checkpoint=path)
    >>> load_scan(path).table["status"].tolist()
    ['converged']
    """
    content = load_h5(path, format_name=_FORMAT)
    names = json.loads(content["fingerprint"])["loci"]
    rows = {int(k): v for k, v in content["rows"].items()}
    if content["queued"] or len(rows) != len(names):
        raise FileFormatError(path, "the scan is not finished; run scan() with this checkpoint to resume")
    order = sorted(int(k) for k in content["fits"])
    fits = {names[i][0]: _fit_from_dict(content["fits"][str(i)]) for i in order}
    table = pd.DataFrame([rows[i] for i in range(len(names))], columns=_COLUMNS)
    return ScanResult(table=table, fits=fits)
