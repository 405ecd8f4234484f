"""LD (SNP correlation) operators for summary-statistic models.

LD here is the correlation matrix of the standardized genotypes, ``R = Z^T Z / n``
(``Z`` as yielded by ``Genotypes.blocks``: missing calls are 0, so a variant with
missing calls has ``R_jj = call_rate_j``; monomorphic variants have zero rows).

* :class:`BlockLD` -- block-diagonal ``R`` with blocks of unequal size (LD blocks).
* :class:`BandedLD` -- ``R`` with correlations beyond a window (in SNPs, bp or cM)
  set to zero, stored as its ``w + 1`` upper diagonals; matmul costs O(m w k).

Truncated LD is often not positive semi-definite; ``repair="ridge"`` (shrink towards
the identity, ``(1 - lam) R + lam I``) or ``repair="eigen_floor"`` (clip eigenvalues at
a floor) fixes it, block by block. Both save to and load from HDF5.
"""

from __future__ import annotations

import os
import weakref

import h5py
import numpy as np
import pandas as pd
import torch

from ..errors import FileFormatError, InputError, MissingFileError
from ..memory import dtype_bytes, plan_block
from ._common import (
    SymmetricOperator,
    as_positions,
    check_symmetric_block,
    flatten_rhs,
    resolve,
    standardized_columns,
)

__all__ = ["BlockLD", "BandedLD", "repair_psd", "load_ld"]

_FORMAT_VERSION = 1
# Smallest eigenvalue an automatic ridge aims for (LD eigenvalues are O(1)).
_RIDGE_TARGET = 1e-8
_REPAIRS = ("ridge", "eigen_floor")


def repair_psd(matrix: torch.Tensor, method: str, value: float | None = None):
    """Make one symmetric matrix positive semi-definite.

    Parameters
    ----------
    matrix : torch.Tensor
        Symmetric p x p matrix.
    method : {"ridge", "eigen_floor"}
        ``"ridge"``: ``(1 - lam) R + lam I`` (keeps a unit diagonal unit); ``value`` is
        ``lam`` in [0, 1], or None for the smallest ``lam`` that lifts the smallest
        eigenvalue to 1e-8 (0 when already there). ``"eigen_floor"``: eigenvalues
        below ``value`` (default 0) are set to ``value``.
    value : float, optional
        The method's parameter (see above).

    Returns
    -------
    repaired : torch.Tensor
        The repaired matrix (``matrix`` itself when nothing had to change).
    info : dict
        ``method``, ``min_eigenvalue`` before repair, and ``lam`` (ridge) or
        ``n_clipped`` (eigen_floor).

    Examples
    --------
    >>> R = torch.tensor([[1.0, 0.9, 0.9], [0.9, 1.0, -0.9], [0.9, -0.9, 1.0]], dtype=torch.float64)
    >>> fixed, info = repair_psd(R, "eigen_floor", 0.0)
    >>> bool(torch.linalg.eigvalsh(fixed).min() > -1e-12), info["n_clipped"]
    (True, 1)
    """
    if method not in _REPAIRS:
        raise InputError(f"repair must be one of {_REPAIRS} or None, got {method!r}")
    with torch.no_grad():
        evals, evecs = torch.linalg.eigh(matrix.detach())
    lo = float(evals[0]) if evals.numel() else 0.0
    info = {"method": method, "min_eigenvalue": lo}
    eye = torch.eye(matrix.shape[0], dtype=matrix.dtype, device=matrix.device)
    if method == "ridge":
        if value is None:
            lam = 0.0 if lo >= _RIDGE_TARGET else (_RIDGE_TARGET - lo) / (1.0 - lo)
        else:
            lam = float(value)
            if not 0.0 <= lam <= 1.0:
                raise InputError(f"ridge repair needs lam in [0, 1], got {value}")
        info["lam"] = lam
        return (matrix if lam == 0.0 else (1.0 - lam) * matrix + lam * eye), info
    floor = 0.0 if value is None else float(value)
    n_clipped = int((evals < floor).sum())
    info["n_clipped"] = n_clipped
    if n_clipped == 0:
        return matrix, info
    out = (evecs * evals.clamp_min(floor)) @ evecs.T
    return 0.5 * (out + out.T), info


