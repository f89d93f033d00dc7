import pytest

from kaitiaki.strictjson import StrictJSONError, loads_strict


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
    ],
)
def test_loads_strict_refuses(raw: bytes, reason: str) -> None:
    with pytest.raises(StrictJSONError) as caught:
        loads_strict(raw)
    assert caught.value.reason == reason


def test_loads_strict_ignores_brackets_in_strings() -> None:
    assert loads_strict(b'{"text":"[[[[\\"]]]]"}', max_depth=2) == {"text": '[[[["]]]]'}
