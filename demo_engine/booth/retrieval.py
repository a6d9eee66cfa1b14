"""Reads of the booth's index: lexical search (SQLite FTS5 / PostgreSQL full text) for names and codes, dense search
(all-MiniLM-L6-v2 vectors, an exact dot product) for meaning, fused by reciprocal rank.

Exact search is right at this scale: 800 exhibitors and 3,000 products are about 4,000 vectors, 6 MB, and one
matrix-vector product over them costs well under a millisecond. The vectors live in each worker's memory, reloaded
when `IndexVersion` moves. Call this in a worker: the question is embedded here.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field

import numpy as np
from django.db import connection

from demo_engine.booth.embedding import get_embedder
from demo_engine.booth.index import FTS_TABLE
from demo_engine.booth.models import IndexVersion, Passage
from demo_engine.booth.terms import fold, search_terms

CANDIDATES = 20  # from each of the two searches, before fusion
RRF_K = 60  # reciprocal rank fusion's constant (Cormack et al. 2009); results hardly depend on it
# Relevance: a question is about the content when it names a record (its own name as a phrase, or a code of it,
# "B-112", "H200") or when the best dense match is at least this close. Shared words alone never count: "What is the
# capital of France?" shares "capital" and "France" with the investor Rive Gauche Capital, from France. Measured
# with `python -m demo_engine.eval_booth --retrieval-only` (README): the eval's 21 off-topic questions, many sharing
# words with records, reach 0.10-0.44 (the capital of France 0.44; "What is the best robot vacuum to buy?" 0.44 at
# WAIC's volume), its answerable questions that name no record 0.48-0.67 (but for one with the show's own kinds of
# records, below). 0.46 is halfway between.
DENSE_RELEVANT = 0.46
# A question about the show's own kinds of records (start-ups, pitches, investors, exhibitors, booths) is held to the
# earlier, lower bar: "Which start-ups are pitching today?", a suggested question of the kiosk, is 0.28 to 0.38 in its
# three languages, and "Is there a legal AI start-up pitching?" 0.39. No off-topic question of the eval has these words.
DENSE_RELEVANT_OWN_KINDS = 0.30
_OWN_KINDS = re.compile(r"(?<![a-z])(start-?ups?|pitch\w*|investors?|investisseurs?|exhibitors?|exposants?|booths?)"
                        r"(?![a-z])|初创|创业|路演|投资|展商|展位|展台")  # fmt: skip


@dataclass
class Hit:
    passage: Passage
    score: float
    lexical_rank: int | None = None
    dense_rank: int | None = None
    cosine: float = 0.0


@dataclass
class Retrieval:
    hits: list[Hit] = field(default_factory=list)
    relevant: bool = False
    elapsed_ms: float = 0.0


class _Vectors:
    """The dense index in this process's memory: passage ids and an (N, 384) matrix, as of `version`."""

    def __init__(self) -> None:
        self.version: int | None = None
        self.ids: list[int] = []
        self.matrix = np.zeros((0, 384), dtype=np.float32)
        self.lock = threading.Lock()

    def current(self) -> tuple[list[int], np.ndarray]:
        version = IndexVersion.objects.filter(pk=1).values_list("version", flat=True).first() or 0
        with self.lock:
            if version != self.version:
                rows = list(Passage.objects.values_list("pk", "embedding"))
                self.ids = [pk for pk, _ in rows]
                buffer = b"".join(bytes(blob) for _, blob in rows)
                self.matrix = np.frombuffer(buffer, dtype=np.float32).reshape(len(rows), 384)
                self.version = version
            return self.ids, self.matrix


_vectors = _Vectors()


def lexical_search(*, question: str, limit: int = CANDIDATES) -> list[int]:
    """Passage ids whose words match the question's, best first (BM25 on SQLite, ts_rank on PostgreSQL)."""
    terms = list(dict.fromkeys(search_terms(question, question=True)))[:32]
    if not terms:
        return []
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            match = " OR ".join(f'"{term}"' for term in terms)
            cursor.execute(f"SELECT rowid FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH %s ORDER BY bm25({FTS_TABLE}) "
                           "LIMIT %s", [match, limit])  # fmt: skip
        else:
            query = " | ".join(terms)  # terms are letters and digits only: nothing to escape
            cursor.execute(
                "SELECT id FROM booth_passage WHERE to_tsvector('simple', search_text) @@ to_tsquery('simple', %s) "
                "ORDER BY ts_rank(to_tsvector('simple', search_text), to_tsquery('simple', %s)) DESC LIMIT %s",
                [query, query, limit],
            )
        return [row[0] for row in cursor.fetchall()]


