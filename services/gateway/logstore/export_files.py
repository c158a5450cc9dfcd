"""Exports of Moodle's log table, read line by line: CSV with a header row of the table's columns (a
database export: NULL as empty, `\\N` or `NULL`) or JSONL (one row object per line). A line that is no
row comes out with the reason (and the line itself), to be dead-lettered with its line number."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from schemas.moodle import LOG_INTEGER_COLUMNS, LOG_NULLABLE_COLUMNS
from services.gateway.logstore.intake import Incoming, Origin

Format = Literal["csv", "jsonl"]
REPORT_COLUMNS = {"time", "user full name", "event name", "description"}
_EMPTY_IS_NULL = LOG_NULLABLE_COLUMNS | LOG_INTEGER_COLUMNS  # an empty CSV value in these columns


def export_format(path: Path, format: str | None) -> Format:
    """`format`, else from the file name: .jsonl, .ndjson and .json are JSONL, anything else CSV."""
    kind = format or ("jsonl" if path.suffix.lower() in (".jsonl", ".ndjson", ".json") else "csv")
    if kind == "csv":
        return "csv"
    if kind == "jsonl":
        return "jsonl"
    raise ValueError(f"format must be csv or jsonl, not {kind!r}")


def export_rows(path: Path, kind: Format) -> Iterator[Incoming]:
    return _csv_rows(path) if kind == "csv" else _jsonl_rows(path)


def count_lines(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))


def _csv_rows(path: Path) -> Iterator[Incoming]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        try:
            header = [h.strip().lower() for h in next(reader)]
        except StopIteration:
            return
        _check_header(path, header)
        line = reader.line_num + 1
        for values in reader:
            start, line = line, reader.line_num + 1
            if not values or values == [""]:
                continue
            origin = Origin(line=start, file=path.name)
            if len(values) != len(header):
                problem = f"{len(values)} fields, the header has {len(header)}"
                yield Incoming(origin, None, problem, json.dumps(values).encode())
                continue
            row = {name: _csv_value(name, value) for name, value in zip(header, values, strict=True)}
            yield Incoming(Origin(id=row.get("id"), line=start, file=path.name), row)


def _check_header(path: Path, header: list[str]) -> None:
    if "id" in header and "eventname" in header:
        return
    if set(header) >= REPORT_COLUMNS:
        raise ValueError(
            f"{path.name} is the log report's download (names and descriptions, no "
            "ids): export the table mdl_logstore_standard_log itself instead"
        )
    raise ValueError(f"{path.name}: the header row has no id and eventname columns: {header[:8]}")


def _csv_value(name: str, value: str) -> Any:
    if value in ("\\N", "NULL") or (value == "" and name in _EMPTY_IS_NULL):
        return None
    return value


def _jsonl_rows(path: Path) -> Iterator[Incoming]:
    with path.open(encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, 1):
            if line.strip():
                yield _jsonl_row(line, Origin(line=number, file=path.name))


def _jsonl_row(line: str, origin: Origin) -> Incoming:
    try:
        record = json.loads(line)
    except ValueError as exc:
        return Incoming(origin, None, f"not JSON: {exc}", line.rstrip("\r\n").encode())
    if not isinstance(record, dict):
        problem = f"not a row object but {type(record).__name__}"
        return Incoming(origin, None, problem, line.rstrip("\r\n").encode())
    return Incoming(Origin(id=record.get("id"), line=origin.line, file=origin.file), record)
