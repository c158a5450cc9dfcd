"""Is a new JSON Schema still compatible with the old one? Our topics evolve additively only.

A change is breaking when data valid under the old schema (what existing producers write and existing
consumers expect) may be refused or misread under the new one: a property removed, a type changed or
narrowed, a new or newly required property, enum/const values removed, tighter bounds. Adding optional
properties and widening types are fine. Paths in the messages are instance paths (`$.data.courseid`).
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

_LOWER_BOUNDS = ("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties")
_UPPER_BOUNDS = ("maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties")
_EXACT = ("pattern", "format", "multipleOf")


def breaking_changes(old: Schema, new: Schema) -> list[str]:
    return _Comparison(old, new).run()


class _Comparison:
    def __init__(self, old_root: Schema, new_root: Schema) -> None:
        self.old_root = old_root
        self.new_root = new_root
        self.problems: list[str] = []
        self.seen: set[tuple[int, int]] = set()  # recursive $defs would otherwise never end

    def run(self) -> list[str]:
        self.compare(self.old_root, self.new_root, "$")
        return self.problems

    def report(self, path: str, message: str) -> None:
        self.problems.append(f"{path}: {message}")

    def compare(self, old: Any, new: Any, path: str) -> None:
        if (id(old), id(new)) in self.seen:
            return
        self.seen.add((id(old), id(new)))
        old_branches = _branches(old, self.old_root)
        new_branches = _branches(new, self.new_root)
        if self._compare_types(old_branches, new_branches, path):
            return  # a changed type makes the finer checks below noise
        self._compare_values(old_branches, new_branches, path)
        self._compare_bounds(old_branches, new_branches, path)
        self._compare_objects(old_branches, new_branches, path)
        self._compare_arrays(old_branches, new_branches, path)

    def _compare_types(self, old: list[Schema], new: list[Schema], path: str) -> bool:
        old_types, new_types = _types(old), _types(new)
        if new_types is None:
            return False
        if old_types is None:
            self.report(path, f"type narrowed from any to {_show(new_types)}")
            return True
        lost = {t for t in old_types if not (t in new_types or (t == "integer" and "number" in new_types))}
        if not lost:
            return False
        verb = "changed" if lost == old_types else "narrowed"
        self.report(path, f"type {verb} from {_show(old_types)} to {_show(new_types)}")
        return True

    def _compare_values(self, old: list[Schema], new: list[Schema], path: str) -> None:
        old_values, new_values = _values(old), _values(new)
        if old_values is None or new_values is None:
            return  # old accepted any value of its types, or new does: nothing removed
        removed = [v for v in old_values if v not in new_values]
        if removed:
            self.report(path, f"enum/const value(s) removed: {', '.join(map(repr, removed))}")

    def _compare_bounds(self, old: list[Schema], new: list[Schema], path: str) -> None:
        old_main, new_main = _non_null(old), _non_null(new)
        if len(old_main) != 1 or len(new_main) != 1:
            return  # unions: bounds are per branch, too ambiguous to pair up
        before, after = old_main[0], new_main[0]
        for key in _LOWER_BOUNDS + _UPPER_BOUNDS + _EXACT:
            if key not in after or before.get(key) == after[key]:
                continue
            tighter = (
                key not in before
                or key in _EXACT
                or (key in _LOWER_BOUNDS and after[key] > before[key])
                or (key in _UPPER_BOUNDS and after[key] < before[key])
            )
            if tighter:
                self.report(path, f"{key} narrowed from {before.get(key, 'none')!r} to {after[key]!r}")

    def _compare_objects(self, old: list[Schema], new: list[Schema], path: str) -> None:
        before, after = _merged_object(old), _merged_object(new)
        if before is None or after is None:
            return
        old_props, new_props = before["properties"], after["properties"]
        for name, schema in old_props.items():
            if name not in new_props:
                self.report(f"{path}.{name}", "property removed")
            else:
                self.compare(schema, new_props[name], f"{path}.{name}")
        for name in sorted(after["required"] - before["required"]):
            what = "optional property became required" if name in old_props else "new required property"
            self.report(f"{path}.{name}", what)
        self._compare_additional(before["additional"], after["additional"], path)

    def _compare_additional(self, old: Any, new: Any, path: str) -> None:
        if new is False and old is not False:
            self.report(path, "additional properties no longer allowed")
        elif isinstance(old, dict) and isinstance(new, dict):
            self.compare(old, new, f"{path}.*")

    def _compare_arrays(self, old: list[Schema], new: list[Schema], path: str) -> None:
        old_arrays = [b for b in old if _is_type(b, "array")]
        new_arrays = [b for b in new if _is_type(b, "array")]
        if len(old_arrays) == 1 and len(new_arrays) == 1:
            self.compare(old_arrays[0].get("items", {}), new_arrays[0].get("items", {}), f"{path}[]")


def _resolve(schema: Any, root: Schema) -> Any:
    """Follow local `$ref`s (`#/$defs/Name`, any JSON pointer into the same document)."""
    while isinstance(schema, dict) and "$ref" in schema:
        ref = schema["$ref"]
        if not ref.startswith("#"):
            raise ValueError(f"only local $ref is supported, got {ref!r}")
        target: Any = root
        for part in filter(None, ref[1:].split("/")):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        schema = target
    return schema


def _branches(schema: Any, root: Schema) -> list[Schema]:
    """The alternatives a schema allows, with refs resolved and anyOf/oneOf/allOf flattened."""
    schema = _resolve(schema, root)
    if schema is True or schema == {}:
        return [{}]
    if schema is False:
        return []
    if "anyOf" in schema or "oneOf" in schema:
        return [b for sub in schema.get("anyOf", []) + schema.get("oneOf", []) for b in _branches(sub, root)]
    if "allOf" in schema:
        merged = {k: v for k, v in schema.items() if k != "allOf"}
        for sub in schema["allOf"]:
            for part in _branches(sub, root):
                merged = _merge(merged, part)
        return [merged]
    return [schema]


def _merge(a: Schema, b: Schema) -> Schema:
    merged = {**a, **b}
    merged["properties"] = {**a.get("properties", {}), **b.get("properties", {})}
    merged["required"] = sorted(set(a.get("required", [])) | set(b.get("required", [])))
    return merged


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _types(branches: list[Schema]) -> set[str] | None:
    """Union of the types the branches allow; None when some branch allows anything."""
    types: set[str] = set()
    for branch in branches:
        if "type" in branch:
            declared = branch["type"]
            types.update([declared] if isinstance(declared, str) else declared)
        elif "const" in branch:
            types.add(_json_type(branch["const"]))
        elif "enum" in branch:
            types.update(_json_type(v) for v in branch["enum"])
        elif "properties" in branch:
            types.add("object")
        else:
            return None
    return types


def _values(branches: list[Schema]) -> list[Any] | None:
    """Every value the branches allow, or None when some branch allows more than a fixed list."""
    values: list[Any] = []
    for branch in branches:
        if "const" in branch:
            values.append(branch["const"])
        elif "enum" in branch:
            values.extend(branch["enum"])
        elif branch.get("type") == "null":
            values.append(None)
        else:
            return None
    return values


def _is_type(branch: Schema, name: str) -> bool:
    declared = branch.get("type")
    return declared == name or (isinstance(declared, list) and name in declared)


def _non_null(branches: list[Schema]) -> list[Schema]:
    return [b for b in branches if b.get("type") != "null"]


def _merged_object(branches: list[Schema]) -> dict[str, Any] | None:
    """Properties of all object branches; a property is required only if every branch requires it."""
    objects = [b for b in branches if _is_type(b, "object") or "properties" in b]
    if not objects:
        return None
    properties: Schema = {}
    for branch in objects:
        properties.update(branch.get("properties", {}))
    required = set.intersection(*(set(b.get("required", [])) for b in objects))
    additional = [b.get("additionalProperties", True) for b in objects]
    return {
        "properties": properties,
        "required": required,
        "additional": additional[0] if len(additional) == 1 else True,
    }


def _show(types: set[str]) -> str:
    return "|".join(sorted(types))
