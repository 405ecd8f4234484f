"""REML wall time against n: the stochastic (matrix-free) path versus the exact path.

One cohort of ``max(--sizes)`` samples x ``--m`` SNPs (two chromosomes) is simulated
with :func:`torchgenetics.datasets.simulate_genotypes` and written to a PLINK .bed; the
phenotype has h2 = 0.3 + 0.2 over the two chromosomes. For each n the first n samples
are fitted with one GRM, from the .bed file (decode, standardize, fit), once with
``method="exact"`` and once with ``method="stochastic"``, each in a fresh subprocess
(so its peak RSS is its own). The script prints, per n: both wall times and their
ratio (and the CPU seconds of each fit, which the load of other processes on this
shared machine disturbs far less than wall time), both h2 (and the stochastic Monte
Carlo SE), the kernel products and PCG
iterations, the share of the time spent in GRM products and their GFLOP/s against this
machine's GEMM (measured in the same run: ``Z (Z^T V)`` at the fit's shape and a square
float64/float32 GEMM); then the fitted exponent ``t ~ n^a`` of each path (over all
sizes and over n >= 4000), the crossover n, and the working memory of the stochastic
path with the genotypes streamed (one AI iteration, ``resident=False``): peak RSS above
the pre-fit RSS against ``n x n`` and ``n x probes`` doubles. The load average is
printed before and after each fit and stored with it: the machine is shared, so times
are noisy.

A fit that exceeds ``--time-budget`` seconds (or needs more memory than the budget
allows, which ``reml`` reports before it starts) is stopped and reported as skipped
with the reason; the table then shows the value the fitted power law of the measured
sizes extrapolates to, marked as extrapolated. Raw results go to
``benchmarks/results/reml_scaling.json`` (``--json``).

Usage::

    .venv/bin/python benchmarks/reml_scaling.py                          # n = 1k ... 16k (long)
    .venv/bin/python benchmarks/reml_scaling.py --time-budget 3600       # stop any fit after 1 h
    .venv/bin/python benchmarks/reml_scaling.py --sizes 1000 2000 4000 8000 --cohort-n 16000
    .venv/bin/python benchmarks/reml_scaling.py --sizes 500 1000 --m 2000 --memory-sizes 1000
    .venv/bin/python benchmarks/reml_scaling.py --sizes 16000 --memory-only   # memory probe only

Examples
--------
>>> round(fit_exponent([1000, 2000, 4000], [1.0, 2.0, 4.0]), 6)
1.0
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DEFAULT_SIZES = (1000, 2000, 4000, 8000, 16000)
RESULTS = Path(__file__).resolve().parent / "results"


def load_values() -> list:
    """The 1, 5 and 15 minute load averages.

    Examples
    --------
    >>> len(load_values())
    3
    """
    return [round(v, 2) for v in os.getloadavg()]


def load_average() -> str:
    """``"1-min load a.b on c cores"`` (the machine is shared; times are noisy).

    Examples
    --------
    >>> "cores" in load_average()
    True
    """
    return f"load average {os.getloadavg()[0]:.1f} (1 min) on {os.cpu_count()} cores"


def rss_bytes() -> int:
    """Current resident set size of this process (``/proc/self/statm``)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss_bytes() -> int:
    """Peak resident set size of this process since start or the last :func:`reset_peak_rss`.

    ``VmHWM`` of ``/proc/self/status`` (``getrusage`` where that is unavailable).
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def reset_peak_rss() -> bool:
    """Reset the peak RSS to the current RSS (Linux ``clear_refs``); False if not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def prepare_cohort(workdir, n, m, seed=0) -> dict:
    """Simulate (or reuse) the benchmark cohort: ``cohort.bed/.bim/.fam`` and ``cohort.pheno``.

    Parameters
    ----------
    workdir : path
        Folder for the files; reused when ``meta.json`` there matches ``(n, m, seed)``.
    n, m : int
        Samples and SNPs (two chromosomes of ``m / 2`` SNPs).
    seed : int

    Returns
    -------
    dict
        ``bfile``, ``pheno`` (paths), ``n``, ``m``, ``seed``, ``h2`` (target per
        chromosome), ``realized_h2`` and ``components`` (two index ranges).

    Examples
    --------
    >>> import tempfile
    >>> meta = prepare_cohort(tempfile.mkdtemp(), 200, 300)
    >>> meta["n"], len(meta["components"])
    (200, 2)
    """
    from torchgenetics.datasets import simulate_genotypes, simulate_phenotype, write_plink

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    meta_path = workdir / "meta.json"
    half = m // 2
    if meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        if (meta["n"], meta["m"], meta["seed"]) == (n, m, seed) and Path(meta["bfile"] + ".bed").is_file():
            return meta
    sim = simulate_genotypes(n, m, chromosomes=[half, m - half], seed=seed, dtype=np.float32)
    comps = [np.arange(half), np.arange(half, m)]
    ph = simulate_phenotype(sim, h2=[0.3, 0.2], n_causal=[m // 20, m // 20], components=comps, seed=seed + 1)
    bfile = str(workdir / "cohort")
    write_plink(bfile, sim.dosages, sim.samples, sim.variants)
    with open(workdir / "cohort.pheno", "w") as f:
        f.write("FID\tIID\tpheno\n")
        for fid, iid, v in zip(sim.samples["fid"], sim.samples["iid"], ph.y, strict=True):
            f.write(f"{fid}\t{iid}\t{v:.10g}\n")
    meta = {"bfile": bfile, "pheno": str(workdir / "cohort.pheno"), "n": n, "m": m, "seed": seed,
            "h2": [0.3, 0.2], "realized_h2": float(ph.realized_h2), "components": [[0, half], [half, m]]}
    meta_path.write_text(json.dumps(meta))
    return meta


def read_pheno(path, n) -> np.ndarray:
    """The first ``n`` phenotype values of ``cohort.pheno`` (same order as the .fam)."""
    return np.loadtxt(path, skiprows=1, usecols=2, max_rows=n)


class ProductMeter:
    """Counts GRM products (columns and seconds) by wrapping the kernel's block product.

    Measurement only: the wrapped function is called unchanged.

    Examples
    --------
    >>> with ProductMeter() as meter:
    ...     pass
    >>> meter.calls
    0
    """

    def __init__(self):
        self.calls, self.columns, self.seconds = 0, 0, 0.0
        self.by_width = {}  # columns of the right-hand side -> [calls, seconds]

    def __enter__(self):
        from torchgenetics.operators import grm

        self._cls, self._orig = grm._KernelState, grm._KernelState.matmul
        meter, orig = self, self._orig

        def timed(state, x):
            t0 = time.perf_counter()
            out = orig(state, x)
            dt = time.perf_counter() - t0
            meter.seconds += dt
            meter.calls += 1
            meter.columns += int(x.shape[1])
            entry = meter.by_width.setdefault(int(x.shape[1]), [0, 0.0])
            entry[0] += 1
            entry[1] += dt
            return out

        self._cls.matmul = timed
        return self

    def __exit__(self, *exc):
        self._cls.matmul = self._orig


def gemm_rate(n, m, k, threads, repeats=3) -> float:
    """This machine's float64 GFLOP/s for ``Z (Z^T V)`` with Z n x m in memory, V n x k.

    Examples
    --------
    >>> gemm_rate(200, 300, 8, 1, repeats=1) > 0
    True
    """
    import torch

    torch.set_num_threads(threads)
    g = torch.Generator().manual_seed(0)
    Z = torch.randn(n, m, generator=g, dtype=torch.float64)
    V = torch.randn(n, k, generator=g, dtype=torch.float64)
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        Z @ (Z.T @ V)
        best = min(best, time.perf_counter() - t0)
    return 4.0 * n * m * k / best / 1e9


def gemm_peak(threads, size=2048, repeats=3) -> dict:
    """Square GEMM GFLOP/s of this machine in float64 and float32 (``size`` x ``size``).

    Examples
    --------
    >>> sorted(gemm_peak(1, size=64, repeats=1))
    ['float32', 'float64']
    """
    import torch

    torch.set_num_threads(threads)
    out = {}
    for dt in (torch.float64, torch.float32):
        g = torch.Generator().manual_seed(0)
        A = torch.randn(size, size, generator=g, dtype=dt)
        B = torch.randn(size, size, generator=g, dtype=dt)
        best = math.inf
        for _ in range(repeats):
            t0 = time.perf_counter()
            A @ B
            best = min(best, time.perf_counter() - t0)
        out[str(dt).replace("torch.", "")] = 2.0 * size**3 / best / 1e9
    return out


def worker(spec: dict) -> dict:
    """One fit from the .bed (in its own process): time, estimates, counters, memory.

    ``spec``: ``bfile, pheno, n, method, probes, threads, seed, stream, max_iter``.
    """
    import warnings

    import torch

    from torchgenetics.errors import MemoryBudgetError
    from torchgenetics.io import read_plink
    from torchgenetics.operators import GRM
    from torchgenetics.reml import reml

    torch.set_num_threads(spec["threads"])
    n = spec["n"]
    y = torch.as_tensor(read_pheno(spec["pheno"], n))
    # warm-up on a tiny problem so that lazily imported modules are not counted as working memory
    g = torch.Generator().manual_seed(0)
    Zw = torch.randn(60, 30, generator=g, dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reml(torch.randn(60, generator=g, dtype=torch.float64), Zw @ Zw.T / 30, method=spec["method"],
             num_probes=4, slq_probes=4, lanczos_steps=4, precond_rank=4, max_iter=1)
    t0, c0 = time.perf_counter(), time.process_time()
    G = read_plink(spec["bfile"]).subset(samples=np.arange(n))
    K = GRM(G, resident=False if spec["stream"] else None)
    out = {"n": n, "method": spec["method"], "stream": spec["stream"]}
    if spec["stream"]:
        # memory probe: the one-off passes (variant stats, GRM diagonal) run before the window;
        # their blocks are sized by the memory budget, not by the fit
        _ = G.stats
        K.diagonal()
        out["window_reset"] = reset_peak_rss()
    rss0 = rss_bytes()
    try:
        with ProductMeter() as meter, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fit = reml(y, K, method=spec["method"], num_probes=spec["probes"], seed=spec["seed"],
                       max_iter=spec["max_iter"])
    except MemoryBudgetError as err:
        return {**out, "skipped": str(err)}
    seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
    m_eff = K.m_eff
    out.update(
        seconds=seconds, cpu_seconds=cpu_seconds, h2=fit.h2_total, h2_se=fit.h2_total_se, h2_mc_se=fit.h2_total_mc_se,
        loglik=fit.loglik, n_iter=fit.n_iter, converged=fit.converged, fit_method=fit.method,
        kernel_products=fit.settings.get("kernel_products", 0),
        cg_iterations=fit.settings.get("cg_iterations", []), m_eff=m_eff,
        product_calls=meter.calls, product_columns=meter.columns, product_seconds=meter.seconds,
        product_by_width={str(k): v for k, v in sorted(meter.by_width.items())},
        product_gflops=(4.0 * n * m_eff * meter.columns / meter.seconds / 1e9) if meter.seconds else None,
        rss_before=rss0, rss_peak=peak_rss_bytes(), resident=bool(K.resident),
        warnings=[str(w.message) for w in caught],
    )
    return out


def run_worker(spec: dict, timeout=None, memory_budget=None) -> dict:
    """Run :func:`worker` in a fresh Python process and return its result.

    The worker is stopped after ``timeout`` seconds (None: no limit) and reported as
    skipped; the load average before and after the fit is stored with the result.
    ``memory_budget`` (e.g. ``"16GiB"``) is passed as ``TORCHGEN_MEMORY_BUDGET``.
    """
    before = load_values()
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(spec["threads"])  # SciPy/NumPy BLAS as well as torch
    if memory_budget:
        env["TORCHGEN_MEMORY_BUDGET"] = str(memory_budget)
    t0 = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)],
                              capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"n": spec["n"], "method": spec["method"], "load_before": before, "load_after": load_values(),
                "skipped": f"stopped at the time budget of {timeout:.0f} s (--time-budget)",
                "timed_out": True, "elapsed": time.perf_counter() - t0}
    if proc.returncode != 0:
        return {"n": spec["n"], "method": spec["method"], "load_before": before, "load_after": load_values(),
                "skipped": f"worker failed: {proc.stderr[-2000:]}"}
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out.update(load_before=before, load_after=load_values())
    return out


