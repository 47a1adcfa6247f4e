"""Reading a plan's files into raw tables, every cell as text, refusing a file that cannot be read.

Whatever is wrong with the files themselves (missing, empty, not UTF-8, not JSON, a CSV with
another separator, a damaged Parquet file) is a PlanError naming the file, and the line where it
can tell, so that a user sees one plain message and nothing is sent. What the cells say is checked
afterwards by strategies.plan.validate_plan.
"""

from __future__ import annotations

import difflib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

TABLES = ("accounts", "positions", "requests")
COLUMNS = {
    "accounts": ("account_id", "cash"),
    "positions": ("account_id", "instrument", "quantity"),
    "requests": ("request_id", "account_id", "instrument", "side", "quantity"),
}
# A plan of buys only holds nothing to sell; every other table must be there.
OPTIONAL_TABLES = ("positions",)
_BOM = b"\xef\xbb\xbf"
_OTHER_SEPARATORS = {";": "semicolons", "\t": "tabs", "|": "vertical bars"}


@dataclass(frozen=True)
class PlanIssue:
    source: str  # e.g. "requests.csv"
    row: str  # human row label, e.g. "line 5" or "row 3"; empty for the file as a whole
    field: str  # empty for the file as a whole
    message: str

    def __str__(self) -> str:
        if not self.row and not self.field:
            return f"{self.source}: {self.message}"
        return f"{self.source} {self.row}, field '{self.field}': {self.message}"


class PlanError(ValueError):
    """A plan that must not be executed. `issues` lists every problem found."""

    def __init__(self, issues: list[PlanIssue]) -> None:
        self.issues = issues
        shown = "\n  ".join(str(i) for i in issues[:50])
        more = f"\n  ... and {len(issues) - 50} more" if len(issues) > 50 else ""
        super().__init__(f"the plan was refused ({len(issues)} problem(s)); nothing was sent:\n  {shown}{more}")


@dataclass(frozen=True)
class RawTable:
    """A table as read, all cells as text, with a label for each row that names it in its file."""

    source: str
    frame: pd.DataFrame
    row_labels: list[str]


def _refuse(source: str | Path, message: str) -> PlanError:
    return PlanError([PlanIssue(str(source), "", "", message)])