def _region_blocks(variants: pd.DataFrame, regions: pd.DataFrame) -> list[np.ndarray]:
    """Assign variants to half-open bp regions ``[start, stop)`` per chromosome."""
    cols = {c.lower(): c for c in regions.columns}
    stop_col = cols.get("stop", cols.get("end"))
    if "chrom" not in cols or "start" not in cols or stop_col is None:
        raise InputError(
            "LD regions need columns chrom, start and stop (or end); got "
            f"{list(regions.columns)}"
        )
    chrom = variants["chrom"].astype(str).to_numpy()
    pos = variants["pos"].to_numpy(dtype=np.int64)
    label = np.full(len(variants), -1, dtype=np.int64)
    for r, (c, a, b) in enumerate(
        zip(regions[cols["chrom"]].astype(str), regions[cols["start"]], regions[stop_col], strict=True)
    ):
        hit = (chrom == c) & (pos >= int(a)) & (pos < int(b))
        clash = hit & (label >= 0)
        if clash.any():
            j = int(np.flatnonzero(clash)[0])
            raise InputError(
                f"LD regions overlap: variant {variants['id'].iloc[j]} falls in regions "
                f"{int(label[j])} and {r}"
            )
        label[hit] = r
    if (label < 0).any():
        miss = np.flatnonzero(label < 0)
        raise InputError(
            f"{miss.size} variant(s) fall in no LD region, first {variants['id'].iloc[miss[0]]} "
            f"(chrom {chrom[miss[0]]}, pos {pos[miss[0]]}); extend the regions to cover them"
        )
    return [np.flatnonzero(label == r) for r in np.unique(label)]


def _boundary_blocks(boundaries, genotypes) -> list[np.ndarray]:
    """Blocks of variant positions from cut points, index sets or a region table."""
    m = genotypes.n_variants
    if isinstance(boundaries, pd.DataFrame):
        return _region_blocks(genotypes.variants, boundaries)
    items = list(boundaries)
    if items and np.ndim(items[0]) == 1:
        return [as_positions(b, m, f"LD block {i}") for i, b in enumerate(items)]
    cuts = np.asarray(items, dtype=np.int64)
    if cuts.ndim != 1 or (cuts.size and (cuts.min() < 0 or cuts.max() >= m)):
        raise InputError(f"LD block boundaries must be start positions in [0, {m}), got {items}")
    if np.any(np.diff(cuts) <= 0):
        raise InputError("LD block boundaries must be strictly increasing start positions")
    cuts = np.unique(np.concatenate([[0], cuts, [m]]))
    return [np.arange(a, b, dtype=np.int64) for a, b in zip(cuts[:-1], cuts[1:], strict=True)]


def _write_common(f, kind: str, variant_ids):
    f.attrs["format"] = f"torchgenetics.{kind}"
    f.attrs["version"] = _FORMAT_VERSION
    if variant_ids is not None:
        f.create_dataset("variant_ids", data=np.asarray(variant_ids, dtype=object),
                         dtype=h5py.string_dtype())


def _open_checked(path, kind: str):
    if not os.path.exists(path):
        raise MissingFileError(path, "LD HDF5")
    f = h5py.File(path, "r")
    fmt = f.attrs.get("format")
    fmt = fmt.decode() if isinstance(fmt, bytes) else fmt
    if kind is not None and fmt != f"torchgenetics.{kind}":
        f.close()
        raise FileFormatError(path, f"expected format 'torchgenetics.{kind}', found {fmt!r}")
    if int(f.attrs.get("version", -1)) > _FORMAT_VERSION:
        f.close()
        raise FileFormatError(path, f"format version {f.attrs.get('version')} is newer than "
                                    f"this torchgenetics reads ({_FORMAT_VERSION})")
    return f


def _read_ids(f):
    if "variant_ids" not in f:
        return None
    return np.array([v.decode() if isinstance(v, bytes) else str(v) for v in f["variant_ids"][()]],
                    dtype=object)


