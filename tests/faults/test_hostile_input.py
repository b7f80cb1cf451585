"""Attacks 4, 5, 10 and the nits: YAML alias bombs, huge and deep GeoJSON, huge slides, odd names."""

from __future__ import annotations

import json

import numpy as np
import pytest

from wsi_engine.cli import main
from wsi_engine.errors import ConfigError
from wsi_engine.slide.ids import slide_id_from_path
from wsi_engine.store import PatchStore

BOMB = """\
a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
patch_size: [*f, *f, *f, *f, *f, *f, *f, *f, *f]
"""


@pytest.mark.parametrize("command", ["tile", "tasks"])
def test_a_yaml_alias_bomb_is_refused_in_one_short_line(command, world, tmp_path, capsys):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(BOMB)
    args = (
        ["tile", str(world.slide), "--out", str(tmp_path / "o"), "--config", str(bomb)]
        if command == "tile"
        else ["tasks", str(bomb)]
    )
    assert main(args) == 3
    err = capsys.readouterr().err
    assert "aliases" in err and str(bomb) in err and len(err) < 400


def test_a_wrong_value_is_quoted_truncated(tmp_path, capsys):
    config = tmp_path / "long.yaml"
    config.write_text("patch_size: [" + ", ".join(["1"] * 50_000) + "]\n")
    assert main(["tile", str(tmp_path), "--out", str(tmp_path / "o"), "--config", str(config)]) == 3
    err = capsys.readouterr().err
    assert "patch_size" in err and len(err) < 600


def _tile(world, scheduler, out, geojson, *extra) -> int:
    args = ["tile", str(world.slide), "--out", str(out), "--tissue-geojson", str(geojson)]
    return main(
        [*args, "--patch-size", "128", "--mpp-target", "1.0", "--scheduler", scheduler, *extra]
    )


def test_a_geojson_with_two_million_vertices_is_refused_naming_the_option(
    world, dask_cluster, tmp_path, capsys
):
    t = np.linspace(0, 2 * np.pi, 2_000_000, endpoint=False)
    ring = np.round(np.stack([512 + 300 * np.cos(t), 384 + 300 * np.sin(t)], axis=1), 2)
    geojson = tmp_path / "many.geojson"
    geojson.write_text(json.dumps({"type": "Polygon", "coordinates": [ring.tolist()]}))
    assert _tile(world, dask_cluster, tmp_path / "out", geojson) == 3
    err = capsys.readouterr().err
    assert "more than 1,000,000 polygon vertices" in err and "tiling.geojson_max_vertices" in err


def test_a_many_vertex_polygon_rasterises_exactly(tmp_path):
    """Scanline fill: a 200,000-vertex circle covers its area (a vertices × pixels fill would crawl)."""
    from wsi_engine.tissue.geojson import load_tissue_geojson

    t = np.linspace(0, 2 * np.pi, 200_000, endpoint=False)
    ring = np.stack([4000 + 3000 * np.cos(t), 4000 + 3000 * np.sin(t)], axis=1)
    geojson = tmp_path / "circle.geojson"
    geojson.write_text(json.dumps({"type": "Polygon", "coordinates": [ring.tolist()]}))
    mask = load_tissue_geojson(geojson, (8000, 8000), 0.5, 8.0)  # 16 level-0 px per mask px
    area = mask.mask.sum() * 16 * 16
    assert abs(area - np.pi * 3000**2) / (np.pi * 3000**2) < 0.01


@pytest.mark.parametrize("depth", [100, 50_000])
def test_a_deeply_nested_geojson_is_a_clear_error_not_a_recursion_error(depth, tmp_path):
    from wsi_engine.tissue.geojson import load_tissue_geojson

    polygon = json.dumps(
        {"type": "Polygon", "coordinates": [[[0, 0], [500, 0], [500, 500], [0, 0]]]}
    )
    collection = '{"type": "GeometryCollection", "geometries": ['
    geojson = tmp_path / "deep.geojson"
    geojson.write_text(collection * depth + polygon + "]}" * depth)
    with pytest.raises(ConfigError, match="nested") as caught:
        load_tissue_geojson(geojson, (1024, 768), 0.5, 8.0)
    assert str(geojson) in str(caught.value)


@pytest.mark.parametrize("margin", [0.0, 1e30])
def test_a_polygon_covering_the_whole_slide_covers_all_of_it(tmp_path, margin):
    from wsi_engine.tissue.geojson import load_tissue_geojson

    w, h = 1024, 768
    box = [
        [-margin, -margin],
        [w + margin, -margin],
        [w + margin, h + margin],
        [-margin, h + margin],
    ]
    geojson = tmp_path / "whole.geojson"
    geojson.write_text(json.dumps({"type": "Polygon", "coordinates": [box + box[:1]]}))
    assert load_tissue_geojson(geojson, (w, h), 0.5, 8.0).mask.all()


def test_the_whole_slide_polygon_gives_every_patch(world, dask_cluster, tmp_path):
    box = [[0, 0], [1024, 0], [1024, 768], [0, 768], [0, 0]]
    geojson = tmp_path / "whole.geojson"
    geojson.write_text(json.dumps({"type": "Polygon", "coordinates": [box]}))
    out = tmp_path / "out"
    assert _tile(world, dask_cluster, out, geojson, "--min-tissue", "1.0", "--pixels", "none") == 0
    assert PatchStore.open(out / "victim.zarr").n_patches == 4 * 3  # 256 level-0 px patches


def test_a_slide_above_the_pixel_limit_is_refused_naming_the_option(
    world, dask_cluster, tmp_path, capsys
):
    config = tmp_path / "limit.yaml"
    config.write_text("max_slide_pixels: 500000\npatch_size: 128\ntarget_mpp: 1.0\n")
    args = ["tile", str(world.slide), "--out", str(tmp_path / "o"), "--config", str(config)]
    assert main([*args, "--scheduler", dask_cluster]) == 4
    err = capsys.readouterr().err
    assert "1,024 × 768" in err and "tiling.max_slide_pixels" in err


def test_a_name_with_two_dots_keeps_them_in_its_id():
    assert slide_id_from_path("a..b.tiff") == "a..b"
    assert slide_id_from_path("/x/case.v2.svs") == "case.v2"
    assert slide_id_from_path("scan.ome.tiff") == "scan"
