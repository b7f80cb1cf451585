"""One option grammar: positional stores (``--stores`` still works), ``-o``/``--out`` folders, ``--encoder``."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from wsi_engine.cli import main
from wsi_engine.commands.options import output_file

_HEATMAP_CONFTEST = Path(__file__).parent / "heatmap" / "conftest.py"


def _heatmap_fixtures():
    spec = importlib.util.spec_from_file_location("heatmap_fixtures", _HEATMAP_CONFTEST)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Path:
    fixtures = _heatmap_fixtures()
    root = tmp_path_factory.mktemp("grammar") / "stores"
    fixtures.plant_scores(fixtures.build_store(root, "slide-a", pixels=False))
    return root


@pytest.mark.parametrize("spelling", ["positional", "--stores"])
def test_heatmap_takes_stores_either_way(stores: Path, tmp_path: Path, spelling: str) -> None:
    where = [str(stores)] if spelling == "positional" else ["--stores", str(stores)]
    out = tmp_path / "maps"
    args = ["heatmap", *where, "--scores", "run1", "-o", str(out), "--formats", "png"]
    assert main(args) == 0
    assert (out / "slide-a" / "overlay_tumor.png").is_file()


def test_no_stores_at_all_is_a_clear_usage_error(tmp_path: Path, capsys) -> None:
    assert main(["heatmap", "--scores", "run1", "--out", str(tmp_path)]) == 3
    assert "no patch stores given" in capsys.readouterr().err


def test_out_is_a_folder_and_a_csv_path_still_works(tmp_path: Path) -> None:
    assert (
        output_file(tmp_path / "preds", "predictions.csv") == tmp_path / "preds" / "predictions.csv"
    )
    assert (tmp_path / "preds").is_dir()
    assert output_file(tmp_path / "old.csv", "predictions.csv") == tmp_path / "old.csv"


def test_encoder_is_accepted_where_encoder_id_was(capsys) -> None:
    assert main(["import-features", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--encoder" in out and "--encoder-id" in out
