"""bayesDREAM trans fit: SVI throughput and memory, full batch vs cell subsampling; OneCycleLR vs Adam.

Part 1 fits the trans model (negative binomial, single Hill) of a simulated screen
with every cell in each step, with a fixed cell batch, and with the batch planned
by ``torchgenetics.memory`` from the measured bytes per cell. Each configuration
runs in its own process; the table gives SVI steps per second and the process's
peak resident memory during the fit (the high-water mark is reset after the data
are built, via /proc/self/clear_refs).

Part 2 fits a smaller screen for a fixed number of steps with OneCycleLR (peak lr,
stepped every iteration) and with constant Adam (same lr, and lr / 5). It reports
the steps and seconds until the smoothed loss is within 1% of the total loss drop
from the best final loss of all runs, the step at which the early-stopping rule
(smoothed loss, patience 200, relative tolerance 1e-4, default ``min_steps``)
would have stopped and the loss there, the final loss, and how well K and the
sign of n were recovered.

Usage::

    .venv/bin/python benchmarks/dream.py                       # 20,000 cells x 2,000 features
    .venv/bin/python benchmarks/dream.py --cells 5000 --features 500 --steps 10

Examples
--------
>>> _human(3 * 1024**3)
'3.00 GiB'
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _human(n: float) -> str:
    from torchgenetics.memory import format_bytes

    return format_bytes(n)


def _hwm_reset() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _hwm() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _screen(cells: int, features: int, seed: int):
    from torchgenetics.dream import BayesDream, simulate_screen

    sim = simulate_screen(n_cells=cells, n_features=features, n_groups=1, n_guides=40, n_ntc_guides=5, seed=seed)
    return sim, BayesDream(sim.counts, sim.cells, sim.cis_gene, seed=seed)


def worker_throughput(cfg: dict) -> dict:
    """One throughput configuration: fit ``steps`` SVI steps, report speed and peak memory.

    Examples
    --------
    >>> worker_throughput({"cells": 500, "features": 20, "steps": 3, "dtype": "float64", "threads": 1,
    ...                    "seed": 0, "batch": None})["batch"] is None  # doctest: +SKIP
    True
    """
    import torch

    torch.set_num_threads(cfg["threads"])
    sim, dm = _screen(cfg["cells"], cfg["features"], cfg["seed"])
    dm.dtype = getattr(torch, cfg["dtype"])
    reset = _hwm_reset()
    start = _hwm()
    fit = dm.fit_trans(x_true=sim.truth["x_true"], batch_size=cfg["batch"], n_steps=cfg["steps"], lr=0.02,
                       early_stopping=False, n_samples=20, schedule="constant")
    # the first step builds the guide and the optimiser; time the rest
    per_step = fit.run.seconds / fit.n_iter
    return {"batch": fit.batch_size, "bytes_per_cell": fit.bytes_per_cell, "steps_per_s": 1.0 / per_step,
            "peak_rss": _hwm(), "rss_before": start, "hwm_reset": reset}


def worker_plateau(cfg: dict) -> dict:
    """Fit until the plateau rule fires; report the loss trajectory, time and recovery.

    Examples
    --------
    >>> worker_plateau({"cells": 300, "features": 5, "max_steps": 300, "threads": 1, "seed": 0,
    ...                 "schedule": "onecycle", "lr": 0.05})["steps"] <= 300  # doctest: +SKIP
    True
    """
    import numpy as np
    import torch

    from torchgenetics.optim import OptimConfig

    torch.set_num_threads(cfg["threads"])
    sim, dm = _screen(cfg["cells"], cfg["features"], cfg["seed"])
    fit = dm.fit_trans(x_true=sim.truth["x_true"], batch_size=None, n_steps=cfg["max_steps"], lr=cfg["lr"],
                       schedule=cfg["schedule"], early_stopping=False, n_samples=200)
    # where the early-stopping rule (patience 200, rel_tol 1e-4, default min_steps) would have fired
    stopper = OptimConfig(n_steps=cfg["max_steps"], lr=cfg["lr"], schedule=cfg["schedule"]).stopper()
    stop = next((i + 1 for i, v in enumerate(fit.losses) if stopper.update(v)), None)
    frame = fit.to_frame()
    active = sim.truth["kind"] != "flat"
    k_err = np.abs(np.log(frame["K_mean"].to_numpy()[active] / sim.truth["K"][active]))
    sign = np.sign(frame["n_mean"].to_numpy()[active]) == np.sign(sim.truth["n"][active])
    return {"steps": fit.n_iter, "seconds": fit.run.seconds, "stop": stop,
            "smoothed": smooth(fit.losses).tolist(), "median_abs_log_k_error": float(np.median(k_err)),
            "sign_accuracy": float(sign.mean())}


def smooth(losses, weight: float = 0.05):
    """Bias-corrected exponential moving average (the early-stopping smoother).

    Examples
    --------
    >>> smooth([2.0, 2.0, 2.0]).round(6).tolist()
    [2.0, 2.0, 2.0]
    """
    import numpy as np

    out, acc = [], 0.0
    for i, value in enumerate(losses, start=1):
        acc = (1 - weight) * acc + weight * float(value)
        out.append(acc / (1 - (1 - weight) ** i))
    return np.asarray(out)


def steps_to(curve, target: float) -> int | None:
    """First step (1-based) at which a smoothed loss reaches ``target`` (None if never).

    Examples
    --------
    >>> steps_to([5.0, 3.0, 1.0], 3.0)
    2
    """
    for i, value in enumerate(curve, start=1):
        if value <= target:
            return i
    return None


def _spawn(kind: str, cfg: dict) -> dict:
    out = subprocess.run([sys.executable, __file__, "--worker", kind, json.dumps(cfg)], cwd=ROOT,
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"worker {kind} {cfg} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    """Run both parts and print the tables.

    Examples
    --------
    >>> main(["--help"])  # doctest: +SKIP
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", type=int, default=20_000)
    parser.add_argument("--features", type=int, default=2_000)
    parser.add_argument("--batch", type=int, default=2_000, help="fixed cell batch of the subsampled run")
    parser.add_argument("--steps", type=int, default=10, help="SVI steps per throughput configuration")
    parser.add_argument("--plateau-cells", type=int, default=1_000)
    parser.add_argument("--plateau-features", type=int, default=50)
    parser.add_argument("--max-steps", type=int, default=3_000)
    parser.add_argument("--lr", type=float, default=0.05, help="peak (OneCycle) and constant Adam rate")
    parser.add_argument("--dtype", default="float64")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1 is fastest for these models on a busy shared machine)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-plateau", action="store_true")
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        kind, cfg = args.worker[0], json.loads(args.worker[1])
        result = (worker_throughput if kind == "throughput" else worker_plateau)(cfg)
        print(json.dumps(result))
        return 0
    import torch

    print(f"torch {torch.__version__}, {args.threads} threads, dtype {args.dtype}")
    if not args.skip_throughput:
        print(f"\n== trans SVI: {args.cells:,} cells x {args.features:,} features, {args.steps} steps each")
        print(f"{'cells per step':>16} {'bytes/cell':>11} {'steps/s':>9} {'peak RSS':>11} {'RSS before fit':>15}")
        base = {"cells": args.cells, "features": args.features, "steps": args.steps, "dtype": args.dtype,
                "threads": args.threads, "seed": args.seed}
        rows = []
        for batch in (None, args.batch, "auto"):
            t0 = time.perf_counter()
            res = _spawn("throughput", {**base, "batch": batch})
            rows.append(res)
            shown = "all" if res["batch"] is None else f"{res['batch']:,}"
            label = f"{shown} ({'auto' if batch == 'auto' else 'set'})" if batch is not None else "all (full)"
            print(f"{label:>16} {res['bytes_per_cell'] or '-':>11} {res['steps_per_s']:9.3f} "
                  f"{_human(res['peak_rss']):>11} {_human(res['rss_before']):>15}   "
                  f"[{time.perf_counter() - t0:.0f} s wall incl. simulation]")
        if not rows[0]["hwm_reset"]:
            print("note: /proc/self/clear_refs not writable; peak RSS includes building the data")
        full, sub = rows[0], rows[1]
        print(f"subsampled/full: {sub['steps_per_s'] / full['steps_per_s']:.1f}x steps per second, "
              f"{full['peak_rss'] / sub['peak_rss']:.1f}x less peak memory "
              f"(one subsampled step sees {args.batch / args.cells:.0%} of the cells)")
    if not args.skip_plateau:
        print(f"\n== time to a loss plateau: {args.plateau_cells:,} cells x {args.plateau_features} features, "
              f"full batch, {args.max_steps} steps each (the early-stopping rule, patience 200 and "
              f"rel_tol 1e-4, is replayed on the losses)")
        base = {"cells": args.plateau_cells, "features": args.plateau_features, "max_steps": args.max_steps,
                "threads": args.threads, "seed": args.seed}
        runs = []
        for schedule, lr in (("onecycle", args.lr), ("constant", args.lr), ("constant", args.lr / 5)):
            runs.append((schedule, lr, _spawn("plateau", {**base, "schedule": schedule, "lr": lr})))
        best = min(r["smoothed"][-1] for _, _, r in runs)
        start = max(r["smoothed"][0] for _, _, r in runs)
        target = best + 0.01 * (start - best)
        print(f"target: smoothed loss within 1% of the total drop of the best final loss ({target:.1f})")
        print(f"{'schedule':>22} {'to target':>10} {'seconds':>8} {'rule stops':>11} {'loss there':>11} "
              f"{'final loss':>11} {'|log K err|':>12} {'sign n ok':>10}")
        for schedule, lr, res in runs:
            hit = steps_to(res["smoothed"], target)
            per_step = res["seconds"] / res["steps"]
            secs = "-" if hit is None else f"{hit * per_step:.1f}"
            label = f"{'OneCycleLR' if schedule == 'onecycle' else 'Adam'} lr={lr:g}"
            stop = res["stop"]
            there = res["smoothed"][stop - 1] if stop else res["smoothed"][-1]
            print(f"{label:>22} {hit if hit else 'never':>10} {secs:>8} {stop if stop else 'never':>11} "
                  f"{there:11.1f} {res['smoothed'][-1]:11.1f} {res['median_abs_log_k_error']:12.3f} "
                  f"{res['sign_accuracy']:10.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
