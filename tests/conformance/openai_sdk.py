"""Conformance: the official `openai` Python SDK against a running Switchyard gateway.

Run by crates/cli/tests/openai_sdk.rs with SWITCHYARD_BASE_URL set to the gateway's /v1 URL.
Only the base URL differs from calling OpenAI itself.
"""

import json
import os
import sys
import uuid

from runner import run

import openai
from openai import OpenAI
from pydantic import BaseModel

BASE_URL = os.environ["SWITCHYARD_BASE_URL"]
client = OpenAI(base_url=BASE_URL, api_key="sk-caller-not-a-provider-key", max_retries=0)

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather for a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
                "required": ["city"],
            },
        },
    }
]


def test_chat():
    r = client.chat.completions.create(
        model="mock/echo", messages=[{"role": "user", "content": "hello from the SDK"}]
    )
    assert r.choices[0].message.content == "hello from the SDK", r
    assert r.choices[0].finish_reason == "stop"
    assert r.usage.completion_tokens == 4 and r.usage.total_tokens > 4, r.usage


def test_chat_headers_name_the_provider():
    raw = client.chat.completions.with_raw_response.create(
        model="mock/echo", messages=[{"role": "user", "content": "hi"}]
    )
    assert raw.headers["x-switchyard-provider"] == "mock"
    assert raw.headers["x-switchyard-model"] == "echo"
    assert raw.headers["x-switchyard-request-id"]
    assert raw.parse().choices[0].message.content == "hi"


def test_stream_with_usage():
    stream = client.chat.completions.create(
        model="mock/stream-12",
        messages=[{"role": "user", "content": "count"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text, usage, finish = "", None, None
    for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
        if chunk.usage:
            usage = chunk.usage
    assert text == " ".join(f"tok{i}" for i in range(1, 13)), text
    assert finish == "stop"
    assert usage is not None and usage.completion_tokens == 12, usage


def test_resumable_stream_reads_like_any_other_and_resumes():
    # Events carry SSE `id:` lines; the SDK reads them as usual.
    raw = client.chat.completions.with_raw_response.create(
        model="mock/stream-12",
        messages=[{"role": "user", "content": "count"}],
        stream=True,
        extra_headers={"x-switchyard-resumable": "true"},
    )
    assert raw.headers["x-switchyard-resumable"] == "true"
    request_id = raw.headers["x-switchyard-request-id"]
    text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    assert text == " ".join(f"tok{i}" for i in range(1, 13)), text
    # The whole answer again from the buffer, read with the SDK's own stream decoder.
    resumed = client.get(
        f"/streams/{request_id}",
        cast_to=openai.types.chat.ChatCompletionChunk,
        options={"headers": {"Last-Event-ID": "0"}},
        stream=True,
        stream_cls=openai.Stream[openai.types.chat.ChatCompletionChunk],
    )
    again = "".join(c.choices[0].delta.content or "" for c in resumed if c.choices)
    assert again == text, again


def test_stream_without_usage():
    chunks = list(
        client.chat.completions.create(
            model="mock/echo", messages=[{"role": "user", "content": "a b c"}], stream=True
        )
    )
    assert all(c.usage is None for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "a b c"


def test_tool_call():
    r = client.chat.completions.create(
        model="mock/echo",
        messages=[{"role": "user", "content": "weather in Paris?"}],
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    call = r.choices[0].message.tool_calls[0]
    assert r.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "mock", "unit": "c"}
    # The tool result goes back; the model answers in text.
    r2 = client.chat.completions.create(
        model="mock/echo",
        tools=TOOLS,
        messages=[
            {"role": "user", "content": "weather in Paris?"},
            r.choices[0].message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": "18C and sunny"},
        ],
    )
    assert r2.choices[0].message.content == "tool result received: 18C and sunny"


def test_tool_call_streamed():
    stream = client.chat.completions.create(
        model="mock/echo", messages=[{"role": "user", "content": "weather?"}], tools=TOOLS, stream=True
    )
    name, args, finish = None, "", None
    for chunk in stream:
        if not chunk.choices:
            continue
        for tc in chunk.choices[0].delta.tool_calls or []:
            name = name or tc.function.name
            args += tc.function.arguments or ""
        finish = chunk.choices[0].finish_reason or finish
    assert name == "get_weather" and finish == "tool_calls"
    assert json.loads(args) == {"city": "mock", "unit": "c"}


def test_json_mode_and_structured_output():
    r = client.chat.completions.create(
        model="mock/echo",
        messages=[{"role": "user", "content": "hi"}],
        response_format={"type": "json_object"},
    )
    assert json.loads(r.choices[0].message.content) == {"echo": "hi"}

    class Answer(BaseModel):
        answer: int
        reason: str

    parsed = client.chat.completions.parse(
        model="mock/echo", messages=[{"role": "user", "content": "2+2?"}], response_format=Answer
    )
    assert parsed.choices[0].message.parsed == Answer(answer=1, reason="mock")


def test_vision_input():
    r = client.chat.completions.create(
        model="mock/echo",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "describe this"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}},
                ],
            }
        ],
    )
    assert r.choices[0].message.content == "describe this"


