"""The ``embed``, ``import-features`` and ``export-features`` commands."""

from __future__ import annotations

from wsi_engine.cli import main
from wsi_engine.store import PatchStore

from .conftest import n_patches


def embed_args(tiny_clip_args: list[str], *stores) -> list[str]:
    """``wsi-engine embed STORES...`` with the tiny CLIP on the CPU, no reader workers."""
    return ["embed", *map(str, stores), *tiny_clip_args, "--workers", "0"]


def test_embed_command_summary_and_exit_codes(stores, tiny_clip_args, capsys):
    assert main([*embed_args(tiny_clip_args, stores[0].parent), "--batch-size", "16"]) == 0
    out = capsys.readouterr().out
    assert (
        "Features tiny-clip" in out and "patches/s" in out and f"{n_patches(stores)} patches" in out
    )
    assert PatchStore.open(stores[1]).has_features("tiny-clip")
    assert main(["embed", str(stores[0]), "--encoder", "quiltnet-b-32", "--device", "cpu"]) == 6
    assert "--checkpoint PATH" in capsys.readouterr().err


def test_one_failed_store_exits_1(stores, tiny_clip_args, capsys):
    shard = sorted(
        p for p in (stores[0] / "patches").rglob("*") if p.is_file() and p.name != "zarr.json"
    )[0]
    shard.write_bytes(b"broken" * 50)
    assert main(embed_args(tiny_clip_args, *stores)) == 1
    assert "1 of 3 stores failed" in capsys.readouterr().err
    assert PatchStore.open(stores[1]).has_features("tiny-clip")


def test_export_and_import_commands(stores, tiny_clip_args, tmp_path):
    main(embed_args(tiny_clip_args, stores[1]))
    assert (
        main(
            [
                "export-features",
                str(stores[1]),
                "--encoder",
                "tiny-clip",
                "--out",
                str(tmp_path / "h5"),
            ]
        )
        == 0
    )
    assert (tmp_path / "h5" / "b.h5").is_file()
    code = main(
        [
            "import-features",
            str(tmp_path / "h5"),
            "--out",
            str(tmp_path / "imported"),
            "--encoder-id",
            "tiny-clip",
            "--output-kind",
            "joint",
        ]
    )
    assert code == 0 and PatchStore.open(tmp_path / "imported" / "b.zarr").has_features("tiny-clip")
