from io import StringIO

from django.core.management import call_command

from demo_engine.booth.models import Passage, SuggestedQuestion
from showcase.exhibits import services as content_services


def test_rebuild_booth_index_reports_its_progress_and_count(db):
    """The command shows a progress bar on stderr and says how many passages it indexed."""
    content_services.demo_content_load()
    out, err = StringIO(), StringIO()
    call_command("rebuild_booth_index", stdout=out, stderr=err)
    assert out.getvalue().startswith(f"Indexed {Passage.objects.count()} passages in ")
    assert "50/50" in err.getvalue()


def test_the_chat_page_shows_the_suggested_questions_of_its_language(client, db):
    """Staff's suggested questions appear as buttons, each page in its own language; hidden ones do not."""
    SuggestedQuestion.objects.create(language="en", text="Where is Huangpu Robotics?")
    SuggestedQuestion.objects.create(language="fr", text="Où est Huangpu Robotics ?")
    SuggestedQuestion.objects.create(language="en", text="A hidden one", is_active=False)
    english = client.get("/chat/").content.decode()
    french = client.get("/fr/chat/").content.decode()
    assert 'class="secondary suggestion">Where is Huangpu Robotics?<' in english and "A hidden one" not in english
    assert "Où est Huangpu Robotics ?" in french and "Where is Huangpu Robotics?" not in french
