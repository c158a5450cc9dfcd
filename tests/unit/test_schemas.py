"""The committed JSON Schemas are the public contract of our topics: additive changes only."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from schemas import PUBLISHED
from schemas.compat import breaking_changes
from schemas.export import DEFAULT_DIR, current_schemas, export_json_schemas, main, render_schema

COMMITTED = {path.name: path for path in sorted(DEFAULT_DIR.glob("*.schema.json"))}
CURRENT = current_schemas()
REGENERATE = "run `python -m schemas.export` and commit schemas/json/"


def test_every_published_type_has_a_committed_schema() -> None:
    missing = sorted(set(CURRENT) - set(COMMITTED))
    assert not missing, f"no committed schema for {missing}: {REGENERATE}"


def test_no_published_schema_was_dropped() -> None:
    dropped = sorted(set(COMMITTED) - set(CURRENT))
    assert not dropped, f"{dropped} are committed but no longer in schemas.PUBLISHED: a breaking change"


@pytest.mark.parametrize("name", sorted(COMMITTED))
def test_no_breaking_change_against_committed(name: str) -> None:
    if name not in CURRENT:
        pytest.skip("reported by test_no_published_schema_was_dropped")
    problems = breaking_changes(json.loads(COMMITTED[name].read_text(encoding="utf-8")), CURRENT[name])
    assert not problems, f"breaking changes in {name} (publish a new versioned type instead):\n" + "\n".join(
        problems
    )


@pytest.mark.parametrize("name", sorted(CURRENT))
def test_committed_schema_is_up_to_date(name: str) -> None:
    path = COMMITTED.get(name)
    assert path is not None, f"{name} missing: {REGENERATE}"
    assert path.read_text(encoding="utf-8") == render_schema(CURRENT[name]), f"{name} is stale: {REGENERATE}"


def test_export_writes_one_deterministic_file_per_published_type(tmp_path: Path) -> None:
    first = export_json_schemas(tmp_path / "a")
    second = export_json_schemas(tmp_path / "b")
    assert sorted(p.name for p in first) == sorted(f"{name}.schema.json" for name in PUBLISHED)
    for a, b in zip(first, second, strict=True):
        text = a.read_text(encoding="utf-8")
        assert text == b.read_text(encoding="utf-8") and text.endswith("}\n")
        schema = json.loads(text)
        assert schema["$id"].endswith(a.name.removesuffix(".schema.json")) and schema["title"]


def test_cli_writes_into_the_given_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path)]) == 0
    assert len(list(tmp_path.glob("*.schema.json"))) == len(PUBLISHED)
    assert str(tmp_path) in capsys.readouterr().out


# --- breaking_changes itself, on a small schema shaped like pydantic's output ---

BASE: dict[str, Any] = {
    "$defs": {
        "Data": {
            "type": "object",
            "properties": {
                "courseid": {"type": "integer"},
                "learner": {"anyOf": [{"type": "integer"}, {"type": "null"}], "default": None},
                "crud": {"type": "string", "enum": ["c", "r", "u", "d"]},
            },
            "required": ["courseid"],
        }
    },
    "type": "object",
    "properties": {"type": {"const": "t.v1", "type": "string"}, "data": {"$ref": "#/$defs/Data"}},
    "required": ["type", "data"],
}


def changed(edit: Any) -> list[str]:
    new = copy.deepcopy(BASE)
    edit(new)
    return breaking_changes(BASE, new)


def data_props(schema: dict[str, Any]) -> dict[str, Any]:
    props: dict[str, Any] = schema["$defs"]["Data"]["properties"]
    return props


def test_identical_schema_is_compatible() -> None:
    assert breaking_changes(BASE, copy.deepcopy(BASE)) == []


def test_removed_property_is_breaking() -> None:
    problems = changed(lambda s: data_props(s).pop("learner"))
    assert problems == ["$.data.learner: property removed"]


def test_new_required_property_is_breaking() -> None:
    def edit(s: dict[str, Any]) -> None:
        data_props(s)["site"] = {"type": "string"}
        s["$defs"]["Data"]["required"].append("site")

    assert changed(edit) == ["$.data.site: new required property"]


def test_optional_becoming_required_is_breaking() -> None:
    problems = changed(lambda s: s["$defs"]["Data"]["required"].append("learner"))
    assert problems == ["$.data.learner: optional property became required"]


def test_narrowed_type_is_breaking() -> None:
    problems = changed(lambda s: data_props(s).update(learner={"type": "integer"}))
    assert problems == ["$.data.learner: type narrowed from integer|null to integer"]


def test_changed_type_is_breaking() -> None:
    problems = changed(lambda s: data_props(s).update(courseid={"type": "string"}))
    assert problems == ["$.data.courseid: type changed from integer to string"]


def test_removed_enum_and_const_values_are_breaking() -> None:
    assert changed(lambda s: data_props(s)["crud"].update(enum=["c", "u"])) == [
        "$.data.crud: enum/const value(s) removed: 'r', 'd'"
    ]
    assert changed(lambda s: s["properties"]["type"].update(const="t.v2")) == [
        "$.type: enum/const value(s) removed: 't.v1'"
    ]


def test_added_optional_property_is_compatible() -> None:
    assert changed(lambda s: data_props(s).update(note={"type": "string", "default": ""})) == []


def test_widening_is_compatible() -> None:
    def edit(s: dict[str, Any]) -> None:
        data_props(s)["courseid"] = {"anyOf": [{"type": "number"}, {"type": "null"}]}
        data_props(s)["crud"]["enum"].append("x")
        s["$defs"]["Data"]["required"] = []

    assert changed(edit) == []


def test_published_schema_regressions_are_caught() -> None:
    """On a real exported schema: making `relateduserid` required and an int-only `objectid`."""
    old = CURRENT["moodle.event.v1.schema.json"]
    new = copy.deepcopy(old)
    event = new["$defs"]["MoodleEvent"]
    event["required"].append("relateduserid")
    event["properties"]["objectid"] = {"type": "integer"}
    assert breaking_changes(old, new) == [
        "$.data.objectid: type narrowed from integer|null to integer",
        "$.data.relateduserid: optional property became required",
    ]