def extrapolate(ns, ts, n) -> float:
    """Time at ``n`` from the power law ``t = c n^a`` fitted to the measured points.

    Examples
    --------
    >>> round(extrapolate([1, 2], [1.0, 8.0], 4), 6)
    64.0
    """
    a, b = np.polyfit(np.log(ns), np.log(ts), 1)
    return float(math.exp(b + a * math.log(n)))


def fit_exponent(ns, ts) -> float:
    """Least-squares slope of ``log t`` on ``log n``.

    Examples
    --------
    >>> round(fit_exponent([1, 2, 4], [1, 8, 64]), 6)
    3.0
    """
    return float(np.polyfit(np.log(ns), np.log(ts), 1)[0])


def crossover(ns, exact, stochastic):
    """First measured n where stochastic is faster, and the n where the fitted power laws cross.

    Examples
    --------
    >>> crossover([1, 2, 4], [1, 8, 64], [4, 8, 16])[0]
    4
    """
    measured = next((n for n, a, b in zip(ns, exact, stochastic, strict=True) if b < a), None)
    if len(ns) < 2:
        return measured, None
    ae, be = np.polyfit(np.log(ns), np.log(exact), 1)
    as_, bs = np.polyfit(np.log(ns), np.log(stochastic), 1)
    fitted = math.exp((bs - be) / (ae - as_)) if ae != as_ else None
    return measured, fitted


