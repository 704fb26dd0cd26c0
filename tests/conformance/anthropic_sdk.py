"""Conformance: the official `anthropic` Python SDK against Switchyard's /v1/messages.

Run by crates/cli/tests/sdk_conformance.rs with SWITCHYARD_BASE_URL set to the gateway's root
URL. The upstream behind `mock/*` speaks OpenAI's wire format, so every call here crosses the
Messages ↔ canonical ↔ OpenAI translation.
"""

import os
import sys
import uuid

from runner import run

import anthropic
from anthropic import Anthropic

BASE_URL = os.environ["SWITCHYARD_BASE_URL"]
client = Anthropic(base_url=BASE_URL, api_key="sk-ant-caller-not-a-provider-key", max_retries=0)

TOOLS = [
    {
        "name": "get_weather",
        "description": "Current weather for a city",
        "input_schema": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
            "required": ["city"],
        },
    }
]


def test_create_text():
    m = client.messages.create(
        model="mock/echo", max_tokens=100, messages=[{"role": "user", "content": "hello from the anthropic SDK"}]
    )
    assert m.type == "message" and m.role == "assistant"
    assert m.content[0].type == "text" and m.content[0].text == "hello from the anthropic SDK", m
    assert m.stop_reason == "end_turn"
    assert m.usage.output_tokens == 5 and m.usage.input_tokens > 0, m.usage


def test_system_prompt_and_max_tokens():
    m = client.messages.create(
        model="mock/echo",
        max_tokens=2,
        system=[{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        messages=[{"role": "user", "content": "one two three four"}],
    )
    assert m.content[0].text == "one two ", m.content
    assert m.stop_reason == "max_tokens"


def test_stream_final_message_text():
    with client.messages.stream(
        model="mock/stream-6", max_tokens=100, messages=[{"role": "user", "content": "count"}]
    ) as stream:
        deltas = [t for t in stream.text_stream]
        final = stream.get_final_message()
    assert "".join(deltas) == "tok1 tok2 tok3 tok4 tok5 tok6"
    assert final.content[0].text == "tok1 tok2 tok3 tok4 tok5 tok6"
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 6, final.usage


def test_resumable_stream_reads_like_any_other():
    with client.messages.stream(
        model="mock/stream-6",
        max_tokens=100,
        messages=[{"role": "user", "content": "count"}],
        extra_headers={"x-switchyard-resumable": "true"},
    ) as stream:
        deltas = [t for t in stream.text_stream]
        final = stream.get_final_message()
    assert "".join(deltas) == "tok1 tok2 tok3 tok4 tok5 tok6"
    assert final.stop_reason == "end_turn"


def test_tool_use_plain():
    m = client.messages.create(
        model="mock/echo",
        max_tokens=100,
        tools=TOOLS,
        tool_choice={"type": "tool", "name": "get_weather"},
        messages=[{"role": "user", "content": "weather in Paris?"}],
    )
    block = [b for b in m.content if b.type == "tool_use"][0]
    assert m.stop_reason == "tool_use"
    assert block.name == "get_weather" and block.input == {"city": "mock", "unit": "c"}, block
    # The tool result goes back (with an error flag on a second attempt) and the model answers.
    m2 = client.messages.create(
        model="mock/echo",
        max_tokens=100,
        tools=TOOLS,
        messages=[
            {"role": "user", "content": "weather in Paris?"},
            {"role": "assistant", "content": [b.model_dump() for b in m.content]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": block.id, "content": "timeout", "is_error": True}]},
        ],
    )
    assert m2.content[0].text == "tool result received: Error: timeout", m2.content


def test_tool_use_streamed_final_message():
    with client.messages.stream(
        model="mock/echo", max_tokens=100, tools=TOOLS, messages=[{"role": "user", "content": "weather?"}]
    ) as stream:
        final = stream.get_final_message()
    tool = [b for b in final.content if b.type == "tool_use"]
    assert len(tool) == 1, final.content
    assert tool[0].name == "get_weather"
    assert tool[0].input == {"city": "mock", "unit": "c"}, tool[0].input
    assert final.stop_reason == "tool_use"


def test_image_input():
    m = client.messages.create(
        model="mock/echo",
        max_tokens=50,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
                    {"type": "text", "text": "describe"},
                ],
            }
        ],
    )
    assert m.content[0].text == "describe"


def test_anthropic_upstream_round_trip():
    # Messages in, canonical in the middle, Messages out to the Anthropic-shaped mock, and back.
    with client.messages.stream(
        model="mock-anthropic/echo", max_tokens=100, tools=TOOLS, messages=[{"role": "user", "content": "weather?"}]
    ) as stream:
        final = stream.get_final_message()
    tool = [b for b in final.content if b.type == "tool_use"][0]
    assert tool.input == {"city": "mock", "unit": "c"}, tool
    m = client.messages.create(
        model="mock-anthropic/echo",
        max_tokens=100,
        tools=TOOLS,
        messages=[
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": [b.model_dump() for b in final.content]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool.id, "content": "sunny"}]},
        ],
    )
    assert m.content[0].text == "tool result received: sunny", m.content


