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

A number is checked with its label too, within one fact of one source: "$6,000,000 (about $6M) (disclosed)" is
marked when the sources have $6,000,000 only as a press claim ("Claim: about $6,000,000") and the disclosed figure
is $5,576,000. The label of a number is the content's word for what kind of figure it is (disclosed, derived,
estimated, claimed, assumed): in a reply, the first such word after the number in its sentence (past a restatement
in brackets, "(about $6M)", but not past another figure or a colon) or one of the three words before it ("claims it
spent $6M"); in a source, the first after it in its fact (not past a colon), any since the previous number (after a
colon: "80GB: rental price assumed at $1.50"), and any before the fact's first number ("Claimed: about $6,000,000").
A source number must then carry every label the reply gives it, with the counted word and the dollar sign, on the
same number of the same fact: values are never pooled across facts for this. A reply that gives no label keeps the
value check, except for a figure that only a press claim gives: its sentence must say it is a claim ("claims",
"says", "according to", "the press"…), so "DeepSeek-V3 cost $6M to train" is marked and "DeepSeek says it spent $6M"
is not.
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


# The labels the content puts on a figure (`FigureKind`, a press claim, a hardware price's "assumed"), in English and
# French, each to one key. A reply's label outside this list ("reported", "officiel") is not checked.
_LABELS = {"disclosed": "disclosed", "divulgué": "disclosed", "divulguée": "disclosed", "derived": "derived",
           "dérivé": "derived", "dérivée": "derived", "estimated": "estimated", "estimate": "estimated",
           "estimates": "estimated", "estimé": "estimated", "estimée": "estimated", "estimés": "estimated",
           "estimation": "estimated", "claim": "claimed", "claims": "claimed", "claimed": "claimed",
           "revendiqué": "claimed", "revendiquée": "claimed", "assumed": "assumed", "assumption": "assumed",
           "supposé": "assumed"}  # fmt: skip
# Words that say a figure is someone's claim, not a fact: a figure only a claim gives must have one in its sentence.
_ATTRIBUTION = re.compile(
    r"\b(?:claim\w*|says?|said|according|press|report\w*|stat(?:es|ed|ement)|announc\w*|selon|affirm\w*|"
    r"prétend\w*|revendiqu\w*|déclar\w*)\b|声称|宣称|据称|据报道|表示",
    re.IGNORECASE,
)
_SEGMENT_END = re.compile(r"[;\n]|[.!?](?:\s|$)")  # a fact's end, for labels (a sentence, a ";" item, a line)
_LABELS_BEFORE = 3  # how many words before a reply's number may label it ("claims it spent $6M")


@dataclass(frozen=True)
class _Occurrence:
    """One number of one source fact: its values, the stems of the few words after it, its labels, whether it is an
    amount in dollars."""

    values: set[float]
    words: set[str]
    labels: set[str]
    dollars: bool


def _label_words(text: str) -> list[tuple[int, str]]:
    return [(m.start(), _LABELS[m.group().lower()]) for m in _WORD.finditer(text) if m.group().lower() in _LABELS]


def _is_dollars(text: str, start: int) -> bool:
    """A number written as dollars: "$" right before it, or the second end of a dollar range ("$80–100M")."""
    before = text[max(0, start - 16) : start]
    return before.endswith("$") or bool(re.search(r"\$[\d.,]+[kKMB]?\s*(?:[–-]|to\s)\s*$", before))


def _segments(text: str) -> list[tuple[int, int]]:
    bounds, start = [], 0
    for match in _SEGMENT_END.finditer(text):
        bounds.append((start, match.start()))
        start = match.end()
    bounds.append((start, len(text)))
    return bounds


def _occurrences(text: str) -> list[_Occurrence]:
    """Every number of the sources, with what it counts and its labels, fact by fact."""
    found = []
    for seg_start, seg_end in _segments(text):
        segment = text[seg_start:seg_end]
        numbers = list(_NUMBER.finditer(segment))
        if not numbers:
            continue
        labels = _label_words(segment)
        heading = {label for at, label in labels if at < numbers[0].start()}  # "Claimed: about $6,000,000"
        previous_end = 0
        for match in numbers:
            # The words since the previous number (after a colon, if any) label it: "80GB: rental price assumed at
            # $1.50".
            lead = segment[previous_end : match.start()].rsplit(":", 1)[-1]
            previous_end = match.end()
            near = {_LABELS[word.lower()] for word in _WORD.findall(lead) if word.lower() in _LABELS}
            after = _FACT_END.split(segment[match.end() : match.end() + 80], maxsplit=1)[0]  # this fact only
            words = _WORD.findall(after)[:_WORDS_AFTER]
            # Its own label: the first after it, unless a new fact's heading (a colon) comes first ("released December
            # 2024): 671B total, 37B active (MoE) parameters (disclosed)": the year is not labelled, 671B is).
            own = next((label for at, label in labels if at >= match.end()
                        and ":" not in re.sub(r"\([^()]*\)", "", segment[match.end() : at])), None)  # fmt: skip
            found.append(_Occurrence(_values(match.group()), {_word_stem(word) for word in words},
                                     heading | near | ({own} if own else set()),
                                     _is_dollars(segment, match.start())))  # fmt: skip
    return found


