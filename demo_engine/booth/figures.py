"""The figure check: every number, date, time and booth code in a reply, looked for in the reply's sources.

A 135M model moves figures around (a 09:30 pitch became 11:30 in a measurement, a worked example's "booth E-210"
landed in a wrong reply), so the site checks each figure the model wrote against the texts of the sources shown
under it; a figure found in none is marked on the page and counted on the saved reply. Matching is on values, not
spellings: "$5.6 million" matches "$5,576,000 (about $5.6M)", "9:30" matches "09:30", "B112" matches "B-112".

A number is also checked with what it counts: when the word after it in the reply is one the sources count things
in ("70,000 start-ups", and a source has "3,000 start-ups"), a source must give the same value with that word among
the few after it, in the same fact ("70,000 m² of exhibition space" does not; "2,000 H800 GPUs" does for "2,000
GPUs"). A right number copied from the wrong fact of a right source is marked like an invented one. A word the
sources never count in ("800 entreprises" against English sources, "1,000 visitors") leaves the value check alone:
the rule cannot tell a translation from a mistake.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Booth codes and model-like codes: a letter group, an optional hyphen, digits ("B-112", "H1", "A100", "E-210").
_CODE = re.compile(r"\b([A-Z]{1,3})-?(\d{1,4})\b")
_TIME = re.compile(r"\b([01]?\d|2[0-3])[:h.]([0-5]\d)\b")
_NUMBER = re.compile(
    r"(?<![\w.])(\d{1,3}(?:[,\u202f ]\d{3})+|\d+(?:\.\d+)?)(\s*(?:%|k\b|K\b|M\b|B\b|bn\b|million\b|billion\b|"
    r"thousand\b|millions\b|milliards?\b|万|亿))?"
)
_SCALES = {"k": 1e3, "thousand": 1e3, "m": 1e6, "million": 1e6, "millions": 1e6, "b": 1e9, "bn": 1e9,
           "billion": 1e9, "milliard": 1e9, "milliards": 1e9, "万": 1e4, "亿": 1e8}  # fmt: skip


_MONTHS = {name: number for number, names in enumerate((
    ("january", "janvier"), ("february", "février", "fevrier"), ("march", "mars"), ("april", "avril"), ("may", "mai"),
    ("june", "juin"), ("july", "juillet"), ("august", "août", "aout"), ("september", "septembre"),
    ("october", "octobre"), ("november", "novembre"), ("december", "décembre", "decembre")), start=1)
    for name in names}  # fmt: skip
_MONTH = "|".join(sorted(_MONTHS, key=len, reverse=True))
# "26 July", "26–28 July", "July 26", "7月26日": a day goes with its month, so "26 June" is not "26–28 July".
_DATE = re.compile(
    rf"\b(\d{{1,2}})(?:\s*[–-]\s*(\d{{1,2}}))?\s+({_MONTH})\b|\b({_MONTH})\s+(\d{{1,2}})\b|(\d{{1,2}})月(\d{{1,2}})日",
    re.IGNORECASE,
)


# Words after a number that say nothing about what it counts ("26 in", "5.6 million to train"): the value alone is
# checked then. English and French; Chinese units are not words here, so a Chinese reply's numbers keep the value
# check only.
_LINKING_WORDS = frozenset((
    "a", "an", "the", "and", "or", "of", "in", "on", "at", "to", "for", "from", "by", "with", "is", "are",
    "was", "were", "be", "it", "its", "this", "that", "as", "which", "who", "than", "more", "about", "over",
    "under", "each", "per", "most", "some", "all", "de", "du", "des", "le", "la", "les", "et", "en", "à", "au",
    "aux", "un", "une", "est", "sont", "pour", "par", "sur", "dans", "plus", "environ"
))  # fmt: skip
_WORD = re.compile(r"[A-Za-zÀ-ÿ²][A-Za-zÀ-ÿ²0-9'-]*")
_UNIT_SPELLINGS = {"m²": "square", "m2": "square", "sqm": "square", "mètres": "square", "metres": "square",
                   "meters": "square", "gpus": "gpu", "gpu-hours": "gpu", "heures": "hour",
                   "hours": "hour"}  # fmt: skip
_FACT_END = re.compile(r"[;\n(]|[.,:](?:\s|$)")
_WORDS_AFTER = 3  # how many words after a source's number may name what it counts ("2,000 H800 SXM GPUs")


def _word_stem(word: str) -> str:
    """A word as compared after a number: lower case, a few unit spellings made one, plural and ending cut."""
    lowered = word.lower().strip("'-")
    lowered = _UNIT_SPELLINGS.get(lowered, lowered)
    if len(lowered) > 3 and lowered.endswith("s"):
        lowered = lowered[:-1]
    return lowered[:5]


def _counted_word(text: str, end: int) -> str | None:
    """The word right after a number in a reply when it names what the number counts, else None."""
    match = _WORD.match(text, end + len(text[end:]) - len(text[end:].lstrip(" \u00a0")))
    if match is None or match.group().lower() in _LINKING_WORDS:
        return None
    return _word_stem(match.group())


def _counted_words(text: str) -> list[tuple[set[float], set[str]]]:
    """For every number in a source: its values, and the stems of the few words after it."""
    found = []
    for match in _NUMBER.finditer(text):
        after = _FACT_END.split(text[match.end() : match.end() + 80], maxsplit=1)[0]  # this fact only
        words = _WORD.findall(after)[:_WORDS_AFTER]
        found.append((_values(match.group()), {_word_stem(word) for word in words}))
    return found


def _is_year(values: set[float]) -> bool:
    return len(values) == 1 and all(v.is_integer() and 1900 <= v <= 2100 for v in values)


@dataclass(frozen=True)
class FoundFigure:
    text: str  # as written in the reply
    start: int
    end: int


def _dates(text: str) -> set[tuple[int, int]]:
    """(month, day) of every date in `text`; a range gives each of its days."""
    found: set[tuple[int, int]] = set()
    for match in _DATE.finditer(text):
        first, last, month_after, month_before, day_after, cjk_month, cjk_day = match.groups()
        if cjk_month:
            found.add((int(cjk_month), int(cjk_day)))
        elif month_before:
            found.add((_MONTHS[month_before.lower()], int(day_after)))
        else:
            month = _MONTHS[month_after.lower()]
            found.update((month, day) for day in range(int(first), int(last or first) + 1))
    return found


def _codes(text: str) -> set[str]:
    return {f"{letters}{int(digits)}" for letters, digits in _CODE.findall(text)}


def _times(text: str) -> set[tuple[int, int]]:
    return {(int(hours), int(minutes)) for hours, minutes in _TIME.findall(text)}


def _values(text: str) -> set[float]:
    """Every number in `text`, plain and scaled ("5.6M" gives 5.6 and 5,600,000), rounded like people round."""
    values: set[float] = set()
    for match in _NUMBER.finditer(text):
        number = float(re.sub(r"[,\u202f ]", "", match.group(1)))
        values.add(number)
        scale = (match.group(2) or "").strip().lower()
        if scale in _SCALES:
            values.add(number * _SCALES[scale])
    return values


def _close(value: float, known: set[float]) -> bool:
    """Equal, or the same at the precision the reply wrote it (5.6M for 5,576,000; 2.8M for 2,788,000)."""
    for other in known:
        if value == other:
            return True
        if value >= 1000 and other and abs(value - other) / other <= 0.02:
            return True
    return False


def figures_in(text: str) -> list[FoundFigure]:
    """The figures a reader would take as facts: booth codes, times, numbers (with their unit words)."""
    found: list[FoundFigure] = []
    taken: list[tuple[int, int]] = []

    def add(start: int, end: int) -> None:
        if any(start < b and a < end for a, b in taken):
            return
        taken.append((start, end))
        found.append(FoundFigure(text[start:end], start, end))

    for pattern in (_DATE, _CODE, _TIME, _NUMBER):
        for match in pattern.finditer(text):
            add(match.start(), match.end())
    return sorted(found, key=lambda figure: figure.start)


def unsupported_figures(text: str, source_texts: list[str]) -> list[str]:
    """The figures of `text` found in none of `source_texts`, as written, each once, in order."""
    sources = " \n ".join(source_texts)
    codes, times, values, dates = _codes(sources), _times(sources), _values(sources), _dates(sources)
    counted = _counted_words(sources)
    counting_words = {word for _values_after, words in counted for word in words}
    missing: list[str] = []
    for figure in figures_in(text):
        written = figure.text.strip()
        if _DATE.fullmatch(written):
            ok = _dates(written) <= dates
        elif _CODE.fullmatch(written):
            ok = _codes(written) <= codes
        elif _TIME.fullmatch(written):
            ok = _times(written) <= times
        else:
            ok = all(_close(value, values) for value in _values(written) if value not in (0, 1))
            # "1" and "0" are words more than figures ("1 booth"); a value also counts when any reading of it matches
            ok = ok or any(_close(value, values) for value in _values(written) if value >= 1000)
            word = _counted_word(text, figure.end)
            written_values = {value for value in _values(written) if value not in (0, 1)}
            if ok and word in counting_words and written_values and not _is_year(written_values):
                # The value is in a source: it must also count the same thing there.
                ok = any(word in words and any(_close(value, known_values) for value in written_values)
                         for known_values, words in counted)  # fmt: skip
        if not ok and written not in missing:
            missing.append(written)
    return missing