def _mb(x) -> str:
    return f"{x / 2**20:,.0f} MiB"


def main(argv=None) -> dict:
    """Run the benchmark and print the table; returns the raw results.

    Examples
    --------
    >>> main(["--sizes", "300", "--m", "600", "--memory-sizes", "300"])  # doctest: +SKIP
    """
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES))
    ap.add_argument("--m", type=int, default=20000)
    ap.add_argument("--probes", type=int, default=100)
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads per fit (default 1)")
    ap.add_argument("--exact-max", type=int, default=None, help="skip the exact path above this n")
    ap.add_argument("--memory-budget", default=None,
                    help="TORCHGEN_MEMORY_BUDGET for every fit, e.g. 16GiB (default: detected, half of free memory)")
    ap.add_argument("--time-budget", type=float, default=None,
                    help="stop a fit after this many seconds and report it as skipped (default: no limit)")
    ap.add_argument("--memory-sizes", type=int, nargs="*", default=None,
                    help="n for the streamed memory probe (default: the largest size)")
    ap.add_argument("--memory-only", action="store_true", help="run only the streamed memory probe")
    ap.add_argument("--workdir", default="/tmp/torchgen_reml_bench")
    ap.add_argument("--cohort-n", type=int, default=None,
                    help="samples in the simulated cohort (default max n); fits use its first n")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=str(RESULTS / "reml_scaling.json"),
                    help="write the raw results to this file ('' for none)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return {}

    sizes = sorted(args.sizes)
    print(f"REML scaling: n = {sizes}, m = {args.m:,}, {args.probes} probes, {args.threads} thread(s)")
    print(f"start: {load_average()}")
    load_start = load_values()
    t0 = time.perf_counter()
    n_cohort = max(args.cohort_n or 0, sizes[-1])
    meta = prepare_cohort(Path(args.workdir) / f"n{n_cohort}_m{args.m}", n_cohort, args.m, args.seed)
    print(f"cohort {meta['bfile']}.bed ready in {time.perf_counter() - t0:.1f} s "
          f"(realized h2 of all {n_cohort} samples: {meta['realized_h2']:.3f})")
    base = {"bfile": meta["bfile"], "pheno": meta["pheno"], "probes": args.probes, "threads": args.threads,
            "seed": args.seed, "stream": False, "max_iter": 50}
    rows = []
    for n in [] if args.memory_only else sizes:
        row = {"n": n}
        for method in ("stochastic", "exact"):
            if method == "exact" and args.exact_max is not None and n > args.exact_max:
                row[method] = {"skipped": f"n > --exact-max {args.exact_max}"}
                continue
            row[method] = run_worker({**base, "n": n, "method": method}, timeout=args.time_budget,
                                     memory_budget=args.memory_budget)
            r = row[method]
            state = r.get("skipped") or (f"{r['seconds']:.1f} s (CPU {r['cpu_seconds']:.1f} s), h2 {r['h2']:.4f}, "
                                         f"{r['n_iter']} iterations")
            print(f"  n = {n:>6,} {method:<10} {state}   [{load_average()}]", flush=True)
        rows.append(row)

    rate = None if args.memory_only else gemm_rate(min(sizes[-1], 4000), args.m, args.probes + 6, args.threads)
    peak = None if args.memory_only else gemm_peak(args.threads)
    if rows:
        print(f"\nthis machine's GEMM, {args.threads} thread(s), {load_average()}: Z (Z' V) float64 at "
              f"n = {min(sizes[-1], 4000)}, k = {args.probes + 6}: {rate:.1f} GFLOP/s; square 2048 GEMM: "
              f"float64 {peak['float64']:.1f}, float32 {peak['float32']:.1f} GFLOP/s")
        print("\n     n | exact s | stoch s | exact/stoch | CPU s exact | CPU s stoch | CPU exact/stoch | h2 exact "
              "| h2 stoch (MC SE) | |diff| | products (cols) | CG its/solve | product GFLOP/s | time in products")
    for method in ("stochastic", "exact"):
        pts = [(r["n"], r[method]["seconds"]) for r in rows if "skipped" not in r[method]]
        for r in rows:
            if "skipped" in r[method] and len(pts) >= 2 and r["n"] > pts[-1][0]:
                r[method]["extrapolated_seconds"] = extrapolate(*zip(*pts, strict=True), r["n"])
    for row in rows:
        e, s = row["exact"], row["stochastic"]
        es = (f"~{e['extrapolated_seconds']:.0f}*" if "extrapolated_seconds" in e else "skipped") \
            if "skipped" in e else f"{e['seconds']:7.1f}"
        ss = "skipped" if "skipped" in s else f"{s['seconds']:7.1f}"
        ratio = "" if "skipped" in e or "skipped" in s else f"{e['seconds'] / s['seconds']:.2f}"
        ce = "" if "skipped" in e else f"{e['cpu_seconds']:.1f}"
        cs = "" if "skipped" in s else f"{s['cpu_seconds']:.1f}"
        cratio = "" if "skipped" in e or "skipped" in s else f"{e['cpu_seconds'] / s['cpu_seconds']:.2f}"
        he = "" if "skipped" in e else f"{e['h2']:.4f}"
        if "skipped" in s:
            print(f"{row['n']:>6} | {es:>7} | {ss:>7} | {ratio:>11} | {ce:>11} | {cs:>11} | {cratio:>15} | {he:>8} |")
            continue
        hs = f"{s['h2']:.4f} ({s['h2_mc_se']:.4f})"
        diff = "" if "skipped" in e else f"{abs(e['h2'] - s['h2']):.4f}"
        cg = np.mean(s["cg_iterations"]) if s["cg_iterations"] else float("nan")
        print(f"{row['n']:>6} | {es:>7} | {ss:>7} | {ratio:>11} | {ce:>11} | {cs:>11} | {cratio:>15} | {he:>8} | "
              f"{hs:>16} | {diff:>6} | "
              f"{s['product_calls']:>4} ({s['product_columns']:>6}) | {cg:12.1f} | {s['product_gflops']:15.1f} | "
              f"{s['product_seconds'] / s['seconds']:.0%}")

    if any("extrapolated_seconds" in r[m] for r in rows for m in ("exact", "stochastic")):
        print("  * not measured: the fit was stopped (see 'skipped' in the JSON); the value is the power law "
              "of the measured sizes extrapolated")
    result = {"sizes": sizes, "m": args.m, "probes": args.probes, "threads": args.threads,
              "memory_budget": args.memory_budget, "time_budget": args.time_budget, "gemm_gflops": rate,
              "gemm_peak_gflops": peak, "load_start": load_start, "rows": rows,
              "command": " ".join([Path(sys.executable).name, *sys.argv])}
    for method in ("stochastic", "exact"):
        pts = [(r["n"], r[method]["seconds"]) for r in rows if "skipped" not in r[method]]
        if len(pts) >= 2:
            a = fit_exponent(*zip(*pts, strict=True))
            result[f"exponent_{method}"] = a
            goal = "goal <= 1.3" if method == "stochastic" else "expected <= 3 (n^2 m GRM + 4/3 n^3 block tridiagonal reduction)"
            print(f"fitted exponent, {method}: t ~ n^{a:.2f} over n = {[p[0] for p in pts]} ({goal})")
            cpu = [(r["n"], r[method]["cpu_seconds"]) for r in rows if "skipped" not in r[method]]
            a_cpu = fit_exponent(*zip(*cpu, strict=True))
            result[f"exponent_{method}_cpu"] = a_cpu
            print(f"    on CPU seconds: t ~ n^{a_cpu:.2f}")
            upper = [p for p in pts if p[0] >= 4000]
            if 2 <= len(upper) < len(pts):
                a_up = fit_exponent(*zip(*upper, strict=True))
                a_up_cpu = fit_exponent(*zip(*[c for c in cpu if c[0] >= 4000], strict=True))
                result[f"exponent_{method}_n_ge_4000"] = a_up
                result[f"exponent_{method}_cpu_n_ge_4000"] = a_up_cpu
                print(f"    over n = {[p[0] for p in upper]} only: t ~ n^{a_up:.2f} (CPU seconds: n^{a_up_cpu:.2f})")
    both = [r for r in rows if "skipped" not in r["exact"] and "skipped" not in r["stochastic"]]
    if both:
        measured, fitted = crossover([r["n"] for r in both], [r["exact"]["seconds"] for r in both],
                                     [r["stochastic"]["seconds"] for r in both])
        result["crossover_measured"], result["crossover_fitted"] = measured, fitted
        cm, cf = crossover([r["n"] for r in both], [r["exact"]["cpu_seconds"] for r in both],
                           [r["stochastic"]["cpu_seconds"] for r in both])
        result["crossover_cpu_measured"], result["crossover_cpu_fitted"] = cm, cf
        print(f"crossover: first measured n with stochastic faster: {measured}; "
              f"fitted power laws cross at n ~ {fitted:,.0f}" if fitted else f"crossover: {measured}")
        print(f"    on CPU seconds: first measured {cm}; fitted n ~ {cf:,.0f}" if cf else f"    on CPU seconds: {cm}")

    mem_sizes = [sizes[-1]] if args.memory_sizes is None else args.memory_sizes
    if mem_sizes:
        print("\nstochastic working memory, genotypes streamed (resident=False), one AI iteration "
              "(after the one-off variant-stats and GRM-diagonal passes):")
        print("     n | peak RSS - pre-fit RSS | n x n doubles | n x probes doubles | ratio to n x probes")
        result["memory"] = []
        for n in mem_sizes:
            r = run_worker({**base, "n": n, "method": "stochastic", "stream": True, "max_iter": 1},
                           memory_budget=args.memory_budget)
            result["memory"].append(r)
            if "skipped" in r:
                print(f"{n:>6} | skipped: {r['skipped'][:200]}")
                continue
            extra = r["rss_peak"] - r["rss_before"]
            print(f"{n:>6} | {_mb(extra):>22} | {_mb(8 * n * n):>13} | {_mb(8 * n * args.probes):>18} | "
                  f"{extra / (8 * n * args.probes):.1f}")
    print(f"\nend: {load_average()}; total {time.perf_counter() - t0:.0f} s")
    result["load_end"] = load_values()
    result["total_seconds"] = time.perf_counter() - t0
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1))
        print(f"raw results: {args.json}")
    return result


if __name__ == "__main__":
    main()
