"""Loading TOML files into contract models, with errors that name the file, line and field.

The city description, scenarios and warning rules are all files people write by hand; a
mistake should read like a compiler error: ``city.toml:42: homes[2].ward: unknown ward``.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from smartcity.errors import ContractError, FieldProblem

M = TypeVar("M", bound=BaseModel)


def field_path(loc: tuple[int | str, ...]) -> str:
    """``("homes", 2, "ward")`` as ``homes[2].ward``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "file"


def line_of(text: str, loc: tuple[int | str, ...]) -> int | None:
    """Best-effort line number (1-based) of the TOML key or table a pydantic location names.

    Follows array-of-tables headers (``[[homes]]``, counting to the index) and ``[table]``
    headers, then looks for ``key =`` inside that section; falls back to the section's header
    line, or None when the path cannot be followed."""
    lines = text.splitlines()
    start, end = 0, len(lines)
    line: int | None = None
    prefix = ""
    i = 0
    while i < len(loc):
        part = loc[i]
        if not isinstance(part, str):
            return line
        name = f"{prefix}{part}"
        index = loc[i + 1] if i + 1 < len(loc) and isinstance(loc[i + 1], int) else None
        header = re.compile(rf"^\s*\[\[\s*{re.escape(name)}\s*\]\]" if index is not None
                            else rf"^\s*\[\s*{re.escape(name)}\s*\]")
        found = [n for n in range(start, end) if header.match(lines[n])]
        if index is not None and isinstance(index, int) and index < len(found):
            n = found[index]
            nxt = next((m for m in range(n + 1, len(lines)) if lines[m].lstrip().startswith("[")),
                       len(lines))
            start, end, line = n + 1, nxt, n + 1
            prefix = f"{name}."
            i += 2
            continue
        if index is None and found:
            n = found[0]
            nxt = next((m for m in range(n + 1, len(lines)) if lines[m].lstrip().startswith("[")),
                       len(lines))
            start, end, line = n + 1, nxt, n + 1
            prefix = f"{name}."
            i += 1
            continue
        key = re.compile(rf"^\s*{re.escape(str(part))}\s*=")
        hit = next((n for n in range(start, end) if key.match(lines[n])), None)
        return hit + 1 if hit is not None else line
    return line


def load_toml_model(path: Path | str, model: type[M], what: str,
                    error: type[ContractError] = ContractError) -> M:
    """Read ``path`` as TOML and validate it as ``model``; ``error`` (a ContractError) names
    the file, and for each problem the line (where it can be found) and the field."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise error(f"cannot read {what} {file}", [FieldProblem("file", str(e))]) from e
    return parse_toml_model(text, model, what, file, error)


def parse_toml_model(text: str, model: type[M], what: str, source: Path | str = "<string>",
                     error: type[ContractError] = ContractError) -> M:
    file = Path(source)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise error(f"{what} {file} is not valid TOML", [FieldProblem("file", str(e))]) from e
    try:
        return model.model_validate(data)
    except ValidationError as e:
        problems = []
        for err in e.errors(include_url=False):
            loc = tuple(err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "is not a known field here (a typo?)"
            elif err["type"] == "missing":
                msg = "is required"
            line = line_of(text, loc)
            where = f"{file.name}:{line}: " if line else ""
            problems.append(FieldProblem(f"{where}{field_path(loc)}", msg))
        raise error(f"{what} {file} is invalid", problems) from None
