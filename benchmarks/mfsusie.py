"""Multi-outcome functional SuSiE (mfsusie): wall time per fit and loci per second in a scan.

Setting of the issue: n = 500 samples, p = 1,000 variants, M = 2 functional outcomes
of 64 positions each, L = 15 effects (``L_greedy = 5``). Genotypes come from
``torchgenetics.datasets.simulate_genotypes`` (realistic LD); each outcome is a sum of
smooth bumps carried by 1-2 causal variants plus N(0, 1) noise.

1. One locus with signal: the wall time of a cold fit for each prior scope and for the
   Haar and la10 wavelets, with iterations, time per iteration and whether the credible
   sets hold the causal variants.
2. A scan of ``--loci`` loci (30% with signal) with ``torchgenetics.susie.scan``
   (first pass of 5 iterations, triage, warm-started second pass): loci per second,
   beside the same loci fitted one by one at the full budget, and the largest PIP
   difference between the two (the warm follow-up reaches the cold fit).

Everything runs on one thread (torch and BLAS): the machine is shared.

Usage::

    .venv/bin/python benchmarks/mfsusie.py
    .venv/bin/python benchmarks/mfsusie.py --loci 10 --out benchmarks/results   # also json + md
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from torchgenetics.datasets import simulate_genotypes  # noqa: E402
from torchgenetics.susie import Locus, scan  # noqa: E402
from torchgenetics.susie.functional import mfsusie  # noqa: E402

N, P, M, T, L = 500, 1000, 2, 64, 15


def simulate_locus(X: torch.Tensor, rng: np.random.Generator, signal: bool):
    """Outcomes (M of n x T) and the causal variants of one locus."""
    n, p = X.shape
    grid = np.linspace(0, 1, T)
    Y = [rng.standard_normal((n, T)) for _ in range(M)]
    causal = []
    if signal:
        sd = X.std(dim=0).numpy()
        candidates = np.flatnonzero(sd > 0.3)
        causal = sorted(rng.choice(candidates, rng.integers(1, 3), replace=False).tolist())
        Xc = (X - X.mean(dim=0)).numpy()
        for j in causal:
            for m in range(M):
                centre, width = rng.uniform(0.2, 0.8), rng.uniform(0.05, 0.2)
                curve = rng.choice([-1, 1]) * 0.6 * np.exp(-0.5 * ((grid - centre) / width) ** 2)
                Y[m] += np.outer(Xc[:, j] / sd[j], curve)
    return [torch.from_numpy(y) for y in Y], causal


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def single_fits(X, Y, causal) -> list[dict]:
    rows = []
    for scope, wavelet in (("per_outcome", "la10"), ("per_outcome", "haar"), ("per_scale", "la10")):
        fit, seconds = timed(lambda s=scope, w=wavelet: mfsusie(X, Y, L=L, L_greedy=5, wavelet=w,
                                                               prior_variance_scope=s))
        found = sum(any(j in set(cs.tolist()) for cs in fit.sets["cs"]) for j in causal)
        rows.append({"prior_scope": scope, "wavelet": wavelet, "seconds": seconds, "n_iter": fit.n_iter,
                     "seconds_per_iter": seconds / max(fit.n_iter, 1), "n_cs": len(fit.sets["cs"]),
                     "causal_in_cs": f"{found}/{len(causal)}"})
    return rows


def scan_loci(n_loci: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    sim = simulate_genotypes(N, P * n_loci, seed=seed)
    dosages = np.nan_to_num(sim.dosages)
    loci, truth = [], {}
    for k in range(n_loci):
        X = torch.from_numpy(dosages[:, k * P:(k + 1) * P].copy())
        Y, causal = simulate_locus(X, rng, signal=rng.random() < 0.3)
        name = f"locus{k + 1}"
        truth[name] = causal
        loci.append(Locus.from_data(name, {"X": X, "Y": Y}))
    options = {"L_greedy": 5, "prior_variance_scope": "per_outcome"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result, t_scan = timed(lambda: scan(loci, L=L, first_max_iter=5, max_iter=100,
                                            functional_options=options))
        cold, t_loop = timed(lambda: {loc.name: mfsusie(**loc.load(), L=L, max_iter=100, **options)
                                      for loc in loci})
    diffs = [float((result.fits[name].pip - cold[name].pip).abs().max()) for name in result.fits]
    statuses = result.table["status"].value_counts().to_dict()
    iters = [f.n_iter for f in cold.values()]
    return {"loci": n_loci, "with_signal": sum(bool(c) for c in truth.values()), "scan_seconds": t_scan,
            "scan_loci_per_second": n_loci / t_scan, "loop_seconds": t_loop,
            "loop_loci_per_second": n_loci / t_loop, "statuses": statuses,
            "cold_iterations_median": float(np.median(iters)), "cold_iterations_max": int(max(iters)),
            "max_pip_diff_scan_vs_cold": max(diffs) if diffs else 0.0}


def markdown(summary: dict) -> str:
    lines = [f"# mfsusie benchmark (n = {N}, p = {P:,}, M = {M} x {T} positions, L = {L})", "",
             f"torch {summary['torch']}, 1 thread, float64 CPU, load average {summary['load']}", "",
             "| prior scope | wavelet | seconds | iterations | s/iteration | CS | causal in CS |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in summary["single"]:
        lines.append(f"| {r['prior_scope']} | {r['wavelet']} | {r['seconds']:.2f} | {r['n_iter']} | "
                     f"{r['seconds_per_iter']:.3f} | {r['n_cs']} | {r['causal_in_cs']} |")
    s = summary["scan"]
    lines += ["", f"Scan of {s['loci']} loci ({s['with_signal']} with signal): two-pass `scan` "
                  f"{s['scan_seconds']:.1f} s = **{s['scan_loci_per_second']:.2f} loci/s**; one by one at "
                  f"the full budget {s['loop_seconds']:.1f} s = {s['loop_loci_per_second']:.2f} loci/s; "
                  f"largest PIP difference scan vs cold {s['max_pip_diff_scan_vs_cold']:.1e}; "
                  f"statuses {s['statuses']}."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loci", type=int, default=20, help="loci in the scan (20)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", metavar="DIR", help="also write mfsusie_benchmark.json and .md here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"torch {torch.__version__}, 1 thread (torch and BLAS); float64 on CPU; "
          f"machine load average {load} on {os.cpu_count()} cores")
    rng = np.random.default_rng(args.seed)
    X = torch.from_numpy(np.nan_to_num(simulate_genotypes(N, P, seed=args.seed).dosages))
    Y, causal = simulate_locus(X, rng, signal=True)
    mfsusie(X[:, :50], [y[:, :8] for y in Y], L=3, max_iter=3)  # warm-up (first calls)
    print(f"1. one locus, n = {N}, p = {P:,}, M = {M} x {T} positions, L = {L} (L_greedy = 5); "
          f"causal variants {causal}")
    single = single_fits(X, Y, causal)
    print(f"  {'prior scope':<12} {'wavelet':<8} {'seconds':>8} {'iter':>5} {'s/iter':>7} {'CS':>3} "
          f"{'causal in CS':>12}")
    for r in single:
        print(f"  {r['prior_scope']:<12} {r['wavelet']:<8} {r['seconds']:8.2f} {r['n_iter']:5d} "
              f"{r['seconds_per_iter']:7.3f} {r['n_cs']:3d} {r['causal_in_cs']:>12}")
    print(f"2. scan of {args.loci} loci (30% with signal), L = {L}, first pass 5 iterations")
    s = scan_loci(args.loci, args.seed + 1)
    print(f"  two-pass scan          {s['scan_seconds']:7.2f} s  {s['scan_loci_per_second']:6.2f} loci/s   "
          f"statuses {s['statuses']}")
    print(f"  one by one (cold, 100) {s['loop_seconds']:7.2f} s  {s['loop_loci_per_second']:6.2f} loci/s   "
          f"(IBSS iterations median {s['cold_iterations_median']:.0f}, max {s['cold_iterations_max']}); "
          f"scan {s['loop_seconds'] / s['scan_seconds']:.1f}x")
    print(f"  largest PIP difference, scan fits vs cold fits: {s['max_pip_diff_scan_vs_cold']:.1e}")
    summary = {"torch": torch.__version__, "load": load, "n": N, "p": P, "M": M, "T": T, "L": L,
               "single": single, "scan": s}
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "mfsusie_benchmark.json").write_text(json.dumps(summary, indent=2))
        (out / "mfsusie_benchmark.md").write_text(markdown(summary))
        print(f"wrote {out / 'mfsusie_benchmark.json'} and {out / 'mfsusie_benchmark.md'}")
    return summary


if __name__ == "__main__":
    main()
