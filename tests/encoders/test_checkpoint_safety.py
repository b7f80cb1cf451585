"""Unreadable, unsafe and mismatched checkpoints each give one clear EncoderError."""

from __future__ import annotations

import json

import pytest
import torch

from wsi_engine.config import configs_dir
from wsi_engine.encoders import create_random_checkpoint, load_encoder, load_encoder_config
from wsi_engine.encoders.weights import read_state_dict
from wsi_engine.errors import EncoderError


class Payload:
    """An arbitrary object: pickling it makes torch.load run code to rebuild it."""

    def __init__(self):
        self.note = "not a tensor"


def test_truncated_checkpoint_is_reported_corrupt(tiny_checkpoint, tmp_path):
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(tiny_checkpoint.read_bytes()[:5000])
    with pytest.raises(EncoderError, match="corrupt"):
        load_encoder("tiny-clip", checkpoint=cut)
    zipped = tmp_path / "cut.pt"
    torch.save(read_state_dict(tiny_checkpoint), tmp_path / "full.pt")
    zipped.write_bytes((tmp_path / "full.pt").read_bytes()[:5000])
    with pytest.raises(EncoderError, match="corrupt"):
        load_encoder("tiny-clip", checkpoint=zipped)


def test_pickled_payload_is_refused(tiny_checkpoint, tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": read_state_dict(tiny_checkpoint), "extra": Payload()}, path)
    with pytest.raises(
        EncoderError, match="refused: the checkpoint holds pickled Python objects"
    ) as caught:
        load_encoder("tiny-clip", checkpoint=path)
    assert "Payload" in str(caught.value)


def test_plain_torch_state_dict_with_wrapper_and_prefix_loads(tiny_checkpoint, tmp_path):
    state = {f"module.{k}": v for k, v in read_state_dict(tiny_checkpoint).items()}
    torch.save({"state_dict": state, "epoch": torch.tensor(3)}, tmp_path / "wrapped.pt")
    # an int epoch beside the state dict is fine too
    torch.save({"state_dict": state, "epoch": 3}, tmp_path / "wrapped2.pt")
    for name in ("wrapped.pt", "wrapped2.pt"):
        assert load_encoder("tiny-clip", checkpoint=tmp_path / name).embed_dim == 32


def test_wrong_architecture_lists_keys(tmp_path):
    config = load_encoder_config("tiny-clip")
    model_json = tmp_path / "wider.json"
    spec = json.loads((configs_dir() / "encoders" / "models" / "tiny-clip.json").read_text())
    spec["vision_cfg"]["layers"] = 3
    spec["vision_cfg"]["width"] = 96
    model_json.write_text(json.dumps(spec))
    other = config.model_copy(update={"architecture": str(model_json)})
    path = create_random_checkpoint(other, tmp_path / "wider.safetensors")
    with pytest.raises(EncoderError, match="does not fit encoder 'tiny-clip'") as caught:
        load_encoder("tiny-clip", checkpoint=path)
    text = str(caught.value)
    assert "unexpected (visual.transformer.resblocks.2." in text and "shape mismatch" in text


def test_by_position_count_mismatch_and_checksum(tiny_checkpoint, tmp_path):
    with pytest.raises(EncoderError, match="checksum mismatch"):
        load_encoder("efficientnet-lite0", checkpoint=tiny_checkpoint)
    config = load_encoder_config("efficientnet-lite0")
    unpinned = config.model_copy(
        update={"weights": config.weights.model_copy(update={"sha256": None})}
    )
    with pytest.raises(EncoderError, match="safetensors does not keep tensor order"):
        load_encoder(unpinned, checkpoint=tiny_checkpoint)
    torch.save(read_state_dict(tiny_checkpoint), tmp_path / "tiny.pt")
    with pytest.raises(
        EncoderError,
        match=r"checkpoint holds \d+ tensors, architecture 'efficientnet_lite0' has \d+",
    ):
        load_encoder(unpinned, checkpoint=tmp_path / "tiny.pt")
