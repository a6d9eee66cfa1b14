import json

from demo_engine.api import wire


def parse(body: dict) -> wire.CompletionRequest:
    return wire.parse_completion_request(json.dumps(body).encode(), max_new_tokens_cap=160)


def test_the_api_lists_the_plain_model_and_the_booth_assistant():
    """GET /v1/models shows both: the same weights, plain and grounded."""
    assert [model["id"] for model in wire.model_list()] == ["smollm2-135m-instruct", "booth-assistant"]


def test_booth_assistant_requests_are_grounded_and_the_plain_model_is_not():
    """ "booth-assistant" answers from the content; "smollm2-135m-instruct" stays the plain model."""
    hello = [{"role": "user", "content": "Where is Huangpu Robotics?"}]
    assert parse({"model": "booth-assistant", "messages": hello}).grounded
    assert not parse({"model": "smollm2-135m-instruct", "messages": hello}).grounded


def test_a_booth_answer_carries_its_sources_and_a_plain_one_does_not():
    """The `sources` field (title, url, fact, kind) and `unsupported_figures` appear on booth answers only."""
    usage = wire.usage_from_stats(None)
    source = {"title": "Huangpu Robotics", "url": "http://testserver/exhibitors/huangpu-robotics/",
              "fact": "Huangpu Robotics: hall H1, booth B-112", "kind": "exhibitor"}  # fmt: skip
    booth = wire.completion_object(completion_id="c", created=1, text="Booth B-112.", finish_reason="stop",
                                   usage=usage, backend="", model="booth-assistant", sources=[source],
                                   unsupported_figures=[])  # fmt: skip
    plain = wire.completion_object(completion_id="c", created=1, text="Hi", finish_reason="stop", usage=usage,
                                   backend="")  # fmt: skip
    assert booth["model"] == "booth-assistant" and booth["sources"] == [source] and booth["unsupported_figures"] == []
    assert "sources" not in plain and plain["model"] == "smollm2-135m-instruct"
