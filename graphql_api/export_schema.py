"""Write the schema to graphql_api/schema.graphql: `python -m graphql_api.export_schema`.

A test fails when the file and the code disagree; run this after changing the schema.
"""

from pathlib import Path

from graphql_api.schema import build_schema

SCHEMA_PATH = Path(__file__).with_name("schema.graphql")


def schema_sdl() -> str:
    return build_schema().as_str() + "\n"


def main() -> None:
    SCHEMA_PATH.write_text(schema_sdl(), encoding="utf-8")
    print(f"wrote {SCHEMA_PATH}")


if __name__ == "__main__":
    main()
