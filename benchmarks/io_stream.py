"""Streaming throughput of ``Genotypes.blocks`` against bed-reader's own decode.

Writes a random PLINK fileset (default 4,000 samples x 20,000 variants, 1%
missing calls) into a temporary directory, then times on the same file and the
same variant blocks:

* ``bed-reader``: ``open_bed(...).read(index=np.s_[:, a:b], dtype=...)`` per block
  (raw decode, the floor any reader built on it pays);
* ``torchgen``: ``Genotypes.blocks(standardize=True)`` (decode, centre, scale,
  impute missing, hand out a torch tensor; next block decoded in a worker thread).
  The .bed bytes are mapped into memory and decoded and standardized in one pass
  through a per-variant table of the four 2-bit codes' values, split between as
  many threads as bed-reader uses.

Before timing, the first standardized block of each dtype is checked bit for bit
against bed-reader's decode of the same variants, standardized with the same
rounding (``x * inv_sd + (-mean * inv_sd)`` in that dtype, missing -> 0).

It prints genotypes per second for both and their ratio (goal: >= 0.7), for
float32 and float64, plus the one-off statistics pass, and the same loop with a
consumer doing a small matrix product per block, prefetch on and off. The load
average is printed before and after: the machine may be shared, and the
contenders are interleaved so that load hits both alike.

Run: ``python benchmarks/io_stream.py [--n 4000] [--m 20000] [--repeats 7]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from bed_reader import open_bed, to_bed

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from torchgenetics.io.plink import read_plink  # noqa: E402


def write_random_bed(path: Path, n: int, m: int, seed: int) -> None:
    """Random hard calls with allele frequencies in [0.05, 0.5] and 1% missing."""
    rng = np.random.default_rng(seed)
    freq = rng.uniform(0.05, 0.5, size=m)
    values = rng.binomial(2, freq, size=(n, m)).astype(np.float32)
    values[rng.random((n, m)) < 0.01] = np.nan
    to_bed(path, values)


def check_first_block(G, bed, dtype, np_dtype) -> None:
    """The first standardized block equals bed-reader's decode standardized by hand."""
    index, block = next(iter(G.blocks(dtype=dtype)))
    stats = G.stats
    x = bed.read(index=np.s_[:, index], dtype="float64")
    inv_sd = (1.0 / np.sqrt(stats.var[index])).astype(np_dtype)
    shift = -stats.mean[index].astype(np_dtype) * inv_sd
    expected = np.nan_to_num(x).astype(np_dtype) * inv_sd + shift
    expected[np.isnan(x)] = 0.0
    if not np.array_equal(block.numpy(), expected):
        raise AssertionError(f"{np_dtype}: standardized block differs from bed-reader's decode")


def timings(runs: dict, repeats: int) -> dict:
    """Seconds of ``repeats`` runs of each callable. Runs are interleaved so that load
    from other processes hits every contender alike."""
    times = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: np.array(t) for name, t in times.items()}


def raw_decode(bed, ranges, np_dtype):
    """bed-reader's own decode of the given variant ranges."""
    def run():
        for a, b in ranges:
            bed.read(index=np.s_[:, a:b], dtype=np_dtype)
    return run


def standardized_stream(G, dtype, prefetch=True):
    """Genotypes.blocks(standardize=True), consumer idle."""
    def run():
        for _ in G.blocks(dtype=dtype, prefetch=prefetch):
            pass
    return run


def consumer(G, probes, prefetch):
    """Genotypes.blocks with a consumer computing Z^T V on each block."""
    def run():
        for _, Z in G.blocks(prefetch=prefetch):
            (Z.T @ probes).sum()
    return run


def main(argv=None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4000, help="samples")
    parser.add_argument("--m", type=int, default=20000, help="variants")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    n, m = args.n, args.m

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.bed"
        start = time.perf_counter()
        write_random_bed(path, n, m, args.seed)
        print(f"wrote {n} x {m} BED in {time.perf_counter() - start:.1f} s")
        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; torch threads "
              f"{torch.get_num_threads()}")

        G = read_plink(path)
        start = time.perf_counter()
        stats = G.stats
        t_stats = time.perf_counter() - start
        print(f"statistics pass (once, then cached): {t_stats:.3f} s, "
              f"{n * m / t_stats / 1e6:,.0f} M genotypes/s; {stats.n_monomorphic} monomorphic")
        bed = open_bed(path, iid_count=n, sid_count=m, num_threads=G.source.num_threads)
        print(f"bed-reader threads {G.source.num_threads} (both contenders)")

        ratios = {}
        for dtype, np_dtype in ((torch.float32, "float32"), (torch.float64, "float64")):
            # The very blocks blocks() streams, read raw by bed-reader.
            check_first_block(G, bed, dtype, np_dtype)
            index = [i for i, _ in G.blocks(dtype=dtype)]
            ranges = [(int(i[0]), int(i[-1]) + 1) for i in index]
            assert all(b - a == len(i) for (a, b), i in zip(ranges, index, strict=True))
            n_geno = n * sum(b - a for a, b in ranges)
            t = timings({
                "raw": raw_decode(bed, ranges, np_dtype),
                "ours": standardized_stream(G, dtype),
                "ours, no prefetch": standardized_stream(G, dtype, prefetch=False),
            }, args.repeats)
            best = {k: v.min() for k, v in t.items()}
            median = {k: float(np.median(v)) for k, v in t.items()}
            ratios[np_dtype] = best["raw"] / best["ours"]
            print(f"\n{np_dtype}: {len(ranges)} blocks of {ranges[0][1] - ranges[0][0]} variants "
                  f"(best of {args.repeats}; median in brackets); first block checked bit for bit")
            for name, label in (("raw", "bed-reader raw decode"),
                                ("ours", "Genotypes.blocks(standardize=True)"),
                                ("ours, no prefetch", "  same, prefetch=False")):
                print(f"  {label:36s} {n_geno / best[name] / 1e6:6,.0f} M genotypes/s "
                      f"({n_geno / median[name] / 1e6:,.0f})")
            print(f"  ratio torchgen / bed-reader          {ratios[np_dtype]:6.2f} "
                  f"({median['raw'] / median['ours']:.2f})  goal >= 0.7")

        # A consumer that computes on each block: prefetch overlaps decoding with it.
        probes = torch.randn(n, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
        t = timings({"on": consumer(G, probes, True), "off": consumer(G, probes, False)},
                    args.repeats)
        on, off = t["on"].min(), t["off"].min()
        print(f"\nwith a consumer (Z^T V, V n x 64, float64), best of {args.repeats}: "
              f"prefetch on {on:.3f} s, off {off:.3f} s (speed-up {off / on:.2f}x)")
        print(f"load average at the end {os.getloadavg()[0]:.1f}")
    return ratios["float32"]


if __name__ == "__main__":
    main()
