"""``susie_batch``: many loci fitted as one batched tensor program.

Each locus is checked and prepared by the very code of :func:`susie`,
:func:`susie_ss` or :func:`susie_rss`, then all loci run through one batched IBSS
loop (:func:`~torchgenetics.susie.ibss.ibss_batch`, the loop a one-locus fit runs
with a batch of one): the single-effect regressions and Brent searches of all
loci are one tensor program over a padded (B, p) layout, each locus keeps its
own convergence and leaves the batch when done. Greedy growth of L proceeds in
rounds over the loci still growing; refinement (``refine=True``) refits each
locus with credible sets on its own. The fits equal those of the one-locus
functions with the same options, bit for bit on CPU.
"""

from __future__ import annotations

import contextlib
import gc
import inspect
import warnings

from ..errors import InputError
from ..memory import plan_block
from . import api
from .fit import SusieFit
from .ibss import _SHARED, ibss_batch
from .ser import log_prior_weights

__all__ = ["susie_batch"]

_KINDS = {
    "individual": (api.susie, api._prepare_individual),
    "ss": (api.susie_ss, api._prepare_ss),
    "rss": (api.susie_rss, api._prepare_rss),
}
_BY_ARITY = {2: "individual", 3: "rss", 4: "ss"}
# Data a CPU batch keeps in cache (last-level caches of a core's share: ~16 MiB).
_CPU_CACHE_BYTES = 16 * 2**20
# Fewer loci than this in cache run one at a time: their SER arithmetic shares too little
# to pay for the cache they take from each other (measured with 2 loci of n = p = 1,000:
# 5% slower than one by one).
_CPU_MIN_SHARED = 4


def _kind_and_args(locus, index: int):
    """Which entry point a locus is for, its positional data and its own keyword options."""
    if isinstance(locus, dict):
        keys = set(locus)
        kind = ("individual" if "X" in keys else "ss" if "XtX" in keys
                else "rss" if "R" in keys else None)
        if kind is None:
            raise InputError(f"locus {index}: a dict locus needs X and y, XtX/Xty/yty/n, or z (or "
                             f"bhat, shat) with R; got keys {sorted(keys)}")
        return kind, (), dict(locus)
    if isinstance(locus, (tuple, list)) and len(locus) in _BY_ARITY:
        return _BY_ARITY[len(locus)], tuple(locus), {}
    raise InputError(f"locus {index}: expected (X, y), (z, R, n), (XtX, Xty, yty, n) or a dict, "
                     f"got {type(locus).__name__}")


def _prepare(locus, index: int, options: dict, init):
    kind, args, own = _kind_and_args(locus, index)
    public, prepare = _KINDS[kind]
    kwargs = {**options, **own}
    if init is not None:
        kwargs["init"] = init
    try:
        bound = inspect.signature(public).bind(*args, **kwargs)
    except TypeError as err:
        raise InputError(f"locus {index}: {err} (options are those of {public.__name__})") from None
    bound.apply_defaults()
    return prepare(**bound.arguments)


class _Item:
    """One locus moving through the greedy rounds."""

    def __init__(self, index, prob, o, pi, init):
        self.index, self.prob, self.o, self.pi, self.init = index, prob, o, pi, init
        self.L = api._greedy_start_L(o, init)
        self.history, self.trace = [], []
        self.fit = None
        self.unconverged = False

    @property
    def group(self):
        """Loci with equal keys run in one batch: same L, dtype, device and loop settings."""
        data = self.prob.data
        settings = api._settings(self.o, data)
        return (self.L, data.d.dtype, str(data.d.device)) + tuple(getattr(settings, k) for k in _SHARED)


def _batch_size(items, batch_size) -> int:
    if batch_size is not None:
        return max(1, int(batch_size))
    # The batch holds (L, B, p) SER tensors (about ten of them with the Brent search)
    # besides the loci's own data, which is not copied.
    data = items[0].prob.data
    width = max(it.prob.data.p for it in items)
    per_locus = 10 * max(it.L for it in items) * width * data.d.element_size()
    size = plan_block(len(items), per_locus, live_copies=2, max_block=len(items))
    if data.d.device.type == "cpu":
        # Every effect update streams its locus' X (or R) twice. Cycling through loci
        # whose data together exceed the cache would reload each from memory at every
        # update (measured: products 2x slower), so a CPU batch holds what fits.
        largest = max(it.prob.data.data_bytes() for it in items)
        fit = _CPU_CACHE_BYTES // max(largest, 1)
        size = min(size, fit if fit >= _CPU_MIN_SHARED else 1)
    return size


def _fit_round(items, batch_size) -> None:
    """One IBSS run (one greedy round) for items sharing L."""
    ready = []
    for it in items:
        try:
            ready.append((it, api._start(it.prob, it.o, it.pi, it.L, it.init)))
        except InputError as err:
            it.fit = err
    for begin in range(0, len(ready), batch_size):
        chunk = ready[begin: begin + batch_size]
        outs = ibss_batch([it.prob.data for it, _ in chunk], [st[0] for _, st in chunk],
                          [log_prior_weights(it.pi) for it, _ in chunk], [st[1] for _, st in chunk],
                          [st[2] for _, st in chunk])
        for (it, _), out in zip(chunk, outs, strict=True):
            if isinstance(out, Exception):
                it.fit = out
                continue
            it.unconverged |= not out.converged
            it.fit = api._finish(it.prob, it.o, it.pi, out.state, out,
                                 with_sets=it.o.L_greedy is None)


