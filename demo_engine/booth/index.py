"""Writes of the booth's index: passages upserted and removed with their lexical row (SQLite FTS5, or PostgreSQL's
full-text GIN index, which reads the passage row itself) and their dense vector, and a full rebuild.

Every change bumps `IndexVersion` in the same transaction, so a worker's in-memory copy of the vectors knows when
to reload. Embedding happens here, so these functions run in a Celery worker or a management command, never in the
web process; `passage_remove` alone embeds nothing and may run anywhere (unpublishing removes at once).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
from django.db import connection, transaction
from django.db.models import F

from demo_engine.booth import passages as passage_builders
from demo_engine.booth.models import IndexVersion, Passage
from demo_engine.booth.passages import PassageDraft
from demo_engine.booth.terms import search_terms

logger = logging.getLogger(__name__)

FTS_TABLE = "booth_passage_fts"


def _bump_version() -> None:
    if not IndexVersion.objects.filter(pk=1).update(version=F("version") + 1):
        IndexVersion.objects.get_or_create(pk=1, defaults={"version": 1})


def _document(draft: PassageDraft) -> str:
    """What a passage is embedded from: its title and text (the facts repeat the text)."""
    return f"{draft.title}. {draft.text}"


def _search_text(draft: PassageDraft) -> str:
    return " ".join(search_terms(f"{draft.title} {draft.text} {' '.join(draft.facts)}"))


def _fts_write(rows: list[tuple[int, str]]) -> None:
    if connection.vendor != "sqlite" or not rows:
        return
    with connection.cursor() as cursor:
        cursor.executemany(f"DELETE FROM {FTS_TABLE} WHERE rowid = %s", [(pk,) for pk, _ in rows])
        cursor.executemany(f"INSERT INTO {FTS_TABLE}(rowid, search_text) VALUES (%s, %s)", rows)


def _fts_delete(ids: list[int]) -> None:
    if connection.vendor != "sqlite" or not ids:
        return
    with connection.cursor() as cursor:
        cursor.executemany(f"DELETE FROM {FTS_TABLE} WHERE rowid = %s", [(pk,) for pk in ids])


def _save(drafts: list[PassageDraft], vectors: np.ndarray) -> list[Passage]:
    saved = []
    for draft, vector in zip(drafts, vectors, strict=True):
        passage, _ = Passage.objects.update_or_create(
            record_key=draft.record_key,
            defaults={"kind": draft.kind, "title": draft.title[:300], "url": draft.url[:500], "text": draft.text,
                      "facts": draft.facts, "search_text": _search_text(draft),
                      "embedding": vector.astype(np.float32).tobytes()},
        )  # fmt: skip
        saved.append(passage)
    _fts_write([(passage.pk, passage.search_text) for passage in saved])
    return saved


@transaction.atomic
def passages_upsert(*, drafts: list[PassageDraft]) -> list[Passage]:
    """Index these passages (new or changed): embed, store, and make them searchable at once."""
    if not drafts:
        return []
    from demo_engine.booth.embedding import get_embedder  # the model: only where a passage is embedded (the worker)

    vectors = get_embedder().encode([_document(draft) for draft in drafts])
    saved = _save(drafts, vectors)
    _bump_version()
    return saved


@transaction.atomic
def passage_remove(*, record_key: str) -> bool:
    """Take a record out of the index (unpublished or deleted). True when it was there."""
    ids = list(Passage.objects.filter(record_key=record_key).values_list("pk", flat=True))
    if not ids:
        return False
    _fts_delete(ids)
    Passage.objects.filter(pk__in=ids).delete()
    _bump_version()
    return True


def record_index(*, kind: str, pk: int) -> str:
    """Bring one record's passage up to date: indexed when public, removed otherwise. Returns what happened."""
    draft = passage_builders.passage_for(kind=kind, pk=pk)
    key = f"{kind}:{pk}"
    if draft is None:
        return "removed" if passage_remove(record_key=key) else "absent"
    passages_upsert(drafts=[draft])
    return "indexed"


def _embed_all(
    documents: list[str], embedder, batch_size: int, progress: Callable[[int, int], None] | None
) -> np.ndarray:
    """(N, 384) vectors of `documents`, in chunks of similar length (the embedder pads a batch to its longest text),
    sorted over the whole index rather than within each chunk."""
    vectors = np.zeros((len(documents), 384), dtype=np.float32)
    order = sorted(range(len(documents)), key=lambda i: len(documents[i]))
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        vectors[chunk] = embedder.encode([documents[i] for i in chunk])
        if progress is not None:
            progress(start + len(chunk), len(documents))
    return vectors


def index_rebuild(*, batch_size: int = 256, progress: Callable[[int, int], None] | None = None) -> int:
    """Make the whole index again from the published content; returns the number of passages. Readers see the old
    index until the new one commits (one transaction)."""
    drafts = passage_builders.passages_all()
    from demo_engine.booth.embedding import get_embedder

    vectors = _embed_all([_document(draft) for draft in drafts], get_embedder(), batch_size, progress)
    with transaction.atomic():
        if connection.vendor == "sqlite":
            with connection.cursor() as cursor:
                cursor.execute(f"DELETE FROM {FTS_TABLE}")
        Passage.objects.all().delete()
        rows = [Passage(record_key=d.record_key, kind=d.kind, title=d.title[:300], url=d.url[:500], text=d.text,
                        facts=d.facts, search_text=_search_text(d), embedding=v.tobytes())
                for d, v in zip(drafts, vectors, strict=True)]  # fmt: skip
        Passage.objects.bulk_create(rows, batch_size=500)
        saved = list(Passage.objects.values_list("pk", "search_text"))
        _fts_write(saved)
        _bump_version()
    return len(drafts)
