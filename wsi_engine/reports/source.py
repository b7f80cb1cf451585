"""Read a report corpus file and filter it: plain text (one report per line), CSV or JSONL with a text column.

The format follows the suffix: ``.csv``/``.tsv`` (header row), ``.jsonl``/
``.ndjson`` (one JSON object per line), anything else plain text. Bytes are
decoded strictly with ``encoding`` (UTF-8 by default, a BOM allowed): a file
in another encoding, or a binary file, is a DataError naming the byte offset,
never replaced characters. Blank reports are dropped. Filters (all optional,
case-insensitive): ``organ`` keeps the rows whose ``organ_column`` equals it
(for plain text, the reports that mention it as a word); ``keywords`` keeps the
reports mentioning at least one of them as a word.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from wsi_engine.errors import DataError

CSV_SUFFIXES = (".csv", ".tsv")
JSONL_SUFFIXES = (".jsonl", ".ndjson")


@dataclass(frozen=True)
class Report:
    """One report: its id (``id`` column, else ``line<N>``), text and optional class label."""

    report_id: str
    text: str
    label: str | None = None


@dataclass(frozen=True)
class CorpusFilter:
    """Which reports to keep (module docstring)."""

    organ: str | None = None
    organ_column: str = "organ"
    keywords: tuple[str, ...] = field(default_factory=tuple)

    def describe(self) -> dict[str, object]:
        return {
            "organ": self.organ,
            "organ_column": self.organ_column,
            "keywords": list(self.keywords),
        }


def corpus_format(path: Path) -> str:
    """``csv``, ``jsonl`` or ``text`` from the file suffix."""
    suffix = path.suffix.lower()
    if suffix in CSV_SUFFIXES:
        return "csv"
    if suffix in JSONL_SUFFIXES:
        return "jsonl"
    return "text"


def decode_corpus(path: Path, encoding: str = "utf-8") -> str:
    """The file's text, strictly decoded; DataError for unreadable files, other encodings and binary data."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise DataError(f"cannot read the report corpus ({error.strerror})", path=path) from error
    codec = "utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding
    try:
        text = data.decode(codec)
    except LookupError as error:
        raise DataError(f"unknown text encoding {encoding!r}", path=path) from error
    except UnicodeDecodeError as error:
        raise DataError(
            f"the report corpus is not valid {encoding} text (byte {error.start}: {data[error.start : error.start + 1]!r})",
            path=path,
            hint="convert it to UTF-8, or name its encoding with --encoding (e.g. latin-1)",
        ) from error
    if "\x00" in text:
        raise DataError(
            "the report corpus holds NUL characters (a binary file?)",
            path=path,
            hint="give plain text, CSV or JSONL",
        )
    return text


def _rows(path: Path, text: str, kind: str) -> list[dict[str, str]]:
    if kind == "csv":
        delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
        try:
            return [
                {k.strip(): (v or "") for k, v in row.items() if k}
                for row in csv.DictReader(io.StringIO(text), delimiter=delimiter)
            ]
        except csv.Error as error:
            raise DataError(f"not a readable CSV ({error})", path=path) from error
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError as error:
            raise DataError(f"line {number} is not JSON ({error})", path=path) from error
        if not isinstance(value, dict):
            raise DataError(f"line {number} is not a JSON object", path=path)
        rows.append({str(k): "" if v is None else str(v) for k, v in value.items()})
    return rows


def _mentions(text: str, word: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(word)}(?!\w)", text, flags=re.IGNORECASE) is not None


def read_corpus(
    path: str | Path,
    *,
    column: str = "text",
    id_column: str = "id",
    label_column: str | None = None,
    corpus_filter: CorpusFilter | None = None,
    encoding: str = "utf-8",
) -> list[Report]:
    """The kept, non-blank reports of a corpus file (module docstring); DataError when none is left."""
    path = Path(path)
    corpus_filter = corpus_filter or CorpusFilter()
    text = decode_corpus(path, encoding)
    kind = corpus_format(path)
    reports: list[Report] = []
    if kind == "text":
        if label_column:
            raise DataError(
                "a plain-text corpus has no columns", path=path, hint="drop --label-column"
            )
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                reports.append(Report(f"line{number}", line.strip()))
    else:
        rows = _rows(path, text, kind)
        columns = sorted({k for row in rows for k in row})
        for name in (column, label_column):
            if rows and name and name not in columns:
                raise DataError(
                    f"no column '{name}' (found: {', '.join(columns) or 'none'})",
                    path=path,
                    hint="name the report text column with --column",
                )
        for number, row in enumerate(rows, start=1):
            body = row.get(column, "").strip()
            if not body:
                continue
            if corpus_filter.organ and corpus_filter.organ_column in row:
                if row[corpus_filter.organ_column].strip().lower() != corpus_filter.organ.lower():
                    continue
            label = (row.get(label_column, "").strip() or None) if label_column else None
            reports.append(Report(row.get(id_column, "").strip() or f"row{number}", body, label))
        if corpus_filter.organ and rows and corpus_filter.organ_column not in columns:
            reports = [r for r in reports if _mentions(r.text, corpus_filter.organ)]
    if kind == "text" and corpus_filter.organ:
        reports = [r for r in reports if _mentions(r.text, corpus_filter.organ)]
    if corpus_filter.keywords:
        reports = [r for r in reports if any(_mentions(r.text, k) for k in corpus_filter.keywords)]
    if not reports:
        filters = [f for f in (corpus_filter.organ, *corpus_filter.keywords) if f]
        why = f" after the filters ({', '.join(filters)})" if filters else ""
        raise DataError(
            f"the report corpus holds no reports{why}",
            path=path,
            hint="give a file with one report per line (or a CSV/JSONL text column), or loosen --organ/--keyword",
        )
    return reports
