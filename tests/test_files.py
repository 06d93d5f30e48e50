"""Hand-written TOML files are refused with the file, line and field named."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict

from smartcity.errors import ContractError
from smartcity.files import field_path, line_of, load_toml_model


class Sensor(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    depth_cm: float


class Plan(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    sensors: list[Sensor]
    options: dict[str, int] = {}


TEXT = """\
name = "plan"

[options]
speed = 1

[[sensors]]
id = "a"
depth_cm = 1

[[sensors]]
id = "b"
depth_cm = "deep"
"""


@pytest.mark.parametrize(("loc", "line"), [
    (("name",), 1),
    (("sensors", 1, "depth_cm"), 12),
    (("sensors", 0, "id"), 7),
    (("sensors", 1, "missing"), 10),  # the table's header when the key is absent
    (("options", "speed"), 4),
    (("nowhere", 3, "x"), None),
])
def test_line_of_follows_tables(loc: tuple[int | str, ...], line: int | None) -> None:
    assert line_of(TEXT, loc) == line


def test_field_paths_read_like_the_file() -> None:
    assert field_path(("sensors", 1, "depth_cm")) == "sensors[1].depth_cm"
    assert field_path(()) == "file"


def test_a_bad_file_is_refused_with_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "plan.toml"
    path.write_text(TEXT + 'typo = 1\n')
    with pytest.raises(ContractError) as e:
        load_toml_model(path, Plan, "plan")
    fields = [p.field for p in e.value.problems]
    assert "plan.toml:12: sensors[1].depth_cm" in fields
    # In TOML a key after [[sensors]] belongs to that table, and the report says so.
    assert "plan.toml:13: sensors[1].typo" in fields
    assert "plan.toml" in str(e.value)


@pytest.mark.parametrize(("content", "reason"), [
    ("name = ", "not valid TOML"),
    (None, "cannot read"),
])
def test_unreadable_files(tmp_path: Path, content: str | None, reason: str) -> None:
    path = tmp_path / "plan.toml"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ContractError, match=reason):
        load_toml_model(path, Plan, "plan")
