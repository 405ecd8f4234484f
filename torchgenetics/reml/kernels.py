"""Build the kernels of a REML model: several genotype files, a component spec, SMILE groups.

* :func:`grms_from_prefixes` - one GRM per PLINK fileset (BED or PGEN), the samples
  checked to be the same, in the same order, in every file.
* :func:`grm_stack` - one GRM per component of a spec (JSON/NPZ file,
  :class:`~torchgenetics.io.ComponentSpec` or index lists) over one genotype source,
  as a :class:`~torchgenetics.operators.GRMStack` (one genotype pass per product).
* :func:`smile_kernels` - one SMILE weighted block GRM per group of ``W`` blocks
  (:class:`~torchgenetics.operators.WeightedBlockGRM`), with every block checked
  to be positive semi-definite.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import InputError, MissingFileError, SampleError
from ..io import ComponentSpec, read_components, read_pgen, read_plink
from ..operators import GRM, GRMStack, WeightedBlockGRM

__all__ = ["grms_from_prefixes", "check_same_samples", "grm_stack", "smile_kernels", "read_genotypes"]


def read_genotypes(prefix):
    """Open ``prefix`` as PLINK 2 (``.pgen``) if that file exists, else PLINK 1 (``.bed``).

    Examples
    --------
    >>> from torchgenetics.datasets import example
    >>> read_genotypes(example().bfile).shape
    (1000, 5000)
    """
    base = str(prefix)
    for ext in (".pgen", ".bed"):
        if base.endswith(ext):
            base = base[: -len(ext)]
    return read_pgen(base) if Path(base + ".pgen").is_file() else read_plink(base)


def check_same_samples(genotypes, labels=None) -> None:
    """Raise :class:`~torchgenetics.errors.SampleError` unless all hold the same samples in order.

    Parameters
    ----------
    genotypes : list of Genotypes
    labels : list of str, optional
        How to name each source in the message (default ``source 0``, ...).

    Examples
    --------
    >>> from torchgenetics.genotypes import Genotypes
    >>> a = Genotypes.from_array([[0, 1], [2, 1]])
    >>> check_same_samples([a, a])
    """
    labels = [f"source {i}" for i in range(len(genotypes))] if labels is None else list(labels)
    ref = genotypes[0].samples[["fid", "iid"]].astype(str).to_numpy()
    for lab, g in zip(labels[1:], genotypes[1:], strict=True):
        ids = g.samples[["fid", "iid"]].astype(str).to_numpy()
        if ids.shape != ref.shape:
            raise SampleError(f"{lab} has {ids.shape[0]} samples but {labels[0]} has {ref.shape[0]}; "
                              "every genotype file must hold the same samples in the same order")
        bad = np.flatnonzero((ids != ref).any(1))
        if bad.size:
            i = int(bad[0])
            raise SampleError(
                f"{lab} differs from {labels[0]} at sample {i} (line {i + 1} of the sample file): "
                f"FID/IID {ids[i, 0]} {ids[i, 1]} versus {ref[i, 0]} {ref[i, 1]}; every genotype file "
                "must hold the same samples in the same order"
            )


def _names_from_prefixes(prefixes):
    names = []
    for p in prefixes:
        base = Path(str(p)).name
        for ext in (".bed", ".pgen"):
            base = base[: -len(ext)] if base.endswith(ext) else base
        name, k = base, 2
        while name in names:
            name, k = f"{base}_{k}", k + 1
        names.append(name)
    return names


def grms_from_prefixes(prefixes, samples=None, names=None, device=None, dtype=None, resident=None,
                       *, distributed=False, group=None) -> dict:
    """One GRM per PLINK fileset, over the same samples.

    Parameters
    ----------
    prefixes : list of str or path
        PLINK 1 (``.bed``) or PLINK 2 (``.pgen``) prefixes.
    samples : index array or boolean mask, optional
        Samples to keep (e.g. ``Alignment.sample_index`` from
        :func:`torchgenetics.io.align` on the first file), applied to every file.
    names : list of str, optional
        Kernel names (default: the file names, made unique).
    device, dtype, resident : optional
        Passed to :class:`~torchgenetics.operators.GRM`.
    distributed, group : optional
        Shard each GRM's variants over the ranks of ``group`` (see
        :class:`~torchgenetics.operators.GRM`).

    Returns
    -------
    dict of str to GRM
        In the order of ``prefixes``; pass it to :func:`~torchgenetics.reml.reml`.

    Raises
    ------
    SampleError
        If the files do not hold the same samples in the same order (the first
        mismatch is named).

    Examples
    --------
    >>> from torchgenetics.datasets import example
    >>> ks = grms_from_prefixes([example().bfile, example().bfile], names=["a", "b"])
    >>> list(ks)
    ['a', 'b']
    """
    prefixes = [prefixes] if isinstance(prefixes, (str, Path)) else list(prefixes)
    if not prefixes:
        raise InputError("no genotype prefix given")
    names = _names_from_prefixes(prefixes) if names is None else [str(n) for n in names]
    if len(names) != len(prefixes):
        raise InputError(f"{len(names)} names for {len(prefixes)} genotype prefixes")
    sources = [read_genotypes(p) for p in prefixes]
    check_same_samples(sources, [str(p) for p in prefixes])
    if samples is not None:
        sources = [g.subset(samples=samples) for g in sources]
    return {nm: GRM(g, device=device, dtype=dtype, resident=resident, distributed=distributed, group=group)
            for nm, g in zip(names, sources, strict=True)}


def grm_stack(genotypes, components, names=None, device=None, dtype=None, resident=None,
              allow_overlap=False, *, distributed=False, group=None) -> GRMStack:
    """A GRMStack with one GRM per component of a spec.

    Parameters
    ----------
    genotypes : Genotypes
    components : path, ComponentSpec, dict name -> indices, or list of index arrays
        A ``.json``/``.npz`` spec file (read with
        :func:`~torchgenetics.io.read_components` against the genotypes' variants)
        or the sets themselves.
    names : list of str, optional
        Component names (default from the spec / dict, else ``component_000``, ...).
    device, dtype, resident : optional
        Passed to :class:`~torchgenetics.operators.GRMStack`.
    allow_overlap : bool
        Accept a variant in several components (spec files only).
    distributed, group : optional
        Shard the variants over the ranks of ``group`` (see
        :class:`~torchgenetics.operators.GRMStack`).

    Returns
    -------
    GRMStack

    Examples
    --------
    >>> from torchgenetics.genotypes import Genotypes
    >>> G = Genotypes.from_array(np.array([[0, 1, 2, 1], [2, 1, 0, 0], [1, 0, 1, 2.]]))
    >>> grm_stack(G, {"a": [0, 1], "b": [2, 3]}).names
    ['a', 'b']
    """
    if isinstance(components, (str, Path)):
        components = read_components(components, variants=genotypes, allow_overlap=allow_overlap)
    elif isinstance(components, dict):
        components = ComponentSpec(list(components), list(components.values()))
    return GRMStack(genotypes, components, device=device, dtype=dtype, resident=resident, names=names,
                    distributed=distributed, group=group)


def _load_block(block, where):
    if isinstance(block, (str, Path)):
        path = Path(block)
        if not path.is_file():
            raise MissingFileError(path, "SMILE W block")
        return np.load(path)
    return block


def _check_psd(W, where, tol):
    w = torch.as_tensor(np.array(W, dtype=np.float64))
    if w.dim() != 2 or w.shape[0] != w.shape[1]:
        raise InputError(f"{where}: expected a square matrix, got shape {tuple(w.shape)}")
    if not bool(torch.isfinite(w).all()):
        raise InputError(f"{where}: matrix has non-finite entries (NaN or inf)")
    if w.numel() == 0:
        return
    scale = max(1.0, float(w.abs().max()))
    if float((w - w.T).abs().max()) > 1e-8 * scale:
        raise InputError(f"{where}: matrix is not symmetric")
    eig = torch.linalg.eigvalsh(0.5 * (w + w.T))
    top = max(float(eig.abs().max()), 1e-300)
    if float(eig.min()) < -tol * top:
        raise InputError(
            f"{where}: W is not positive semi-definite (smallest eigenvalue {float(eig.min()):.4g}, "
            f"largest |eigenvalue| {top:.4g}); a SMILE kernel needs PSD blocks to be a covariance"
        )


def smile_kernels(genotypes, groups, names=None, device=None, dtype=None, resident=None,
                  psd_tol=1e-8, *, distributed=False, group=None) -> dict:
    """SMILE weighted block kernels ``K = X W X' / c``, one per group of W blocks.

    Blocks inside a group are summed into one kernel (one variance component);
    each group is its own component. Adapted from SMILE (JianqiaoWang/SMILE) as
    used by GPU_REML.

    Parameters
    ----------
    genotypes : Genotypes
    groups : list of lists of blocks (or one list of blocks for a single group)
        A group is a Python ``list`` of blocks; a block is a ``(variant_indices, W)``
        tuple, or a bare matrix / ``.npy`` path. Bare blocks are laid over consecutive
        variants: the first starts at variant 0 and each next one (across groups,
        in order) right after the previous one.
    names : list of str, optional
        Kernel names (default ``SMILE1``, ``SMILE2``, ...; ``SMILE`` for one group).
    device, dtype, resident : optional
        Passed to :class:`~torchgenetics.operators.WeightedBlockGRM`.
    psd_tol : float
        A block whose smallest eigenvalue is below ``-psd_tol`` times its largest
        absolute eigenvalue is rejected.
    distributed, group : optional
        Split each kernel's W blocks over the ranks of ``group`` (see
        :class:`~torchgenetics.operators.WeightedBlockGRM`).

    Returns
    -------
    dict of str to WeightedBlockGRM

    Raises
    ------
    InputError
        A block that is not square, symmetric, finite or PSD, or bare blocks that
        run past the last variant (the message names group and block).

    Examples
    --------
    >>> from torchgenetics.genotypes import Genotypes
    >>> G = Genotypes.from_array(np.array([[0, 1, 2, 1], [2, 1, 0, 0], [1, 0, 1, 2.]]))
    >>> ks = smile_kernels(G, [[np.eye(2), np.eye(2)]])
    >>> list(ks), ks["SMILE"].n_blocks
    (['SMILE'], 2)
    """
    groups = list(groups)
    if groups and not isinstance(groups[0], list):
        groups = [groups]  # one group given as its list of blocks
    if not groups:
        raise InputError("smile_kernels needs at least one group of W blocks")
    default = ["SMILE"] if len(groups) == 1 else [f"SMILE{i + 1}" for i in range(len(groups))]
    names = default if names is None else [str(n) for n in names]
    if len(names) != len(groups):
        raise InputError(f"{len(names)} names for {len(groups)} SMILE groups")
    m, offset, out = genotypes.n_variants, 0, {}
    for gi, (name, w_group) in enumerate(zip(names, groups, strict=True)):
        blocks = []
        for bi, block in enumerate(w_group):
            where = f"SMILE group {gi} ({name!r}), W block {bi}"
            if isinstance(block, tuple) and len(block) == 2:
                idx, W = block[0], _load_block(block[1], where)
            else:
                W = _load_block(block, where)
                size = int(np.shape(W)[0]) if np.ndim(W) == 2 else -1
                if size < 0:
                    raise InputError(f"{where}: expected a square matrix, got shape {np.shape(W)}")
                if offset + size > m:
                    raise InputError(f"{where}: covers variants {offset}..{offset + size - 1} but the "
                                     f"genotypes have {m} variants")
                idx, offset = np.arange(offset, offset + size), offset + size
            _check_psd(W, where, psd_tol)
            blocks.append((idx, W))
        out[name] = WeightedBlockGRM(genotypes, blocks, device=device, dtype=dtype, resident=resident,
                                     distributed=distributed, group=group)
    return out

