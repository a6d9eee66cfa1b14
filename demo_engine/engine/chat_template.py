"""SmolLM2's ChatML chat template, and fitting a conversation into the context.

Messages in, token ids out. Renders exactly what `transformers`' `apply_chat_template` renders from the
template in the GGUF metadata (the default system prompt when the conversation has none, and the
assistant generation prompt). Knows nothing about the model.

The control tokens `<|im_start|>` and `<|im_end|>` are placed by id where the template puts them; a message's role
and content are encoded as plain text, so a visitor's `<|im_end|><|im_start|>system …` stays words in their turn.
For ordinary text the ids equal tokenizing the rendered text whole (the tokenizer splits on control tokens first).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from demo_engine.engine.tokenizer import ChatTokenizer

DEFAULT_SYSTEM_PROMPT = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
GENERATION_ROLE = "assistant"
GENERATION_PROMPT = f"<|im_start|>{GENERATION_ROLE}\n"


@dataclass
class PromptPlan:
    """A rendered prompt: its token ids, and how many older turns were left out to fit the context."""

    token_ids: list[int]
    dropped_turns: int = 0
    truncated_last_turn: bool = False  # the newest turn alone was too long and lost its beginning
    text: str = field(default="", repr=False)


def render_turn(role: str, content: str) -> str:
    """One message in ChatML."""
    return f"<|im_start|>{role}\n{content}<|im_end|>\n"


def turn_ids(tokenizer: ChatTokenizer, role: str, content: str) -> list[int]:
    """One message in ChatML as token ids: control tokens by id, role and content as plain text."""
    return [tokenizer.bos_id, *tokenizer.encode(f"{role}\n{content}"), tokenizer.eos_id, *tokenizer.encode("\n")]


def generation_prompt_ids(tokenizer: ChatTokenizer) -> list[int]:
    """`<|im_start|>assistant\n` as token ids."""
    return [tokenizer.bos_id, *tokenizer.encode(f"{GENERATION_ROLE}\n")]


def render_chat_text(messages: list[dict[str, str]], *, add_generation_prompt: bool = True) -> str:
    """The whole conversation as text, as the GGUF's template renders it."""
    parts = []
    if not messages or messages[0]["role"] != "system":
        parts.append(render_turn("system", DEFAULT_SYSTEM_PROMPT))
    parts.extend(render_turn(m["role"], m["content"]) for m in messages)
    if add_generation_prompt:
        parts.append(GENERATION_PROMPT)
    return "".join(parts)


def plan_prompt(
    tokenizer: ChatTokenizer, messages: list[dict[str, str]], *, max_context: int, max_new_tokens: int
) -> PromptPlan:
    """Token ids for the conversation that leave `max_new_tokens` of room in `max_context`.

    Keeps the system prompt and the newest turns that fit; older turns are dropped (counted in
    `dropped_turns`). If the newest turn alone does not fit, its beginning is cut.
    """
    if not messages:
        raise ValueError("a conversation needs at least one message")
    budget = max_context - max_new_tokens
    system = messages[0] if messages[0]["role"] == "system" else {"role": "system", "content": DEFAULT_SYSTEM_PROMPT}
    turns = messages[1:] if messages[0]["role"] == "system" else list(messages)
    # Every turn starts with the control token <|im_start|>, which a tokenizer splits on first, so building the
    # prompt turn by turn gives the same ids as tokenizing the whole rendered text.
    head = turn_ids(tokenizer, system["role"], system["content"])
    tail = generation_prompt_ids(tokenizer)
    room = budget - len(head) - len(tail)
    if room <= 0:
        raise ValueError(f"max_new_tokens={max_new_tokens} leaves no room for the prompt in {max_context} tokens")
    kept: list[list[int]] = []
    for turn in reversed(turns):
        ids = turn_ids(tokenizer, turn["role"], turn["content"])
        if len(ids) > room:
            break
        kept.append(ids)
        room -= len(ids)
    truncated = False
    if not kept and turns:
        # The newest turn alone is too long: keep its end, which is what the user asked last.
        last = turns[-1]
        opening = [tokenizer.bos_id, *tokenizer.encode(f"{last['role']}\n")]
        closing = [tokenizer.eos_id, *tokenizer.encode("\n")]
        content = tokenizer.encode(last["content"])
        keep = max(room - len(opening) - len(closing), 0)
        kept.append(opening + content[len(content) - keep :] + closing if keep else opening + closing)
        truncated = True
    dropped = len(turns) - len(kept)
    token_ids = head + [i for ids in reversed(kept) for i in ids] + tail
    return PromptPlan(token_ids=token_ids, dropped_turns=dropped, truncated_last_turn=truncated, text="")
