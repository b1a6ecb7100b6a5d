"""URL converters shared by every area: ids are validated where they enter, so that no query ever sees a
number PostgreSQL cannot hold (a 20-digit id overflowed the gate's bigint SQL: a 500 instead of a 404)."""

from django.urls import register_converter

MAX_ID = 2**63 - 1  # PostgreSQL bigint


def parse_id(value: object) -> int | None:
    """A database id from untrusted input (URL segment, query parameter), or None if it cannot be one."""
    text = str(value).strip()
    if not text.isascii() or not text.isdigit() or len(text) > 19:
        return None
    number = int(text)
    return number if 1 <= number <= MAX_ID else None


class IdConverter:
    """``<id:name>``: a positive bigint id; anything else does not match the route (404)."""

    regex = "[0-9]{1,19}"

    def to_python(self, value: str) -> int:
        number = parse_id(value)
        if number is None:
            raise ValueError(value)  # the resolver treats it as no match: 404
        return number

    def to_url(self, value: int) -> str:
        return str(int(value))


register_converter(IdConverter, "id")
