"""Text tables from outside: how a CSV file is written (encoding, delimiter, decimal mark), its header, its rows.

``open_table(path, style)`` reads through ``harlite.io.limits`` (a regular file, at most MAX_TEXT_BYTES of
text, lines of at most MAX_LINE_BYTES, gzip by name) and works out what ``style`` leaves open:

- encoding: a byte-order mark (UTF-8, UTF-16) decides; else UTF-8 if the first 64 KiB are UTF-8, else
  Windows-1252 (a spreadsheet's export), said in ``Table.notes``;
- delimiter: the one of ``,`` ``;`` tab that splits the header and the first rows into the same number
  of fields (quotes respected);
- decimal mark: a comma when fields are ``;`` or tab separated and numbers look like ``0,25``.

Blank lines and ``#`` comment lines are skipped. ``Table.blocks(columns)`` streams the rows in blocks of
float64 columns (integers kept exact as int64 where a column holds them, for nanosecond clocks) and
text columns; errors name the file, the line and the fix.
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from harlite.errors import DataError
from harlite.io.limits import open_bounded

MAX_TEXT_BYTES = 1 << 30
MAX_GZIP_RATIO = 100
MAX_LINE_BYTES = 64 << 10
BLOCK_ROWS = 1 << 16
SNIFF_BYTES, SNIFF_ROWS = 64 << 10, 20
CHUNK_BYTES = 1 << 20
DELIMITERS = (",", ";", "\t")
ENCODINGS = ("utf-8", "cp1252", "latin-1", "utf-16")
_DECIMAL_COMMA = re.compile(r"[-+]?\d+,\d+(?:[eE][-+]?\d+)?")


class TableError(DataError):
    """A table that cannot be read; the message names the file (and line) and the fix."""


@dataclass(frozen=True)
class Style:
    """How a table is written; ``None`` is detected from the file."""

    delimiter: str | None = None
    decimal: str | None = None
    encoding: str | None = None

    def describe(self) -> str:
        shown = {"\t": "tab"}.get(self.delimiter or "", self.delimiter)
        return f"delimiter {shown!r}, decimal {self.decimal!r}, encoding {self.encoding}"


@dataclass
class Table:
    """An open table: its header (names stripped of quotes and spaces), the style found, and its rows."""

    path: Path
    style: Style
    header: list[str]
    header_line: int
    notes: list[str] = field(default_factory=list)
    _lines: Iterator[tuple[int, str]] = iter(())
    _stream: BinaryIO | io.TextIOBase | None = None

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()

    def __enter__(self) -> Table:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def index(self, name: str) -> int | None:
        """The column named ``name`` (case and spaces ignored), or None."""
        key = normal_name(name)
        names = [normal_name(h) for h in self.header]
        return names.index(key) if key in names else None

    def blocks(self, numeric: list[int], text: list[int] = (), exact: int | None = None,
               limit: int | None = None) -> Iterator[Rows]:  # fmt: skip
        """The rows in blocks of BLOCK_ROWS (``limit`` rows at most): ``numeric`` columns as float64, ``text``
        columns as strings, and column ``exact`` also as int64 while it holds only integers (a nanosecond clock)."""
        lines = itertools.islice(self._lines, limit)
        while block := list(itertools.islice(lines, BLOCK_ROWS)):
            yield self._parse(block, numeric, list(text), exact)

    def _parse(self, block: list[tuple[int, str]], numeric: list[int], text: list[int], exact: int | None) -> Rows:
        d = self.style.delimiter or ","
        rows = [line for _, line in block]
        if any('"' in r for r in rows):  # quoted fields: unquote, then parse as plain text
            rows = [d.join(f) for f in csv.reader(rows, delimiter=d)]
        if self.style.decimal == "," and d != ",":
            rows = [r.replace(",", ".") for r in rows]
        try:
            values = np.loadtxt(rows, delimiter=d, usecols=numeric, dtype=np.float64, ndmin=2, comments=None)
            labels = [np.char.strip(np.loadtxt(rows, delimiter=d, usecols=[c], dtype=str, comments=None, ndmin=1))
                      for c in text]  # fmt: skip
        except ValueError as e:
            raise self._diagnose(block, rows, numeric + text, text, e) from None
        integers = None
        if exact is not None:
            try:
                integers = np.loadtxt(rows, delimiter=d, usecols=[exact], dtype=np.int64, comments=None, ndmin=1)
            except (ValueError, OverflowError):
                integers = None
        numbers = np.fromiter((n for n, _ in block), np.int32, len(block))
        return Rows(numbers, values, labels, integers)

    def _diagnose(self, block: list[tuple[int, str]], rows: list[str], used: list[int], text: list[int],
                  error: Exception) -> TableError:  # fmt: skip
        """The first row ``np.loadtxt`` refused, and what is wrong with it."""
        d = self.style.delimiter or ","
        for (number, original), row in zip(block, rows):
            fields = row.split(d)
            if len(fields) <= max(used):
                return TableError(f"{self.path}, line {number}: {len(fields)} fields, the header names "
                                  f"{len(self.header)}; every row needs them all ({self.style.describe()}).")  # fmt: skip
            for i in used:
                if i in text:
                    continue
                try:
                    float(fields[i])
                except ValueError:
                    value = original.split(d)[i].strip() if len(original.split(d)) > i else fields[i]
                    return TableError(f"{self.path}, line {number}: {value[:40]!r} in column {self.header[i]!r} is "
                                      f"not a number ({self.style.describe()}).")  # fmt: skip
        return TableError(f"{self.path}: {error}")


@dataclass
class Rows:
    """One block of a table's rows: their line numbers, numeric columns, text columns, exact integers."""

    lines: np.ndarray
    values: np.ndarray
    text: list[np.ndarray]
    integers: np.ndarray | None


