"""``torchgen reml``: REML heritability from PLINK files, written GCTA-style.

The command parses its options (from the command line and an optional YAML
``--config``), matches phenotype and covariates to the genotypes with
:func:`torchgenetics.io.align`, builds the kernels with the REML kernel helpers,
makes one :func:`~torchgenetics.reml.reml` (or :func:`~torchgenetics.reml.reml_merge`)
call and writes the fit's own outputs:

* ``PREFIX.hsq.tsv``  GCTA ``.hsq`` rows (``Source  Variance  SE``), from ``REMLFit.hsq_table``;
* ``PREFIX.json``     the inputs, the alignment report, the fit (``REMLFit.to_dict``), timings;
* ``PREFIX.fit.h5``   the fit (``REMLFit.save``; reload with ``REMLFit.load``, warm start with ``init=``);
* ``PREFIX.log``      the effective command, alignment report, summary and timings.

With ``--merge`` the merged fit takes these names and the fine fit is also written
as ``PREFIX.fine.hsq.tsv`` and ``PREFIX.fine.fit.h5``.

With ``--distributed`` (every rank of a ``torchrun`` / ``srun`` job runs the same
command) each kernel's variants are sharded over the ranks and the fit is
:func:`torchgenetics.distributed.reml.reml`; rank 0 prints and writes the outputs.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shlex
import time
import warnings
from pathlib import Path

from torchgenetics.errors import InputError, MissingFileError

__all__ = ["add_parser", "run", "load_config", "resolve_options", "effective_command", "OPTIONS", "DEFAULTS"]

# Long option name -> (argparse keyword arguments, default). The same table checks a YAML config.
OPTIONS = {
    "bfile": (dict(metavar="P[,P2,...]", help="PLINK 1 .bed/.bim/.fam prefix(es); several (comma-separated) give one GRM each"), None),
    "pfile": (dict(metavar="P[,P2,...]", help="PLINK 2 .pgen/.pvar/.psam prefix(es), as --bfile"), None),
    "pheno": (dict(metavar="FILE", help="phenotype table (FID IID columns...)"), None),
    "pheno-name": (dict(metavar="NAME", help="phenotype column (name or 1-based number) if the file has several"), None),
    "covar": (dict(metavar="FILE", help="covariate table; categorical columns are dummy-coded; an intercept is always fitted"), None),
    "keep": (dict(metavar="FILE", help="keep only these samples (FID IID)"), None),
    "remove": (dict(metavar="FILE", help="drop these samples (FID IID)"), None),
    "component-spec": (dict(metavar="FILE", help="JSON/NPZ component spec: one GRM (variance component) per SNP set"), None),
    "merge": (dict(action="store_true", help="z-score merge: fit the spec's components, merge those with z < 1.645 into one background GRM, refit"), False),
    "smile": (dict(action="store_true", help="SMILE weighted block kernels K = X W X'/c from --w-files or --grm-groups"), False),
    "w-files": (dict(metavar="A.npy,B.npy", help="W blocks (.npy) of one SMILE kernel, laid over consecutive SNPs"), None),
    "grm-groups": (dict(metavar="'A1,A2;B1'", help="SMILE groups: ';' separates kernels (one variance each), ',' the W blocks within one"), None),
    "method": (dict(choices=("auto", "exact", "stochastic"), help="likelihood: exact (dense), stochastic (matrix-free) or auto (default)"), "auto"),
    "probes": (dict(type=int, metavar="K", help="Hutchinson probes of the stochastic path (default 100)"), 100),
    "precond-rank": (dict(type=int, metavar="R", help="rank of the projected-core preconditioner (stochastic; default 100, 0 disables)"), 100),
    "max-iter": (dict(type=int, metavar="N", help="maximum AI-REML iterations (default 50)"), 50),
    "grm-precision": (dict(choices=("mixed", "double"), help="exact path: float32 genotype products accumulated in "
                           "float64 (mixed, default; GRM entries to ~1e-6) or float64 throughout (double)"), "mixed"),
    "device": (dict(metavar="cpu|cuda", help="torch device (default cpu)"), "cpu"),
    "memory-budget": (dict(metavar="SIZE", help="memory this run may use, e.g. 8GiB (sets TORCHGEN_MEMORY_BUDGET)"), None),
    "seed": (dict(type=int, metavar="S", help="seed of the stochastic probes (default 0)"), 0),
    "verbose": (dict(action="store_true", help="progress bar over REML iterations"), False),
    "distributed": (dict(action="store_true", help="run on every rank of a torchrun / srun job "
                         "(torchrun --nproc-per-node N -m torchgenetics reml ...): the variants of each "
                         "kernel are split over the ranks; rank 0 prints and writes the outputs"), False),
    "out": (dict(metavar="PREFIX", help="output prefix: PREFIX.hsq.tsv, PREFIX.json, PREFIX.fit.h5, PREFIX.log"), None),
}
DEFAULTS = {name: default for name, (_, default) in OPTIONS.items()}
# Options holding file paths (resolved against a config file's folder when given there).
_PATH_OPTIONS = ("bfile", "pfile", "pheno", "covar", "keep", "remove", "component-spec", "w-files", "grm-groups", "out")
_LIST_OPTIONS = ("bfile", "pfile", "w-files")


def _dest(name: str) -> str:
    return name.replace("-", "_")


def add_parser(subparsers) -> None:
    """Register ``torchgen reml``.

    Every option defaults to ``None`` on the parser so that :func:`resolve_options`
    can tell a flag that was given from one that was not (command line over
    ``--config`` over the defaults in :data:`DEFAULTS`).

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        The top-level parser's subcommand registry.

    Examples
    --------
    >>> from torchgenetics.cli.main import build_parser
    >>> build_parser().parse_args(["reml", "--bfile", "x", "--pheno", "p", "--out", "o"]).bfile
    'x'
    """
    parser = subparsers.add_parser(
        "reml",
        help="REML heritability: one or several GRMs, component specs, z-score merge, SMILE kernels",
        description=(
            "Fit V = sum_g s2_g K_g + s2_e I by AI-REML (exact or matrix-free stochastic) and write "
            "PREFIX.hsq.tsv (GCTA-style), PREFIX.json, PREFIX.fit.h5 and PREFIX.log. "
            "Options may also come from a YAML --config whose keys are the long option names; "
            "command-line flags override it."
        ),
    )
    parser.add_argument("--config", metavar="YAML", help="YAML file of options (keys: long option names)")
    for name, (kwargs, _) in OPTIONS.items():
        parser.add_argument(f"--{name}", dest=_dest(name), default=None, **kwargs)
    parser.set_defaults(func=run)


def _as_option_text(name, value, where):
    """A config value as the text the command line would carry."""
    if name == "grm-groups" and isinstance(value, list):
        return ";".join(",".join(map(str, g)) if isinstance(g, list) else str(g) for g in value)
    if name in _LIST_OPTIONS and isinstance(value, list):
        return ",".join(map(str, value))
    if isinstance(value, (list, dict)):
        raise InputError(f"{where}: option {name!r} takes a single value, got {value!r}")
    return value


def _resolve_paths(name, text, base: Path):
    """Make the relative paths inside an option's text relative to ``base``."""
    def one(p):
        p = p.strip()
        return p if not p or Path(p).is_absolute() else os.path.normpath(base / p)

    if name == "grm-groups":
        return ";".join(",".join(one(p) for p in g.split(",")) for g in text.split(";"))
    if name in _LIST_OPTIONS:
        return ",".join(one(p) for p in text.split(","))
    return one(text)


