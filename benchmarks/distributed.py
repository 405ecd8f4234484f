"""Distributed GRM products and REML on 1 vs 2 CPU processes, and the cost model at scale.

Measured (one run, configurations interleaved so that machine load hits them alike):

* ``GRM matmul``: ``K V`` with the variants sharded over the ranks
  (``GRM(G, distributed=True, resident=True)``), ``V`` of ``k`` columns;
* ``REML iteration``: stochastic AI-REML on the same genotypes (time of
  the likelihood evaluations after the one at the starting point, per iteration, so the
  once-per-fit setup is left out), and the genotype passes it makes;

each for 1 process x 1 thread, 1 process x 2 threads and 2 processes x 1 thread
(Gloo). The communication share is measured by timing the ``all_reduce`` of every
product separately: a barrier first (its time is the wait for the slower rank,
``wait``), then the ``all_reduce`` itself (``comm``: transfer and latency).

Then the analytic cost model (:func:`reml_cost`, written up in
``benchmarks/DISTRIBUTED_COST_MODEL.md``) is calibrated on the measured single-process
rate and all_reduce times, checked against the 2-process measurement, and evaluated
for a 500,000-sample, 1,000,000-variant REML on 8 A100 GPUs.

Usage::

    .venv/bin/python benchmarks/distributed.py                 # n=3000, m=12000, k=32
    .venv/bin/python benchmarks/distributed.py --model-only    # the cost model tables only

Examples
--------
>>> round(reml_cost(500_000, 1_000_000, 8, A100_NVLINK)["iteration_s"], 1) > 0
True
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from grm_matmul import write_bed  # noqa: E402

# ----------------------------------------------------------------------------- cost model
#: A100-SXM4-80GB in a DGX/HGX node: FP64 tensor-core peak 19.5 TFLOP/s (FP32 19.5 as well,
#: TF32 156 is too coarse for 1e-8 CG), HBM2e 2.0 TB/s, 80 GB; NCCL all-reduce bus bandwidth
#: ~230 GB/s over NVLink3/NVSwitch, ~10 us per ring step; host-to-device PCIe 4.0 x16 ~25 GB/s.
A100_NVLINK = dict(name="8x A100-80GB, NVLink (one node)", flops=19.5e12, efficiency=0.7,
                   hbm_bw=2.0e12, mem_bytes=80e9, link_bw=230e9, latency=10e-6, pcie_bw=25e9)
#: The same GPUs spread over nodes, one HDR InfiniBand NIC (200 Gb/s = 25 GB/s) per GPU.
A100_IB = dict(A100_NVLINK, name="8x A100-80GB over HDR InfiniBand", link_bw=25e9, latency=20e-6)

#: REML settings (torchgenetics.reml defaults) and iteration counts assumed at biobank scale.
REML_DEFAULTS = dict(covariates=11, kernels=1, probes=100, slq_probes=30, lanczos=25,
                     precond_width=110, power_iters=1, cg_probe=30, cg_main=15, cg_ai=30,
                     iterations=8)


def product_time(n, m_local, k, hw, bytes_per=8, resident=True, stream_rate=None):
    """Seconds of one sharded product ``Z_r (Z_r^T V)`` plus its all_reduce on one rank.

    ``compute = max(4 n m_r k / (flops * efficiency), 2 n m_r b / hbm_bw)`` (two GEMMs of
    ``2 n m_r k`` flops, or reading ``Z_r`` twice when that is slower: small ``k``);
    ``comm = 2 (R-1)/R n k b / link_bw + 2 (R-1) latency`` (ring all_reduce of ``n x k``);
    a streamed shard needs ``stream = n m_r / stream_rate`` (host decode and copy,
    genotypes/s), overlapped with compute by the double-buffered block reader, so a pass
    takes ``max(compute, stream) + comm``. Returns ``(compute, comm, stream)``.
    """
    R = hw.get("ranks", 1)
    compute = max(4.0 * n * m_local * k / (hw["flops"] * hw["efficiency"]),
                  2.0 * n * m_local * bytes_per / hw["hbm_bw"])
    comm = 0.0 if R == 1 else (2.0 * (R - 1) / R * n * k * bytes_per / hw["link_bw"]
                               + 2.0 * (R - 1) * hw["latency"])
    stream = 0.0 if resident else n * m_local / stream_rate
    return compute, comm, stream


def reml_passes(settings=None) -> list:
    """``(count, k)`` genotype passes of one stochastic AI-REML iteration and of the setup.

    Per iteration (one evaluation, see ``torchgenetics.reml.stochastic``): PCG on
    ``[X | y | probes]`` to the probe tolerance, ``[X | y]`` on to ``cg_tol``, SLQ's
    Lanczos steps on the SLQ probes, one ``K P y`` pass, the AI solve on ``G`` columns.
    """
    s = dict(REML_DEFAULTS, **(settings or {}))
    c, G = s["covariates"], s["kernels"]
    iteration = [(s["cg_probe"], c + 1 + s["probes"]), (s["cg_main"], c + 1),
                 (s["lanczos"], s["slq_probes"]), (1, G), (s["cg_ai"], G)]
    setup = [(s["power_iters"] + 2, s["precond_width"]), (1, s["probes"])]
    return iteration, setup


def reml_cost(n, m, ranks, hw, settings=None, bytes_per=8, resident=None, stream_rate=None) -> dict:
    """Predicted REML time on ``ranks`` devices (see ``benchmarks/DISTRIBUTED_COST_MODEL.md``).

    Parameters
    ----------
    n, m : int
        Samples and (polymorphic) variants.
    ranks : int
    hw : dict
        Device and link figures (:data:`A100_NVLINK`).
    settings : dict, optional
        Overrides of :data:`REML_DEFAULTS`.
    bytes_per : int
        8 (float64) or 4 (float32).
    resident : bool, optional
        Whether each rank's standardized shard stays in device memory (default: when
        ``n m / R * bytes_per`` fits in 80% of ``mem_bytes``).
    stream_rate : float, optional
        Genotypes per second one rank decodes and copies when not resident.

    Returns
    -------
    dict
        ``iteration_s``, ``setup_s``, ``fit_s`` and the compute / comm / stream split of an
        iteration, the passes per iteration, and whether the shard is resident.
    """
    s = dict(REML_DEFAULTS, **(settings or {}))
    hw = dict(hw, ranks=ranks)
    m_local = m / ranks
    shard_bytes = n * m_local * bytes_per
    if resident is None:
        resident = shard_bytes <= 0.8 * hw["mem_bytes"]
    if not resident and stream_rate is None:
        stream_rate = hw["pcie_bw"] / bytes_per
    iteration, setup = reml_passes(s)

    def total(passes):
        parts, wall = np.zeros(3), 0.0
        for count, k in passes:
            compute, comm, stream = product_time(n, m_local, k, hw, bytes_per, resident, stream_rate)
            parts += count * np.array([compute, comm, stream])
            wall += count * (max(compute, stream) + comm)
        return parts, wall

    (it, it_wall), (_, st_wall) = total(iteration), total(setup)
    return {"iteration_s": it_wall, "compute_s": float(it[0]), "comm_s": float(it[1]),
            "stream_s": float(it[2]), "setup_s": st_wall,
            "fit_s": float(st_wall + s["iterations"] * it_wall),
            "passes": int(sum(c for c, _ in iteration)), "resident": bool(resident),
            "shard_gb": shard_bytes / 1e9}


def _fmt_s(t):
    return f"{t:.3g} s" if t < 120 else (f"{t / 60:.3g} min" if t < 7200 else f"{t / 3600:.3g} h")


def model_tables(stream_rate_per_core=None) -> str:
    """Markdown tables of the model at biobank scale (R = 1..64; 500k x 1M)."""
    n, m = 500_000, 1_000_000
    lines = ["| ranks | shard (fp64) | resident | compute / it | comm / it | stream / it | "
             "iteration | fit (8 it + setup) |", "|---:|---:|:---:|---:|---:|---:|---:|---:|"]
    for R in (1, 2, 8, 16, 64):
        c = reml_cost(n, m, R, A100_NVLINK)
        lines.append(f"| {R} | {c['shard_gb']:.0f} GB | {'yes' if c['resident'] else 'no'} | "
                     f"{_fmt_s(c['compute_s'])} | {_fmt_s(c['comm_s'])} | {_fmt_s(c['stream_s'])} | "
                     f"{_fmt_s(c['iteration_s'])} | {_fmt_s(c['fit_s'])} |")
    out = ["Model, 500,000 samples x 1,000,000 variants, float64, A100-80GB + NVLink "
           "(not resident: streamed at PCIe 25 GB/s):", "", *lines, ""]
    rows = [("8 GPUs, NVLink, resident (compute floor)", reml_cost(n, m, 8, A100_NVLINK, resident=True)),
            ("8 GPUs, InfiniBand, resident", reml_cost(n, m, 8, A100_IB, resident=True)),
            ("8 GPUs, NVLink, streamed over PCIe", reml_cost(n, m, 8, A100_NVLINK, resident=False))]
    if stream_rate_per_core is not None:
        rate = 16 * stream_rate_per_core  # 16 host cores per GPU (DGX A100: 128 cores / 8 GPUs)
        rows.append((f"8 GPUs, streamed, host decode 16 cores/GPU ({rate:.3g} genotypes/s)",
                     reml_cost(n, m, 8, A100_NVLINK, resident=False, stream_rate=min(
                         rate, A100_NVLINK["pcie_bw"] / 8))))
    out += ["| scenario | iteration | comm share | fit |", "|---|---:|---:|---:|"]
    for label, c in rows:
        out.append(f"| {label} | {_fmt_s(c['iteration_s'])} | "
                   f"{100 * c['comm_s'] / c['iteration_s']:.2f}% | {_fmt_s(c['fit_s'])} |")
    return "\n".join(out)


# ----------------------------------------------------------------------------- measurement
_STATE: dict = {}  # per rank process: operators and data kept between runs


@contextmanager
def comm_timer():
    """Time every sharded product's all_reduce (after a barrier that absorbs the imbalance)."""
    import torch.distributed as dist

    from torchgenetics.distributed import context

    original = context.all_reduce_sum
    stats = {"wait": 0.0, "comm": 0.0, "calls": 0}

    def timed(tensor, group=None):
        t0 = time.perf_counter()
        if context.world_size(group) > 1:
            dist.barrier(group=group)
        t1 = time.perf_counter()
        out = original(tensor, group)
        t2 = time.perf_counter()
        stats["wait"] += t1 - t0
        stats["comm"] += t2 - t1
        stats["calls"] += 1
        return out

    context.all_reduce_sum = timed
    try:
        yield stats
    finally:
        context.all_reduce_sum = original


