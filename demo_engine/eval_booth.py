"""`python -m demo_engine.eval_booth [--json] [--variants] [--no-scale] [--limit N]`: the booth assistant, measured.

On a throw-away SQLite database (the site's own is never touched): the demo content is loaded and indexed, then
every question of `demo_engine/booth/data/eval_questions.json` (written from the demo content in several phrasings,
English, French and Chinese, with the facts each answer must contain, and a few off-topic ones) is answered twice
by the real engine, greedy: grounded (the booth assistant, as the worker runs it) and ungrounded (the plain model).

Printed: retrieval recall@3; the share of answers whose text states the expected facts (and the share whose
model-written part does, without the words the site wrote at the answer's start); the share with them in the text or
the source cards; the figures marked not found in the sources; the wrong figures the site left unmarked (each
answer's figures checked against the question's own record and the conference, a number with its label and counted
word within one fact: listed, and counted per run); the off-topic questions answered "I don't know"; the time
retrieval adds before the first token. Then the same index with WAIC's volume (800 exhibitors,
3,000 products): the rebuild time, recall@3 and retrieval's p95 there. `--variants` also runs the prompt variants
(passages in the prompt, a worked example) that chose the defaults of `demo_engine/booth/grounding.py`; `--runs`
names any variant, one change per word ("grounded template=label stop bias=1.5 words +end": see `_variant`).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

QUESTIONS_PATH = Path(__file__).resolve().parent / "booth" / "data" / "eval_questions.json"


def _setup(var_dir: str) -> None:
    os.environ["SHOWCASE_VAR_DIR"] = var_dir
    os.environ["DATABASE_URL"] = f"sqlite:///{var_dir}/eval.sqlite3"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "showcase.settings")
    import django

    django.setup()
    from django.core.management import call_command

    from demo_engine.booth import signals

    signals.INDEX_ON_COMMIT = False  # the eval indexes everything itself, and queues nothing on a shared broker
    call_command("migrate", verbosity=0)
    call_command("load_demo_content", verbosity=0, stdout=open(os.devnull, "w"))  # noqa: SIM115


def _record_key(ref: str | None) -> str | None:
    """ "exhibitor/huangpu-robotics" -> "exhibitor:2" in this database."""
    if ref is None:
        return None
    from showcase.exhibits import models as content

    kind, slug = ref.split("/", 1)
    lookups = {
        "exhibitor": lambda: content.Exhibitor.objects.get(slug=slug),
        "product": lambda: content.Product.objects.get(slug=slug),
        "pitch": lambda: content.Pitch.objects.get(startup__slug=slug),
        "startup": lambda: content.Startup.objects.get(slug=slug),
        "investor": lambda: content.Investor.objects.get(slug=slug),
        "aisystem": lambda: content.AISystem.objects.get(slug=slug),
        "claim": lambda: content.Claim.objects.filter(ai_system__slug=slug).first(),
        "hardware": lambda: content.Hardware.objects.get(slug=slug),
        "conference": lambda: content.Conference.objects.get(slug=slug),
    }
    return f"{kind}:{lookups[kind]().pk}"


def _norm(text: str) -> str:
    return re.sub(r"[^0-9a-z\u3400-\u9fff]", "", text.lower())


def _states(text: str, facts: list[str]) -> bool:
    return bool(facts) and all(_norm(fact) in _norm(text) for fact in facts)


def _p(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _query(question: dict) -> str:
    """What retrieval searches for this question: a follow-up ("after" names the visitor's previous question) is
    searched as the worker searches it, with that question."""
    from demo_engine.booth import grounding as booth

    turns = [question["after"]] if question.get("after") else []
    return booth.retrieval_query([{"role": "user", "content": text} for text in [*turns, question["q"]]])


def _retrieval_figures(questions: list[dict]) -> dict:
    from demo_engine.booth import retrieval

    hits, timings, cpu = 0, [], []
    answerable = [q for q in questions if q["record"]]
    off_topic = [q for q in questions if not q["record"]]
    retrieval.retrieve(question="warm-up")
    relevant = 0
    for question in answerable:
        # Wall time, and this thread's CPU time: on a shared 2-core machine the wall time also counts the waits for
        # a core, the CPU time only the work (the query's embedding runs on this thread alone).
        cpu_started = time.thread_time()
        found = retrieval.retrieve(question=_query(question), k=3)
        cpu.append((time.thread_time() - cpu_started) * 1000)
        timings.append(found.elapsed_ms)
        hits += question["key"] in [hit.passage.record_key for hit in found.hits[:3]]
        relevant += found.relevant
    # The relevance decision alone: answerable questions the site would hand to the model (not "I don't know"), and
    # off-topic ones it answers "I don't know" itself.
    unknown = [q["q"] for q in off_topic if not retrieval.retrieve(question=_query(q), k=3).relevant]
    return {"recall_at_3": hits / len(answerable), "retrieval_ms_p50": _p(timings, 0.5),
            "retrieval_ms_p95": _p(timings, 0.95), "retrieval_cpu_ms_p95": _p(cpu, 0.95),
            "answerable_relevant": relevant / len(answerable),
            "off_topic_unknown": len(unknown) / len(off_topic) if off_topic else None,
            "off_topic_answered": [q["q"] for q in off_topic if q["q"] not in unknown],
            "load_average": os.getloadavg()[0], "questions": len(answerable)}  # fmt: skip


def _answer(engine, messages: list[dict], max_new_tokens: int, logit_bias: dict[int, float] | None = None,
            start: str = "") -> str:  # fmt: skip
    """The model's greedy answer; with `start`, the answer begins with those words and the model completes it."""
    from demo_engine.generation import sampling_params

    params = sampling_params(temperature=0.0, top_p=1.0, seed=0, max_new_tokens=max_new_tokens,
                             logit_bias=logit_bias)  # fmt: skip
    prompt = engine.render_chat(messages, max_new_tokens=max_new_tokens).token_ids
    if start:
        prompt = prompt + engine.tokenizer.encode(start)
    text, _stats = engine.generate(prompt, params)
    return text.strip()


def _wrong_figures(text: str, key: str | None, given: list) -> list[dict]:
    """The figures of an answer that its question's own record (and the conference) does not support, checked per
    fact with their labels: each with `elsewhere`, whether another passage the model was given supports it (a
    correct figure from another source, or the wrong record's: the list is read by hand), and `name`, whether it is
    a word of another given record's title (a model's name, "R1" of "DeepSeek-R1": not counted as a wrong figure)."""
    from demo_engine.booth import figures
    from demo_engine.booth import grounding as booth
    from demo_engine.booth.models import Passage

    if key is None:
        return []
    expected = Passage.objects.filter(record_key=key).first()
    conference = booth.conference_passage()
    reference = [booth.checked_text(p) for p in (expected,) if p is not None]
    if conference is not None and (expected is None or expected.record_key != conference.record_key):
        reference.append(booth.checked_text(conference, title=False))
    others = [booth.checked_text(p) for p in given if p.record_key != key]
    found_elsewhere = set(figures.unsupported_figures(text, others)) if others else None
    titles = " | ".join(p.title for p in given if p.record_key != key)

    def name(figure: str) -> bool:  # "R1" of "DeepSeek-R1": another record's name, not one of its figures
        return bool(re.search(rf"(?<![A-Za-z0-9]){re.escape(figure)}(?![A-Za-z0-9])", titles))

    return [{"figure": figure, "elsewhere": found_elsewhere is not None and figure not in found_elsewhere,
             "name": name(figure)} for figure in figures.unsupported_figures(text, reference)]  # fmt: skip


def _run(engine, questions: list[dict], *, grounded: bool, k: int, example: bool, max_new_tokens: int,
         show: bool, form: str = "", bias: float | None = None, bias_tokens: str = "", bias_end: bool | None = None,
         template: bool | None = None, stop: bool | None = None, template_form: str = "",
         asked: bool | None = None, asked_label: str = "", strip_echo: bool = True,
         language: bool | None = None, history: bool = False, history_mode: str = "") -> dict:  # fmt: skip
    """One run over the questions. With `history`, each question is asked as the chat page would ask it after the
    one before it in the set: that question and the answer this run gave it come first in the conversation."""
    options = {name: value for name, value in locals().items() if name not in ("engine", "questions")}
    from demo_engine.booth import grounding as booth
    from demo_engine.booth.figures import figures_in

    # The prompt's options this run changes; the others are grounding_build's defaults.
    chosen = {
        "k": k,
        "example": example,
        "history_mode": history_mode,
        "form": form,
        "bias": bias,
        "bias_tokens": bias_tokens,
        "bias_end": bias_end,
        "template": template,
        "stop_at_blank_line": stop,
        "template_form": template_form,
        "asked_fact": asked,
        "asked_label": asked_label,
        "language": language,
    }
    prompt_options = {name: value for name, value in chosen.items() if value is not None and value != ""}
    rows, overhead_ms = [], []
    for question in questions:
        turns = [{"role": "user", "content": question["q"]}]
        if question.get("after"):  # a follow-up: the previous question, answered the same way first
            earlier = _run(
                engine,
                [{**question, "q": question["after"], "after": None}],
                **{**options, "show": False, "history": False},
            )["rows"][0]
            turns = [{"role": "user", "content": question["after"]},
                     {"role": "assistant", "content": earlier["text"]}, *turns]  # fmt: skip
        elif history and rows:
            turns = [{"role": "user", "content": rows[-1]["q"]}, {"role": "assistant", "content": rows[-1]["text"]},
                     *turns]  # fmt: skip
        started = time.perf_counter()
        if grounded:
            built = booth.grounding_build(history=turns, **prompt_options)
            overhead_ms.append((time.perf_counter() - started) * 1000)
            biased = booth.logit_bias(grounding=built, encode=engine.tokenizer.encode, decode=engine.tokenizer.decode,
                                      end_id=engine.tokenizer.eos_id)  # fmt: skip
            start = built.answer_start
            generated = (_answer(engine, built.messages, max_new_tokens, biased, start) if built.relevant
                         else booth.unknown_answer(language=built.language))  # fmt: skip
            if built.stop_at_blank_line:  # as the worker's stop sequence cuts it
                generated = generated.split(booth.ANSWER_END)[0].strip()
            echoed = bool(built.echo) and booth.echo_strip(generated, built.echo) != generated
            if strip_echo:  # as the worker cuts it
                generated = booth.echo_strip(generated, built.echo).strip()
            text = f"{start} {generated}".strip() if start and built.relevant else generated
            cards = booth.source_cards(grounding=built, reply_text=text)
            unsupported = booth.figures_unsupported(grounding=built, reply_text=text)
            names = [item for item in unsupported if not figures_in(item)]  # the names marked, apart from figures
            unsupported = [item for item in unsupported if item not in names]
            shown = " ".join(f"{card.title} {card.fact}" for card in cards)
            relevant = built.relevant
            given = built.passages
        else:
            text = generated = _answer(engine, turns, max_new_tokens)
            cards, unsupported, shown, relevant = [], [f.text for f in figures_in(text)], "", True
            names = []
            given, echoed = [], False
        wrong = _wrong_figures(text, question.get("key"), given)
        row = {"q": question["q"], "after": question.get("after"), "lang": question["lang"], "text": text,
               "expect": question["expect"],
               "in_text": _states(text, question["expect"]), "in_generated": _states(generated, question["expect"]),
               "in_text_or_sources": _states(f"{text} {shown}",
               question["expect"]), "figures": len(figures_in(text)), "not_found": len(unsupported),
               "unsupported": unsupported, "names_not_found": names, "sources": [card.title for card in cards],
               "relevant": relevant,
               "answerable": bool(question["record"]), "echoed": echoed,
               "in_question_language": booth.question_language(text) == question["lang"],
               "wrong_figures": [w["figure"] for w in wrong if not w["name"]],
               "wrong_unmarked": [w for w in wrong if w["figure"] not in unsupported and not w["name"]],
               "other_names": [w["figure"] for w in wrong if w["name"]]}  # fmt: skip
        rows.append(row)
        if show:
            mark = "✓" if row["in_text"] else ("·" if row["in_text_or_sources"] else "✗")
            unmarked = [w["figure"] for w in row["wrong_unmarked"]]
            print(f"  {mark} {question['q'][:60]!r} -> {text[:110]!r} {unsupported or ''}"
                  f"{f' UNMARKED {unmarked}' if unmarked else ''}", file=sys.stderr)  # fmt: skip
    answerable = [row for row in rows if row["answerable"]]
    off_topic = [row for row in rows if not row["answerable"]]
    figures_total = sum(row["figures"] for row in rows)
    return {
        "facts_in_text": sum(row["in_text"] for row in answerable) / len(answerable),
        "facts_in_generated": sum(row["in_generated"] for row in answerable) / len(answerable),
        "facts_in_text_or_sources": sum(row["in_text_or_sources"] for row in answerable) / len(answerable),
        "figures": figures_total,
        "figures_not_found": sum(row["not_found"] for row in rows),
        "figures_not_found_share": sum(row["not_found"] for row in rows) / figures_total if figures_total else 0.0,
        "echoed": sum(row["echoed"] for row in rows),
        "names_not_found": [{"q": row["q"], "text": row["text"], "name": name} for row in rows
                            for name in row["names_not_found"]],
        "foreign_in_their_language": sum(row["in_question_language"] for row in answerable if row["lang"] != "en"),
        "foreign": sum(1 for row in answerable if row["lang"] != "en"),
        "echo_shown": 0 if strip_echo else sum(row["echoed"] for row in rows),
        "wrong_figures": sum(len(row["wrong_figures"]) for row in answerable),
        "wrong_figures_unmarked": sum(len(row["wrong_unmarked"]) for row in answerable),
        "wrong_unmarked": [{"q": row["q"], "text": row["text"], **w} for row in answerable
                           for w in row["wrong_unmarked"]],
        "other_names": [{"q": row["q"], "text": row["text"], "figure": name} for row in answerable
                        for name in row["other_names"]],
        "off_topic_said_unknown": (sum(not row["relevant"] for row in off_topic) / len(off_topic)) if grounded and
        off_topic else None,
        "answerable_said_unknown": sum(not row["relevant"] for row in answerable) if grounded else None,
        "prompt_building_ms_p95": _p(overhead_ms, 0.95) if overhead_ms else None,
        "rows": rows,
    }  # fmt: skip


def _scale(questions: list[dict]) -> dict:
    from demo_engine.booth import index
    from showcase.exhibits import services

    services.exhibitor_volume_generate(exhibitors=800, products=3000)
    started = time.perf_counter()
    count = index.index_rebuild()
    rebuild_s = time.perf_counter() - started
    return {"passages": count, "rebuild_s": round(rebuild_s, 1), **_retrieval_figures(questions)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object (with every answer)")
    parser.add_argument("--variants", action="store_true", help="also run the prompt variants")
    parser.add_argument("--no-scale", action="store_true", help="skip the 800-exhibitor/3,000-product figures")
    parser.add_argument("--limit", type=int, default=0, help="only the first N questions (a quick look)")
    parser.add_argument("--retrieval-only", action="store_true", help="no answers: retrieval and the scale figures")
    parser.add_argument("--runs", default="", help="only these runs, comma-separated (e.g. 'grounded k=2 turn')")
    parser.add_argument(
        "--max-new-tokens",
        type=int,
        default=64,
        help="per answer (64, the chat socket's CHAT_GROUNDED_MAX_NEW_TOKENS: one or two sentences)",
    )
    parser.add_argument("--show", action="store_true", help="print each answer as it comes (stderr)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="eval-booth-") as var_dir:
        _setup(var_dir)
        from demo_engine import runtime
        from demo_engine.booth import grounding as booth
        from demo_engine.booth import index
        from demo_engine.engine import Engine

        questions = json.loads(QUESTIONS_PATH.read_text())
        if args.limit:
            questions = questions[: args.limit]
        started = time.perf_counter()
        passages = index.index_rebuild()
        demo_rebuild_s = time.perf_counter() - started
        for question in questions:
            question["key"] = _record_key(question["record"])
        engine = Engine.load(**runtime.engine_options())
        result: dict = {"questions": len(questions), "answerable": sum(1 for q in questions if q["record"]),
                        "passages": passages, "rebuild_s": round(demo_rebuild_s, 1),
                        "retrieval": _retrieval_figures(questions), "backend": engine.backend,
                        "defaults": {"passages_in_prompt": booth.PROMPT_PASSAGES,
                                     "worked_example": booth.PROMPT_EXAMPLE, "form": booth.PROMPT_FORM}}  # fmt: skip
        runs = {"grounded": dict(grounded=True, k=booth.PROMPT_PASSAGES, example=booth.PROMPT_EXAMPLE),
                "ungrounded": dict(grounded=False, k=0, example=False)}  # fmt: skip
        if args.variants:  # one change at a time from the defaults
            for k, form, example in ((2, "text", False), (1, "text", False), (2, "turn", False), (2, "text", True),
                                     (1, "facts", False), (3, "facts", False), (2, "facts", True)):  # fmt: skip
                if (k, form, example) != (booth.PROMPT_PASSAGES, booth.PROMPT_FORM, booth.PROMPT_EXAMPLE):
                    name = f"grounded k={k} {form}{' +example' if example else ''}"
                    runs[name] = dict(grounded=True, k=k, example=example, form=form)
        result["runs"] = {}
        chosen = [name.strip() for name in args.runs.split(",") if name.strip()]
        if chosen:
            runs = {name: runs.get(name) or _variant(name, booth) for name in chosen}
        for name, options in ({} if args.retrieval_only else runs).items():
            if args.show:
                print(f"{name}:", file=sys.stderr)
            run = result["runs"][name] = _run(engine, questions, max_new_tokens=args.max_new_tokens, show=args.show,
                                              **options)  # fmt: skip
            print(f"{name}: facts in text {_pct(run['facts_in_text'])} (in the model's own words "
                  f"{_pct(run['facts_in_generated'])}), in text or sources "
                  f"{_pct(run['facts_in_text_or_sources'])}, figures not found {run['figures_not_found']}/"
                  f"{run['figures']}, wrong figures left unmarked {run['wrong_figures_unmarked']} (of "
                  f"{run['wrong_figures']} not in the question's record), answers opening with the prompt's label "
                  f"{run['echoed']} (shown {run['echo_shown']}), French and Chinese answers in the question's "
                  f"language {run['foreign_in_their_language']} of {run['foreign']}", file=sys.stderr,
                  flush=True)  # fmt: skip
        if not args.no_scale:
            result["scale"] = _scale(questions)
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=1))
        return 0
    _print(result)
    return 0


def _variant(name: str, booth) -> dict:
    """A grounded run from its name, one change per word from the defaults: "grounded k=1 text +example bias=2.5
    words +end template stop" (k passages; form facts|text|turn; a worked example; a logit bias toward the
    passages' tokens: all, content or words, and the end token too; the answer's start written by the site; the
    answer cut at its first blank line; the asked fact repeated before the question, "=short" introduced as "In
    short,"; "-stop", "-asked" and "-strip" (the echo of the asked fact's label kept) turn those defaults off;
    "+language" asks for the answer in the question's language; "+history" asks each question after the one before
    it and its answer, "history=follow-up|turns|questions|none" says what the prompt keeps of them)."""
    words = name.split()
    if not words or words[0] != "grounded":
        raise SystemExit(f"unknown run {name!r}: 'grounded' or 'ungrounded', then options")
    options = dict(grounded=True, k=booth.PROMPT_PASSAGES, example=booth.PROMPT_EXAMPLE, form=booth.PROMPT_FORM)
    for word in words[1:]:
        if word.startswith("k="):
            options["k"] = int(word[2:])
        elif word in ("facts", "text", "turn"):
            options["form"] = word
        elif word == "+example":
            options["example"] = True
        elif word.startswith("bias="):
            options["bias"] = float(word[5:])
        elif word in ("all", "content", "words"):
            options["bias_tokens"] = word
        elif word == "+end":
            options["bias_end"] = True
        elif word in ("template", "template=lead", "template=label"):
            options["template"] = True
            options["template_form"] = word.partition("=")[2] or booth.PROMPT_TEMPLATE_FORM
        elif word in ("stop", "-stop"):
            options["stop"] = word == "stop"
        elif word in ("+language", "-language"):
            options["language"] = word == "+language"
        elif word == "+history":
            options["history"] = True
        elif word in ("history=follow-up", "history=turns", "history=questions", "history=none"):
            options["history_mode"] = word.partition("=")[2]
        elif word == "-strip":
            options["strip_echo"] = False
        elif word == "-asked":
            options["asked"] = False
        elif word in ("asked", "asked=label", "asked=short", "asked=answer"):  # "asked" alone: the default wording
            options["asked"] = True
            options["asked_label"] = word.partition("=")[2] or booth.PROMPT_ASKED_LABEL
        else:
            raise SystemExit(f"unknown option {word!r} in run {name!r}")
    return options


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.0f}%"


