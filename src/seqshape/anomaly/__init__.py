"""Anomaly detection: the LSTM detector, the NAB corpus and scorer, scores and thresholds.

* :mod:`.detector` — `AnomalyDetector`, forecast-residual scoring on a small forecaster, batch and
  streaming (imported from there, or as ``seqshape.AnomalyDetector``); its options in
  :mod:`.detector_config`, its streaming scorer in :mod:`.detector_stream`;
* :mod:`.runner` — the NAB runner;
* :mod:`.nab` — read the Numenta Anomaly Benchmark, read/write detector results, score them
  (the scoring rule in :mod:`.nab_score`);
* :mod:`.scoring` — forecast errors -> anomaly scores in [0, 1], batch or streaming;
* :mod:`.thresholds` — scores or errors -> boolean flags.
"""

from .nab import (
    PROFILE_NAMES,
    CostProfile,
    NabSeries,
    ProfileScore,
    load_corpus,
    load_profiles,
    probationary_length,
    read_results,
    scaled_sigmoid,
    score_corpus,
    score_detector,
    sweep_thresholds,
    write_results,
)
from .scoring import TailProbabilityScorer, gaussian_nll_score
from .thresholds import dynamic_threshold, fixed_threshold, quantile_threshold

__all__ = [
    "PROFILE_NAMES",
    "CostProfile",
    "NabSeries",
    "ProfileScore",
    "load_corpus",
    "load_profiles",
    "probationary_length",
    "read_results",
    "write_results",
    "scaled_sigmoid",
    "sweep_thresholds",
    "score_corpus",
    "score_detector",
    "TailProbabilityScorer",
    "gaussian_nll_score",
    "fixed_threshold",
    "quantile_threshold",
    "dynamic_threshold",
]