def load_config(path) -> dict:
    """Read a YAML config of ``torchgen reml`` options.

    Keys are the long option names (``pheno-name`` or ``pheno_name``). Lists are
    accepted for ``bfile``, ``pfile``, ``w-files`` (items) and ``grm-groups`` (a list
    of lists). Relative paths are taken relative to the config file's folder.

    Parameters
    ----------
    path : str or path-like
        The YAML file.

    Returns
    -------
    dict
        Option name (hyphenated) -> value, converted as on the command line.

    Raises
    ------
    MissingFileError
        If the file does not exist.
    InputError
        On YAML that is not a mapping, an unknown key or a value of the wrong type.

    Examples
    --------
    >>> import tempfile, os
    >>> f = os.path.join(tempfile.mkdtemp(), "r.yaml")
    >>> _ = open(f, "w").write("bfile: data/cohort\\nprobes: 50\\nmerge: true\\n")
    >>> cfg = load_config(f)
    >>> cfg["probes"], cfg["merge"], cfg["bfile"].endswith(os.path.join("data", "cohort"))
    (50, True, True)
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise MissingFileError(path, "reml config (YAML)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise InputError(f"{path}: not valid YAML ({err})") from None
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a mapping of option names to values, got {type(data).__name__}")
    out = {}
    for key, value in data.items():
        name = str(key).replace("_", "-")
        where = f"{path}: option {name!r}"
        if name not in OPTIONS:
            raise InputError(f"{path}: unknown option {key!r}; known options: {', '.join(OPTIONS)}")
        kwargs = OPTIONS[name][0]
        if value is None:
            continue
        if kwargs.get("action") == "store_true":
            if not isinstance(value, bool):
                raise InputError(f"{where} must be true or false, got {value!r}")
        else:
            value = _as_option_text(name, value, path)
            if "type" in kwargs:
                if isinstance(value, bool):
                    raise InputError(f"{where} must be an integer, got {value!r}")
                try:
                    value = kwargs["type"](value)
                except (TypeError, ValueError):
                    raise InputError(f"{where} must be an integer, got {value!r}") from None
            else:
                value = str(value)
            if "choices" in kwargs and value not in kwargs["choices"]:
                raise InputError(f"{where} must be one of {kwargs['choices']}, got {value!r}")
            if name in _PATH_OPTIONS:
                value = _resolve_paths(name, value, path.parent)
        out[name] = value
    return out


def _split(text):
    return [p.strip() for p in str(text).split(",") if p.strip()]


def resolve_options(args) -> dict:
    """Merge command line, config file and defaults, and check the combination.

    Parameters
    ----------
    args : argparse.Namespace
        As parsed by the ``reml`` subparser (unset options are ``None``).

    Returns
    -------
    dict
        Every option of :data:`OPTIONS` (hyphenated names) plus ``config``.

    Raises
    ------
    InputError
        Missing required options or options that do not go together (the message
        names them).

    Examples
    --------
    >>> from torchgenetics.cli.main import build_parser
    >>> a = build_parser().parse_args(["reml", "--bfile", "x", "--pheno", "p", "--out", "o"])
    >>> opts = resolve_options(a)
    >>> opts["method"], opts["probes"], opts["merge"]
    ('auto', 100, False)
    """
    config = load_config(args.config) if getattr(args, "config", None) else {}
    opts = {"config": getattr(args, "config", None)}
    for name, default in DEFAULTS.items():
        given = getattr(args, _dest(name), None)
        opts[name] = given if given is not None else config.get(name, default)
    _check(opts)
    return opts


def _check(o) -> None:
    if bool(o["bfile"]) == bool(o["pfile"]):
        raise InputError("give exactly one of --bfile or --pfile (genotypes)")
    for name in ("pheno", "out"):
        if not o[name]:
            raise InputError(f"--{name} is required (on the command line or in --config)")
    prefixes = _split(o["bfile"] or o["pfile"])
    if not prefixes:
        raise InputError("--bfile/--pfile holds no prefix")
    if o["w-files"] and o["grm-groups"]:
        raise InputError("give --w-files (one SMILE kernel) or --grm-groups (several), not both")
    if (o["w-files"] or o["grm-groups"]) and not o["smile"]:
        raise InputError("--w-files/--grm-groups define SMILE kernels: add --smile")
    if o["smile"] and not (o["w-files"] or o["grm-groups"]):
        raise InputError("--smile needs the W blocks: --w-files a.npy,b.npy or --grm-groups 'A1,A2;B1'")
    if o["smile"] and o["component-spec"]:
        raise InputError("--smile and --component-spec both define the kernels; give one")
    if o["merge"] and not o["component-spec"]:
        raise InputError("--merge merges the components of a --component-spec; give one")
    if len(prefixes) > 1 and (o["component-spec"] or o["smile"]):
        raise InputError("several genotype prefixes give one GRM each; --component-spec and --smile need one prefix")
    for name in ("probes", "precond-rank", "max-iter"):
        if o[name] < 0 or (name != "precond-rank" and o[name] < 1):
            raise InputError(f"--{name} must be positive, got {o[name]}")
    if not str(o["device"]).startswith(("cpu", "cuda")):
        raise InputError(f"--device must be cpu or cuda[:i], got {o['device']!r}")
    if str(o["device"]).startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise InputError(f"--device {o['device']} but no CUDA device is available to torch")
    if o["memory-budget"] is not None:
        from torchgenetics.memory import parse_bytes

        parse_bytes(o["memory-budget"])


def effective_command(opts) -> str:
    """The ``torchgen reml`` command line equivalent to the resolved options.

    Examples
    --------
    >>> o = dict(DEFAULTS, config=None, bfile="x", pheno="p", out="o", merge=True)
    >>> effective_command(o)
    'torchgen reml --bfile x --pheno p --merge --out o'
    """
    words = ["torchgen", "reml"]
    for name, default in DEFAULTS.items():
        value = opts[name]
        if value is None or value is False or (value == default and name not in ("out",)):
            continue
        words += [f"--{name}"] if value is True else [f"--{name}", str(value)]
    return " ".join(shlex.quote(w) for w in words)


@contextlib.contextmanager
def _memory_budget(size):
    """Set ``TORCHGEN_MEMORY_BUDGET`` for the duration of the run."""
    from torchgenetics.memory import ENV_BUDGET

    before = os.environ.get(ENV_BUDGET)
    if size is not None:
        os.environ[ENV_BUDGET] = str(size)
    try:
        yield
    finally:
        if size is not None:
            if before is None:
                os.environ.pop(ENV_BUDGET, None)
            else:
                os.environ[ENV_BUDGET] = before


class _Log:
    """Lines printed to stdout (unless ``quiet``) and written to ``PREFIX.log`` (None: no file)."""

    def __init__(self, path: Path | None):
        self.path = path
        self.file = None if path is None else open(path, "w", encoding="utf-8")

    def __call__(self, text="", quiet=False):
        if not quiet:
            print(text)
        if self.file is not None:
            self.file.write(f"{text}\n")
            self.file.flush()

    def close(self):
        if self.file is not None:
            self.file.close()


def _json_ready(value):
    """Non-finite floats -> None (strict JSON); tuples -> lists; numpy scalars -> Python."""
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _read_sources(o):
    from torchgenetics.io import read_pgen, read_plink

    prefixes = _split(o["bfile"] or o["pfile"])
    reader = read_plink if o["bfile"] else read_pgen
    return prefixes, [reader(p) for p in prefixes]


def _kernel_names(prefixes):
    names = []
    for p in prefixes:
        base, name, k = Path(p).name, Path(p).name, 2
        while name in names:
            name, k = f"{base}_{k}", k + 1
        names.append(name)
    return names


def _build_kernels(o, prefixes, sources, alignment, distributed=False):
    """The kernels argument of ``reml`` (and a description of them for the log)."""
    from torchgenetics.operators import GRM
    from torchgenetics.reml import check_same_samples, grm_stack, smile_kernels

    device = o["device"]
    shard = {"distributed": bool(distributed)}
    if len(sources) > 1:
        check_same_samples(sources, prefixes)
    kept = [alignment.subset(g) for g in sources]
    if o["smile"]:
        groups = [_split(o["w-files"])] if o["w-files"] else [_split(g) for g in o["grm-groups"].split(";")]
        if not all(groups):
            raise InputError(f"--grm-groups {o['grm-groups']!r} has an empty group")
        kernels = smile_kernels(kept[0], groups, device=device, **shard)
        described = [f"{k}: SMILE weighted GRM, {v.n_blocks} W blocks" for k, v in kernels.items()]
    elif o["component-spec"]:
        kernels = grm_stack(kept[0], o["component-spec"], device=device, **shard)
        described = [f"{name}: GRM over {c.m_eff:,} SNPs" for name, c in zip(kernels.names, kernels.components, strict=True)]
    elif len(kept) == 1:
        kernels = GRM(kept[0], device=device, **shard)
        described = [f"G: GRM over {kernels.m_eff:,} SNPs ({kernels.n_monomorphic} monomorphic dropped)"]
    else:
        kernels = {nm: GRM(g, device=device, **shard)
                   for nm, g in zip(_kernel_names(prefixes), kept, strict=True)}
        described = [f"{k}: GRM over {v.m_eff:,} SNPs" for k, v in kernels.items()]
    return kernels, described


def _write_fit(fit, prefix: str):
    fit.hsq_table().to_csv(f"{prefix}.hsq.tsv", sep="\t", index=False, float_format="%.8g", na_rep="NA")
    fit.save(f"{prefix}.fit.h5")
    return [f"{prefix}.hsq.tsv", f"{prefix}.fit.h5"]


def run(args) -> int:
    """Run ``torchgen reml``: align, build kernels, fit once, write the outputs.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed ``reml`` arguments (see :func:`add_parser`).

    Returns
    -------
    int
        Exit status 0.

    Examples
    --------
    >>> from torchgenetics.cli.main import main
    >>> from torchgenetics.datasets import example
    >>> ex = example()
    >>> main(["reml", "--bfile", ex.bfile, "--pheno", ex.pheno, "--out", "/tmp/h"])  # doctest: +SKIP
    0
    """
    from torchgenetics.cli._distributed import distributed_session

    o = resolve_options(args)
    with distributed_session(o["distributed"]) as distributed:
        return _run(o, distributed)


def _run(o, distributed: bool) -> int:
    import torchgenetics
    from torchgenetics.distributed import is_main, world_size
    from torchgenetics.io import align
    from torchgenetics.reml import reml, reml_merge

    if distributed:  # the same fit, with the ranks kept in step (same inputs, agreed budgets)
        from torchgenetics.distributed.reml import reml
    main_rank = is_main()
    out = Path(o["out"])
    out.parent.mkdir(parents=True, exist_ok=True)
    prefix = str(out)
    timings = {}
    log = _Log(Path(f"{prefix}.log") if main_rank else None)
    try:
        with _memory_budget(o["memory-budget"]):
            start = clock = time.perf_counter()
            log(f"torchgen {torchgenetics.__version__} reml")
            log(f"command (effective, config merged): {effective_command(o)}")
            if o["config"]:
                log(f"config: {o['config']} (command-line flags override it)")
            if o["memory-budget"] is not None:
                log(f"memory budget: {o['memory-budget']} (TORCHGEN_MEMORY_BUDGET)")
            if distributed:
                log(f"distributed: {world_size()} ranks, each kernel's variants split over them")

            prefixes, sources = _read_sources(o)
            alignment = align(sources[0], pheno=o["pheno"], covar=o["covar"], keep=o["keep"],
                              remove=o["remove"], pheno_column=o["pheno-name"])
            log("\n-- samples")
            log(str(alignment.report))
            for what, src in alignment.report.sources.items():
                log(f"  {what}: {src}")
            log(f"  fixed effects: {', '.join(alignment.covariate_names)}")
            timings["read_and_align"] = time.perf_counter() - clock

            clock = time.perf_counter()
            kernels, described = _build_kernels(o, prefixes, sources, alignment, distributed)
            log("\n-- kernels")
            for line in described:
                log(f"  {line}")
            timings["kernels"] = time.perf_counter() - clock

            clock = time.perf_counter()
            options = dict(method=o["method"], num_probes=o["probes"], precond_rank=o["precond-rank"],
                           max_iter=o["max-iter"], seed=o["seed"], verbose=o["verbose"], report=alignment,
                           grm_precision=o["grm-precision"],
                           covariate_names=alignment.covariate_names)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                if o["merge"]:
                    result = reml_merge(alignment.y, kernels, alignment.covariates, **options)
                    fit = result.merged
                else:
                    result = fit = reml(alignment.y, kernels, alignment.covariates, **options)
            timings["fit"] = time.perf_counter() - clock
            messages = [f"{w.category.__name__}: {w.message}" for w in caught]
            if not main_rank:  # rank 0 writes the (identical) fit
                return 0

            clock = time.perf_counter()
            log("\n-- fit")
            log(result.summary())
            for m in messages:
                log(f"warning: {m}")
            written = _write_fit(fit, prefix)
            record = {
                "torchgen_version": torchgenetics.__version__,
                "command": effective_command(o),
                "options": {k: v for k, v in o.items()},
                "alignment": {
                    "n_genotyped": alignment.report.n_genotyped, "n_used": alignment.report.n_used,
                    "dropped": alignment.report.dropped, "dropped_covariates": alignment.report.dropped_covariates,
                    "sources": alignment.report.sources, "fixed_effects": alignment.covariate_names,
                    "phenotype": alignment.phenotype_name,
                },
                "kernels": described,
                "fit": fit.to_dict(),
                "warnings": messages,
            }
            if o["merge"]:
                written += _write_fit(result.fine, f"{prefix}.fine")
                record["merge"] = {
                    "threshold": result.threshold, "z": result.z.tolist(), "kept": result.kept,
                    "weak": result.weak, "background": result.background, "refit": result.refit,
                    "fine": result.fine.to_dict(),
                }
            written += [f"{prefix}.json", f"{prefix}.log"]
            timings["write"] = time.perf_counter() - clock
            timings["total"] = time.perf_counter() - start
            record["timings_s"] = timings
            record["outputs"] = written
            with open(f"{prefix}.json", "w", encoding="utf-8") as f:
                json.dump(_json_ready(record), f, indent=1, allow_nan=False)
            log("\n-- timings (s)")
            log("  " + ", ".join(f"{k} {v:.2f}" for k, v in timings.items()))
            log("\n-- written")
            for path in written:
                log(f"  {path}")
    except Exception as err:
        log(f"error: {err}", quiet=True)
        raise
    finally:
        log.close()
    return 0
