"""The timm path with real pretrained weights: EfficientNet-Lite0 from ../shared/models."""

from __future__ import annotations

import numpy as np
import pytest

from wsi_engine.encoders.embed import embed_stores
from wsi_engine.store import PatchStore

from .conftest import SHARED_MODELS, make_store


@pytest.fixture
def weights_dir(monkeypatch):
    if not (SHARED_MODELS / "efficientnet-lite0" / "efficientnet-lite0-57934424.pth").is_file():
        pytest.skip("pretrained weights not present (../shared/models/efficientnet-lite0)")
    monkeypatch.setenv("WSI_ENGINE_WEIGHTS_DIR", str(SHARED_MODELS))
    return SHARED_MODELS


def test_efficientnet_lite0_loads_real_weights_and_embeds(weights_dir, tmp_path):
    from skimage import data

    from wsi_engine.encoders import load_encoder

    encoder = load_encoder("efficientnet-lite0")
    import torch

    cat = data.chelsea()[:, 75:375]  # 300 × 300 centre of the cat photo
    with torch.inference_mode():
        logits = encoder.model.classifier(
            encoder.image(torch.from_numpy(np.ascontiguousarray(cat))[None])
        )
    assert int(logits.argmax()) in (
        281,
        282,
        285,
    )  # tabby, tiger cat, Egyptian cat: real ImageNet weights
    store = make_store(tmp_path, "e", 12, size=96, shard=8)
    report = embed_stores([store], encoder, device="cpu", batch_size=8, workers=0)
    assert report.results[0].status == "done"
    features = PatchStore.open(store).read_features("efficientnet-lite0")
    attrs = PatchStore.open(store).feature_attrs("efficientnet-lite0")
    assert features.shape == (12, 1280) and np.isfinite(features).all() and features.std() > 0
    assert attrs["output_kind"] == "image_only" and attrs["text_aligned"] is False
