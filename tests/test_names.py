"""Forgiving names: encoder aliases, case-insensitive presets and tasks, "did you mean" suggestions."""

from __future__ import annotations

import pytest

from wsi_engine.config.names import did_you_mean, match_name, normalise
from wsi_engine.encoders.aliases import load_encoder_config
from wsi_engine.errors import ConfigError
from wsi_engine.mil.registry import get_spec
from wsi_engine.prompts import load_task


def test_normalise_ignores_case_separators_and_hub_prefix() -> None:
    assert normalise("hf-hub:Wisdomik/QuiltNet-B-32") == normalise("wisdomik/quiltnet_b_32")
    assert normalise("conch_ViT-B-16") == "conchvitb16"
    assert match_name("TINY_clip", ["tiny-clip", "conch_ViT-B-16"]) == "tiny-clip"
    assert match_name("nope", ["tiny-clip"]) is None


@pytest.mark.parametrize(
    ("name", "preset"),
    [
        ("conch_v1", "conch_ViT-B-16"),  # TRIDENT / CLAM names
        ("conch_vit-b-16", "conch_ViT-B-16"),  # wrong case
        ("CONCH", "conch_ViT-B-16"),
        ("hf-hub:MahmoodLab/CONCH", "conch_ViT-B-16"),  # a preset's hub id
        ("hf-hub:wisdomik/QuiltNet-B-32", "quiltnet-b-32"),
        ("wisdomik/QuiltNet-B-32", "quiltnet-b-32"),
        ("efficientnet_lite0", "efficientnet-lite0"),  # timm spelling
        ("timm:efficientnet_lite0", "efficientnet-lite0"),  # timm: prefix -> the preset
        ("uni_v1", "uni_v1"),
        ("UNI", "uni_v1"),
        ("openai", "openai-vit-b-16"),
    ],
)
def test_encoder_aliases_map_to_presets(name: str, preset: str) -> None:
    assert load_encoder_config(name).name == preset


def test_open_clip_and_timm_names_are_built_directly() -> None:
    vit = load_encoder_config("ViT-B-16")
    assert (vit.family, vit.architecture, vit.embed_dim, vit.preprocess.image_size) == (
        "open_clip", "ViT-B-16", 512, 224,
    )  # fmt: skip
    assert vit.weights.file == "ViT-B-16/open_clip_pytorch_model.bin" and vit.text_aligned
    resnet = load_encoder_config("timm:resnet18")
    assert (resnet.family, resnet.architecture, resnet.output) == ("timm", "resnet18", "image_only")
    assert resnet.encoder_id == "timm-resnet18"

    from wsi_engine.encoders.build import build_model

    model = build_model(resnet)  # really builds: num_classes=0 gives pooled 512-d features
    assert model.num_features == 512


def test_unknown_encoder_suggests_the_closest_preset() -> None:
    with pytest.raises(ConfigError) as caught:
        load_encoder_config("conhc_vit")
    assert "did you mean 'conch_ViT-B-16'?" in str(caught.value)
    assert caught.value.exit_code == 3
    with pytest.raises(ConfigError, match="timm has no model 'resnet1000'.*resnet"):
        load_encoder_config("timm:resnet1000")


def test_tasks_are_case_insensitive_with_aliases_and_suggestions() -> None:
    assert load_task("CAMELYON16").name == "camelyon16"
    assert load_task("camelyon").name == "camelyon16"  # alias
    assert load_task("Synthetic_Demo").name == "synthetic-demo"
    with pytest.raises(ConfigError, match=r"did you mean 'nsclc'\?"):
        load_task("nsclcc")


def test_model_names_are_forgiving() -> None:
    assert get_spec("Libra").name == get_spec("LIBRA").name == "libra"
    with pytest.raises(ConfigError, match=r"did you mean 'abmil'\?"):
        get_spec("abmill")


def test_did_you_mean_says_nothing_when_nothing_is_close() -> None:
    assert did_you_mean("zzzzzz", ["libra", "abmil"]) == ""


def test_heatmap_class_names_are_forgiving(tmp_path) -> None:
    import importlib.util
    from pathlib import Path

    from wsi_engine.heatmap import make_heatmaps

    conftest = Path(__file__).parent / "heatmap" / "conftest.py"
    spec = importlib.util.spec_from_file_location("heatmap_fixtures_names", conftest)
    fixtures = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fixtures)
    fixtures.plant_scores(fixtures.build_store(tmp_path / "stores", "s", pixels=False))
    report = make_heatmaps([tmp_path / "stores"], "run1", tmp_path / "a", class_name="TUMOR",
                           formats=["png"])  # fmt: skip
    assert not report.failed and (tmp_path / "a" / "s" / "overlay_tumor.png").is_file()
    report = make_heatmaps([tmp_path / "stores"], "run1", tmp_path / "b", class_name="tumour",
                           formats=["png"])  # fmt: skip
    assert "did you mean 'tumor'?" in str(report.failed[0].error)
