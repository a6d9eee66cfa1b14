"""A booth-assistant reply in the worker: its grounding before generation, its checked sources after, each written
as a `sources` frame of the reply's stream (through the writer the worker already uses) and saved on the reply."""

from __future__ import annotations

from collections.abc import Callable

from demo_engine.booth import grounding as grounding_module
from demo_engine.booth.grounding import Grounding
from demo_engine.models import Message
from demo_engine.protocol import SourcesFrame


def sources_frame(*, message_id: int, seq: int, grounding: Grounding, reply_text: str | None) -> SourcesFrame:
    """Before the text (`reply_text` None): the passages given; after it: the cards with the fact used and the
    figures found in no source."""
    checked = reply_text is not None
    cards = grounding_module.source_cards(grounding=grounding, reply_text=reply_text or "")
    unsupported = grounding_module.figures_unsupported(grounding=grounding, reply_text=reply_text) if checked else []
    return {"type": "sources", "message_id": message_id, "seq": seq, "sources": [card.as_dict() for card in cards],
            "unsupported_figures": unsupported, "checked": checked, "found": grounding.relevant}  # fmt: skip


def reply_sources_record(*, message_id: int, frame: SourcesFrame) -> None:
    """Save the checked sources and the count of figures found in none of them on the reply."""
    Message.objects.filter(id=message_id).update(
        sources=frame["sources"],
        unsupported_figures=frame["unsupported_figures"],
        unsupported_figure_count=len(frame["unsupported_figures"]),
    )


def reply_sources_finish(*, message_id: int, grounding: Grounding, reply_text: str,
                         append: Callable[[dict], None], next_seq: Callable[[], int]) -> SourcesFrame:  # fmt: skip
    """After the last delta: check the text's figures, write the final `sources` frame and save it on the reply."""
    frame = sources_frame(message_id=message_id, seq=next_seq(), grounding=grounding, reply_text=reply_text)
    append(frame)
    reply_sources_record(message_id=message_id, frame=frame)
    return frame