def test_gemini_upstream_tool_loop_keeps_thought_signatures():
    m = client.messages.create(
        model="mock-gemini/echo", max_tokens=100, tools=TOOLS, messages=[{"role": "user", "content": "weather?"}]
    )
    tool = [b for b in m.content if b.type == "tool_use"][0]
    assert tool.input == {"city": "mock", "unit": "c"}
    m2 = client.messages.create(
        model="mock-gemini/echo",
        max_tokens=100,
        tools=TOOLS,
        messages=[
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": [b.model_dump() for b in m.content]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool.id, "content": "21C"}]},
        ],
    )
    assert m2.content[0].text == "tool result received: 21C", m2.content


def test_count_tokens():
    messages = [{"role": "user", "content": "count these words please"}]
    for model in ("mock-anthropic/echo", "mock-gemini/echo"):
        n = client.messages.count_tokens(model=model, system="Be brief.", messages=messages)
        # The mock counts 3 per message plus ceil(chars/4), plus 3: 3+3 + 3+6 + 3.
        assert n.input_tokens == 18, (model, n)
    try:
        client.messages.count_tokens(model="mock/echo", messages=messages)
    except anthropic.BadRequestError as e:
        assert "counting tokens" in e.body["error"]["message"], e.body
    else:
        raise AssertionError("an OpenAI-shaped upstream cannot count tokens")


def expect(exc, **kwargs):
    try:
        client.messages.create(**kwargs)
    except exc as e:
        return e
    raise AssertionError(f"expected {exc.__name__}")


def test_error_classes_and_shape():
    e = expect(anthropic.NotFoundError, model="nosuch/model", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert e.body["type"] == "error" and e.body["error"]["type"] == "not_found_error", e.body
    e = expect(anthropic.RateLimitError, model="mock/ratelimit-1s", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert e.body["error"]["type"] == "rate_limit_error"
    e = expect(anthropic.BadRequestError, model="mock/echo", max_tokens=5, messages=[{"role": "robot", "content": "x"}])
    assert e.body["error"]["type"] == "invalid_request_error" and "messages[0].role" in e.body["error"]["message"], e.body
    e = expect(anthropic.InternalServerError, model="mock/fail-503", max_tokens=5, messages=[{"role": "user", "content": "x"}])


def test_gateway_retries_and_tells_the_sdk_not_to_retry_again():
    retrying = Anthropic(base_url=BASE_URL, api_key="sk-ant-caller-not-a-provider-key", max_retries=2)
    try:
        retrying.messages.create(
            model="mock/flaky-3+itl-3ms", max_tokens=16, messages=[{"role": "user", "content": "x"}]
        )
    except anthropic.APIStatusError as e:
        assert e.status_code == 502, e.status_code
        assert e.response.headers["x-should-retry"] == "false"
        assert e.response.headers["x-switchyard-attempts"] == "3"
        assert e.body["error"]["type"] == "api_error", e.body
        return
    raise AssertionError("the SDK retried although the gateway said not to")


def test_mid_stream_failure_raises():
    try:
        with client.messages.stream(
            model="mock/stream-30+truncate-4", max_tokens=100, messages=[{"role": "user", "content": "x"}]
        ) as stream:
            for _ in stream.text_stream:
                pass
    except anthropic.APIError as e:
        assert "broke off" in str(e), e
        return
    raise AssertionError("the broken stream did not raise")


def test_cached_answers_in_messages_shape():
    prompt = f"cache me {uuid.uuid4()}"
    kwargs = dict(
        model="mock/echo",
        max_tokens=100,
        messages=[{"role": "user", "content": prompt}],
        extra_headers={"x-switchyard-cache-ttl": "60"},
    )
    first = client.messages.with_raw_response.create(**kwargs)
    assert first.headers["x-switchyard-cache"] == "MISS"
    again = client.messages.with_raw_response.create(**kwargs)
    assert again.headers["x-switchyard-cache"] == "HIT"
    assert again.parse().model_dump() == first.parse().model_dump()
    # Served as a stream, the SDK assembles the same message.
    with client.messages.stream(**kwargs) as stream:
        final = stream.get_final_message()
    assert final.content[0].text == prompt, final
    assert final.usage.output_tokens == first.parse().usage.output_tokens


if __name__ == "__main__":
    sys.exit(run(globals(), f"anthropic-sdk {anthropic.__version__}"))