def _cells_as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Every cell as text, as a CSV would give it: validation then treats all formats alike."""

    def column_text(column: pd.Series) -> pd.Series:
        if pd.api.types.is_float_dtype(column):
            # 10.0 from Parquet or JSON is the whole number 10; 10.5 stays 10.5 and is refused later
            return column.map(lambda v: "" if np.isnan(v) else str(int(v)) if float(v).is_integer() else repr(v))
        if pd.api.types.is_integer_dtype(column) or pd.api.types.is_bool_dtype(column):
            return column.astype(str)
        return column.map(lambda v: "" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v).strip())

    return pd.DataFrame({name: column_text(frame[name]) for name in frame.columns}, index=frame.index)


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise _refuse(path, f"cannot be read ({exc.strerror or exc})") from None


def _utf8_text(path: Path, raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise _refuse(
            path,
            f"line {line} is not UTF-8 text (byte 0x{raw[exc.start]:02X} at column {column}); "
            "save the file as UTF-8 (a Latin-1 or Windows-1252 export?)",
        ) from None


def _read_json(path: Path) -> dict[str, RawTable]:
    raw = _read_bytes(path)
    if raw.startswith(_BOM):
        # JSON forbids a byte order mark; refusing it says so, rather than guessing at the encoding
        raise _refuse(path, "starts with a byte order mark (UTF-8 BOM); save it as UTF-8 without BOM")
    text = _utf8_text(path, raw)
    if not text.strip():
        raise _refuse(path, "is empty: a JSON plan is an object with accounts, positions and requests")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _refuse(path, f"is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None
    if not isinstance(doc, dict):
        raise PlanError([PlanIssue(path.name, "document", "-", "must be an object with accounts, positions, requests")])
    issues = []
    for key in doc:
        if key not in TABLES:
            close = difflib.get_close_matches(str(key), TABLES, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            issues.append(PlanIssue(path.name, "document", str(key), f"unknown key{hint}; keys: {', '.join(TABLES)}"))
    for name in TABLES:
        if name not in doc and name not in OPTIONAL_TABLES:
            issues.append(PlanIssue(path.name, "document", name, "key is missing: a plan needs accounts and requests"))
    if issues:
        raise PlanError(issues)
    tables = {}
    for name in TABLES:
        rows = doc.get(name, [])
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise PlanError([PlanIssue(path.name, name, "-", "must be a list of row objects")])
        frame = _cells_as_text(pd.DataFrame(rows, dtype=object)) if rows else pd.DataFrame(columns=list(COLUMNS[name]))
        tables[name] = RawTable(f"{path.name}:{name}", frame, [f"row {i}" for i in range(len(rows))])
    return tables


def _read_csv(file: Path, name: str) -> RawTable:
    text = _utf8_text(file, _read_bytes(file)).removeprefix("\ufeff")  # a spreadsheet's BOM, as pandas drops it
    if not text.strip():
        raise _refuse(file, f"is empty: it needs a header line ({','.join(COLUMNS[name])}) and a line per row")
    try:
        # Blank lines are read, then dropped, so that every row keeps its true line number.
        frame = pd.read_csv(
            io.StringIO(text), dtype=str, keep_default_na=False, skip_blank_lines=False, skipinitialspace=True
        )
    except pd.errors.ParserError as exc:
        raise _refuse(file, f"is not a well-formed CSV file: {str(exc).strip()}") from None
    header = text.splitlines()[0]
    if len(frame.columns) == 1 and not set(COLUMNS[name]) <= set(frame.columns):
        for separator, word in _OTHER_SEPARATORS.items():
            if separator in header:
                raise _refuse(
                    file,
                    f"line 1 {header!r} is one column: the file seems to separate its fields with {word}; "
                    "plan CSV files are comma-separated",
                )
    frame = frame.apply(lambda column: column.str.strip())
    lines = pd.RangeIndex(2, len(frame) + 2)  # header is line 1
    filled = (frame != "").any(axis=1).to_numpy()
    frame = frame[filled].reset_index(drop=True)
    return RawTable(file.name, frame, [f"line {n}" for n in lines[filled]])


def _read_parquet(file: Path) -> RawTable:
    try:
        frame = pd.read_parquet(file)
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise _refuse(file, f"is not a readable Parquet file ({exc})") from None
    return RawTable(file.name, _cells_as_text(frame), [f"row {i}" for i in range(len(frame))])


def read_plan_tables(path: str | Path) -> dict[str, RawTable]:
    path = Path(path)
    if not path.exists():
        raise _refuse(path, "plan not found")
    if path.is_file():
        if path.suffix.lower() == ".json":
            return _read_json(path)
        if path.stem in TABLES:
            raise _refuse(path, f"is one table of a plan: give the plan's folder ({path.parent}) instead")
        raise _refuse(path, "a plan file must be JSON; CSV and Parquet plans are folders")

    tables = {}
    for name in TABLES:
        found = [p for p in (path / f"{name}.csv", path / f"{name}.parquet") if p.exists()]
        if len(found) > 1:
            raise _refuse(path, f"plan folder has both {found[0].name} and {found[1].name}")
        if not found:
            if name in OPTIONAL_TABLES:
                tables[name] = RawTable(f"{name}.csv", pd.DataFrame(columns=list(COLUMNS[name])), [])
                continue
            raise _refuse(path, f"plan folder has no {name}.csv or {name}.parquet")
        file = found[0]
        tables[name] = _read_csv(file, name) if file.suffix == ".csv" else _read_parquet(file)
    return tables
