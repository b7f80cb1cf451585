"""Patch-level classifiers fed by the few-shot bag classifiers, or by labelled patch folders.

Slide labels are cheap and patch labels are not: a fitted bag model already
says which patches drove its decision. This package turns that evidence into
a classifier that labels every patch of a slide.

Pipeline (``wsi-engine fit-patches --from-run RUN --stores ... --out RUN2``):

1. :mod:`.evidence` applies the bag run's fold models to every labelled store
   (attention, instance score, slide probabilities), skipping unusable stores
   with a reason;
2. :mod:`.targets` turns evidence + slide label into hard targets (confident
   positives and negatives by within-slide quantiles) and soft targets (the
   bag model's per-patch class distribution);
3. :mod:`.head` builds a linear or residual-MLP head whose class weights are
   the task's label/basic/detailed prompt embeddings fused by learnable
   softmax weights (a zero-shot classifier before any training);
4. :mod:`.train` trains it with class-balanced adaptive resampling, the
   reinforced focal loss, L2 distillation to the soft targets and, with a
   second store set at another µm/px (:mod:`.multiscale`), an optional pair
   or triplet loss whose positives are the same location at two resolutions;
5. :mod:`.fit` writes the run (:mod:`.rundir`, :mod:`.report`);
   :mod:`.predict` (``wsi-engine predict-patches``) writes ``scores/<run_id>/probs``
   into stores; :mod:`.evaluate` scores bag attention and patch probabilities
   against ground-truth lesions.

``wsi-engine fit-patches --images DIR --encoder E`` (:mod:`.images`) trains
the same head on a labelled patch folder encoded by the frozen encoder.
"""

from wsi_engine.patch.evaluate import PatchAucReport, SlidePatchScores, compare_patch_auc, patch_auc
from wsi_engine.patch.fit import (
    FitPatchesConfig,
    PatchFitResult,
    fit_patches_from_images,
    fit_patches_from_run,
)
from wsi_engine.patch.head import HeadConfig, PatchHead, build_head
from wsi_engine.patch.predict import PatchPredictResult, predict_patches
from wsi_engine.patch.targets import TargetConfig, slide_targets
from wsi_engine.patch.train import PatchTrainConfig, train_head

__all__ = [
    "FitPatchesConfig",
    "HeadConfig",
    "PatchAucReport",
    "PatchFitResult",
    "PatchHead",
    "PatchPredictResult",
    "PatchTrainConfig",
    "SlidePatchScores",
    "TargetConfig",
    "build_head",
    "compare_patch_auc",
    "fit_patches_from_images",
    "fit_patches_from_run",
    "patch_auc",
    "predict_patches",
    "slide_targets",
    "train_head",
]
