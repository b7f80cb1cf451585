"""Few-shot multiple-instance learning on patch features: heads, training, splits, runs (docs/mil.md).

Modules, one job each: :mod:`.base` (the ``MILModel``/``MILOutput`` interface),
:mod:`.libra` (Libra-MIL), :mod:`.baselines` (mean/max pooling, ABMIL),
:mod:`.attention` (cross-attention with weights), :mod:`.registry` (model
names), :mod:`.losses`, :mod:`.sampling` (adaptive resampling), :mod:`.data`
(labels, cohort checks, lazy bag reading), :mod:`.fewshot` (split protocol and
files), :mod:`.train` (one fold), :mod:`.metrics`, :mod:`.report` (tables and
figures), :mod:`.rundir` (run directory and checkpoints), :mod:`.fit` and
:mod:`.predict` (the two commands' APIs). Import the submodules directly;
this package imports nothing heavy.
"""
