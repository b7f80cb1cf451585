"""``wsi-engine reports``: import a report corpus, pair images or slides with reports, CLIP-IT ablation."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from wsi_engine.commands.options import (
    CONFIG_FILE,
    ENCODER_CHECKPOINT,
    IMAGES_DEVICE,
    LORA,
    PRIVILEGED_WEIGHT,
    SET,
    command_settings,
    with_settings,
)
from wsi_engine.commands.tables import result_table
from wsi_engine.errors import ConfigError

app = typer.Typer(
    name="reports",
    help="Privileged text (CLIP-IT): report corpora, pairing by retrieval, with/without ablation.",
    no_args_is_help=True,
)


@app.command("import")
@with_settings
def import_command(
    corpus_file: Path = typer.Argument(
        ..., help="Reports: plain text (one per line), or .csv/.tsv/.jsonl with a text column."
    ),
    task: str = typer.Option(..., "--task", help="Task the corpus serves (name or YAML)."),
    encoder: str = typer.Option(
        ..., "--encoder", help="Encoder preset whose text tower embeds the reports."
    ),
    out: Path = typer.Option(..., "--out", help="Corpus folder to write."),
    checkpoint: Path | None = ENCODER_CHECKPOINT,
    device: str = typer.Option("cpu", "--device", help="Device of the text tower."),
    column: str = typer.Option("text", "--column", help="Report text column (CSV/JSONL)."),
    id_column: str = typer.Option("id", "--id-column", help="Report id column (CSV/JSONL)."),
    label_column: str | None = typer.Option(
        None, "--label-column", help="Optional class column, used by the pairing report."
    ),
    organ: str | None = typer.Option(
        None, "--organ", help="Keep reports of this organ (organ column, else a word in the text)."
    ),
    organ_column: str = typer.Option("organ", "--organ-column", help="Organ column name."),
    keywords: list[str] = typer.Option(
        [], "--keyword", help="Keep reports mentioning any of these words (repeatable)."
    ),
    encoding: str = typer.Option("utf-8", "--encoding", help="Text encoding of the file."),
    corpus_id: str | None = typer.Option(
        None, "--corpus-id", help="Corpus id \\[<task>-<hash of the texts>]."
    ),
) -> None:
    """Read, filter and embed a report corpus with the encoder's text tower; write it to --out."""
    from wsi_engine.encoders import load_encoder, load_encoder_config
    from wsi_engine.encoders.weights import sha256_file
    from wsi_engine.prompts import load_task
    from wsi_engine.reports.corpus import build_corpus, require_text_tower
    from wsi_engine.reports.source import CorpusFilter, corpus_format, read_corpus

    task_name = load_task(task).name
    preset = load_encoder_config(encoder)
    if not preset.has_text:
        raise ConfigError(
            f"reports import needs an encoder with a text tower; '{preset.encoder_id}' is image-only",
            hint="use a CLIP-style encoder (e.g. conch_ViT-B-16, biomedclip)",
        )
    corpus_filter = CorpusFilter(organ, organ_column, tuple(keywords))
    reports = read_corpus(
        corpus_file,
        column=column,
        id_column=id_column,
        label_column=label_column,
        corpus_filter=corpus_filter,
        encoding=encoding,
    )
    loaded = load_encoder(preset, checkpoint=checkpoint, device=device)
    require_text_tower(loaded, "reports import")
    source = {
        "path": str(corpus_file.resolve()),
        "format": corpus_format(corpus_file),
        "column": column,
        "label_column": label_column,
        "sha256": sha256_file(corpus_file),
    }
    with Console(stderr=True).status(f"embedding {len(reports)} reports"):
        corpus = build_corpus(
            loaded,
            reports,
            task=task_name,
            source=source,
            filters=corpus_filter.describe(),
            corpus_id=corpus_id,
        )
    corpus.save(out)
    meta = corpus.meta
    Console().print(
        f"corpus '{meta['corpus_id']}': {meta['n_reports']} reports embedded with "
        f"'{meta['encoder_id']}' ({meta['embed_dim']}-d); {meta['n_split']} longer than "
        f"{meta['token_limit']} tokens split into windows (up to {meta['max_windows']}) and "
        f"mean-pooled; written to {out}",
        highlight=False,
    )


def _pair_rule(settings) -> None:
    """Slides (--stores) or images, and the split options that go with each."""
    if bool(settings.stores) == (settings.images is not None):
        raise ValueError("give exactly one of --stores and --images")
    if settings.splits is not None and not (settings.stores and settings.train_only):
        raise ValueError("--splits selects training slides: use it with --stores and --train-only")
    if settings.stores and settings.train_only and settings.splits is None:
        raise ValueError("--train-only with --stores needs --splits (a fit run's splits.json)")