class BlockLD(SymmetricOperator):
    """Block-diagonal LD matrix with blocks of unequal size.

    Parameters
    ----------
    *blocks : array-like
        The symmetric correlation blocks (or one list of them), each p_b x p_b.
    index : list of array-like, optional
        Variant positions (rows/columns of the m x m operator) of each block; they
        must partition ``range(m)``. Default: consecutive blocks in the given order.
    repair : {"ridge", "eigen_floor"}, optional
        Make each block positive semi-definite (see :func:`repair_psd`).
    repair_value : float, optional
        The repair's parameter (ridge ``lam``; eigen floor).
    dtype, device : optional
        Where to keep the blocks (default: the blocks' own dtype, float64 for integers).

    Attributes
    ----------
    repair_info : list of dict
        What the repair did to each block (empty without repair).
    variant_ids : numpy.ndarray or None
        Variant ids of the rows, when known (set by :meth:`from_genotypes`, saved to HDF5).

    Examples
    --------
    >>> R = BlockLD([torch.eye(2, dtype=torch.float64), torch.ones(1, 1, dtype=torch.float64)])
    >>> R.shape, R.matmul(torch.ones(3, dtype=torch.float64)).tolist()
    (torch.Size([3, 3]), [1.0, 1.0, 1.0])
    """

    def __init__(self, *blocks, index=None, repair=None, repair_value=None, dtype=None,
                 device=None, _checked=False):
        if len(blocks) == 1 and isinstance(blocks[0], (list, tuple)):
            blocks = tuple(blocks[0])
        if len(blocks) == 0:
            raise InputError("BlockLD needs at least one block")
        self.repair_info = []
        if not _checked:
            mats = []
            for i, b in enumerate(blocks):
                t = check_symmetric_block(b, i, "LD block", dtype=dtype)
                if t.shape[0] == 0:
                    raise InputError(f"LD block {i}: empty block")
                mats.append(t if device is None else t.to(device))
            if any(t.dtype != mats[0].dtype or t.device != mats[0].device for t in mats):
                raise InputError("LD blocks must share one dtype and device")
            if repair is not None:
                fixed = [repair_psd(t, repair, repair_value) for t in mats]
                mats = [t for t, _ in fixed]
                self.repair_info = [info for _, info in fixed]
            index = self._check_index(index, [t.shape[0] for t in mats])
            blocks = tuple(mats)
        super().__init__(*blocks, index=index, _checked=True)
        self._sizes = [int(b.shape[0]) for b in blocks]
        self._m = sum(self._sizes)
        self.variant_ids = None
        if index is None:
            self._perm = self._inv = None
        else:
            perm = np.concatenate(index)
            self._perm = torch.as_tensor(perm, device=blocks[0].device)
            self._inv = torch.as_tensor(np.argsort(perm), device=blocks[0].device)

    @staticmethod
    def _check_index(index, sizes):
        if index is None:
            return None
        if len(index) != len(sizes):
            raise InputError(f"BlockLD: {len(index)} index arrays for {len(sizes)} blocks")
        m = sum(sizes)
        out = []
        for i, (idx, p) in enumerate(zip(index, sizes, strict=True)):
            arr = as_positions(idx, m, f"LD block {i} index")
            if arr.size != p:
                raise InputError(f"LD block {i}: matrix is {p} x {p} but its index lists {arr.size} variants")
            out.append(arr)
        allpos = np.concatenate(out)
        if np.unique(allpos).size != m:
            raise InputError(f"BlockLD: block indices must partition range({m}) without overlap")
        if np.array_equal(allpos, np.arange(m)):
            return None
        return tuple(out)

    @property
    def blocks(self) -> list[torch.Tensor]:
        """The dense blocks (list of tensors)."""
        return list(self._args)

    @property
    def block_index(self) -> list[np.ndarray]:
        """Variant positions (rows of the operator) of each block."""
        idx = self._kwargs["index"]
        if idx is not None:
            return list(idx)
        starts = np.cumsum([0] + self._sizes)
        return [np.arange(a, b, dtype=np.int64) for a, b in zip(starts[:-1], starts[1:], strict=True)]

    def _size(self):
        return torch.Size([self._m, self._m])

    def _matmul(self, rhs):
        x, restore = flatten_rhs(rhs, self._m)
        if self._perm is not None:
            x = x.index_select(0, self._perm)
        parts = torch.split(x, self._sizes, dim=0)
        out = torch.cat([b @ p for b, p in zip(self._args, parts, strict=True)], dim=0)
        if self._inv is not None:
            out = out.index_select(0, self._inv)
        return restore(out)

    def _diagonal(self):
        d = torch.cat([b.diagonal() for b in self._args])
        return d if self._inv is None else d.index_select(0, self._inv)

    def to_dense(self):
        out = torch.block_diag(*self._args)
        if self._inv is not None:
            out = out.index_select(0, self._inv).index_select(1, self._inv)
        return out

    @classmethod
    def from_genotypes(cls, genotypes, boundaries, device=None, dtype=None, repair=None,
                       repair_value=None):
        """LD blocks ``Z_b^T Z_b / n`` computed from genotypes.

        Parameters
        ----------
        genotypes : Genotypes
            The source (use ``genotypes.subset(...)`` to restrict samples/variants).
        boundaries : sequence of int, list of index arrays, or pandas.DataFrame
            Block start positions (cut points; 0 is implied), explicit variant index
            sets, or a region table with columns ``chrom``, ``start``, ``stop`` (bp,
            half-open) matched against the variant table's ``chrom``/``pos``.
        device, dtype : optional
            Where to compute and keep the blocks (default CPU, float64).
        repair, repair_value : optional
            PSD repair per block (see :func:`repair_psd`).

        Returns
        -------
        BlockLD

        Examples
        --------
        >>> from torchgenetics.genotypes import Genotypes
        >>> G = Genotypes.from_array(np.array([[0, 1, 2, 1], [1, 1, 0, 2], [2, 0, 1, 0.]]))
        >>> BlockLD.from_genotypes(G, [0, 2]).shape
        torch.Size([4, 4])
        """
        device, dtype = resolve(device, dtype)
        index = _boundary_blocks(boundaries, genotypes)
        n = genotypes.n_samples
        mats = []
        for idx in index:
            z = standardized_columns(genotypes, idx, device=device, dtype=dtype)
            mats.append(z.T @ z / n)
        op = cls(mats, index=index, repair=repair, repair_value=repair_value)
        op.variant_ids = genotypes.variants["id"].to_numpy(dtype=object)
        return op

    def save(self, path):
        """Write the blocks, their indices and variant ids to an HDF5 file.

        Parameters
        ----------
        path : str or os.PathLike
            Output file (overwritten).

        Examples
        --------
        >>> import tempfile, os
        >>> R = BlockLD([torch.eye(2, dtype=torch.float64)])
        >>> p = os.path.join(tempfile.mkdtemp(), "ld.h5"); R.save(p)
        >>> BlockLD.load(p).shape
        torch.Size([2, 2])
        """
        with h5py.File(path, "w") as f:
            _write_common(f, "BlockLD", self.variant_ids)
            f.attrs["n_blocks"] = len(self._args)
            for i, (b, idx) in enumerate(zip(self._args, self.block_index, strict=True)):
                g = f.create_group(f"blocks/{i}")
                g.create_dataset("matrix", data=b.detach().cpu().numpy())
                g.create_dataset("index", data=idx)

    @classmethod
    def load(cls, path, device=None, dtype=None):
        """Read a :class:`BlockLD` written by :meth:`save`.

        Parameters
        ----------
        path : str or os.PathLike
            HDF5 file.
        device, dtype : optional
            Where to put the blocks (default CPU, stored dtype).

        Returns
        -------
        BlockLD

        Examples
        --------
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "ld.h5")
        >>> BlockLD([torch.eye(3, dtype=torch.float64)]).save(p)
        >>> BlockLD.load(p).to_dense().trace().item()
        3.0
        """
        with _open_checked(path, "BlockLD") as f:
            k = int(f.attrs["n_blocks"])
            mats, index = [], []
            for i in range(k):
                if f"blocks/{i}" not in f:
                    raise FileFormatError(path, f"block {i} of {k} is missing")
                mats.append(torch.as_tensor(f[f"blocks/{i}/matrix"][()], device=device, dtype=dtype))
                index.append(np.asarray(f[f"blocks/{i}/index"][()], dtype=np.int64))
            ids = _read_ids(f)
        op = cls(mats, index=index)
        op.variant_ids = ids
        return op


