"""CLIP-IT distillation: late-fusion patch head, LoRA through peft, fit-patches and fit with --privileged-text."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from wsi_engine.cli import main
from wsi_engine.encoders import load_encoder
from wsi_engine.patch.head import HeadConfig, build_head
from wsi_engine.patch.privileged import distill_patch_head
from wsi_engine.patch.rundir import load_head, save_head
from wsi_engine.patch.train import PatchTrainConfig, predict_probs
from wsi_engine.reports.distill import LateFusionHead, TextClassifier
from wsi_engine.reports.lora import LoraSettings, linear_names, lora_on_tower, merged, with_lora
from wsi_engine.reports.settings import PrivilegedTextConfig
from wsi_engine.synthetic.joint_space import JointSpace

from .conftest import fit_args, imported_corpus, saved_corpus, slide_cohort


def late_fusion(hidden: int = 8) -> LateFusionHead:
    torch.manual_seed(0)
    head = build_head(HeadConfig(hidden=hidden), 16, 3, None, seed=0)
    return LateFusionHead(head, 12, TextClassifier(12, 3))


def test_late_fusion_head_runs_image_only_and_round_trips(tmp_path):
    model = late_fusion()
    features = torch.randn(5, 16)
    logits = model(features)
    assert logits.shape == (5, 3)
    u = model.text_space(model.embed(features))
    assert u.shape == (5, 12)  # u = W h_v lives in the text space; no report is needed at inference
    save_head(
        tmp_path / "model.pt",
        model,
        {"feature_dim": 16, "class_names": ["a", "b", "c"], "late_fusion": {"text_dim": 12}},
    )
    loaded, meta = load_head(tmp_path / "model.pt")
    assert isinstance(loaded, LateFusionHead) and meta.head_config["hidden"] == 8
    x = features.numpy()
    assert np.allclose(predict_probs(loaded, x), predict_probs(model.eval(), x), atol=1e-6)


def test_lora_wraps_only_the_mlp_linears_and_merges_exactly():
    model = late_fusion()
    targets = linear_names(model, ["image.adapter.", "text."])
    assert targets == ["image.adapter.0", "image.adapter.3", "text.0", "text.2"]
    base = {n: p.detach().clone() for n, p in model.named_parameters()}
    wrapped = with_lora(model, targets, LoraSettings())
    trainable = {n for n, p in wrapped.named_parameters() if p.requires_grad}
    assert all(("lora_" in n) or (".base_layer." not in n) for n in trainable)
    assert any(n.endswith("to_text.weight") for n in trainable)
    assert any(n.endswith("fuse.weight") for n in trainable)
    assert not any(n.endswith("image.adapter.0.base_layer.weight") for n in trainable)
    lora_a = next(m for n, m in wrapped.named_modules() if n.endswith("text.0"))
    assert lora_a.r["default"] == 16 and lora_a.scaling["default"] == pytest.approx(8 / 16)
    optimiser = torch.optim.SGD([p for p in wrapped.parameters() if p.requires_grad], lr=0.1)
    for _ in range(3):
        loss = wrapped(torch.randn(8, 16)).logsumexp(-1).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    frozen = dict(wrapped.named_parameters())
    assert torch.equal(frozen["base_model.model.text.0.base_layer.weight"], base["text.0.weight"])
    x = torch.randn(4, 16)
    with torch.no_grad():
        expected = wrapped(x)
        plain = merged(wrapped)
        assert isinstance(plain, LateFusionHead)
        assert torch.allclose(plain(x), expected, atol=1e-5)
        assert not torch.equal(
            plain.text[0].weight, base["text.0.weight"]
        )  # the update is folded in


def test_lora_on_the_last_block_of_an_open_clip_tower(tiny_checkpoint):
    encoder = load_encoder("tiny-clip", checkpoint=tiny_checkpoint)
    tower = encoder.model.visual
    wrapped = lora_on_tower(tower, 1, LoraSettings(r=4, alpha=8))
    trainable = [n for n, p in wrapped.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n and "resblocks.1." in n for n in trainable)
    x = torch.randn(2, 3, 64, 64)
    before = wrapped(x).detach()
    optimiser = torch.optim.SGD([p for p in wrapped.parameters() if p.requires_grad], lr=1.0)
    wrapped(x).pow(2).sum().backward()
    optimiser.step()
    assert not torch.allclose(wrapped(x), before)


def test_distilled_patch_head_trains_with_the_text_term():
    space = JointSpace(dim=16, semantic=4, n_classes=3)
    images = space.images(6, seed=1)
    corpus = space.corpus(5, True, seed=2)
    head = build_head(HeadConfig(hidden=8), 16, 3, None, seed=0)
    config = PatchTrainConfig(epochs=3, val_fraction=0.0, resample=False)
    reference = {n: p.detach().clone() for n, p in head.state_dict().items()}
    result = distill_patch_head(
        head,
        images,
        images.subset(np.zeros(len(images), bool)),
        3,
        space.class_names,
        corpus,
        config,
        PrivilegedTextConfig(),
        0,
    )
    assert all(
        torch.equal(reference[n], p) for n, p in head.state_dict().items()
    )  # the baseline head is untouched
    assert "train_text" in result.train.history[0] and result.train.history[0]["train_text"] > 0
    assert result.lora_targets == ["image.adapter.0", "image.adapter.3", "text.0", "text.2"]
    assert isinstance(result.model, LateFusionHead)
    assert result.quality.class_agreement > result.quality.chance_agreement


def test_fit_patches_with_privileged_text(tmp_path, image_folder, tiny_clip_args, capsys):
    corpus_dir = imported_corpus(
        tmp_path,
        ["pink normal breast tissue", "purple tumour cells in sheets", "fibrous stroma"],
        tiny_clip_args,
    )
    out = tmp_path / "run"
    args = [
        "fit-patches",
        "--images",
        str(image_folder),
        *tiny_clip_args,
        "--task",
        "synthetic-demo",
        "--hidden",
        "8",
        "--epochs",
        "2",
        "--out",
        str(out),
    ]
    assert main([*args, "--privileged-text", str(corpus_dir), "--lora-r", "4"]) == 0
    run = json.loads((out / "run.json").read_text())
    assert run["privileged_text"]["paired"] == "training patches only"
    assert run["privileged_text"]["lora_targets"] == [
        "image.adapter.0",
        "image.adapter.3",
        "text.0",
        "text.2",
    ]
    assert [m["stage"] for m in run["metrics"]] == [
        "zero-shot",
        "trained (image only)",
        "clip-it (image path)",
    ]
    assert (
        len({m["evaluated_on"] for m in run["metrics"]}) == 1
    )  # every stage on the same held-out patches
    n_pairs = (out / "pairs.csv").read_text().count("\n") - 1
    assert n_pairs == run["n_train_patches"]  # validation images were never paired
    head, meta = load_head(out / "model.pt")
    assert (
        isinstance(head, LateFusionHead)
        and meta.late_fusion is not None
        and meta.late_fusion.text_dim == 32
    )
    assert predict_probs(
        head, np.random.default_rng(0).normal(size=(3, 32)).astype(np.float32)
    ).shape == (3, 2)

    other = tmp_path / "other.safetensors"
    from wsi_engine.encoders import create_random_checkpoint

    create_random_checkpoint("tiny-clip", other, seed=1)
    capsys.readouterr()
    bad = [
        "fit-patches",
        "--images",
        str(image_folder),
        "--encoder",
        "tiny-clip",
        "--checkpoint",
        str(other),
        "--device",
        "cpu",
        "--out",
        str(tmp_path / "bad"),
        "--privileged-text",
        str(corpus_dir),
    ]
    assert main(bad) == 6
    err = " ".join(capsys.readouterr().err.split())
    assert (
        "reports were embedded with checkpoint sha256" in err
        and "other weights of 'tiny-clip'" in err
    )


@pytest.mark.parametrize("model", ["abmil", "libra"])
def test_fit_with_privileged_text_distils_into_the_bag_representation(tmp_path, model):
    space = JointSpace(dim=16, semantic=4, n_classes=2)
    stores, labels = slide_cohort(tmp_path, space, 6)
    corpus_dir = saved_corpus(tmp_path / "corpus", space, True)
    small = {"set": ["dim=16", "heads=2"], "kv": 3} if model == "libra" else {"set": ["dim=16"]}
    assert main(fit_args(stores, labels, tmp_path / "plain", model, epochs=3, **small)) == 0
    text = {"privileged_text": corpus_dir, "privileged_weight": 5}
    assert main(fit_args(stores, labels, tmp_path / "text", model, epochs=3, **small, **text)) == 0
    run = json.loads((tmp_path / "text" / "run.json").read_text())
    assert run["privileged_text"]["paired"] == "slides of the training parts only"
    splits = json.loads((tmp_path / "text" / "splits.json").read_text())["splits"]
    train = {s for split in splits for s in split["train"]}
    paired = {
        line.split(",")[0]
        for line in (tmp_path / "text" / "pairs.csv").read_text().splitlines()[1:]
    }
    assert paired == train
    checkpoint = torch.load(
        tmp_path / "text" / "folds" / "shots_2" / "fold_0" / "model.pt", weights_only=True
    )
    assert not any(
        "to_text" in k for k in checkpoint["state_dict"]
    )  # W is dropped: inference is image-only
    history = json.loads(
        (tmp_path / "text" / "folds" / "shots_2" / "fold_0" / "history.json").read_text()
    )
    plain = json.loads(
        (tmp_path / "plain" / "folds" / "shots_2" / "fold_0" / "history.json").read_text()
    )
    # same seeds and splits: the first epoch's loss differs by the added λ·(1 − cos) term
    assert history[0]["train_loss"] > plain[0]["train_loss"] + 0.5


def test_fit_refuses_privileged_text_for_models_without_a_bag_representation(tmp_path, capsys):
    space = JointSpace(dim=16, semantic=4, n_classes=2)
    stores, labels = slide_cohort(tmp_path, space, 6)
    corpus_dir = saved_corpus(tmp_path / "corpus", space, True)
    args = fit_args(stores, labels, tmp_path / "run", "mean", privileged_text=corpus_dir)
    assert main(args) == 3
    assert "--privileged-text applies to --model libra or abmil" in " ".join(
        capsys.readouterr().err.split()
    )
