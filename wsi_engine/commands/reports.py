"""``wsi-engine reports``: import a report corpus, pair images or slides with reports, CLIP-IT ablation."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from wsi_engine.commands.tables import result_table
from wsi_engine.errors import ConfigError

app = typer.Typer(
    name="reports",
    help="Privileged text (CLIP-IT): report corpora, pairing by retrieval, with/without ablation.",
    no_args_is_help=True,
)


@app.command("import")
def import_command(
    corpus_file: Path = typer.Argument(
        ..., help="Reports: plain text (one per line), or .csv/.tsv/.jsonl with a text column."
    ),
    task: str = typer.Option(..., "--task", help="Task the corpus serves (name or YAML)."),
    encoder: str = typer.Option(
        ..., "--encoder", help="Encoder preset whose text tower embeds the reports."
    ),
    out: Path = typer.Option(..., "--out", help="Corpus folder to write."),
    checkpoint: Path | None = typer.Option(None, "--checkpoint", help="Encoder weights file."),
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
    from wsi_engine.encoders import load_encoder
    from wsi_engine.encoders.config import load_encoder_config
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


@app.command("pair")
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
    checkpoint: Path | None = typer.Option(
        None, "--checkpoint", help="Encoder weights (with --images)."
    ),
    device: str = typer.Option("cpu", "--device", help="Device that encodes --images."),
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
    from wsi_engine.reports import pair_inputs

    if bool(stores) == (images is not None):
        raise ConfigError("give exactly one of --stores and --images")
    if splits is not None and not (stores and train_only):
        raise ConfigError("--splits selects training slides: use it with --stores and --train-only")
    if stores and train_only and splits is None:
        raise ConfigError("--train-only with --stores needs --splits (a fit run's splits.json)")
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
            ([f"{a:.3f} – {b:.3f}", str(n)] for a, b, n in zip(edges, edges[1:], counts)),
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