def _reply_labels(text: str, figure: FoundFigure, others: list[FoundFigure]) -> set[str]:
    """The labels a reply gives a number: the first label word after it in its sentence, unless another figure
    (not a restatement in brackets) comes between; and any of the few words before it, back to the last figure."""
    seg_start, seg_end = next((a, b) for a, b in _segments(text) if a <= figure.start <= b)
    labels: set[str] = set()
    after = text[figure.end : seg_end]
    first = next(iter(_label_words(after)), None)
    if first is not None:
        gap = re.sub(r"\([^()]*\)", "", after[: first[0]])  # "(about $6M)" restates the same figure
        # Not past another figure ("H800" is a name here: "2,000 H800 chips (disclosed)"), nor past a colon:
        # "A100 SXM 80GB: rental price assumed at $1.50" labels $1.50, not 80.
        if not _NUMBER.search(gap) and ":" not in gap:
            labels.add(first[1])
    previous = max((other.end for other in others if other.end <= figure.start), default=seg_start)
    before = text[max(previous, seg_start) : figure.start]
    near = _WORD.findall(before)[-_LABELS_BEFORE:]
    labels.update(_LABELS[word.lower()] for word in near if word.lower() in _LABELS)
    return labels


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
        if value >= 10_000 and other and abs(value - other) / other <= 0.02:  # not years: 2024 is not "2,000"
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
    """The figures of `text` found in none of `source_texts`, as written, each once, in order. Each source text is
    read as its facts (split at lines, ";" and sentence ends): a number with a label or a counted word must find
    both on one number of one fact."""
    sources = " \n ".join(source_texts)
    codes, times, values, dates = _codes(sources), _times(sources), _values(sources), _dates(sources)
    occurrences = [occurrence for source in source_texts for occurrence in _occurrences(source)]
    counting_words = {word for occurrence in occurrences for word in occurrence.words}
    missing: list[str] = []
    found = figures_in(text)
    for figure in found:
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
            written_values = {value for value in _values(written) if value not in (0, 1)}
            word = _counted_word(text, figure.end)
            if word not in counting_words or _is_year(written_values):
                word = None  # a word the sources never count in: the value check alone
            labels = _reply_labels(text, figure, found)
            dollars = text[max(0, figure.start - 1) : figure.start] == "$"
            if ok and written_values:
                # The value is in a source: one number of one fact must also count the same thing, carry the same
                # labels and be dollars when the reply's is.
                matches = [
                    occurrence
                    for occurrence in occurrences
                    if any(_close(value, occurrence.values) for value in written_values)
                    and (word is None or word in occurrence.words)
                    and (not dollars or occurrence.dollars)
                ]
                if word or labels or dollars:
                    ok = any(labels <= occurrence.labels for occurrence in matches)
                if ok and matches and all("claimed" in occurrence.labels for occurrence in matches):
                    # Only a claim gives it: the reply must say it is one ("DeepSeek-V3 cost $6M" is marked, "DeepSeek
                    # says it spent $6M" is not).
                    seg_start, seg_end = next((a, b) for a, b in _segments(text) if a <= figure.start <= b)
                    ok = bool(_ATTRIBUTION.search(text[seg_start:seg_end]))
        if not ok and written not in missing:
            missing.append(written)
    return missing


# Names: a capitalised word inside a sentence is a name in English ("located in the Shibuya-Shinagawa district of
# Tokyo"); one that none of the texts the model was given has (sources, opening turn, question) is as invented as a
# wrong figure. A sentence's first word is left alone (it is capitalised whatever it is), and so is anything
# not in Latin letters.
_CAPITALISED = re.compile(r"(?<![\w'’-])[A-Z][\w'’-]*")
_SENTENCE_START = re.compile(r"(?:^|(?<=[.!?:;])\s+|\n+)")
_NAME_PART = re.compile(r"[^\W\d_]+", re.UNICODE)
# A nationality is known where its country is ("a Chinese company" of an exhibitor "From China").
_DEMONYMS = {"chinese": "china", "japanese": "japan", "french": "france", "german": "germany", "singaporean":
             "singapore", "american": "america", "korean": "korea", "british": "britain", "indian": "india",
             "taiwanese": "taiwan", "swiss": "switzerland", "dutch": "netherlands", "canadian": "canada",
             "israeli": "israel", "european": "europe", "asian": "asia", "english": "england"}  # fmt: skip


def unsupported_names(text: str, known_texts: list[str]) -> list[str]:
    """The capitalised words inside the sentences of `text` with a part found in none of `known_texts` (case
    ignored), as written, each once, in order."""
    known = {word.lower() for known_text in known_texts for word in _NAME_PART.findall(known_text)}
    known |= {demonym for demonym, country in _DEMONYMS.items() if country in known}
    starts = {match.end() for match in _SENTENCE_START.finditer(text)}
    missing: list[str] = []
    for match in _CAPITALISED.finditer(text):
        if match.start() in starts:
            continue
        name = match.group().rstrip("'’-")
        if any(part.lower() not in known for part in _NAME_PART.findall(name)) and name not in missing:
            missing.append(name)
    return missing