def _print(result: dict) -> None:
    retrieval = result["retrieval"]
    print(f"{result['questions']} questions ({result['answerable']} answerable from the content), "
          f"{result['passages']} passages, engine {result['backend']}")  # fmt: skip
    print(
        f'relevance: off-topic questions answered "I don\'t know" {_pct(retrieval["off_topic_unknown"])}, '
        f"answerable ones handed to the model {_pct(retrieval['answerable_relevant'])}"
        + (f" (off-topic answered: {retrieval['off_topic_answered']})" if retrieval["off_topic_answered"] else "")
    )
    print(f"retrieval: recall@3 {_pct(retrieval['recall_at_3'])}, p50 {retrieval['retrieval_ms_p50']:.1f} ms, "
          f"p95 {retrieval['retrieval_ms_p95']:.1f} ms (CPU p95 {retrieval['retrieval_cpu_ms_p95']:.1f} ms, "
          f"load average {retrieval['load_average']:.1f})")  # fmt: skip
    print(f"{'run':<26} {'facts in text':>14} {'model’s own':>12} {'text or sources':>16} {'figures':>8} "
          f"{'not found':>10} {'wrong, unmarked':>16} {'off-topic: I don’t know':>24} {'prompt p95':>11}")  # fmt: skip
    for name, run in result["runs"].items():
        building = run["prompt_building_ms_p95"]
        print(f"{name:<26} {_pct(run['facts_in_text']):>14} {_pct(run['facts_in_generated']):>12} "
              f"{_pct(run['facts_in_text_or_sources']):>16} "
              f"{run['figures']:>8} {run['figures_not_found']:>4} ({_pct(run['figures_not_found_share'])}) "
              f"{run['wrong_figures_unmarked']:>8} of {run['wrong_figures']:<4} "
              f"{_pct(run['off_topic_said_unknown']):>24} "
              f"{'–' if building is None else f'{building:.1f} ms':>11}")  # fmt: skip
    for name, run in result["runs"].items():
        for marked in run["names_not_found"]:
            print(f"  {name}: name marked {marked['name']!r} in {marked['q']!r} -> {marked['text'][:100]!r}")
        for wrong in run["wrong_unmarked"]:
            where = "supported by another passage given" if wrong["elsewhere"] else "in no passage given"
            print(f"  {name}: unmarked {wrong['figure']!r} ({where}) in {wrong['q']!r} -> {wrong['text'][:100]!r}")
        for other in run["other_names"]:
            print(
                f"  {name}: another given record's name {other['figure']!r} (not counted) in {other['q']!r} -> "
                f"{other['text'][:100]!r}"
            )
    scale = result.get("scale")
    if scale:
        print(f"at WAIC's volume ({scale['passages']} passages): rebuild {scale['rebuild_s']} s, "
              f"recall@3 {_pct(scale['recall_at_3'])}, off-topic \"I don't know\" "
              f"{_pct(scale['off_topic_unknown'])}, answerable handed to the model "
              f"{_pct(scale['answerable_relevant'])}, retrieval p50 {scale['retrieval_ms_p50']:.1f} ms, "
              f"p95 {scale['retrieval_ms_p95']:.1f} ms (CPU p95 {scale['retrieval_cpu_ms_p95']:.1f} ms, "
              f"load average {scale['load_average']:.1f})")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
