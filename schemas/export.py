"""Write the JSON Schema of every published message type: `python -m schemas.export [DIR]`.

The files are committed (`schemas/json/`) so consumers in other languages can validate messages and
`tests/unit/test_schemas.py` can refuse breaking changes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from . import PUBLISHED
from .envelope import CloudEvent

DEFAULT_DIR = Path(__file__).resolve().parent / "json"
SCHEMA_ID_BASE = "urn:ebackpack:schema:"
DRAFT = "https://json-schema.org/draft/2020-12/schema"


def schema_file_name(name: str) -> str:
    return f"{name}.schema.json"


def build_schema(name: str, model: type[CloudEvent]) -> dict[str, Any]:
    # Serialization mode: the schema describes what producers write to the topic.
    schema = model.model_json_schema(mode="serialization")
    schema["$schema"] = DRAFT
    schema["$id"] = f"{SCHEMA_ID_BASE}{name}"
    schema["title"] = model.TYPE
    return schema


def render_schema(schema: dict[str, Any]) -> str:
    """Byte-stable text, so a regenerated file only differs when the schema does."""
    return json.dumps(schema, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def current_schemas() -> dict[str, dict[str, Any]]:
    """File name -> schema, for every entry of PUBLISHED."""
    return {schema_file_name(name): build_schema(name, model) for name, model in sorted(PUBLISHED.items())}


def export_json_schemas(out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for file_name, schema in current_schemas().items():
        path = out_dir / file_name
        path.write_text(render_schema(schema), encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) > 1 or (args and args[0] in ("-h", "--help")):
        print("usage: python -m schemas.export [DIR]", file=sys.stderr)
        return 2
    for path in export_json_schemas(Path(args[0]) if args else DEFAULT_DIR):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