def test_embeddings():
    # The SDK asks for base64 by default and decodes it.
    r = client.embeddings.create(model="mock/embed", input=["first", "second"])
    assert len(r.data) == 2 and len(r.data[0].embedding) == 8
    assert abs(sum(x * x for x in r.data[0].embedding) - 1.0) < 1e-3
    r = client.embeddings.create(model="mock/embed", input="one", encoding_format="float", dimensions=16)
    assert len(r.data[0].embedding) == 16
    assert r.usage.prompt_tokens == 1


def test_models():
    ids = [m.id for m in client.models.list()]
    assert "mock/echo" in ids and "mock/stream-40" in ids, ids
    assert client.models.retrieve("mock/echo").id == "mock/echo"


def test_anthropic_shaped_upstream_text_and_stream():
    # mock-anthropic/* is the mock reached through the Anthropic adapter (Messages wire format).
    r = client.chat.completions.create(
        model="mock-anthropic/echo", messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi there"}]
    )
    assert r.choices[0].message.content == "hi there", r
    assert r.choices[0].finish_reason == "stop"
    assert r.usage.completion_tokens == 2
    chunks = list(
        client.chat.completions.create(
            model="mock-anthropic/stream-4", messages=[{"role": "user", "content": "x"}],
            stream=True, stream_options={"include_usage": True},
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "tok1 tok2 tok3 tok4"
    assert chunks[-1].usage.completion_tokens == 4


def test_anthropic_shaped_upstream_streamed_tool_calls():
    stream = client.chat.completions.create(
        model="mock-anthropic/echo", messages=[{"role": "user", "content": "weather?"}], tools=TOOLS, stream=True
    )
    calls = {}
    finish = None
    for chunk in stream:
        if not chunk.choices:
            continue
        for tc in chunk.choices[0].delta.tool_calls or []:
            entry = calls.setdefault(tc.index, {"id": None, "name": None, "args": ""})
            entry["id"] = entry["id"] or tc.id
            entry["name"] = entry["name"] or (tc.function.name if tc.function else None)
            entry["args"] += (tc.function.arguments or "") if tc.function else ""
        finish = chunk.choices[0].finish_reason or finish
    assert list(calls) == [0], calls
    assert calls[0]["name"] == "get_weather" and calls[0]["id"]
    assert json.loads(calls[0]["args"]) == {"city": "mock", "unit": "c"}
    assert finish == "tool_calls"


def test_anthropic_shaped_upstream_refuses_what_it_cannot_honour():
    e = expect(openai.BadRequestError, model="mock-anthropic/echo", messages=[{"role": "user", "content": "x"}], logprobs=True)
    assert e.param == "logprobs" and "mock-anthropic" in e.message, e.body


def test_gemini_shaped_upstream_text_stream_and_embeddings():
    # mock-gemini/* is the mock reached through the Gemini adapter (generateContent wire format).
    r = client.chat.completions.create(model="mock-gemini/echo", messages=[{"role": "user", "content": "hola gemini"}])
    assert r.choices[0].message.content == "hola gemini" and r.choices[0].finish_reason == "stop", r
    chunks = list(
        client.chat.completions.create(
            model="mock-gemini/stream-3", messages=[{"role": "user", "content": "x"}],
            stream=True, stream_options={"include_usage": True},
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "tok1 tok2 tok3"
    assert chunks[-1].usage.completion_tokens == 3
    e = client.embeddings.create(model="mock-gemini/embed", input=["a", "b"], dimensions=4)
    assert len(e.data) == 2 and len(e.data[1].embedding) == 4
    # Gemini reports no usage for embeddings; OpenAI's type requires one, so it is estimated.
    assert e.usage.prompt_tokens >= 1 and e.usage.total_tokens == e.usage.prompt_tokens, e.usage


def test_gemini_tool_loop_keeps_thought_signatures():
    # Gemini refuses a history whose function call lost its thought signature; the mock does too.
    messages = [{"role": "user", "content": "weather in Rome?"}]
    stream = client.chat.completions.create(model="mock-gemini/echo", messages=messages, tools=TOOLS, stream=True)
    calls = {}
    for chunk in stream:
        for tc in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            calls[tc.index] = tc
    assert list(calls) == [0] and calls[0].function.name == "get_weather"
    assert json.loads(calls[0].function.arguments) == {"city": "mock", "unit": "c"}
    r = client.chat.completions.create(model="mock-gemini/echo", messages=messages, tools=TOOLS)
    msg = r.choices[0].message
    assert r.choices[0].finish_reason == "tool_calls"
    assert msg.tool_calls[0].model_extra["extra_content"]["google"]["thought_signature"]
    r2 = client.chat.completions.create(
        model="mock-gemini/echo",
        tools=TOOLS,
        messages=messages + [
            msg.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": msg.tool_calls[0].id, "content": "21C"},
        ],
    )
    assert r2.choices[0].message.content == "tool result received: 21C", r2


def expect(exc, **kwargs):
    try:
        client.chat.completions.create(**kwargs)
    except exc as e:
        return e
    raise AssertionError(f"expected {exc.__name__}")


def test_error_classes():
    e = expect(openai.NotFoundError, model="nosuch/model", messages=[{"role": "user", "content": "x"}])
    assert e.code == "model_not_found", e.body
    e = expect(openai.RateLimitError, model="mock/ratelimit-1s", messages=[{"role": "user", "content": "x"}])
    assert e.response.headers["retry-after"] == "1"
    e = expect(openai.BadRequestError, model="mock/echo", messages=[])
    assert e.param == "messages", e.body
    e = expect(openai.BadRequestError, model="mock/echo", messages=[{"role": "robot", "content": "x"}])
    assert e.param == "messages[0].role", e.body
    expect(openai.InternalServerError, model="mock/fail-503", messages=[{"role": "user", "content": "x"}])


def test_gateway_retries_and_tells_the_sdk_not_to_retry_again():
    # `flaky-1`: the first call of this exact model name fails, the gateway's retry answers.
    raw = client.chat.completions.with_raw_response.create(
        model="mock/flaky-1+itl-1ms", messages=[{"role": "user", "content": "again"}]
    )
    assert raw.headers["x-switchyard-attempts"] == "2", raw.headers
    assert raw.parse().choices[0].message.content == "again"
    # An SDK with its own retries: the gateway's three attempts fail (flaky-3), and it answers
    # `x-should-retry: false`. Had the SDK retried, the fourth call would have succeeded.
    retrying = OpenAI(base_url=BASE_URL, api_key="sk-caller-not-a-provider-key", max_retries=2)
    try:
        retrying.chat.completions.create(model="mock/flaky-3+itl-2ms", messages=[{"role": "user", "content": "x"}])
    except openai.InternalServerError as e:
        assert e.response.headers["x-should-retry"] == "false"
        assert e.response.headers["x-switchyard-attempts"] == "3"
        assert "3 attempts failed" in e.message, e.message
        return
    raise AssertionError("the SDK retried although the gateway said not to")


def test_mid_stream_failure_raises():
    stream = client.chat.completions.create(
        model="mock/stream-30+truncate-3", messages=[{"role": "user", "content": "x"}], stream=True
    )
    received = 0
    try:
        for _ in stream:
            received += 1
    except openai.APIError as e:
        assert "broke off" in str(e), e
        assert received == 3, received
        return
    raise AssertionError("the broken stream did not raise")


def test_cached_stream_replays_identically():
    # Caching turned on by header for this call only; a fresh prompt so no earlier run hits.
    prompt = f"cache me {uuid.uuid4()}"
    kwargs = dict(
        model="mock/stream-12+itl-1ms",
        messages=[{"role": "user", "content": prompt}],
        extra_headers={"x-switchyard-cache-ttl": "60"},
    )
    first = client.chat.completions.with_raw_response.create(stream=True, stream_options={"include_usage": True}, **kwargs)
    assert first.headers["x-switchyard-cache"] == "MISS"
    original = [c.model_dump() for c in first.parse()]
    again = client.chat.completions.with_raw_response.create(stream=True, stream_options={"include_usage": True}, **kwargs)
    assert again.headers["x-switchyard-cache"] == "HIT"
    replayed = [c.model_dump() for c in again.parse()]
    assert replayed == original, (replayed, original)
    text = "".join(c["choices"][0]["delta"]["content"] or "" for c in original if c["choices"])
    assert text == " ".join(f"tok{i}" for i in range(1, 13)), text
    # The recorded stream also serves a plain call, as the whole answer it made up.
    whole = client.chat.completions.with_raw_response.create(**kwargs)
    assert whole.headers["x-switchyard-cache"] == "HIT"
    r = whole.parse()
    assert r.choices[0].message.content == text and r.choices[0].finish_reason == "stop"
    assert r.usage.model_dump() == original[-1]["usage"], (r.usage, original[-1])


RESPONSE_TOOLS = [
    {
        "type": "function",
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": TOOLS[0]["function"]["parameters"],
    }
]


def test_responses_create_and_stream():
    r = client.responses.create(model="mock/echo", input="hello responses", instructions="Be brief.")
    assert r.object == "response" and r.status == "completed", r
    assert r.output_text == "hello responses", r.output_text
    assert r.usage.output_tokens == 2 and r.usage.total_tokens > 2, r.usage
    with client.responses.stream(model="mock/stream-12", input="count") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    expected = " ".join(f"tok{i}" for i in range(1, 13))
    assert "".join(deltas) == final.output_text == expected, (deltas, final.output_text)
    assert final.usage.output_tokens == 12, final.usage
    assert client.responses.retrieve(final.id).output_text == expected


def test_responses_streamed_function_call():
    with client.responses.stream(model="mock/echo", input="weather?", tools=RESPONSE_TOOLS) as stream:
        final = stream.get_final_response()
    calls = [o for o in final.output if o.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "get_weather", final.output
    assert json.loads(calls[0].arguments) == {"city": "mock", "unit": "c"}


def test_responses_conversation_over_three_turns_with_a_tool_call():
    first = client.responses.create(
        model="mock/echo",
        input="weather in Paris?",
        tools=RESPONSE_TOOLS,
        tool_choice={"type": "function", "name": "get_weather"},
    )
    call = next(o for o in first.output if o.type == "function_call")
    second = client.responses.create(
        model="mock/echo",
        previous_response_id=first.id,
        tools=RESPONSE_TOOLS,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "18C and sunny"}],
    )
    assert second.output_text == "tool result received: 18C and sunny", second.output_text
    third = client.responses.create(model="mock/echo", previous_response_id=second.id, input="thanks")
    assert third.output_text == "thanks" and third.previous_response_id == second.id
    client.responses.delete(first.id)
    try:
        client.responses.retrieve(first.id)
    except openai.NotFoundError:
        pass
    else:
        raise AssertionError("a deleted response was still there")
    try:
        client.responses.create(model="mock/echo", input="x", tools=[{"type": "web_search"}])
    except openai.BadRequestError as e:
        assert "web_search" in e.message, e.message
    else:
        raise AssertionError("a built-in tool was accepted")


if __name__ == "__main__":
    sys.exit(run(globals(), f"openai-sdk {openai.__version__}"))
