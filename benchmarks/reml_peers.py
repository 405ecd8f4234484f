"""torchgen REML against fastlmm and glimix-core on the same PLINK .bed, one run each.

The cohort is the one of ``reml_scaling.py`` (16,000 simulated samples by default, so
both scripts fit the same first n samples; two chromosomes of ``m / 2`` SNPs,
h2 = 0.3 + 0.2, no missing calls, intercept only); each tool reads the first n
samples from the .bed and fits REML from there, each fit in a fresh subprocess with
the same number of BLAS/torch threads:

* one GRM: torchgen ``method="exact"`` and ``"stochastic"``, fastlmm
  ``FastLMM().fit(y=..., K0_train=Bed)`` (REML h2 over a 1-D search on the
  eigendecomposition) and glimix-core ``LMM(y, 1, economic_qs(K), restricted=True)``
  (K from the .bed with numpy; its time includes building K);
* two GRMs (one per chromosome): torchgen exact and stochastic (one ``GRMStack``), and
  fastlmm's two-kernel fit ``FastLMM().fit(K0_train=chr1, K1_train=chr2)``
  (``h2_g = h2raw (1 - mixing)`` and ``h2raw mixing``).

Printed: each h2, wall time and CPU time (the load of other processes on this shared
machine disturbs CPU time far less), the differences to fastlmm's h2, and the wall-time
ratios (CPU-time ratios beside them) against
the goals (equal h2: exact within 1e-4, stochastic within 0.02; at least as fast as
fastlmm at n = 4,000; 4x faster at n = 8,000; two components 20x faster than fastlmm's
two-kernel fit at n = 4,000). The load average is printed and stored with every fit:
the machine is shared. Raw results go to ``benchmarks/results/reml_peers.json``.

Usage::

    .venv/bin/python benchmarks/reml_peers.py                       # single n = 4000, 8000; two n = 4000
    .venv/bin/python benchmarks/reml_peers.py --sizes 1000 --two-sizes 1000 --m 4000

Examples
--------
>>> speedup(10.0, 2.5)
'4.0x'
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reml_scaling import RESULTS, load_average, load_values, prepare_cohort, read_pheno  # noqa: E402


def _ids(pheno, n):
    return np.loadtxt(pheno, skiprows=1, usecols=(0, 1), dtype=str, max_rows=n)


def fit_torchgen(spec) -> dict:
    """torchgen from the .bed: one GRM or one GRMStack of the two chromosomes."""
    import torch

    from torchgenetics.io import read_plink
    from torchgenetics.operators import GRM
    from torchgenetics.reml import grm_stack, reml

    torch.set_num_threads(spec["threads"])
    n, (a, b) = spec["n"], spec["components"]
    y = torch.as_tensor(read_pheno(spec["pheno"], n))
    t0, c0 = time.perf_counter(), time.process_time()
    G = read_plink(spec["bfile"]).subset(samples=np.arange(n))
    if spec["n_components"] == 1:
        K = GRM(G)
    else:
        K = grm_stack(G, {"chr1": np.arange(*a), "chr2": np.arange(*b)})
    fit = reml(y, K, method=spec["method"], seed=spec["seed"])
    seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
    return {"seconds": seconds, "cpu_seconds": cpu_seconds, "h2": fit.h2.tolist(), "h2_total": fit.h2_total, "n_iter": fit.n_iter,
            "mc_se": fit.h2_total_mc_se, "path": fit.method, "converged": fit.converged, "loglik": fit.loglik,
            "kernel_products": fit.settings.get("kernel_products", 0),
            "cg_iterations": fit.settings.get("cg_iterations", [])}


def fit_fastlmm(spec) -> dict:
    """fastlmm ``FastLMM().fit`` on a pysnptools ``Bed`` (one kernel, or K0 = chr1, K1 = chr2)."""
    from fastlmm.inference import FastLMM
    from pysnptools.snpreader import Bed, SnpData

    n, (a, b) = spec["n"], spec["components"]
    y = SnpData(iid=_ids(spec["pheno"], n), sid=["pheno"], val=read_pheno(spec["pheno"], n)[:, None])
    t0, c0 = time.perf_counter(), time.process_time()
    bed = Bed(spec["bfile"], count_A1=True)[:n, :]
    if spec["n_components"] == 1:
        model = FastLMM(GB_goal=spec["gb"]).fit(y=y, K0_train=bed)
        h2 = [float(np.ravel(model.h2raw)[0])]
    else:
        model = FastLMM(GB_goal=spec["gb"]).fit(y=y, K0_train=bed[:, a[0]:a[1]], K1_train=bed[:, b[0]:b[1]])
        h2raw, mix = float(np.ravel(model.h2raw)[0]), float(model.mixer.mixing)
        h2 = [h2raw * (1 - mix), h2raw * mix]
    seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
    return {"seconds": seconds, "cpu_seconds": cpu_seconds, "h2": h2, "h2_total": float(sum(h2))}


def fit_glimix(spec) -> dict:
    """glimix-core REML on the eigendecomposition of K = Z Z'/m built from the .bed."""
    from bed_reader import open_bed
    from glimix_core.lmm import LMM
    from numpy_sugar.linalg import economic_qs

    n = spec["n"]
    y = read_pheno(spec["pheno"], n)
    t0, c0 = time.perf_counter(), time.process_time()
    with open_bed(spec["bfile"] + ".bed", count_A1=True) as bed:
        X = bed.read(index=np.s_[:n, :], dtype="float64")
    mu, sd = np.nanmean(X, 0), np.nanstd(X, 0)
    keep = sd > 0
    X = np.nan_to_num((X[:, keep] - mu[keep]) / sd[keep])
    K = X @ X.T / X.shape[1]
    del X
    lmm = LMM(y, np.ones((n, 1)), economic_qs(K), restricted=True)
    lmm.fit(verbose=False)
    seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
    h2 = float(lmm.v0 / (lmm.v0 + lmm.v1))
    return {"seconds": seconds, "cpu_seconds": cpu_seconds, "h2": [h2], "h2_total": h2}


