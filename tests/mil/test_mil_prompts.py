"""Task prompt sets: shipped tasks load, the schema is enforced, over-long prompts are reported."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from wsi_engine.errors import ConfigError
from wsi_engine.prompts import PROMPT_FIELDS, TaskEmbeddings, list_tasks, load_task, validate_task

SHIPPED = {
    "nsclc": ["LUAD", "LUSC"],
    "rcc": ["KICH", "KIRC", "KIRP"],
    "camelyon16": ["normal", "tumor"],
    "brca": ["IDC", "ILC"],
    "synthetic-demo": ["normal", "tumor"],
}


@pytest.mark.parametrize(("name", "classes"), SHIPPED.items())
def test_shipped_tasks_load_with_explicit_class_order(name, classes):
    task = load_task(name)
    assert task.class_names == classes
    assert len(task.entities) >= 8
    for field in PROMPT_FIELDS:
        assert len(task.prompts(field)) == len(classes)
    assert all(":" in e for e in task.entities)


def test_list_tasks_includes_shipped():
    assert set(SHIPPED) <= set(list_tasks())


def _task_dict() -> dict:
    cls = {f: f"{f} text" for f in PROMPT_FIELDS}
    return {
        "name": "custom",
        "classes": [{"name": "a", **cls}, {"name": "b", **cls}],
        "entities": ["Cell: small and round", "Gland: lumen lined by cells"],
    }


def _write(tmp_path, data) -> str:
    path = tmp_path / "task.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return str(path)


def test_user_task_file_loads(tmp_path):
    task = load_task(_write(tmp_path, _task_dict()))
    assert task.class_names == ["a", "b"] and task.entity_names == ["Cell", "Gland"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["entities"].append("no colon here"), "Entity: description"),
        (lambda d: d["entities"].append("Cell: again"), "listed twice"),
        (lambda d: d["classes"].pop(), "at least 2"),
        (lambda d: d["classes"][1].update(name="a"), "class names listed twice"),
        (lambda d: d["classes"][0].pop("bag_high"), "missing key 'classes.0.bag_high'"),
        (lambda d: d.update(colour="red"), "unknown key 'colour'"),
    ],
)
def test_bad_task_files_are_config_errors(tmp_path, change, message):
    data = _task_dict()
    change(data)
    with pytest.raises(ConfigError, match=message):
        load_task(_write(tmp_path, data))


def test_unknown_task_name_lists_known_ones():
    with pytest.raises(ConfigError, match="known presets: .*nsclc"):
        load_task("no-such-task")


def test_validator_reports_prompts_longer_than_the_context():
    task = load_task("nsclc")
    long = validate_task(task, 12, lambda texts: [len(t.split()) + 2 for t in texts])
    assert long and all(p.tokens > 12 for p in long)
    assert any(p.where == "class LUAD detailed" for p in long)
    assert validate_task(task, 10_000, lambda texts: [len(t.split()) + 2 for t in texts]) == []


def test_task_embeddings_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    arrays = [rng.normal(size=(n, 8)).astype(np.float32) for n in (5, 2, 2, 2, 2, 2)]
    emb = TaskEmbeddings("enc", ("a", "b"), *arrays)
    emb.save(tmp_path / "t.npz")
    back = TaskEmbeddings.load(tmp_path / "t.npz")
    assert back.encoder_id == "enc" and back.class_names == ("a", "b")
    np.testing.assert_array_equal(
        back.levels(["label", "bag_high"]), emb.levels(["label", "bag_high"])
    )


def test_shipped_prompts_fit_a_clip_text_context_and_tasks_command(tmp_path, capsys):
    from functools import partial

    from wsi_engine.cli import main
    from wsi_engine.encoders import create_random_checkpoint, load_encoder
    from wsi_engine.encoders.text import prompt_token_limit, token_lengths

    checkpoint = create_random_checkpoint("tiny-clip", tmp_path / "tiny.safetensors")
    encoder = load_encoder("tiny-clip", checkpoint=checkpoint)
    limit = prompt_token_limit(encoder)  # 64 tokens: stricter than CLIP's 77
    for name in SHIPPED:
        assert validate_task(load_task(name), limit, partial(token_lengths, encoder)) == [], name
    assert main(["tasks"]) == 0
    assert "camelyon16" in capsys.readouterr().out
    assert main(["tasks", "rcc", "--encoder", "tiny-clip", "--checkpoint", str(checkpoint)]) == 0
    assert "every prompt fits the 64-token" in capsys.readouterr().out
    data = _task_dict()
    data["classes"][0]["detailed"] = "very " * 80 + "long"
    assert (
        main(
            [
                "tasks",
                _write(tmp_path, data),
                "--encoder",
                "tiny-clip",
                "--checkpoint",
                str(checkpoint),
            ]
        )
        == 3
    )
    assert "class a detailed: 83 tokens > context 64" in capsys.readouterr().err
