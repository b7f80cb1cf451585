"""`reports import` with the tiny random-weight CLIP: formats, filters, windows of long reports, cache, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from wsi_engine.cli import main
from wsi_engine.encoders import load_encoder
from wsi_engine.encoders.text import encode_text, prompt_token_limit, token_lengths
from wsi_engine.reports.corpus import ReportCorpus
from wsi_engine.reports.windows import split_windows

from .conftest import import_args

WORDS = "tumour carcinoma lobular ductal stroma nuclei mitoses gland necrosis lymphocytes margin".split()


def report_text(n_words: int, seed: int) -> str:
    rng = np.random.default_rng(seed)
    return " ".join(rng.choice(WORDS, size=n_words))


def test_plain_text_import_splits_long_reports_into_pooled_windows(
    tmp_path, tiny_clip_args, tiny_checkpoint, text_cache
):
    lines = [report_text(12, i) for i in range(5)] + [report_text(200, 99)]
    corpus_file = tmp_path / "reports.txt"
    corpus_file.write_text(
        "\n".join(lines[:3]) + "\n\n" + "\n".join(lines[3:]) + "\n", encoding="utf-8"
    )
    out = tmp_path / "corpus"
    assert main(import_args(corpus_file, out, tiny_clip_args)) == 0
    corpus = ReportCorpus.load(out)
    assert [r.text for r in corpus.reports] == lines  # the blank line is dropped, nothing else
    assert corpus.meta["n_split"] == 1 and corpus.meta["split_reports"] == ["line7"]
    long = corpus.reports[-1]
    assert long.windows > 1 and long.tokens > corpus.meta["token_limit"]
    assert np.allclose(np.linalg.norm(corpus.embeddings, axis=1), 1, atol=1e-5)

    encoder = load_encoder("tiny-clip", checkpoint=tiny_checkpoint)
    limit = prompt_token_limit(encoder)
    windows = split_windows(long.text, limit, lambda t: token_lengths(encoder, t))
    assert len(windows) == long.windows
    assert " ".join(windows).split() == long.text.split()  # no word lost: never truncated
    assert max(token_lengths(encoder, windows)) <= limit
    mean = encode_text(encoder, windows, cache=False).mean(0)
    assert np.allclose(corpus.embeddings[-1], mean / np.linalg.norm(mean), atol=1e-5)

    cached = sorted((text_cache / "text" / "tiny-clip").glob("*.npy"))
    assert len(cached) == len(lines) - 1 + long.windows  # one entry per short report and per window
    assert main(import_args(corpus_file, tmp_path / "again", tiny_clip_args)) == 0
    assert sorted((text_cache / "text" / "tiny-clip").glob("*.npy")) == cached
    assert np.array_equal(ReportCorpus.load(tmp_path / "again").embeddings, corpus.embeddings)


def test_csv_and_jsonl_columns_with_organ_and_keyword_filters(tmp_path, tiny_clip_args):
    csv_file = tmp_path / "reports.csv"
    csv_file.write_text(
        "id,organ,diagnosis,body\n"
        "a,breast,tumor,invasive ductal carcinoma with necrosis\n"
        "b,colon,tumor,adenocarcinoma of the colon\n"
        "c,Breast,normal,benign breast tissue without atypia\n"
        "d,breast,normal,\n",
        encoding="utf-8",
    )
    out = tmp_path / "csv-corpus"
    assert (
        main(
            import_args(
                csv_file,
                out,
                tiny_clip_args,
                "--column",
                "body",
                "--organ",
                "breast",
                "--label-column",
                "diagnosis",
            )
        )
        == 0
    )
    corpus = ReportCorpus.load(out)
    assert [r.report_id for r in corpus.reports] == ["a", "c"]
    assert corpus.labels() == ["tumor", "normal"] and corpus.meta["filters"]["organ"] == "breast"

    jsonl = tmp_path / "reports.jsonl"
    jsonl.write_text(
        "".join(
            json.dumps({"text": t}) + "\n"
            for t in ["lobular carcinoma", "reactive stroma", "ductal carcinoma"]
        ),
        encoding="utf-8",
    )
    out = tmp_path / "jsonl-corpus"
    assert main(import_args(jsonl, out, tiny_clip_args, "--keyword", "carcinoma")) == 0
    assert [r.text for r in ReportCorpus.load(out).reports] == [
        "lobular carcinoma",
        "ductal carcinoma",
    ]


@pytest.mark.parametrize(
    ("name", "content", "extra", "code", "needle"),
    [
        ("empty.txt", b"\n  \n", [], 7, "holds no reports"),
        (
            "latin.txt",
            "carcinome canalaire infiltrant, nécrose\n".encode("latin-1"),
            [],
            7,
            "not valid utf-8",
        ),
        ("binary.txt", b"report\x00\x01\x02\n", [], 7, "NUL"),
        (
            "filtered.txt",
            b"colon adenocarcinoma\n",
            ["--organ", "breast"],
            7,
            "no reports after the filters (breast)",
        ),
        ("cols.csv", b"id,text\n1,carcinoma\n", ["--column", "body"], 7, "no column 'body'"),
    ],
)
def test_bad_corpora_fail_with_one_line(
    tmp_path, tiny_clip_args, capsys, name, content, extra, code, needle
):
    corpus_file = tmp_path / name
    corpus_file.write_bytes(content)
    assert main(import_args(corpus_file, tmp_path / "out", tiny_clip_args, *extra)) == code
    err = " ".join(capsys.readouterr().err.split())  # rich wraps at the terminal width
    assert needle in err and name in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_latin1_corpus_imports_when_its_encoding_is_named(tmp_path, tiny_clip_args):
    corpus_file = tmp_path / "latin.txt"
    corpus_file.write_bytes("carcinome canalaire, nécrose\n".encode("latin-1"))
    assert (
        main(import_args(corpus_file, tmp_path / "out", tiny_clip_args, "--encoding", "latin-1"))
        == 0
    )
    assert ReportCorpus.load(tmp_path / "out").reports[0].text == "carcinome canalaire, nécrose"


def test_image_only_encoder_is_refused_naming_the_text_tower(tmp_path, capsys):
    corpus_file = tmp_path / "reports.txt"
    corpus_file.write_text("invasive carcinoma\n", encoding="utf-8")
    args = import_args(corpus_file, tmp_path / "out", ["--encoder", "efficientnet-lite0"])
    assert main(args) == 3
    err = " ".join(capsys.readouterr().err.split())  # rich wraps at the terminal width
    assert (
        "needs an encoder with a text tower" in err
        and "efficientnet-lite0" in err
        and "image-only" in err
    )


def test_windows_cover_every_word_within_the_limit():
    def count(texts):  # one token per character of each word plus two specials
        return [sum(len(w) for w in t.split()) + 2 for t in texts]

    text = "a bb ccc dddd " * 5 + "x" * 30
    windows = split_windows(text, 12, count)
    assert max(count(windows)) <= 12
    assert "".join("".join(windows).split()) == "".join(text.split())
    assert split_windows("short text", 12, count) == ["short text"]