@app.command("pair")
@with_settings(rule=_pair_rule)
def pair_command(
    corpus: Path = typer.Option(..., "--corpus", help="Corpus folder of `reports import`."),
    stores: list[Path] = typer.Option(
        [], "--stores", help="Store folder(s) or <slide_id>.zarr paths: pair slides."
    ),
    images: Path | None = typer.Option(
        None, "--images", help="Labelled patch folder (one sub-folder per class): pair patches."
    ),
    encoder: str | None = typer.Option(
        None, "--encoder", help="Encoder preset of --images \\[the corpus's encoder]."
    ),
    checkpoint: Path | None = ENCODER_CHECKPOINT,
    device: str = IMAGES_DEVICE,
    top_k: int = typer.Option(1, "--top-k", help="Reports kept per item, best first."),
    train_only: bool = typer.Option(
        False,
        "--train-only",
        help="Pair only the training split: of --splits (slides) or of --seed/--val-fraction (images).",
    ),
    splits: Path | None = typer.Option(
        None, "--splits", help="splits.json of a fit run (slides with --train-only)."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the image split (as fit-patches)."),
    val_fraction: float = typer.Option(0.2, "--val-fraction", help="Image split (as fit-patches)."),
    out: Path | None = typer.Option(
        None,
        "--out",
        help="Folder of pairs.csv and pairing_quality.json \\[slides: <corpus>/pairs-slides; images: beside the folder].",
    ),
) -> None:
    """Pair slides (written to each store's reports/<corpus_id>) or patches with their most similar reports."""
    from wsi_engine.pipeline import pair_inputs

    if stores:
        outcome = pair_inputs.pair_store_slides(corpus, list(stores), top_k, splits, out)
    else:
        outcome = pair_inputs.pair_image_folder(
            corpus, images, encoder, checkpoint, device, top_k, train_only, seed, val_fraction, out
        )
    print_quality(outcome.quality, outcome.what)
    if outcome.failures:
        first = next(iter(outcome.failures.items()))
        Console().print(
            f"[yellow]{len(outcome.failures)} left out[/]; first: {first[0]}: {first[1]}",
            highlight=False,
        )
    Console().print(f"pairs and pairing quality: {outcome.folder}", highlight=False)


@app.command("quality")
@with_settings
def quality_command(
    corpus: Path = typer.Option(..., "--corpus", help="Corpus folder of `reports import`."),
    stores: list[Path] = typer.Option(
        ..., "--stores", help="Store folder(s) or <slide_id>.zarr paths paired with it."
    ),
    labels: Path | None = typer.Option(
        None, "--labels", help="Labels CSV (slide_id,label): class agreement with labelled reports."
    ),
) -> None:
    """The pairing-quality report of slide pairs already in the stores (reports/<corpus_id>)."""
    from wsi_engine.mil.data import read_labels
    from wsi_engine.pipeline.pair_inputs import stored_slide_pairs
    from wsi_engine.reports.quality import pairing_quality

    pairs, loaded = stored_slide_pairs(corpus, list(stores))
    slide_labels = read_labels(labels) if labels is not None else None
    item_labels = None if slide_labels is None else [slide_labels.get(i) for i in pairs.item_ids]
    print_quality(
        pairing_quality(pairs, loaded, item_labels),
        f"slides in the stores (corpus '{loaded.corpus_id}')",
    )


def print_quality(quality, what: str) -> None:
    """The pairing-quality tables of ``quality`` (:class:`wsi_engine.reports.quality.PairingQuality`)."""
    console = Console()
    stats = quality.score_stats
    console.print(
        f"{what}: {quality.n_items} item(s) paired with top-{quality.k} of {quality.n_reports} reports; "
        f"top-1 cosine mean {stats['mean']:.3f} (min {stats['min']:.3f}, q25 {stats['q25']:.3f}, "
        f"median {stats['median']:.3f}, q75 {stats['q75']:.3f}, max {stats['max']:.3f}); "
        f"distinct reports used: {quality.distinct_top1} as top-1, {quality.distinct_topk} in the top-{quality.k}",
        highlight=False,
    )
    if quality.class_agreement is not None:
        console.print(
            f"top-1 report of the item's class: {quality.class_agreement:.1%} "
            f"(chance {quality.chance_agreement:.1%})",
            highlight=False,
        )
    edges, counts = quality.histogram
    console.print(
        result_table(
            "top-1 score distribution",
            ("cosine bin", "items"),
            (
                [f"{a:.3f} – {b:.3f}", str(n)]
                for a, b, n in zip(edges[:-1], edges[1:], counts, strict=True)
            ),
        )
    )
    for title, rows in (
        ("most similar pairs", quality.most_similar),
        ("least similar pairs", quality.least_similar),
    ):
        console.print(
            result_table(
                title,
                ("item", "report", "cosine", "report text"),
                ([r.item, r.report_id, f"{r.score:.3f}", r.excerpt] for r in rows),
                labels=2,
            )
        )


def _seeds(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"--seeds {text!r} is not a comma-separated list of integers") from None
    if not values or len(set(values)) != len(values):
        raise ConfigError(
            f"--seeds {text!r} must list distinct integers", hint="e.g. --seeds 0,1,2"
        )
    return values


@app.command("ablation")
def ablation_command(
    ctx: typer.Context,
    images: Path = typer.Option(
        ..., "--images", help="Labelled patch folder: one sub-folder of images per class."
    ),
    privileged_text: Path = typer.Option(
        ..., "--privileged-text", help="Report corpus of `reports import`."
    ),
    encoder: str = typer.Option(..., "--encoder", help="Encoder preset that encodes --images."),
    checkpoint: Path | None = ENCODER_CHECKPOINT,
    device: str = IMAGES_DEVICE,
    task: str | None = typer.Option(
        None, "--task", help="Task prompt set: its prompts start the head (zero-shot start)."
    ),
    seeds: str = typer.Option("0,1,2", "--seeds", help="Seeds of the splits and training."),
    train_per_class: int | None = typer.Option(
        None, "--train-per-class", help="Images per class drawn for training+validation [all]."
    ),
    test_fraction: float = typer.Option(
        0.3, "--test-fraction", help="Images per class held out for testing."
    ),
    hidden: int | None = typer.Option(None, "--hidden", help="Head MLP width (0: linear) [0]."),
    epochs: int | None = typer.Option(None, "--epochs", help="Epochs per training stage [30]."),
    val_fraction: float | None = typer.Option(
        None,
        "--val-fraction",
        help="Validation share of the training images (epoch selection) [0.2].",
    ),
    privileged_weight: float | None = PRIVILEGED_WEIGHT,
    lora: bool | None = LORA,
    n_boot: int = typer.Option(300, "--bootstrap", help="Bootstrap resamples per seed."),
    out: Path | None = typer.Option(None, "--out", help="Optional JSON file of all figures."),
    config_file: Path | None = CONFIG_FILE,
    set_options: list[str] = SET,
) -> None:
    """Patch classifiers with and without privileged text on the same splits and seeds: paired differences with 95 % CIs."""
    from dataclasses import asdict

    from wsi_engine.commands.patches import PRIVILEGED_KEYS
    from wsi_engine.patch.fit import FitPatchesConfig, image_source
    from wsi_engine.patch.privileged import load_privileged_corpus
    from wsi_engine.patch.privileged_ablation import ABLATION_METRICS, ablate
    from wsi_engine.training.rundir import write_json

    keys = {"hidden": "head.hidden", "epochs": "train.epochs", "val_fraction": "train.val_fraction"}
    config = command_settings(
        ctx,
        FitPatchesConfig,
        {
            **keys,
            **{k: PRIVILEGED_KEYS[k] for k in ("privileged_text", "privileged_weight", "lora")},
        },
        file=config_file,
        sets=set_options,
    )
    seed_list = _seeds(seeds)
    with Console(stderr=True).status("encoding the images"):
        source = image_source(config, images, encoder, task, checkpoint, device, 64)
    corpus = load_privileged_corpus(
        config.privileged_text,
        source.feature_attrs,
        source.patches.features.shape[1],
        source.task,
    )
    with Console(stderr=True).status(f"training both arms on {len(seed_list)} seed(s)"):
        result = ablate(
            source.patches,
            source.class_names,
            corpus,
            seed_list,
            head=config.head,
            train=config.train,
            privileged=config.privileged_text,
            text=source.language.embeddings,
            train_per_class=train_per_class,
            test_fraction=test_fraction,
            n_boot=n_boot,
        )
    console = Console()
    console.print(
        f"evaluated on: {result.evaluated_on}; 'without' = image-only head trained twice "
        "(same budget), 'with' = CLIP-IT on the same first stage",
        highlight=False,
    )
    console.print(
        result_table(
            "per seed: balanced accuracy and AUC (test), with − without [95 % paired bootstrap CI]",
            (
                "seed",
                "train",
                "test",
                "bal.acc. without",
                "with",
                "difference",
                "AUC without",
                "with",
                "difference",
            ),
            (
                [
                    str(o.seed),
                    str(o.n_train),
                    str(o.n_test),
                    *(
                        cell
                        for m in ("balanced_accuracy", "auc")
                        for cell in (
                            f"{o.without[m]:.3f}",
                            f"{o.with_text[m]:.3f}",
                            f"{o.difference[m]:+.3f} [{o.interval[m][0]:+.3f}, {o.interval[m][1]:+.3f}]",
                        )
                    ),
                ]
                for o in result.seeds
            ),
            labels=1,
        )
    )
    console.print(
        result_table(
            f"mean paired difference over {len(seed_list)} seed(s) [95 % t interval]",
            ("metric", "with − without", "95 % CI"),
            (
                [
                    m,
                    f"{result.mean_difference[m]:+.3f}",
                    f"[{result.interval[m][0]:+.3f}, {result.interval[m][1]:+.3f}]",
                ]
                for m in ABLATION_METRICS
            ),
        )
    )
    if out is not None:
        write_json(
            out, {"corpus": corpus.corpus_id, "images": str(images.resolve()), **asdict(result)}
        )
