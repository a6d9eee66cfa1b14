"""Command line: ask SmolLM2 one question and print the reply (streamed on a terminal) and its figures.

    python -m demo_engine.generate "question" [--greedy] [--max-new-tokens N] [--seed S] [--fp32]
        [--temperature T] [--repetition-penalty R] [--frequency-penalty F] [--presence-penalty P]

`--greedy` is the argmax of the model's logits: no penalty applies unless one is asked for.

Uses only `demo_engine.engine`; no Django.
"""

from __future__ import annotations

import argparse
import sys

from demo_engine.engine import Engine, EngineEvent, SamplingParams


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Ask SmolLM2-135M-Instruct a question.")
    parser.add_argument("question")
    parser.add_argument("--greedy", action="store_true", help="always pick the most likely token")
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--seed", type=int, default=None, help="seed for reproducible sampling")
    parser.add_argument("--fp32", action="store_true", help="the exact fp32 reference path (slower)")
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument(
        "--repetition-penalty", type=float, default=1.0, help="transformers' repetition penalty (default 1.0: off)"
    )
    parser.add_argument(
        "--frequency-penalty", type=float, default=0.0, help="OpenAI's frequency penalty, -2 to 2 (default 0: off)"
    )
    parser.add_argument(
        "--presence-penalty", type=float, default=0.0, help="OpenAI's presence penalty, -2 to 2 (default 0: off)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Print the reply and a figures line; returns the exit status."""
    args = parse_args(argv)
    engine = Engine.load(fp32=args.fp32)
    params = SamplingParams(
        temperature=0.0 if args.greedy else args.temperature,
        greedy=args.greedy,
        repetition_penalty=args.repetition_penalty,
        frequency_penalty=args.frequency_penalty,
        presence_penalty=args.presence_penalty,
        seed=args.seed,
        max_new_tokens=args.max_new_tokens,
    )
    plan = engine.render_chat([{"role": "user", "content": args.question}], max_new_tokens=args.max_new_tokens)
    streaming = sys.stdout.isatty()

    def on_event(event: EngineEvent) -> None:
        if streaming and event.text:
            sys.stdout.write(event.text)
            sys.stdout.flush()

    text, stats = engine.generate(plan.token_ids, params, on_event=on_event)
    if not streaming:
        sys.stdout.write(text)
    sys.stdout.write("\n")
    sys.stdout.flush()  # the reply before the figures, also when stdout is a pipe
    rate = f"{stats.decode_tokens_per_s:.1f} tok/s" if stats.decode_tokens_per_s else "n/a"
    ttft = f"{stats.ttft_s * 1000:.0f} ms" if stats.ttft_s is not None else "n/a"
    print(
        f"[{stats.prompt_tokens} prompt tokens, {stats.generated_tokens} generated, first token {ttft}, "
        f"decode {rate}, {stats.backend}, loaded in {engine.load_seconds:.1f} s]",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
