"""The interface in English, French and Simplified Chinese, with a switcher on every page."""

import pytest

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("prefix", "lang", "strings"),
    [
        ("", "en", ["Exhibitors", "All countries", "Filter"]),
        ("/fr", "fr", ["Exposants", "Tous les pays", "Filtrer"]),
        ("/zh-hans", "zh-hans", ["展商", "全部国家/地区", "筛选"]),
    ],
)
def test_directory_speaks_each_language(client, demo_content, prefix, lang, strings):
    """The directory's interface strings and html lang follow the language prefix of the address."""
    body = client.get(f"{prefix}/exhibitors/").content.decode()
    assert f'<html lang="{lang}">' in body
    for text in strings:
        assert text in body


@pytest.mark.parametrize(("prefix", "text"), [("/fr", "plus de 1"), ("/zh-hans", "超过 1")])
def test_home_figures_are_translated(client, demo_content, prefix, text):
    """The headline figures read "more than N" in the visitor's language."""
    assert text in client.get(f"{prefix}/").content.decode()


def test_switcher_links_to_the_same_page_in_each_language(client, demo_content):
    """On an exhibitor page, the switcher links to that exhibitor's page in French and Chinese (through the view
    that remembers the choice)."""
    body = client.get("/exhibitors/huangpu-robotics/").content.decode()
    assert 'href="/i18n/language/fr/?next=%2Ffr%2Fexhibitors%2Fhuangpu-robotics%2F"' in body
    assert 'href="/i18n/language/zh-hans/?next=%2Fzh-hans%2Fexhibitors%2Fhuangpu-robotics%2F"' in body


def test_figure_labels_are_translated(client, demo_content):
    """The disclosed, derived and estimated labels on AI system pages are in the page's language."""
    body = client.get("/fr/ai-systems/deepseek-v3/").content.decode()
    assert "Publié par le développeur" in body and "Dérivé" in body  # its compute is our 6·N·D
    assert "Estimé" in client.get("/fr/ai-systems/gpt-4/").content.decode()
    assert "推算" in client.get("/zh-hans/ai-systems/deepseek-v3/").content.decode()


@pytest.mark.parametrize(
    ("prefix", "strings"),
    [
        (
            "/fr",
            [
                "Demandez au stand",
                "Envoyer",
                "Nouvelle conversation",
                "Posez une question",
                "en ligne",
                "introuvable dans les sources",
                "avec les sources",
            ],
        ),
        ("/zh-hans", ["问问展台", "发送", "新对话", "请提问", "在线", "来源中未找到", "并附来源"]),
    ],
)
def test_chat_page_speaks_each_language(client, prefix, strings):
    """The chat page's own strings (title, buttons, the message box's hint) are translated, not left in English."""
    body = client.get(f"{prefix}/chat/").content.decode()
    for text in strings:
        assert text in body
    assert "New conversation" not in body
