"""What the slide (``mil``) and patch (``patch``) trainers share, so neither reaches into the other.

Modules, one job each: :mod:`.rundir` (run directories: claim, clear,
``run.json``, JSON/CSV files), :mod:`.checkpoint` (format-checked checkpoint
files), :mod:`.loop` (the epoch loop with early stopping), :mod:`.seeding`
(seeds and CPU threads), :mod:`.stores` (a fitted model's input read store by
store, failures by slide id). Import the submodules directly; this package
imports nothing heavy.
"""