def _data(prefix):
    if prefix not in _STATE:
        from torchgenetics.io import read_plink
        from torchgenetics.operators import GRM

        G = read_plink(prefix)
        K = GRM(G, distributed=True, resident=True)
        g = torch.Generator().manual_seed(1)
        Z = G.standardized()[:, :: max(1, G.n_variants // 200)]
        y = Z @ torch.randn(Z.shape[1], generator=g, dtype=torch.float64) / math.sqrt(Z.shape[1])
        y = y + torch.randn(G.n_samples, generator=g, dtype=torch.float64)
        _STATE[prefix] = (G, K, y)
    return _STATE[prefix]


def grm_rank(prefix, k, repeats):
    """On every rank: best time of ``K V`` and, in a second series, its all_reduce split."""
    from torchgenetics.distributed import barrier

    _, K, _ = _data(prefix)
    V = torch.randn(K.shape[0], k, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    K.matmul(V)  # first product loads the resident blocks
    best = math.inf
    for _ in range(repeats):
        barrier()
        t0 = time.perf_counter()
        K.matmul(V)
        best = min(best, time.perf_counter() - t0)
    with comm_timer() as stats:
        barrier()
        t0 = time.perf_counter()
        for _ in range(repeats):
            K.matmul(V)
        total = time.perf_counter() - t0
    return {"product_s": best, "comm_s": stats["comm"] / repeats, "wait_s": stats["wait"] / repeats,
            "instrumented_s": total / repeats}


@contextmanager
def evaluation_timer(comm_stats):
    """Wall time of every likelihood evaluation of the stochastic REML (nested calls once),
    with a snapshot of ``comm_stats`` (from :func:`comm_timer`) after each."""
    from torchgenetics.reml.stochastic import StochasticREML

    calls, depth = [], [0]
    originals = {name: getattr(StochasticREML, name) for name in ("evaluate", "objective")}

    def timed(fn):
        def wrapper(self, theta):
            depth[0] += 1
            t0 = time.perf_counter()
            try:
                return fn(self, theta)
            finally:
                depth[0] -= 1
                if depth[0] == 0:
                    calls.append((time.perf_counter() - t0, dict(comm_stats)))
        return wrapper

    for name, fn in originals.items():
        setattr(StochasticREML, name, timed(fn))
    try:
        yield calls
    finally:
        for name, fn in originals.items():
            setattr(StochasticREML, name, fn)


def reml_rank(prefix, max_iter, settings):
    """On every rank: seconds per stochastic AI-REML iteration (setup excluded), passes, comm.

    An iteration is everything after the first evaluation (the starting point):
    the line search's objective at the trial point(s) and the evaluation there.
    """
    from torchgenetics.distributed import barrier
    from torchgenetics.distributed.reml import reml

    _, K, y = _data(prefix)
    K.matmul(torch.zeros(K.shape[0], 1, dtype=torch.float64))  # resident blocks loaded
    with warnings.catch_warnings(), comm_timer() as stats, evaluation_timer(stats) as calls:
        warnings.simplefilter("ignore")
        barrier()
        fit = reml(y, K, method="stochastic", max_iter=max_iter, **settings)
    its = max(fit.n_iter, 1)
    start = calls[0][1]  # after the evaluation at the starting point
    return {"iteration_s": sum(t for t, _ in calls[1:]) / its,
            "passes": (stats["calls"] - start["calls"]) / its,
            "comm_s": (stats["comm"] - start["comm"]) / its,
            "wait_s": (stats["wait"] - start["wait"]) / its,
            "n_iter": fit.n_iter, "h2": float(fit.variances[0] / fit.variances.sum())}


def allreduce_rank(n, k, repeats):
    """On every rank: best seconds of an all_reduce of 8 floats (latency) and of ``n x k`` floats."""
    from torchgenetics.distributed import all_reduce_sum, barrier

    out = {}
    for label, shape in (("small", (8,)), ("large", (n, k))):
        x, best = torch.ones(shape, dtype=torch.float64), math.inf
        for _ in range(repeats):
            barrier()
            t0 = time.perf_counter()
            all_reduce_sum(x)
            best = min(best, time.perf_counter() - t0)
        out[label] = best
    return out


CONFIGS = (("1 process x 1 thread", 1, 1), ("1 process x 2 threads", 1, 2),
           ("2 processes x 1 thread", 2, 1))


def _interleaved(clusters, fn, args, repeats):
    """Best (smallest) rank-0 figures of each configuration over ``repeats`` interleaved rounds."""
    best = {}
    for _ in range(repeats):
        for label, cluster in clusters.items():
            out = cluster.run(fn, args=args, timeout=3600)
            key = "product_s" if "product_s" in out[0] else "iteration_s"
            worst = max(out, key=lambda o: o[key])  # the slowest rank sets the pace
            if label not in best or worst[key] < best[label][key]:
                best[label] = worst
    return best


def _stream_rate(prefix) -> float:
    """Standardized float64 genotypes per second one thread decodes from the BED file."""
    from torchgenetics.io import read_plink

    G = read_plink(prefix)
    _ = G.stats
    t0 = time.perf_counter()
    total = sum(block.numel() for _, block in G.blocks(block_size=1024))
    return total / (time.perf_counter() - t0)


def main(argv=None) -> None:
    """Measure on 1 vs 2 processes, calibrate and print the model (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--m", type=int, default=12000)
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--reml-n", type=int, default=1500)
    parser.add_argument("--reml-m", type=int, default=20000)
    parser.add_argument("--reml-iter", type=int, default=3, help="AI-REML iterations timed")
    parser.add_argument("--model-only", action="store_true")
    args = parser.parse_args(argv)
    if args.model_only:
        print(model_tables())
        return

    from torchgenetics.distributed.launch import LocalCluster

    torch.set_num_threads(1)
    n, m, k = args.n, args.m, args.k
    settings = dict(num_probes=30, slq_probes=10, lanczos_steps=15, precond_rank=50, seed=0)
    print(f"distributed benchmark: n={n}, m={m}, k={k}, float64, resident shards, Gloo; "
          f"REML settings {settings}")
    with tempfile.TemporaryDirectory() as tmp:
        prefix, reml_prefix = str(Path(tmp) / "bench"), str(Path(tmp) / "reml")
        write_bed(Path(prefix + ".bed"), n, m, seed=0)
        write_bed(Path(reml_prefix + ".bed"), args.reml_n, args.reml_m, seed=1)
        rate = _stream_rate(prefix)
        clusters = {label: LocalCluster(procs, threads=threads, timeout=3600)
                    for label, procs, threads in CONFIGS}
        try:
            grm = _interleaved(clusters, grm_rank, (prefix, k, args.repeats), args.repeats)
            rml = _interleaved(clusters, reml_rank, (reml_prefix, args.reml_iter, settings), 1)
            ar_times = clusters[CONFIGS[2][0]].run(allreduce_rank, args=(n, k, 5 * args.repeats))[0]
        finally:
            for c in clusters.values():
                c.close()

    flops = 4.0 * n * m * k
    base = grm[CONFIGS[0][0]]["product_s"]
    print(f"\nGRM matmul K V (k={k}, {flops / 1e9:.1f} GFLOP per product)")
    print(f"{'configuration':<26}{'seconds':>9}{'GFLOP/s':>9}{'speed-up':>9}{'comm':>9}{'wait':>9}")
    for label, _, _ in CONFIGS:
        r = grm[label]
        print(f"{label:<26}{r['product_s']:>9.3f}{flops / r['product_s'] / 1e9:>9.2f}"
              f"{base / r['product_s']:>9.2f}{100 * r['comm_s'] / r['instrumented_s']:>8.1f}%"
              f"{100 * r['wait_s'] / r['instrumented_s']:>8.1f}%")
    base_it = rml[CONFIGS[0][0]]["iteration_s"]
    print(f"\nstochastic AI-REML (n={args.reml_n}, m={args.reml_m}), seconds per iteration "
          "(setup and starting point excluded)")
    print(f"{'configuration':<26}{'s/iter':>9}{'passes':>8}{'speed-up':>9}{'comm':>9}{'wait':>9}{'h2':>7}")
    for label, _, _ in CONFIGS:
        r = rml[label]
        print(f"{label:<26}{r['iteration_s']:>9.3f}{r['passes']:>8.1f}{base_it / r['iteration_s']:>9.2f}"
              f"{100 * r['comm_s'] / r['iteration_s']:>8.1f}%{100 * r['wait_s'] / r['iteration_s']:>8.1f}%"
              f"{r['h2']:>7.3f}")

    # Calibrate the model on this machine: the 1-thread GEMM rate, the all_reduce latency
    # (8 floats) and bandwidth (n x k floats) on 2 ranks; predict the 2-process product.
    two = grm[CONFIGS[2][0]]
    ar = ar_times
    latency = ar["small"] / 2.0  # ring all_reduce on 2 ranks: 2 (R-1) = 2 steps
    volume = 2 * 0.5 * n * k * 8  # bytes each rank sends, R = 2
    here = dict(flops=flops / base, efficiency=1.0, hbm_bw=math.inf, mem_bytes=math.inf,
                link_bw=volume / max(ar["large"] - ar["small"], 1e-9), latency=latency,
                pcie_bw=math.inf, ranks=2)
    compute, comm, _ = product_time(n, m / 2, k, here)  # resident: no stream term
    print(f"\nmodel on this machine: {here['flops'] / 1e9:.2f} GFLOP/s per thread, all_reduce latency "
          f"{1e6 * latency:.0f} us per step, bandwidth {here['link_bw'] / 1e9:.2f} GB/s -> 2 processes "
          f"predicted {compute + comm:.3f} s per product (comm {100 * comm / (compute + comm):.1f}%), "
          f"measured {two['product_s']:.3f} s")
    print(f"BED decode + standardize, float64, 1 thread: {rate:.3g} genotypes/s\n")
    print(model_tables(stream_rate_per_core=rate))


if __name__ == "__main__":
    main()
