import pytest

from kaitiaki.strictjson import JsonLimits, StrictJSONError, loads_strict


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"a":1,"a":2}', "duplicate_member"),
        (b'{"a":{"b":1,"b":1}}', "duplicate_member"),
        (b'{"a":NaN}', "non_finite_number"),
        (b'{"a":-Infinity}', "non_finite_number"),
        (b"\xef\xbb\xbf{}", "byte_order_mark"),
        (b'{"a":"\xff"}', "invalid_utf8"),
        (b"{} {}", "malformed"),
        (b"[" * 100 + b"]" * 100, "too_deep"),
        (b"[" * 50000, "too_deep"),
        (b"", "malformed"),
        (b'{"a":"\\ud800"}', "lone_surrogate"),
        (b'{"a":["x\\udfff"]}', "lone_surrogate"),
        (b'{"\\ud83d":1}', "lone_surrogate"),
        (b'"\\udc00"', "lone_surrogate"),
        (b'{"a":"\\ude00\\ud83d"}', "lone_surrogate"),
    ],
)
def test_loads_strict_refuses(raw: bytes, reason: str) -> None:
    with pytest.raises(StrictJSONError) as caught:
        loads_strict(raw)
    assert caught.value.reason == reason


def test_loads_strict_ignores_brackets_in_strings() -> None:
    assert loads_strict(b'{"text":"[[[[\\"]]]]"}', max_depth=2) == {"text": '[[[["]]]]'}


LIMITS = JsonLimits(max_depth=8, max_members=4, max_items=3, max_string=10)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"a":1,"b":2,"c":3,"d":4,"e":5}', "too_many_members"),
        (b'{"a":{"a":1,"b":2,"c":3,"d":4,"e":5}}', "too_many_members"),
        (b"[1,2,3,4]", "too_many_items"),
        (b'{"a":[[1,2,3,4]]}', "too_many_items"),
        (b'{"a":"12345678901"}', "string_too_long"),
        (b'["12345678901"]', "string_too_long"),
        (b'{"12345678901":1}', "string_too_long"),
        (b"[[[[[[[[[1]]]]]]]]]", "too_deep"),
        (b'{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":1}}}}}}}}}', "too_deep"),
    ],
)
def test_loads_strict_limits_refuse(raw: bytes, reason: str) -> None:
    with pytest.raises(StrictJSONError) as caught:
        loads_strict(raw, limits=LIMITS)
    assert caught.value.reason == reason


@pytest.mark.parametrize(
    "raw",
    [
        b'{"a":1,"b":2,"c":3,"d":4}',
        b"[1,2,3]",
        b'"1234567890"',
        b"[[[[[[[[1]]]]]]]]",
        b'{"a":"\\u00e2"}',
    ],
)
def test_loads_strict_limits_allow_up_to_the_limit(raw: bytes) -> None:
    loads_strict(raw, limits=LIMITS)


def test_loads_strict_nesting_attack_is_400_not_crash() -> None:
    # BODY-02: 20000 brackets deep, open and balanced.
    for raw in (b"[" * 20000 + b"]" * 20000, b'{"a":' * 20000 + b"1" + b"}" * 20000):
        with pytest.raises(StrictJSONError) as caught:
            loads_strict(raw)
        assert caught.value.reason == "too_deep"


def test_loads_strict_takes_a_surrogate_pair_as_one_character() -> None:
    assert loads_strict(b'{"a":"\\ud83d\\ude00"}') == {"a": "\U0001f600"}
