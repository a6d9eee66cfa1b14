"""Retrieval over the indexed demo content: names and codes through the lexical index, meaning through the vectors,
fused; drafts never indexed; unpublishing and deleting remove at once."""

import pytest

from demo_engine.booth import index, retrieval
from demo_engine.booth.models import Passage
from demo_engine.booth.tasks import index_records
from showcase.exhibits.models import Exhibitor, Status


def top_keys(question: str, k: int = 3) -> list[str]:
    return [hit.passage.record_key for hit in retrieval.retrieve(question=question, k=k).hits]


def key_of(slug: str) -> str:
    return f"exhibitor:{Exhibitor.objects.get(slug=slug).pk}"


def test_a_booth_code_finds_its_exhibitor(indexed_demo):
    """ "What is at booth B-112?" brings Huangpu Robotics and its products, all at B-112: the code decides."""
    hits = retrieval.retrieve(question="What is at booth B-112?", k=3).hits
    assert key_of("huangpu-robotics") in [hit.passage.record_key for hit in hits]
    assert all("B-112" in hit.passage.text for hit in hits)
    found = Passage.objects.in_bulk(retrieval.lexical_search(question="c050"))
    assert {passage.title for passage in found.values()} == {"Merlion Cloud", "GPU hours on demand · Merlion Cloud"}


def test_a_question_in_other_words_finds_the_record_by_meaning(indexed_demo):
    """A question that names nothing ("rents GPUs by the hour") still finds Merlion Cloud, by its vector."""
    hits = retrieval.retrieve(question="Who rents out graphics cards by the hour?", k=3).hits
    assert any(hit.passage.text.startswith("GPU hours on demand") for hit in hits)
    assert retrieval.lexical_search(question="rents out graphics cards") == []  # no word in common: meaning alone


def test_off_topic_questions_find_nothing_relevant(indexed_demo):
    """A football question is not about anything published: the assistant will say it does not know."""
    assert not retrieval.retrieve(question="Who won the 2018 football World Cup?").relevant
    assert not retrieval.retrieve(question="Write a poem about the sea.").relevant
    assert retrieval.retrieve(question="Where is Seine AI Lab?").relevant


def test_a_question_that_only_shares_words_with_a_record_finds_nothing_relevant(indexed_demo):
    """ "What is the capital of France?" shares "capital" and "France" with the investor Rive Gauche Capital, from
    France: shared words are not a name, and the meaning is far, so the site says it does not know. Asked by its
    name, or by what it is, the investor is still found."""
    for question in ("What is the capital of France?", "Quelle est la capitale de la France ?",
                     "What is the price of bitcoin?", "Who is the president of the United States?",
                     "Which GPU is best for gaming?"):  # fmt: skip
        assert not retrieval.retrieve(question=question).relevant, question
    named = retrieval.retrieve(question="Which pitches does Rive Gauche Capital attend?")
    assert named.relevant and named.hits[0].passage.title == "Rive Gauche Capital"
    by_meaning = retrieval.retrieve(question="Which investors come from France?")
    assert by_meaning.relevant and "Rive Gauche Capital" in [hit.passage.title for hit in by_meaning.hits]


def test_a_question_about_the_shows_own_kinds_of_records_keeps_the_lower_bar(indexed_demo):
    """The kiosk's suggested "which start-ups are pitching today?" names no record and is far in meaning (0.30 to 0.38
    in French and Chinese): its kind of record ("start-up", "路演") holds it to the lower bar, and it is answered."""
    for question in ("Quelles start-up présentent leur projet aujourd’hui ?", "今天有哪些初创公司路演？",
                     "Is there a legal AI start-up pitching?"):  # fmt: skip
        assert retrieval.retrieve(question=question).relevant, question


