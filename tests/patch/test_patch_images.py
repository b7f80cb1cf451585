"""fit-patches --images with the tiny CLIP: encoding, skipped files, zero-shot start from text, one-class folders."""

from __future__ import annotations

import json

import numpy as np
import torch
from PIL import Image

from wsi_engine.cli import main
from wsi_engine.encoders import load_encoder
from wsi_engine.encoders.text import encode_text
from wsi_engine.patch.head import HeadConfig, build_head
from wsi_engine.patch.images import encode_folder, encoder_embedder, scan_image_folder
from wsi_engine.prompts import TaskEmbeddings, load_task


def write_images(folder, colour, n, size=(80, 60)):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(sum(colour))
    for i in range(n):
        pixels = np.clip(
            np.array(colour) + rng.normal(0, 20, size=(size[1], size[0], 3)), 0, 255
        ).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"img{i}.png")


def fit_args(images, out, checkpoint, *extra):
    return [
        "fit-patches",
        "--images",
        str(images),
        "--encoder",
        "tiny-clip",
        "--checkpoint",
        str(checkpoint),
        "--device",
        "cpu",
        "--out",
        str(out),
        *extra,
    ]


def test_image_folder_trains_from_a_zero_shot_start(tmp_path, tiny_checkpoint):
    images = tmp_path / "images"
    write_images(images / "normal", (230, 180, 200), 5)
    write_images(images / "tumor", (90, 40, 140), 5, size=(64, 64))
    (images / "tumor" / "broken.png").write_bytes(b"\x89PNG not really")
    (images / "normal" / "notes.txt").write_text("not an image")
    out = tmp_path / "run"
    assert (
        main(fit_args(images, out, tiny_checkpoint, "--task", "synthetic-demo", "--epochs", "2"))
        == 0
    )
    run = json.loads((out / "run.json").read_text())
    reasons = {s["item"].rsplit("/", 1)[-1]: s["reason"] for s in run["skipped"]}
    assert set(reasons) == {"broken.png", "notes.txt"} and reasons["broken.png"].startswith(
        "unreadable image"
    )
    assert run["language_priors"] is True and run["n_patches"] == 10 and run["source"] == "images"

    # the head started from the task's prompts embedded by the encoder's text tower ...
    encoder = load_encoder("tiny-clip", checkpoint=tiny_checkpoint)
    task = load_task("synthetic-demo")
    text = TaskEmbeddings.load(out / "text_embeddings.npz")
    np.testing.assert_allclose(
        text.detailed, encode_text(encoder, task.prompts("detailed")), atol=1e-5
    )
    # ... so before training it predicts each image's class as the nearest fused prompt embedding
    patches, _ = encode_folder(
        scan_image_folder(images, task.class_names), encoder_embedder(encoder, "cpu")
    )
    head = build_head(HeadConfig(), encoder.embed_dim, 2, text, seed=0)
    fused = (text.label + text.basic + text.detailed) / 3
    with torch.no_grad():
        predicted = head(torch.from_numpy(patches.features)).argmax(1).numpy()
    assert (predicted == (patches.features @ fused.T).argmax(1)).all()


def test_folders_with_one_usable_class_are_refused(tmp_path, tiny_checkpoint, capsys):
    one = tmp_path / "one"
    write_images(one / "normal", (230, 180, 200), 2)
    assert main(fit_args(one, tmp_path / "a", tiny_checkpoint)) == 7
    assert "1 class(es) (normal)" in capsys.readouterr().err
    (one / "tumor").mkdir()
    (one / "tumor" / "broken.jpg").write_bytes(b"garbage")  # the second class has no readable image
    assert main(fit_args(one, tmp_path / "b", tiny_checkpoint)) == 7
    assert "1 class(es) (normal)" in capsys.readouterr().err
    assert (
        main(fit_args(one, tmp_path / "c", tiny_checkpoint, "--task", "nsclc")) == 7
    )  # "normal" is not an NSCLC class
    assert "not in the task" in capsys.readouterr().err
