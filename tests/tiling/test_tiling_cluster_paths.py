"""``tile --scheduler`` from another folder than the workers': relative paths are sent absolute."""

from __future__ import annotations

import logging

from wsi_engine.tiling import TilingConfig, tile_slides


def test_relative_paths_from_another_folder_tile_on_a_running_cluster(
    synthetic_slide, dask_cluster, tools, tmp_path, monkeypatch, caplog
):
    tools.copy_slide(synthetic_slide[0], tmp_path / "data" / "slides" / "rel.tiff")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the cluster's workers were started in another folder
    with caplog.at_level(logging.WARNING, logger="wsi_engine.dask_workers"):
        (result,) = tile_slides(
            ["../data/slides"],
            "../out",
            TilingConfig(min_tissue_fraction=0.5),
            scheduler=dask_cluster,
        ).results
    assert result.status == "ok", result.reason
    assert result.store.resolve() == (tmp_path / "out" / "rel.zarr").resolve()
    assert "MALLOC_TRIM_THRESHOLD_" in caplog.text  # the fixture's workers carry Dask's 65536