def _run_greedy(items, batch_size) -> None:
    pending = list(items)
    while pending:
        groups: dict = {}
        for it in pending:
            groups.setdefault(it.group, []).append(it)
        for group in groups.values():
            _fit_round(group, _batch_size(group, batch_size))
        nxt = []
        for it in pending:
            if isinstance(it.fit, Exception) or it.o.L_greedy is None:
                continue
            L = api._greedy_step(it.o, it.fit, it.L, it.history, it.trace)
            if L is None:
                it.fit = api._with_sets(it.prob, it.o,
                                        api._greedy_done(it.o, it.fit, it.history, it.trace))
            else:
                it.L, it.init = L, it.fit
                nxt.append(it)
        pending = nxt


@contextlib.contextmanager
def _frozen_heap():
    """Keep the objects alive now (every prepared locus) out of the cycle collector's scans
    while the loci are fitted; the fits' own garbage is collected as usual. With 200 loci
    of n = p = 1,000 the collector's full scans otherwise cost ~10% of the batch. A caller
    that froze objects itself keeps its own freeze untouched."""
    if gc.get_freeze_count() or not gc.isenabled():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def susie_batch(loci, L=10, *, init=None, batch_size=None, on_error: str = "raise",
                **options) -> list:
    """Fit SuSiE to many loci at once; each fit equals the one-locus fit.

    The loci may differ in size (p, and n for individual data) and kind: the
    single-effect regressions are padded and masked, and each locus stops on its
    own convergence. Options are those of :func:`susie` (individual loci) or
    :func:`susie_rss` / :func:`susie_ss` (summary loci) and apply to every
    locus; a dict locus can carry its own (``variable_names``, ``prior_weights``,
    ``max_iter``, ...). Loci whose loop settings differ (L, ``max_iter``, ``tol``,
    prior method, ...) run in separate batches.

    Parameters
    ----------
    loci : sequence
        Each locus is ``(X, y)`` (individual data), ``(z, R, n)`` (z-scores with an
        LD matrix, dense or a LinearOperator), ``(XtX, Xty, yty, n)`` (sufficient
        statistics), or a dict of the matching function's arguments
        (e.g. ``{"X": X, "y": y, "variable_names": ids}`` or ``{"bhat": b, "shat": s,
        "R": R, "n": n}``).
    L : int or sequence of int
        Number of effects, for all loci or one per locus.
    init : sequence of SusieFit or None, optional
        Warm start of each locus (None entries start cold).
    batch_size : int, optional
        Loci per batched run (default: as many as the memory budget of
        :func:`torchgenetics.memory.plan_block` allows; the loci's data is not copied).
        On CPU the default also keeps a batch's data within a core's share of the
        cache, and loci so large that fewer than four fit run one at a time (their
        products dominate and cannot be shared; cycling them through the cache only
        slows them down).
    on_error : {"raise", "return"}
        A locus whose one-locus fit would raise makes ``susie_batch`` raise (with
        the locus index), or, with "return", its entry in the result is the exception.
    **options
        Options of ``susie`` / ``susie_rss`` / ``susie_ss``.

    Returns
    -------
    list of SusieFit
        One fit per locus, in order (exceptions in place of failed loci with
        ``on_error="return"``). Loci that did not converge give one RuntimeWarning.

    Raises
    ------
    InputError
        Bad locus or option (the message names the locus).

    Examples
    --------
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> X1 = torch.randn(200, 40, generator=g, dtype=torch.float64)
    >>> X2 = torch.randn(150, 25, generator=g, dtype=torch.float64)
    >>> y1 = X1[:, 3] + torch.randn(200, generator=g, dtype=torch.float64)
    >>> y2 = X2[:, 20] + torch.randn(150, generator=g, dtype=torch.float64)
    >>> fits = susie_batch([(X1, y1), (X2, y2)], L=5)
    >>> [f.sets["cs"][0].tolist() for f in fits]
    [[3], [20]]
    """
    if on_error not in ("raise", "return"):
        raise InputError(f"on_error must be 'raise' or 'return', got {on_error!r}")
    loci = list(loci)
    n = len(loci)
    Ls = list(L) if isinstance(L, (list, tuple)) else [L] * n
    inits = list(init) if init is not None else [None] * n
    if len(Ls) != n or len(inits) != n:
        raise InputError(f"L and init must have one entry per locus ({n} loci)")
    results: list = [None] * n
    items = []
    for i, locus in enumerate(loci):
        try:
            prob, o, pi, start = _prepare(locus, i, {**options, "L": Ls[i]}, inits[i])
        except InputError as err:
            if on_error == "raise":
                raise type(err)(f"locus {i}: {err}") from None
            results[i] = err
            continue
        items.append(_Item(i, prob, o, pi, start))
    with _frozen_heap():
        _run_greedy(items, batch_size)
    for it in items:
        fit = it.fit
        if isinstance(fit, SusieFit) and it.o.refine and fit.sets["cs"]:
            greedy = fit.greedy_history
            fit = api._refine(it.prob, it.o, it.pi, fit)
            fit.greedy_history = greedy
        if isinstance(fit, Exception) and on_error == "raise":
            raise type(fit)(f"locus {it.index}: {fit}")
        results[it.index] = fit
    late = [it.index for it in items if it.unconverged]
    if late:
        shown = ", ".join(map(str, late[:10])) + (", ..." if len(late) > 10 else "")
        max_iter = items[0].o.max_iter
        warnings.warn(f"IBSS did not converge in {max_iter} iterations for {len(late)} of {n} loci "
                      f"({shown}); continue with init=fits or raise max_iter",
                      RuntimeWarning, stacklevel=2)
    return results

