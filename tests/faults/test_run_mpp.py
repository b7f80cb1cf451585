"""Attack 8: ``run`` takes µm/px like ``tile`` does (``--mpp``, ``--mpp-table``, YAML ``tiling.mpp``)."""

from __future__ import annotations

import tifffile

from wsi_engine.cli import main
from wsi_engine.pipeline import load_pipeline_config
from wsi_engine.store import PatchStore


def _slide_without_mpp(world, folder):
    folder.mkdir()
    image = tifffile.imread(world.slide, level=0)
    path = folder / "nompp.tiff"
    tifffile.imwrite(path, image, photometric="rgb", tile=(256, 256), compression="jpeg")
    return path


def test_run_with_mpp_and_mpp_table(world, dask_cluster, tiny_clip_args, tmp_path, capsys):
    slide = _slide_without_mpp(world, tmp_path / "slides")
    common = [*tiny_clip_args, "--patch-size", "128", "--mpp-target", "1.0",
              "--scheduler", dask_cluster]  # fmt: skip
    assert main(["run", str(slide), "--out", str(tmp_path / "a"), *common, "--mpp", "0.5"]) == 0
    store = PatchStore.open(tmp_path / "a" / "stores" / "nompp.zarr")
    assert (
        store.attrs["slide"]["mpp"] == [0.5, 0.5] and store.attrs["slide"]["mpp_source"] == "option"
    )
    assert store.has_features("tiny-clip")

    table = tmp_path / "mpp.csv"
    table.write_text("slide_id,mpp\nnompp.tiff,0.5\n")
    args = ["run", str(slide), "--out", str(tmp_path / "b"), *common, "--mpp-table", str(table)]
    assert main(args) == 0
    store = PatchStore.open(tmp_path / "b" / "stores" / "nompp.zarr")
    assert store.attrs["slide"]["mpp_source"] == "table" and store.n_patches > 0

    # without either: the slide fails with the hint (exit 4: every slide failed for lack of µm/px)
    assert main(["run", str(slide), "--out", str(tmp_path / "none"), *common]) == 4
    assert "--mpp" in capsys.readouterr().out


def test_the_pipeline_yaml_accepts_tiling_mpp(tmp_path):
    config = tmp_path / "pipeline.yaml"
    config.write_text("tiling:\n  mpp: 0.25\n  mpp_table: table.csv\n")
    settings = load_pipeline_config(config, {})
    assert settings.tiling.mpp == 0.25 and settings.tiling.mpp_table == "table.csv"
