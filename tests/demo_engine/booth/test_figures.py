from demo_engine.booth.figures import unsupported_figures

SOURCES = [
    "Huangpu Robotics: hall H1, booth B-112. Exhibitor from China.",
    "Kernel Forge pitches on 28 July 2025 at 09:30, VC Stage A (20 minutes).",
    "DeepSeek-V3: training cost $5,576,000 (about $5.58M) (estimated); 2,788,000 GPU-hours; 2,048 H800 SXM",
]


def test_figures_copied_from_the_sources_are_not_marked():
    """A booth, a hall, a time and a cost the sources give are accepted, whatever their spelling."""
    text = "Huangpu Robotics is in hall H1, booth B112. Kernel Forge pitches at 9:30 on 28 July; $5.6 million."
    assert unsupported_figures(text, SOURCES) == []


def test_a_moved_time_and_a_leaked_booth_code_are_marked():
    """The two errors measured on the 135M model (a pitch moved to 11:30, an example's booth E-210) are caught."""
    text = "Kernel Forge pitches at 11:30 at booth E-210."
    assert unsupported_figures(text, SOURCES) == ["11:30", "E-210"]


def test_invented_amounts_and_counts_are_marked_once_each():
    """A figure the sources do not give is listed once, as written, in the order of the text."""
    text = "It used 16,000 chips and cost $80 million; again 16,000 chips."
    assert unsupported_figures(text, SOURCES) == ["16,000", "80 million"]


def test_a_reply_with_no_sources_has_every_figure_marked():
    """Without sources, nothing the model states as a figure passes."""
    assert unsupported_figures("Booth B-112 opens at 10:00.", []) == ["B-112", "10:00"]


def test_a_day_moved_to_another_month_is_marked():
    """ "26 June" is not the conference's "26–28 July": a date is checked as a day of its month, in any language."""
    sources = ["WAIC 2025: 26–28 July 2025, Shanghai."]
    assert unsupported_figures("It runs from July 27 to 28 July, 7月26日.", sources) == []
    assert unsupported_figures("It was held on 26 June 2025.", sources) == ["26 June"]
    assert unsupported_figures("Le 30 juillet.", sources) == ["30 juillet"]


CONFERENCE = [
    "WAIC 2025: 26–28 July 2025, Shanghai. 800 companies exhibiting; 70,000 m² of exhibition space; 3,000 start-ups."
]


def test_a_right_number_copied_from_the_wrong_fact_is_marked():
    """ "70,000 start-ups" is marked although the source has 70,000 (of square metres): a number must count the same
    thing as in the source."""
    assert unsupported_figures("WAIC has 70,000 start-ups.", CONFERENCE) == ["70,000"]
    assert unsupported_figures("There are 800 m² of space.", CONFERENCE) == ["800"]


def test_a_number_with_its_own_words_or_none_passes():
    """The same number with the source's word (in any of its few words after it, plural or not, m² or square
    metres), or with no word saying what it counts, is not marked."""
    text = "WAIC 2025 has 800 companies, 800 exhibiting, and 70,000 square metres; it trained on 2,048 GPUs; 800."
    assert unsupported_figures(text, [*CONFERENCE, SOURCES[2]]) == []
    assert unsupported_figures("Au total, 800 sur le salon.", CONFERENCE) == []


def test_a_word_the_sources_never_count_in_leaves_the_value_check():
    """A French reply to English sources ("800 entreprises") or another word for the same thing ("800 exhibitors")
    is not marked for its word: only a word the sources count things in can contradict them."""
    assert unsupported_figures("Il y a 800 entreprises et 70 000 m².", CONFERENCE) == []
    assert unsupported_figures("WAIC has 800 exhibitors and 3,000 companies.", CONFERENCE) == ["3,000"]


# The demo content's two DeepSeek-V3 passages as the figure check reads them (title, text, then each fact, a line).
DEEPSEEK_V3 = "\n".join([
    "DeepSeek-V3",
    "DeepSeek-V3 by DeepSeek (released December 2024): 671B total, 37B active (MoE) parameters (disclosed); 2,048 H800 "
    "SXM chips (disclosed); 2,788,000 GPU-hours (disclosed); training cost $5,576,000 (about $5.58M) (disclosed); "
    "3.3e+24 FLOP (derived). Scope: Final training run only.",
    "DeepSeek-V3: 671B total, 37B active (MoE) parameters (disclosed)",
    "DeepSeek-V3: 2,048 H800 SXM chips (disclosed)",
    "DeepSeek-V3: 2,788,000 GPU-hours (disclosed)",
    "DeepSeek-V3: training cost $5,576,000 (about $5.58M) (disclosed)",
])  # fmt: skip
DEEPSEEK_CLAIM = "\n".join([
    "Claim: DeepSeek-V3",
    "Press claim about DeepSeek-V3 (DeepSeek, as reported by the press): The company says it trained its model for "
    "about $6M using only 2,000 Nvidia H800 GPUs, against $80–100M and 16,000 high-end chips estimated for Western… "
    "Claimed: about $6,000,000 (about $6M), about 2,000 H800 SXM. Rivals: $80,000,000 (about $80M) to $100,000,000 "
    "(about $100M), 16,000 chips.",
    "Claim (DeepSeek, as reported by the press): about $6,000,000 (about $6M), about 2,000 H800 SXM",
])  # fmt: skip