def normal_name(name: str) -> str:
    """A header name for matching: no quotes or BOM, lower case, single spaces."""
    return " ".join(name.replace("\ufeff", "").strip().strip('"').strip().lower().split())


def open_table(path: str | Path, style: Style = Style()) -> Table:
    """Open the text table ``path`` (``.csv``, ``.txt``, ``.gz`` decompressed), its style detected where
    ``style`` leaves it open; the first line that is not blank or a ``#`` comment is the header."""
    path = Path(path)
    raw = open_bounded(path, MAX_TEXT_BYTES, MAX_GZIP_RATIO, error=TableError)
    try:
        head = raw.peek(SNIFF_BYTES)[:SNIFF_BYTES]
        encoding, notes = _encoding(path, head, style.encoding)
        wide = codecs.lookup(encoding).name.startswith(("utf-16", "utf-32"))  # lines are not split on b"\n"
        stream = io.TextIOWrapper(raw, encoding=encoding, newline=None) if wide else raw
    except BaseException:
        raw.close()
        raise
    lines = _content_lines(path, stream, encoding, style.encoding is None)
    try:
        sample = [item for _, item in zip(range(SNIFF_ROWS + 1), lines)]
        if not sample:
            raise TableError(
                f"{path} is empty (or holds only blank and # comment lines); a recording starts with "
                "a header such as time_s,acc_x,acc_y,acc_z,gyro_x,gyro_y,gyro_z,label."
            )
        delimiter = style.delimiter or _delimiter(path, [line for _, line in sample])
        decimal = style.decimal or _decimal(delimiter, [line for _, line in sample[1:]])
    except BaseException:
        stream.close()
        raise
    chosen = Style(delimiter, decimal, encoding)
    header = [
        h.replace("\ufeff", "").strip().strip('"').strip()
        for h in next(csv.reader([sample[0][1]], delimiter=delimiter))
    ]
    rest = itertools.chain(sample[1:], lines)
    return Table(path, chosen, header, sample[0][0], notes, rest, stream)