def test_a_code_or_a_records_own_name_makes_a_question_relevant(indexed_demo):
    """A booth code or a model code is a name, whatever the meaning says ("What is at booth B-112?" is close to
    nothing by meaning); a product's title naming its exhibitor ("Shelf Scout · Huangpu Robotics") does not make the
    product the record a question about Huangpu Robotics names."""
    assert retrieval.retrieve(question="What is at booth B-112?").relevant
    assert retrieval.retrieve(question="How much memory does the H200 have?").relevant
    assert retrieval.record_names("Shelf Scout · Huangpu Robotics") == {"shelf scout"}
    assert retrieval.record_names("WAIC 2025 · World Artificial Intelligence Conference 2025") == {"waic 2025", "waic"}
    assert retrieval.record_names("Pitch: Kernel Forge") == {"kernel forge"}
    assert retrieval.retrieve(question="Where is Huangpu Robotics?").hits[0].passage.title == "Huangpu Robotics"


def test_drafts_are_never_indexed(db):
    """A draft exhibitor has no passage, even when the indexing task runs for it."""
    draft = Exhibitor.objects.create(name="Quiet Draft Co", slug="quiet-draft", country="France", hall="H9",
                                     booth="Z-901", status=Status.DRAFT)  # fmt: skip
    index_records([["exhibitor", draft.pk]])
    assert not Passage.objects.filter(record_key=f"exhibitor:{draft.pk}").exists()


@pytest.mark.django_db(transaction=True)
def test_publishing_indexes_and_unpublishing_removes_at_once():
    """Published: the task indexes it and a question finds it. Unpublished: gone on commit, before any task runs."""
    exhibitor = Exhibitor.objects.create(name="Nimbus Drones", slug="nimbus-drones", country="Canada", hall="H4",
                                         booth="F-301", status=Status.PUBLISHED)  # fmt: skip
    index_records([["exhibitor", exhibitor.pk]])
    assert top_keys("Where is Nimbus Drones?")[0] == f"exhibitor:{exhibitor.pk}"
    exhibitor.status = Status.DRAFT
    exhibitor.save()  # autocommit: the removal ran on commit, in this process
    assert not Passage.objects.filter(record_key=f"exhibitor:{exhibitor.pk}").exists()
    assert f"exhibitor:{exhibitor.pk}" not in top_keys("Where is Nimbus Drones?")


@pytest.mark.django_db(transaction=True)
def test_deleting_removes_the_record_and_its_products():
    """A deleted exhibitor's passage, and its products', leave the index with the delete."""
    exhibitor = Exhibitor.objects.create(name="Nimbus Drones", slug="nimbus-drones", country="Canada", hall="H4",
                                         booth="F-301", status=Status.PUBLISHED)  # fmt: skip
    product = exhibitor.products.create(name="Cloud Hopper", slug="cloud-hopper", status=Status.PUBLISHED)
    index_records([["exhibitor", exhibitor.pk], ["product", product.pk]])
    assert Passage.objects.count() == 2
    exhibitor.delete()
    assert Passage.objects.count() == 0


def test_a_rebuild_matches_the_published_content(indexed_demo):
    """One passage per published record: 50 for the demo content; a draft exhibitor takes its product with it."""
    Exhibitor.objects.filter(slug="bay-devices").update(status=Status.DRAFT)  # no signal: the rebuild must see it
    count = index.index_rebuild()
    assert count == Passage.objects.count() == 48
    assert not Passage.objects.filter(text__contains="Bay Devices").exists()


def test_a_rebuild_stores_each_passage_with_its_own_vector(indexed_demo):
    """The rebuild embeds in length order over the whole index: each passage's stored vector is still its own text's
    (as embedded alone)."""
    import numpy as np

    from demo_engine.booth.embedding import get_embedder

    index.index_rebuild(batch_size=7)  # chunks that cut across lengths
    passages = list(Passage.objects.order_by("pk"))
    alone = get_embedder().encode([f"{p.title}. {p.text}" for p in passages], batch_size=1)
    stored = np.stack([np.frombuffer(bytes(p.embedding), dtype=np.float32) for p in passages])
    cosines = (alone * stored).sum(axis=1)
    assert len(passages) == 50 and cosines.min() > 0.9999