# Torch banded products work on row chunks of about this many (row, column, band) entries.
_UNFOLD_CHUNK = 2**22
# Column-major copies of bands for BLAS, by id of the bands tensor (dropped with it).
_FORTRAN: dict = {}


def _blas_band_ok(bands: torch.Tensor, x: torch.Tensor) -> bool:
    """Whether BLAS ``?sbmv`` can do the product (CPU, float32/64, bands without gradient;
    a gradient for x is the same product, see :class:`_BandProduct`)."""
    return (bands.device.type == "cpu" and x.device.type == "cpu" and bands.dtype == x.dtype
            and bands.dtype in (torch.float32, torch.float64) and not bands.requires_grad)


class _BandProduct(torch.autograd.Function):
    """``R @ x`` by BLAS; R is symmetric, so the gradient for x is ``R @ grad``."""

    @staticmethod
    def forward(ctx, bands, x):
        ctx.save_for_backward(bands)
        return _sbmv(_fortran_bands(bands), x.detach())

    @staticmethod
    def backward(ctx, grad):
        (bands,) = ctx.saved_tensors
        return None, _sbmv(_fortran_bands(bands), grad.contiguous())


def _fortran_bands(bands: torch.Tensor) -> np.ndarray:
    """The bands in LAPACK's column-major layout, made once per bands tensor (operators
    are rebuilt from their tensors for every product, so the copy is kept beside them)."""
    key = id(bands)
    hit = _FORTRAN.get(key)
    if hit is not None and hit[0] == bands._version and hit[1] == bands.data_ptr():
        return hit[2]
    if hit is None:
        weakref.finalize(bands, _FORTRAN.pop, key, None)
    arr = np.asfortranarray(bands.detach().numpy())
    _FORTRAN[key] = (bands._version, bands.data_ptr(), arr)
    return arr