TOOLS = {"torchgen": fit_torchgen, "fastlmm": fit_fastlmm, "glimix": fit_glimix}


def run(spec) -> dict:
    """One fit in a fresh process with ``spec["threads"]`` BLAS/OpenMP threads."""
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(spec["threads"])
    before = load_values()
    proc = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)], capture_output=True,
                          text=True, env=env)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed",
                "load_before": before, "load_after": load_values()}
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out.update(load_before=before, load_after=load_values())
    return out


def speedup(peer_seconds, ours_seconds) -> str:
    """``peer / ours`` formatted as ``"4.0x"``."""
    return f"{peer_seconds / ours_seconds:.1f}x"


def main(argv=None) -> dict:
    """Run every fit, print the comparison; returns the raw results.

    Examples
    --------
    >>> main(["--sizes", "300", "--two-sizes", "300", "--m", "600"])  # doctest: +SKIP
    """
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="*", default=[4000, 8000], help="n for the one-GRM fits")
    ap.add_argument("--two-sizes", type=int, nargs="*", default=[4000], help="n for the two-GRM fits")
    ap.add_argument("--m", type=int, default=20000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--gb", type=float, default=4.0, help="fastlmm GB_goal")
    ap.add_argument("--skip", nargs="*", default=[], help="tools/paths to skip, e.g. glimix fastlmm2")
    ap.add_argument("--workdir", default="/tmp/torchgen_reml_bench")
    ap.add_argument("--cohort-n", type=int, default=16000,
                    help="samples in the simulated cohort (default 16000, that of reml_scaling.py); fits use its first n")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=str(RESULTS / "reml_peers.json"),
                    help="write the raw results to this file ('' for none)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        spec = json.loads(args.worker)
        print(json.dumps(TOOLS[spec["tool"]](spec)))
        return {}

    n_max = max([args.cohort_n or 0] + args.sizes + args.two_sizes)
    print(f"REML against peers: m = {args.m:,}, {args.threads} thread(s) per fit; start: {load_average()}")
    load_start = load_values()
    meta = prepare_cohort(Path(args.workdir) / f"n{n_max}_m{args.m}", n_max, args.m, args.seed)
    base = {"bfile": meta["bfile"], "pheno": meta["pheno"], "threads": args.threads, "seed": args.seed,
            "components": meta["components"], "gb": args.gb}
    plan = [(n, 1) for n in args.sizes] + [(n, 2) for n in args.two_sizes]
    fits = [("torchgen", "exact"), ("torchgen", "stochastic"), ("fastlmm", None), ("glimix", None)]
    results = []
    for n, G in plan:
        for tool, method in fits:
            key = tool if G == 1 else f"{tool}{G}"
            if tool == "glimix" and G == 2 or key in args.skip or (method and f"{method}{G}" in args.skip):
                continue
            r = run({**base, "tool": tool, "method": method, "n": n, "n_components": G})
            label = f"{tool} {method}" if method else tool
            results.append({"n": n, "components": G, "tool": label, **r})
            state = r.get("error") or (f"{r['seconds']:8.1f} s (CPU {r['cpu_seconds']:7.1f} s)  "
                                       f"h2 {', '.join(f'{h:.6f}' for h in r['h2'])}")
            print(f"  n = {n:>5,}  {G} GRM  {label:<20} {state}   [{load_average()}]", flush=True)

    print("\nsummary (peer time / torchgen time; h2 differences to fastlmm):")
    goals = {(4000, 1): 1.0, (8000, 1): 4.0, (4000, 2): 20.0}
    for n, G in plan:
        rows = {r["tool"]: r for r in results if r["n"] == n and r["components"] == G and "error" not in r}
        ref = rows.get("fastlmm")
        if ref is None:
            continue
        for label in ("torchgen exact", "torchgen stochastic", "glimix"):
            r = rows.get(label)
            if r is None:
                continue
            diff = max(abs(a - b) for a, b in zip(r["h2"], ref["h2"], strict=True))
            line = f"  n = {n:>5,} {G} GRM  {label:<20} max |h2 - fastlmm h2| = {diff:.2e}"
            if label.startswith("torchgen"):
                tol = 1e-4 if label.endswith("exact") else 0.02
                line += f" ({'meets' if diff <= tol else 'MISSES'} {tol:g})"
                ratio = ref["seconds"] / r["seconds"]
                line += (f"; fastlmm / torchgen time = {ratio:.2f} "
                         f"(CPU time {ref['cpu_seconds'] / r['cpu_seconds']:.2f})")
                if (n, G) in goals:
                    goal = goals[(n, G)]
                    line += f" (goal >= {goal:g}: {'met' if ratio >= goal else 'NOT met'})"
            print(line)
    print(f"end: {load_average()}")
    out = {"m": args.m, "threads": args.threads, "cohort_n": n_max, "load_start": load_start,
           "load_end": load_values(), "command": " ".join([Path(sys.executable).name, *sys.argv]),
           "results": results}
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=1))
        print(f"raw results: {args.json}")
    return out


if __name__ == "__main__":
    main()
