from demo_engine.booth.terms import search_terms


def test_booth_codes_match_however_they_are_written():
    """ "B-112", "b112" and "B 112" give a common term, so a visitor's spelling still finds the booth."""
    assert {"b112", "112"} <= set(search_terms("booth B-112"))
    assert "b112" in search_terms("b112")


def test_chinese_is_matched_by_character_pairs_and_question_words_are_left_out():
    """A Chinese question matches on its words' character pairs; "哪里", "什么" and the like say nothing."""
    terms = search_terms("Huangpu Robotics 的展位在哪里？", question=True)
    assert "huangpu" in terms and "robotics" in terms
    assert "展位" not in terms and "什么" not in search_terms("什么时候", question=True)


def test_accents_are_folded():
    """ "Où" and "ou" are the same word to the index."""
    assert search_terms("Où") == search_terms("ou")
