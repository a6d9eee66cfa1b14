"""The words a passage or a question is matched on, the same way for both: lower case, accents folded, codes split
and joined ("B-112" gives "b", "112" and "b112"), Chinese as overlapping character pairs (neither FTS5's unicode61
tokenizer nor PostgreSQL's "simple" configuration splits Chinese words), common words left out of questions."""

from __future__ import annotations

import re
import unicodedata

_WORD = re.compile(r"[a-z0-9]+(?:[-./][a-z0-9]+)*|[\u3400-\u9fff]+")
# Words that would match most passages and say nothing about which one: English, French and Chinese function words
# and the words of every exhibitor's passage ("booth", "hall").
STOPWORDS = frozenset(
    """a an and are at be by can de des did do does du en est et for from how i in is it la le les me my of on or ou
    par pour qu que qui quel quelle quels quelles se show sur tell the their there this to un une was what when where
    which who whom why will with you your il elle a-t-il y about give any has have me much many there's what's
    where's est-ce ce cette ces au aux dans avec combien comment quand d l s c n j m t
    booth stand stands hall halls exhibit exhibitor exhibitors salon""".split()  # noqa: SIM905
)
CJK_STOP = frozenset("的 了 吗 呢 是 在 哪 个 什么 多少 谁 有 和 与 么 请 问 展位 展台".split())  # noqa: SIM905


def fold(text: str) -> str:
    """Lower case, accents removed ("Où" -> "ou")."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(char for char in decomposed if not unicodedata.combining(char))


def search_terms(text: str, *, question: bool = False) -> list[str]:
    """The terms of `text`, in order, repeated as often as they occur. `question=True` leaves out stopwords."""
    terms: list[str] = []
    for match in _WORD.finditer(fold(text)):
        word = match.group()
        if "\u3400" <= word[0] <= "\u9fff":
            pairs = [word[i : i + 2] for i in range(len(word) - 1)] or [word]
            terms.extend(pair for pair in pairs if not (question and (pair in CJK_STOP or pair[0] in CJK_STOP and
                                                                     pair[1] in CJK_STOP)))  # fmt: skip
            continue
        parts = re.split(r"[-./]", word)
        if len(parts) > 1:
            terms.append("".join(parts))
            # In a question, a code's lone letter ("b" of "B-112") would match every booth in row B.
            parts = [part for part in parts if not (question and len(part) == 1 and part.isalpha())]
        terms.extend(part for part in parts if not (question and part in STOPWORDS))
    return terms
