"""A signed body that cannot become valid events is refused with a 4xx and a reason, never a 5xx (the
plugin retries 5xx forever): nesting is bounded before parsing, numbers are range-checked, and every
event must be publishable. Property-based: hypothesis mutates real Moodle 4.4 payloads."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.gateway.events import LATEST_TIME
from services.gateway.webhook import MAX_BODY, MAX_DEPTH, WebhookRefused, json_depth, parse_events
from tests.conftest import MOODLE_FIXTURES

SITE = "moodle.example.org"
REAL = sorted((MOODLE_FIXTURES / "real-4.4").glob("observer-*.json"))


def real(index: int = 0) -> dict[str, Any]:
    return json.loads(REAL[index].read_text(encoding="utf-8"))


def refusal(body: bytes) -> WebhookRefused:
    with pytest.raises(WebhookRefused) as caught:
        parse_events(body, SITE)
    return caught.value


def batch(*events: Any) -> bytes:
    return json.dumps({"site": SITE, "events": list(events)}).encode()


def test_the_real_moodle_44_payloads_parse() -> None:
    events = parse_events(batch(*(real(i) for i in range(len(REAL)))), SITE)
    assert len(events) == len(REAL) == 5
    assert {e.relateduserid for e in events} == {5, 6}  # ids sent as JSON strings


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 1_000, 100_000])
def test_deep_nesting_is_refused_before_parsing(depth: int) -> None:
    deep = "[" * depth + "]" * depth
    body = (
        json.dumps({"site": SITE, "events": [{**real(), "other": "X"}]})
        .encode()
        .replace(b'"X"', deep.encode())
    )
    problem = refusal(body)
    assert problem.status == 422 and f"deeper than {MAX_DEPTH}" in problem.reason


def test_brackets_inside_strings_are_not_nesting() -> None:
    text = '{"a": "[[[[{{{{\\"[[[[", "b": [[1], {"c": ["]]]]"]}]}'
    assert json_depth(text.encode()) == 4
    event = {**real(), "other": {"note": "[" * 5_000}}
    assert len(parse_events(batch(event), SITE)) == 1


@pytest.mark.parametrize("value", [10**12, 10**30, -1, 1e30, "1000000000000"])
@pytest.mark.parametrize("field", ["timecreated", "timecompleted"])
def test_times_outside_moodles_range_are_refused_naming_the_field(field: str, value: Any) -> None:
    problem = refusal(batch(real(), {**real(), field: value}))
    assert problem.status == 422
    assert (problem.extra["index"], problem.extra["field"]) == (1, field), problem.reason
    assert LATEST_TIME >= 9_999_999_999 > 10**9


@pytest.mark.parametrize("field", ["objectid", "relateduserid", "courseid", "contextid", "userid"])
def test_ids_beyond_a_bigint_are_refused(field: str) -> None:
    problem = refusal(batch({**real(), field: 2**63}))
    assert (problem.status, problem.extra["field"]) == (422, field)
    assert len(parse_events(batch({**real(), field: 2**63 - 1}), SITE)) == 1


@pytest.mark.parametrize(
    "raw",
    [
        b'{"eventname": NaN}',
        b'{"a": Infinity}',
        b'{"a": -Infinity}',
        b'{"other": {"a": 1e999}}',
        b'{"other": [-1E400]}',
    ],
)
def test_non_finite_numbers_are_not_json(raw: bytes) -> None:
    problem = refusal(raw)
    assert problem.status == 422 and "not JSON" in problem.reason


def test_a_lone_surrogate_cannot_be_published_and_is_refused() -> None:
    body = batch({**real(), "other": {"note": "\ud800"}})
    problem = refusal(body)
    assert problem.status == 422 and problem.extra["index"] == 0
    response = problem.response()  # the reason itself can be rendered
    assert response.status_code == 422


def test_a_reason_quoting_a_lone_surrogate_still_renders() -> None:
    body = json.dumps({"site": "\udfff", "events": []}).encode()
    problem = refusal(body)
    assert problem.status == 403
    assert json.loads(bytes(problem.response().body))["detail"]


# --- properties ------------------------------------------------------------------------------------------

JSON_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    | st.sampled_from(["", "3", "-1", "1e30", "0x10", "\ud800", "9" * 50])
)
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@st.composite
def mutated_events(draw: st.DrawFn) -> Any:
    event = real(draw(st.integers(0, len(REAL) - 1)))
    for key in draw(st.lists(st.sampled_from(sorted(event)), max_size=4, unique=True)):
        if draw(st.booleans()):
            del event[key]
        else:
            event[key] = draw(JSON_VALUES)
    if draw(st.booleans()):
        depth = draw(st.integers(1, 3_000))
        event["other"] = {"x": "@"}
        return json.dumps(event).replace('"@"', "[" * depth + "]" * depth)
    return event


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    events = draw(st.lists(mutated_events(), min_size=1, max_size=3))
    parts = [e if isinstance(e, str) else json.dumps(e, allow_nan=True) for e in events]
    single = len(parts) == 1 and draw(st.booleans())
    text = parts[0] if single else f'{{"site": {json.dumps(SITE)}, "events": [{", ".join(parts)}]}}'
    raw = text.encode("utf-8", "surrogatepass")
    if draw(st.booleans()):  # flip a few bytes
        data = bytearray(raw)
        for _ in range(draw(st.integers(1, 3))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        raw = bytes(data)
    return raw[:MAX_BODY]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bodies())
def test_any_body_either_parses_into_publishable_events_or_is_refused_with_a_4xx(body: bytes) -> None:
    try:
        events = parse_events(body, SITE)
    except WebhookRefused as refused:
        assert 400 <= refused.status < 500, refused.reason
        assert refused.reason
        assert refused.response().status_code == refused.status
        return
    from services.gateway.events import moodle_message

    for event in events:
        moodle_message(SITE, event)  # what the webhook publishes: must not raise