def _encoding(path: Path, head: bytes, given: str | None) -> tuple[str, list[str]]:
    """The text encoding: ``given``, a byte-order mark's, UTF-8, or Windows-1252 (noted)."""
    if given is not None:
        try:
            codecs.lookup(given)
        except LookupError:
            raise TableError(f"unknown text encoding {given!r}: use one of {', '.join(ENCODINGS)}.") from None
        return given, []
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig", []
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16", []
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as e:
        if len(head) < SNIFF_BYTES or e.start < len(head) - 3:  # not a character cut at the sample's end
            return "cp1252", [f"{path} is not UTF-8 text: read as Windows-1252 (a spreadsheet's export); "
                              'set "csv": {"encoding": ...} in dataset.json if that is wrong']  # fmt: skip
    return "utf-8", []


def _content_lines(
    path: Path, source: BinaryIO | io.TextIOBase, encoding: str, detected: bool
) -> Iterator[tuple[int, str]]:
    """Numbered lines that are not blank or ``#`` comments, each at most MAX_LINE_BYTES long. A binary
    ``source`` is read in chunks and decoded a chunk of whole lines at a time (an error still names its
    line); a text one (UTF-16) line by line."""
    if isinstance(source, io.TextIOBase):
        yield from _text_lines(path, source)
        return
    number, rest = 0, b""
    while True:
        chunk = source.read(CHUNK_BYTES)
        data = rest + chunk
        cut = data.rfind(b"\n") + 1 if chunk else len(data)
        whole, rest = data[:cut], data[cut:]
        if len(rest) > MAX_LINE_BYTES:
            raise TableError(
                f"{path}, line {number + 1} is longer than {MAX_LINE_BYTES} bytes: not a table of samples."
            )
        try:
            text = whole.decode(encoding)
        except UnicodeDecodeError as e:
            line = number + whole.count(b"\n", 0, e.start) + 1
            shown = {"utf-8": "UTF-8", "utf-8-sig": "UTF-8"}.get(encoding, encoding)
            fix = 'set "csv": {"encoding": "cp1252"} (or the right one) in dataset.json' if detected else \
                "check the encoding in dataset.json"  # fmt: skip
            raise TableError(f"{path}, line {line} is not {shown} text ({e.reason}); {fix}.") from None
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        if any(len(line) > MAX_LINE_BYTES for line in lines):
            long = next(i for i, line in enumerate(lines) if len(line) > MAX_LINE_BYTES)
            raise TableError(
                f"{path}, line {number + long + 1} is longer than {MAX_LINE_BYTES} bytes: not a table of samples."
            )
        yield from [(n, s) for n, line in enumerate(lines, number + 1) if (s := line.strip()) and s[0] != "#"]
        number += len(lines)
        if not chunk:
            return
        encoding = "utf-8" if encoding == "utf-8-sig" else encoding  # the mark only at the start


def _text_lines(path: Path, source: io.TextIOBase) -> Iterator[tuple[int, str]]:
    number = 0
    while True:
        try:
            line = source.readline(MAX_LINE_BYTES + 1)
        except UnicodeDecodeError as e:
            raise TableError(
                f"{path}, line {number + 1} is not UTF-16 text ({e.reason}): check the encoding."
            ) from None
        if not line:
            return
        number += 1
        if len(line) > MAX_LINE_BYTES and not line.endswith("\n"):
            raise TableError(
                f"{path}, line {number} is longer than {MAX_LINE_BYTES} characters: not a table of samples."
            )
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            yield number, stripped


def _delimiter(path: Path, sample: list[str]) -> str:
    """The delimiter that splits the header and every sampled row into the same number (> 1) of fields."""
    best, best_score = ",", (-1, 0)
    for d in DELIMITERS:
        counts = [len(f) for f in csv.reader(sample, delimiter=d)]
        if counts[0] < 2:
            continue
        agree = sum(c == counts[0] for c in counts)
        score = (agree, counts[0])
        if score > best_score:
            best, best_score = d, score
    return best


def _decimal(delimiter: str, rows: list[str]) -> str:
    """',' when the rows' numbers are written with decimal commas (fields not split by commas)."""
    if delimiter == ",":
        return "."
    fields = [f.strip() for row in rows for f in row.split(delimiter)]
    commas = sum(bool(_DECIMAL_COMMA.fullmatch(f)) for f in fields)
    return "," if commas and commas >= sum("." in f for f in fields) else "."
