"""bayesDREAM: Pyro models of CRISPR perturbation dose-response (technical, cis, trans).

A perturbation moves a cis gene's expression ``x_true``; every trans feature is a
dose-response curve of ``x_true`` (signed Hill, additive two-Hill, nested or
polynomial, each with an on/off gate), observed through negative-binomial,
normal, Student-t, binomial or multinomial likelihoods with technical-group
effects. Fits run SVI with OneCycleLR stepped every iteration, cell subsampling
planned from measured memory, and posterior draws of latent sites only.

Examples
--------
>>> from torchgenetics.dream import BayesDream, simulate_screen
>>> sim = simulate_screen(n_cells=150, n_features=4, seed=0)
>>> dm = BayesDream(sim.counts, sim.cells, cis_gene=sim.cis_gene)
>>> _ = dm.fit_technical(n_steps=150, n_samples=50)
>>> _ = dm.fit_cis(n_steps=150, n_samples=50)
>>> dm.fit_trans(n_steps=150, n_samples=50).to_frame().shape[0]
4
"""

from .batches import CellRows, measure_bytes_per_cell, plan_batch_size
from .curves import CurveSpec, curve_mean, curve_params, derived_quantities, sample_curve
from .data import FAMILIES, DreamData, Modality, as_matrix, make_modality, prepare_data
from .files import read_cells, read_counts, write_cells, write_counts
from .guides import GUIDES, structured_guide
from .hill import FORMS, additive_hill, hill, inflection_point, nested_hill, polynomial
from .inference import InferenceResult, run_inference
from .likelihoods import Family, get_family
from .memtrack import TensorMemoryTracker
from .model import BayesDream
from .plots import plot_hill, plot_losses
from .priors import PriorReport, baseline_priors, cis_priors, hill_priors
from .results import CisFit, DreamFit, TechnicalFit, TransFit, load_fit, summarize_draws
from .sampling import latent_sites, sample_posterior
from .simulate import SimulatedScreen, simulate_screen
from .trans import temperature_schedule

__all__ = [
    "BayesDream",
    "DreamData",
    "Modality",
    "FAMILIES",
    "FORMS",
    "prepare_data",
    "make_modality",
    "as_matrix",
    "read_counts",
    "read_cells",
    "write_counts",
    "write_cells",
    "TechnicalFit",
    "CisFit",
    "TransFit",
    "DreamFit",
    "load_fit",
    "summarize_draws",
    "PriorReport",
    "hill_priors",
    "baseline_priors",
    "cis_priors",
    "hill",
    "additive_hill",
    "nested_hill",
    "polynomial",
    "inflection_point",
    "CurveSpec",
    "sample_curve",
    "curve_params",
    "curve_mean",
    "derived_quantities",
    "Family",
    "get_family",
    "sample_posterior",
    "latent_sites",
    "run_inference",
    "GUIDES",
    "structured_guide",
    "InferenceResult",
    "CellRows",
    "measure_bytes_per_cell",
    "plan_batch_size",
    "TensorMemoryTracker",
    "temperature_schedule",
    "simulate_screen",
    "SimulatedScreen",
    "plot_hill",
    "plot_losses",
]