def _sbmv(a: np.ndarray, x: torch.Tensor) -> torch.Tensor:
    """``R @ x`` by BLAS ``?sbmv``: ``bands[d, i] = R[i + d, i]`` is LAPACK's lower band
    storage (``a``: the bands in column-major order), so each column of x is one BLAS
    call over the whole band."""
    from scipy.linalg import blas

    sbmv = blas.dsbmv if a.dtype == np.float64 else blas.ssbmv
    k = a.shape[0] - 1
    xn = x.detach().numpy()
    out = np.empty(xn.shape, dtype=xn.dtype)
    for j in range(xn.shape[1]):
        out[:, j] = sbmv(k, 1.0, a, np.ascontiguousarray(xn[:, j]), lower=1)
    return torch.from_numpy(out)


def _band_unfold(bands: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``R @ x`` in torch without a loop over the band (any device, differentiable).

    ``R x = U x + U^T x - diag(R) x`` with U the upper band: ``(U x)_i = sum_d
    bands[d, i] x[i + d]`` and ``(U^T x)_j = sum_d bands[d, j - d] x[j - d]``. Both are
    products of a band array with a sliding window of x (``unfold``); the shifted
    bands ``bands[d, j - d]`` are a strided view of the left-padded bands. Rows are
    processed in chunks of bounded size.
    """
    w = bands.shape[0] - 1
    m, k = x.shape
    pad = torch.nn.functional.pad
    ahead = pad(x.T, (0, w)).T.unfold(0, w + 1, 1)        # [i, :, d] = x[i + d]
    behind = pad(x.T, (w, 0)).T.unfold(0, w + 1, 1)       # [j, :, t] = x[j - w + t]
    left = pad(bands, (w, 0)).contiguous()                # (w + 1, m + w)
    shifted = left.as_strided((w + 1, m), (left.stride(0) - 1, 1), left.storage_offset() + w)
    shifted = shifted.flip(0)                             # [t, j] = bands[w - t, j - w + t]
    step = max(1, _UNFOLD_CHUNK // max(1, k * (w + 1)))
    parts = []
    for a in range(0, m, step):
        sl = slice(a, a + step)
        parts.append(torch.einsum("di,ikd->ik", bands[:, sl], ahead[sl])
                     + torch.einsum("tj,jkt->jk", shifted[:, sl], behind[sl]))
    out = torch.cat(parts) if len(parts) > 1 else parts[0]
    return out - bands[0].unsqueeze(-1) * x


def _band_mask(m, window, unit, coords=None, chrom=None):
    """Bandwidth ``w`` and the (w + 1, m) mask of kept upper-diagonal entries."""
    if unit not in ("snp", "bp", "cm"):
        raise InputError(f"window unit must be 'snp', 'bp' or 'cm', got {unit!r}")
    if window < 0:
        raise InputError(f"LD window must be >= 0, got {window}")
    if chrom is None:
        chrom = np.zeros(m, dtype=np.int64)
    else:
        chrom = pd.factorize(np.asarray(chrom).astype(str))[0]
        runs = np.flatnonzero(np.diff(chrom) != 0)
        if np.unique(chrom[np.concatenate([[0], runs + 1])]).size != runs.size + 1:
            raise InputError("variants must be grouped by chromosome (each chromosome in one run)")
    i = np.arange(m)
    # last position j >= i in the window and on the same chromosome
    chrom_end = np.empty(m, dtype=np.int64)
    starts = np.concatenate([[0], np.flatnonzero(np.diff(chrom) != 0) + 1, [m]])
    for a, b in zip(starts[:-1], starts[1:], strict=True):
        chrom_end[a:b] = b - 1
    if unit == "snp":
        last = np.minimum(i + int(window), chrom_end)
    else:
        if coords is None:
            raise InputError(f"a window in {unit} needs variant positions")
        coords = np.asarray(coords, dtype=np.float64)
        last = np.empty(m, dtype=np.int64)
        for a, b in zip(starts[:-1], starts[1:], strict=True):
            c = coords[a:b]
            if np.any(np.diff(c) < 0):
                raise InputError(f"variant {unit} positions must be sorted within each chromosome")
            last[a:b] = a + np.searchsorted(c, c + window, side="right") - 1
    w = int((last - i).max()) if m else 0
    keep = (i[None, :] + np.arange(w + 1)[:, None]) <= last[None, :]
    return w, keep


class BandedLD(SymmetricOperator):
    """Banded LD matrix: correlations beyond a window set to zero.

    Stored as its upper diagonals: ``bands[d, i] = R[i, i + d]`` for ``d = 0..w``
    (entries with ``i + d >= m`` are ignored and kept at zero). Memory ``(w + 1) m``,
    matmul ``O(m w k)``.

    Parameters
    ----------
    bands : array-like, shape (w + 1, m)
        The upper diagonals.
    dtype, device : optional
        Where to keep them (default: the input's, float64 for integers).

    Examples
    --------
    >>> R = torch.tensor([[1.0, 0.5, 0.1], [0.5, 1.0, 0.5], [0.1, 0.5, 1.0]], dtype=torch.float64)
    >>> B = BandedLD.from_dense(R, window=1)
    >>> B.bandwidth, B.to_dense()[0, 2].item()
    (1, 0.0)
    """

    def __init__(self, bands, dtype=None, device=None, _checked=False):
        if not _checked:
            bands = torch.as_tensor(bands)
            if dtype is not None:
                bands = bands.to(dtype)
            elif not bands.is_floating_point():
                bands = bands.to(torch.float64)
            if device is not None:
                bands = bands.to(device)
            if bands.dim() != 2 or bands.shape[0] < 1:
                raise InputError(f"bands must have shape (w + 1, m), got {tuple(bands.shape)}")
            if not bool(torch.isfinite(bands).all()):
                raise InputError("bands have non-finite entries (NaN or inf)")
            m = bands.shape[1]
            w = bands.shape[0] - 1
            if w >= m and m > 0:
                bands = bands[:m]
                w = m - 1
            valid = (torch.arange(m, device=bands.device)[None, :]
                     + torch.arange(w + 1, device=bands.device)[:, None]) < m
            bands = torch.where(valid, bands, torch.zeros((), dtype=bands.dtype, device=bands.device))
        super().__init__(bands, _checked=True)
        self.bands = bands
        self._m = int(bands.shape[1])
        self.repair_info = []
        self.variant_ids = None

    @property
    def bandwidth(self) -> int:
        """Number of stored off-diagonals ``w``."""
        return int(self.bands.shape[0]) - 1

    def _size(self):
        return torch.Size([self._m, self._m])

    def _matmul(self, rhs):
        x, restore = flatten_rhs(rhs, self._m)
        if _blas_band_ok(self.bands, x):
            if x.requires_grad:
                return restore(_BandProduct.apply(self.bands, x))
            return restore(_sbmv(_fortran_bands(self.bands), x))
        return restore(_band_unfold(self.bands, x))

    def _diagonal(self):
        return self.bands[0]

    def to_dense(self):
        m, out = self._m, torch.diag(self.bands[0])
        for d in range(1, self.bandwidth + 1):
            rows = torch.arange(m - d, device=out.device)
            vals = self.bands[d, : m - d]
            out = out.index_put((rows, rows + d), vals).index_put((rows + d, rows), vals)
        return out

    @classmethod
    def _build(cls, bands, keep, repair, repair_value, variant_ids=None):
        bands = bands * torch.as_tensor(keep, device=bands.device, dtype=bands.dtype)
        op = cls(bands)
        if repair is not None:
            op = op.repaired(repair, repair_value)
        op.variant_ids = variant_ids
        return op

    @classmethod
    def from_dense(cls, matrix, window, unit="snp", positions=None, chrom=None, repair=None,
                   repair_value=None):
        """Truncate a dense symmetric LD matrix to a window.

        Parameters
        ----------
        matrix : array-like, m x m
            Symmetric LD matrix.
        window : int or float
            Half-width of the window, in ``unit``.
        unit : {"snp", "bp", "cm"}
            ``"snp"``: keep ``|i - j| <= window``; ``"bp"``/``"cm"``: keep
            ``|pos_i - pos_j| <= window`` (``positions`` sorted within chromosome).
        positions : array-like, optional
            Base-pair or cM positions (needed for bp/cM).
        chrom : array-like, optional
            Chromosomes; pairs on different chromosomes are always zero.
        repair, repair_value : optional
            ``"ridge"`` only (see :meth:`repaired`).

        Returns
        -------
        BandedLD

        Examples
        --------
        >>> R = torch.eye(4, dtype=torch.float64) + 0.1
        >>> BandedLD.from_dense(R, 150, unit="bp", positions=[0, 100, 200, 300]).bandwidth
        1
        """
        R = check_symmetric_block(matrix, 0, "LD matrix")
        m = R.shape[0]
        w, keep = _band_mask(m, window, unit, positions, chrom)
        bands = torch.zeros(w + 1, m, dtype=R.dtype, device=R.device)
        for d in range(w + 1):
            bands[d, : m - d] = torch.diagonal(R, offset=d)
        return cls._build(bands, keep, repair, repair_value)

    @classmethod
    def from_genotypes(cls, genotypes, window, unit="snp", device=None, dtype=None, repair=None,
                       repair_value=None):
        """Banded LD ``Z^T Z / n`` from genotypes, computed in one streaming pass.

        Parameters
        ----------
        genotypes : Genotypes
            The source, variants sorted by chromosome and position.
        window : int or float
            Window half-width in ``unit`` (``"snp"``, ``"bp"`` from the ``pos`` column,
            ``"cm"`` from the ``cm`` column). Pairs on different chromosomes are zero.
        device, dtype : optional
            Where to compute and keep the bands (default CPU, float64).
        repair, repair_value : optional
            ``"ridge"`` only (see :meth:`repaired`).

        Returns
        -------
        BandedLD

        Examples
        --------
        >>> from torchgenetics.genotypes import Genotypes
        >>> G = Genotypes.from_array(np.array([[0, 1, 2, 1], [1, 1, 0, 2], [2, 0, 1, 0.]]))
        >>> BandedLD.from_genotypes(G, window=1).bandwidth
        1
        """
        device, dtype = resolve(device, dtype)
        table = genotypes.variants
        m, n = genotypes.n_variants, genotypes.n_samples
        coords = None if unit == "snp" else table["pos" if unit == "bp" else "cm"].to_numpy()
        w, keep = _band_mask(m, window, unit, coords, table["chrom"].to_numpy())
        # each chunk of c variants reads c + w columns; keep both in the budget
        chunk = plan_block(m, n * dtype_bytes(dtype), live_copies=3, device=device,
                           min_block=1, max_block=max(4 * w, 1024))
        bands = torch.zeros(w + 1, m, dtype=dtype, device=device)
        for a in range(0, m, chunk):
            b = min(a + chunk, m)
            z = standardized_columns(genotypes, np.arange(a, min(b + w, m)), device, dtype)
            s = z[:, : b - a].T @ z / n
            for d in range(w + 1):
                diag = torch.diagonal(s, offset=d)
                bands[d, a : a + diag.shape[0]] = diag
        return cls._build(bands, keep, repair, repair_value,
                          table["id"].to_numpy(dtype=object))

    def repaired(self, method="ridge", value=None) -> "BandedLD":
        """A positive semi-definite version: ``(1 - lam) R + lam I``.

        Only the ridge keeps the band; ``value`` is ``lam`` in [0, 1], or None for
        the smallest ``lam`` lifting the smallest eigenvalue (from LAPACK's banded
        eigensolver) to 1e-8.

        Parameters
        ----------
        method : {"ridge"}
            Repair method (``"eigen_floor"`` would fill the matrix: use
            :class:`BlockLD` for it).
        value : float, optional
            ``lam``.

        Returns
        -------
        BandedLD
            With ``repair_info`` set to ``[{"method", "min_eigenvalue", "lam"}]``.

        Examples
        --------
        >>> R = torch.tensor([[1.0, 0.9, 0.0], [0.9, 1.0, 0.9], [0.0, 0.9, 1.0]], dtype=torch.float64)
        >>> B = BandedLD.from_dense(R, window=1).repaired()
        >>> bool(torch.linalg.eigvalsh(B.to_dense()).min() > -1e-12)
        True
        """
        if method != "ridge":
            raise InputError(
                f"BandedLD supports repair='ridge' only ('{method}' does not keep the band); "
                "use BlockLD for an eigenvalue floor"
            )
        from scipy.linalg import eigvals_banded

        lo = float(eigvals_banded(self.bands.detach().cpu().numpy(), lower=True, select="i",
                                  select_range=(0, 0))[0])
        if value is None:
            lam = 0.0 if lo >= _RIDGE_TARGET else (_RIDGE_TARGET - lo) / (1.0 - lo)
        else:
            lam = float(value)
            if not 0.0 <= lam <= 1.0:
                raise InputError(f"ridge repair needs lam in [0, 1], got {value}")
        bands = self.bands * (1.0 - lam)
        bands[0] = bands[0] + lam
        out = BandedLD(bands)
        out.repair_info = [{"method": "ridge", "min_eigenvalue": lo, "lam": lam}]
        out.variant_ids = self.variant_ids
        return out

    def save(self, path):
        """Write the bands and variant ids to an HDF5 file.

        Parameters
        ----------
        path : str or os.PathLike
            Output file (overwritten).

        Examples
        --------
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "band.h5")
        >>> BandedLD(torch.ones(1, 3, dtype=torch.float64)).save(p)
        >>> BandedLD.load(p).shape
        torch.Size([3, 3])
        """
        with h5py.File(path, "w") as f:
            _write_common(f, "BandedLD", self.variant_ids)
            f.create_dataset("bands", data=self.bands.detach().cpu().numpy())

    @classmethod
    def load(cls, path, device=None, dtype=None):
        """Read a :class:`BandedLD` written by :meth:`save`.

        Parameters
        ----------
        path : str or os.PathLike
            HDF5 file.
        device, dtype : optional
            Where to put the bands.

        Returns
        -------
        BandedLD

        Examples
        --------
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "band.h5")
        >>> BandedLD(torch.ones(2, 3, dtype=torch.float64)).save(p)
        >>> BandedLD.load(p).bandwidth
        1
        """
        with _open_checked(path, "BandedLD") as f:
            if "bands" not in f:
                raise FileFormatError(path, "dataset 'bands' is missing")
            op = cls(torch.as_tensor(f["bands"][()], device=device, dtype=dtype))
            op.variant_ids = _read_ids(f)
        return op


def load_ld(path, device=None, dtype=None):
    """Load a :class:`BlockLD` or :class:`BandedLD` saved to HDF5, whichever the file holds.

    Parameters
    ----------
    path : str or os.PathLike
        HDF5 file written by ``BlockLD.save`` or ``BandedLD.save``.
    device, dtype : optional
        Where to put the matrices.

    Returns
    -------
    BlockLD or BandedLD

    Examples
    --------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "ld.h5")
    >>> BlockLD([torch.eye(2, dtype=torch.float64)]).save(p)
    >>> type(load_ld(p)).__name__
    'BlockLD'
    """
    with _open_checked(path, None) as f:
        fmt = f.attrs.get("format")
    fmt = fmt.decode() if isinstance(fmt, bytes) else fmt
    kinds = {"torchgenetics.BlockLD": BlockLD, "torchgenetics.BandedLD": BandedLD}
    if fmt not in kinds:
        raise FileFormatError(path, f"not a torchgenetics LD file (format attribute {fmt!r})")
    return kinds[fmt].load(path, device=device, dtype=dtype)