def test_a_claimed_figure_given_the_disclosed_label_is_marked():
    """The chat's answer "$6,000,000 (about $6M) (disclosed)" mixes the press claim's figure with the disclosed
    figures' label: no one fact of one source has both, so both spellings of it are marked."""
    sources = [DEEPSEEK_V3, DEEPSEEK_CLAIM]
    text = "DeepSeek-V3's training cost was $6,000,000 (about $6M) (disclosed)."
    assert unsupported_figures(text, sources) == ["6,000,000", "6M"]
    assert unsupported_figures("2,000 H800 chips (disclosed).", sources) == ["2,000"]
    assert unsupported_figures("2,788,000 GPU-hours (estimated).", sources) == ["2,788,000"]
    assert unsupported_figures("DeepSeek claims it spent $5.58M.", sources) == ["5.58M"]


def test_a_figure_with_its_own_label_or_none_passes():
    """The same figures with the label their fact gives them (after the number, or a few words before it), or with
    no label at all, are not marked; a restatement in brackets keeps the label that follows it."""
    sources = [DEEPSEEK_V3, DEEPSEEK_CLAIM]
    for text in ("DeepSeek claims it spent $6,000,000 (about $6M) on training.",
                 "The training cost $5,576,000 (about $5.58M) (disclosed); the press claimed $6M.",
                 "2,788,000 GPU-hours (disclosed), 671B parameters (disclosed), 2,048 H800 SXM chips.",
                 "About 2,000 H800 (claimed). It cost $5.6 million."):  # fmt: skip
        assert unsupported_figures(text, sources) == [], text


def test_a_figure_only_a_press_claim_gives_must_be_said_to_be_one():
    """The booth's subject: DeepSeek-V3's $6M is a press claim, not a fact. Stated as a fact it is marked; attributed
    ("says", "claims", "according to the press", in French or Chinese too) it is not; a figure another fact also
    gives as a fact (the disclosed 2,048 chips) is not a claim-only figure."""
    sources = [DEEPSEEK_V3, DEEPSEEK_CLAIM]
    assert unsupported_figures("DeepSeek-V3 cost $6M to train.", sources) == ["6M"]
    assert unsupported_figures("DeepSeek-V3 used 2,000 H800 chips.", sources) == ["2,000"]
    for text in ("The press says that DeepSeek-V3 is $6,000,000 (about $6M).",
                 "According to DeepSeek, it used about 2,000 H800 GPUs.",
                 "Selon la presse, DeepSeek affirme 6 millions de dollars.",
                 "DeepSeek 声称训练花了 $6M。",
                 "DeepSeek-V3 used 2,048 H800 chips and 2,788,000 GPU-hours."):  # fmt: skip
        assert unsupported_figures(text, sources) == [], text


def test_a_dollar_amount_must_be_dollars_in_its_source():
    """ "$2,788,000" is DeepSeek-V3's GPU-hours given as money: marked; the same number without "$" is not."""
    assert unsupported_figures("It cost $2,788,000.", [DEEPSEEK_V3]) == ["2,788,000"]
    assert unsupported_figures("It took 2,788,000 of them.", [DEEPSEEK_V3]) == []
    assert unsupported_figures("Rivals spent $80–100M.", [DEEPSEEK_CLAIM]) == []


def test_a_year_is_not_a_rounded_count():
    """ "2,000" is not December 2024 at the precision people round to: a value under 10,000 must be exact."""
    assert unsupported_figures("It used 2,000 chips.", [DEEPSEEK_V3]) == ["2,000"]


A100 = "\n".join([
    "A100 SXM 80GB",
    "A100 SXM 80GB (NVIDIA chip): 80 GB HBM2e, 2.00 TB/s, 312.0 TFLOP/s BF16; rental price assumed at $1.50 an hour.",
    "A100 SXM 80GB: 80 GB HBM2e, 2.00 TB/s, 312.0 TFLOP/s BF16",
    "A100 SXM 80GB: rental price assumed at $1.50 an hour",
])  # fmt: skip


def test_a_label_after_a_colon_belongs_to_the_next_figure():
    """The eval's answer "A100 SXM 80GB: rental price assumed at $1.50 an hour" (the fact as written) is not marked:
    "assumed" labels $1.50, not the 80 of the name before the colon; an assumed figure the fact does not give is."""
    assert unsupported_figures("A100 SXM 80GB: rental price assumed at $1.50 an hour", [A100]) == []
    assert unsupported_figures("The A100's 80 GB (disclosed) rents at $1.50 (assumed).", [A100]) == ["80"]
    assert unsupported_figures("Its BF16 throughput is assumed at 312.0 TFLOP/s.", [A100]) == ["312.0"]
