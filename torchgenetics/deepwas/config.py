"""Run configuration of a DeepWAS fit: prior, likelihood, data, training, optimiser.

The YAML file (``configs/deepwas.yaml``) has one mapping per section; every key is
optional and unknown keys are errors naming the section and the known keys.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

from torchgenetics.errors import FileFormatError, InputError, MissingFileError
from torchgenetics.optim import OptimConfig, as_config

from .likelihood import BANDED_EXACT_MAX, EXACT_MAX_VARIANTS

__all__ = ["DeepWASConfig", "DEFAULTS"]

DEFAULTS = {
    "prior": {"kind": "mlp", "hidden": [64, 64], "activation": "gelu", "dropout": 0.0,
              "channels": [16, 16], "kernel_size": 5},
    "likelihood": {"method": "auto", "exact_max": EXACT_MAX_VARIANTS,
                   "banded_exact_max": BANDED_EXACT_MAX, "rank_tol": 1e-8, "num_probes": 16,
                   "lanczos_steps": 30, "tol": 1e-6, "max_iter": 1000, "preconditioner": "auto",
                   "precond_rank": 64, "precond_refresh": 10},
    "data": {"window_size": None, "flank": None, "batch_size": 8, "val_chromosomes": [],
             "track_half_width": 0, "dense_max": 0},
    "training": {"epochs": 20, "objective": "likelihood", "sigma": 1.0, "learn_sigma": False,
                 "link": "exp", "weight_decay": 0.01, "patience": None, "restore_best": True,
                 "eval_train": False, "seed": 0},
    "optim": {"lr": 0.005, "pct_start": 0.1, "div_factor": 25.0, "final_div_factor": 1e4,
              "betas": [0.9, 0.999], "clip_norm": 5.0},
}

# Prior arguments that only some kinds accept.
_PRIOR_KEYS = {"linear": set(), "mlp": {"hidden", "activation", "dropout"},
               "conv": {"channels", "kernel_size", "hidden", "activation", "dropout"}}


def _merge(section: str, base: dict, values) -> dict:
    if values is None:
        return base
    if not isinstance(values, dict):
        raise InputError(f"config section {section!r} must be a mapping, got {type(values).__name__}")
    out = dict(base)
    if section == "optim":
        known = {f for f in OptimConfig.__dataclass_fields__} - {"n_steps"}
    else:
        known = set(base)
    unknown = sorted(set(values) - known)
    if unknown:
        raise InputError(f"unknown key(s) {unknown} in config section {section!r}; known: {sorted(known)}")
    out.update(values)
    return out


@dataclass
class DeepWASConfig:
    """Settings of one DeepWAS run, grouped as in the YAML file.

    Attributes
    ----------
    prior : dict
        ``kind`` (``linear``/``mlp``/``conv``) and its arguments.
    likelihood : dict
        :class:`~torchgenetics.deepwas.likelihood.RegionLikelihood` arguments.
    data : dict
        ``window_size``, ``flank``, ``dense_max`` (:func:`build_regions`), ``batch_size``,
        ``val_chromosomes`` (held out), ``track_half_width`` (>0: windowed tracks).
    training : dict
        ``epochs``, ``objective``, ``sigma``, ``learn_sigma``, ``link``, ``weight_decay``,
        ``patience``, ``restore_best``, ``eval_train``, ``seed``.
    optim : dict
        :class:`torchgenetics.optim.OptimConfig` fields (``n_steps`` is set from the
        epochs): ``lr`` (peak), ``pct_start``, ``div_factor``, ``final_div_factor``,
        ``betas``, ``clip_norm``.

    Examples
    --------
    >>> cfg = DeepWASConfig.from_dict({"prior": {"kind": "linear"}, "training": {"epochs": 3}})
    >>> cfg.training["epochs"], cfg.prior_spec()
    (3, {'kind': 'linear'})
    """

    prior: dict = field(default_factory=lambda: copy.deepcopy(DEFAULTS["prior"]))
    likelihood: dict = field(default_factory=lambda: copy.deepcopy(DEFAULTS["likelihood"]))
    data: dict = field(default_factory=lambda: copy.deepcopy(DEFAULTS["data"]))
    training: dict = field(default_factory=lambda: copy.deepcopy(DEFAULTS["training"]))
    optim: dict = field(default_factory=lambda: copy.deepcopy(DEFAULTS["optim"]))

    @classmethod
    def from_dict(cls, values: dict | None = None) -> "DeepWASConfig":
        """Defaults updated by a nested mapping (unknown sections or keys raise).

        Examples
        --------
        >>> DeepWASConfig.from_dict({"data": {"batch_size": 2}}).data["batch_size"]
        2
        """
        values = dict(values or {})
        unknown = sorted(set(values) - set(DEFAULTS))
        if unknown:
            raise InputError(f"unknown config section(s) {unknown}; known: {sorted(DEFAULTS)}")
        merged = {s: _merge(s, copy.deepcopy(DEFAULTS[s]), values.get(s)) for s in DEFAULTS}
        cfg = cls(**merged)
        cfg.optim_config(100)  # validate the optimiser settings now
        return cfg

    @classmethod
    def from_yaml(cls, path) -> "DeepWASConfig":
        """Read a YAML config file.

        Examples
        --------
        >>> import tempfile, os
        >>> f = os.path.join(tempfile.mkdtemp(), "c.yaml")
        >>> _ = open(f, "w").write("training:\\n  epochs: 2\\n")
        >>> DeepWASConfig.from_yaml(f).training["epochs"]
        2
        """
        import yaml

        path = Path(path)
        if not path.is_file():
            raise MissingFileError(path, "DeepWAS config")
        try:
            values = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise FileFormatError(path, f"not valid YAML ({err})") from None
        if not isinstance(values, dict):
            raise FileFormatError(path, "the config must be a mapping of sections")
        try:
            return cls.from_dict(values)
        except InputError as err:
            raise FileFormatError(path, str(err)) from None

    @classmethod
    def coerce(cls, config) -> "DeepWASConfig":
        """Accept None, a dict, a path or a DeepWASConfig.

        Examples
        --------
        >>> DeepWASConfig.coerce(None).prior["kind"]
        'mlp'
        """
        if config is None:
            return cls()
        if isinstance(config, cls):
            return config
        if isinstance(config, dict):
            return cls.from_dict(config)
        if isinstance(config, (str, Path)):
            return cls.from_yaml(config)
        raise InputError(f"config must be a DeepWASConfig, dict or YAML path, got {type(config).__name__}")

    def to_dict(self) -> dict:
        """The sections as a nested dict (saved with a fit).

        Examples
        --------
        >>> sorted(DeepWASConfig().to_dict())
        ['data', 'likelihood', 'optim', 'prior', 'training']
        """
        return copy.deepcopy({s: getattr(self, s) for s in DEFAULTS})

    def updated(self, section: str, **values) -> "DeepWASConfig":
        """A copy with some keys of one section replaced (None values ignored).

        Examples
        --------
        >>> DeepWASConfig().updated("training", epochs=5, seed=None).training["seed"]
        0
        """
        data = self.to_dict()
        data[section].update({k: v for k, v in values.items() if v is not None})
        return DeepWASConfig.from_dict(data)

    def prior_spec(self) -> dict:
        """The prior section restricted to the keys its kind accepts.

        Examples
        --------
        >>> DeepWASConfig().prior_spec()["kind"]
        'mlp'
        """
        kind = self.prior.get("kind")
        if kind not in _PRIOR_KEYS:
            raise InputError(f"prior kind must be one of {sorted(_PRIOR_KEYS)}, got {kind!r}")
        spec = {"kind": kind}
        spec.update({k: v for k, v in self.prior.items() if k in _PRIOR_KEYS[kind]})
        if kind == "conv" and isinstance(spec.get("hidden"), (list, tuple)):
            spec["hidden"] = int(spec["hidden"][0])
        return spec

    def optim_config(self, n_steps: int) -> OptimConfig:
        """The :class:`OptimConfig` for a run of ``n_steps`` steps.

        Examples
        --------
        >>> DeepWASConfig().optim_config(200).warmup_steps
        20
        """
        return as_config(self.optim, n_steps=int(n_steps))