def dense_search(*, question: str, limit: int = CANDIDATES) -> list[tuple[int, float]]:
    """(passage id, cosine) of the nearest passages by meaning, best first: an exact dot product."""
    ids, matrix = _vectors.current()
    if not ids:
        return []
    query = get_embedder().encode([question])[0]  # (384,), on one thread: see embedding
    scores = matrix @ query  # (N,)
    top = np.argsort(-scores, kind="stable")[:limit]  # best first; ties: the earlier passage
    return [(ids[i], float(scores[i])) for i in top.tolist()]


def retrieve(*, question: str, k: int = 3) -> Retrieval:
    """The `k` passages that best answer `question`, fused from both searches, and whether any is relevant at all:
    the question names a candidate (its own name as a phrase, or one of its codes) or the best match by meaning is
    close (`DENSE_RELEVANT`)."""
    started = time.perf_counter()
    lexical = lexical_search(question=question)
    dense = dense_search(question=question)
    scores: dict[int, float] = {}
    # A code or a number in the question ("B-112", "2,048") is matched by the words, not the meaning: the lexical
    # ranking then counts double (without it, a booth in the same row outranked the one asked for).
    lexical_weight = 2.0 if any(char.isdigit() for char in question) else 1.0
    for rank, pk in enumerate(lexical):
        scores[pk] = scores.get(pk, 0.0) + lexical_weight / (RRF_K + rank + 1)
    cosines = dict(dense)
    for rank, (pk, _cosine) in enumerate(dense):
        scores[pk] = scores.get(pk, 0.0) + 1.0 / (RRF_K + rank + 1)
    # The answer's record first: a candidate whose own name the question spells out ("Where is Lujiazui Silicon's
    # stand?") goes before the records that only mention it (its products), which a 135M model would answer with.
    candidates = Passage.objects.in_bulk(list(scores))
    asked = _phrase(question)
    codes = {term for term in search_terms(question, question=True) if _is_code(term)}
    named = False
    for pk, passage in candidates.items():
        if any(f" {name} " in asked for name in record_names(passage.title)):
            scores[pk] += 1.0 / RRF_K
            named = True
        elif codes & set(passage.search_text.split()):
            named = True
    best = sorted(scores, key=lambda pk: -scores[pk])[:k]
    rows = {pk: candidates[pk] for pk in best if pk in candidates}
    lexical_rank = {pk: rank for rank, pk in enumerate(lexical)}
    dense_rank = {pk: rank for rank, (pk, _) in enumerate(dense)}
    hits = [Hit(rows[pk], scores[pk], lexical_rank.get(pk), dense_rank.get(pk), cosines.get(pk, 0.0))
            for pk in best if pk in rows]  # fmt: skip
    top_cosine = max(cosines.values(), default=0.0)
    bar = DENSE_RELEVANT_OWN_KINDS if _OWN_KINDS.search(fold(question)) else DENSE_RELEVANT
    relevant = bool(hits) and (named or top_cosine >= bar)
    return Retrieval(hits=hits, relevant=relevant, elapsed_ms=(time.perf_counter() - started) * 1000)


def _phrase(text: str) -> str:
    """`text` as words between single spaces, lower case, accents folded, with a space at each end: "Lujiazui
    Silicon's stand?" -> " lujiazui silicon s stand ", so a name is found as a whole phrase, never inside a word."""
    return " " + " ".join(re.findall(r"[a-z0-9]+|[\u3400-\u9fff]+", fold(text))) + " "


def record_names(title: str) -> set[str]:
    """The names a question may call a record by, as `_phrase` writes them: its own name, the first part of its title
    ("Shelf Scout · Huangpu Robotics" is the product Shelf Scout: a question naming Huangpu Robotics names the
    exhibitor, not each of its products), without a kind's prefix ("Pitch: Kernel Forge" -> "kernel forge"), also
    without a trailing year ("WAIC 2025" is also asked about as "WAIC"); at least three letters."""
    name = _phrase(title.split(" · ")[0].split(": ", 1)[-1]).strip()
    return {each for each in (name, re.sub(r"\s+\d{4}$", "", name)) if len(each) >= 3}


def _is_code(term: str) -> bool:
    """A booth or model code: letters and digits in one term ("b112", "lz900", "h200", "405b", "gpt4"), not a year or
    another plain number, which off-topic questions have as often as ours ("the 2018 World Cup")."""
    return any(char.isdigit() for char in term) and any("a" <= char <= "z" for char in term)
