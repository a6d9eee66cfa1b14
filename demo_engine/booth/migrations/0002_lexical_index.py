"""The passages' lexical index: an FTS5 table on SQLite (rowid = passage id), a GIN full-text index on PostgreSQL."""

from django.db import migrations

SQLITE = "CREATE VIRTUAL TABLE booth_passage_fts USING fts5(search_text)"
POSTGRES = "CREATE INDEX booth_passage_search ON booth_passage USING GIN (to_tsvector('simple', search_text))"


def create(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "sqlite":
        schema_editor.execute(SQLITE)
    elif vendor == "postgresql":
        schema_editor.execute(POSTGRES)


def drop(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "sqlite":
        schema_editor.execute("DROP TABLE IF EXISTS booth_passage_fts")
    elif vendor == "postgresql":
        schema_editor.execute("DROP INDEX IF EXISTS booth_passage_search")


class Migration(migrations.Migration):
    dependencies = [("booth", "0001_passages_and_suggested_questions")]
    operations = [migrations.RunPython(create, drop)]
