"""JSON Schema ``pattern`` -> a regex over the JSON text of the strings it accepts.

``jsonschema`` decides ``pattern`` with Python's ``re.search`` on the decoded string, so that is
what this reproduces: ``\\d``, ``\\w``, ``\\s`` and ``.`` are Python's Unicode classes, ``$``
also matches before a final newline, an unanchored end admits any text. In the JSON text each
character may be written as itself (unless it must be escaped), as a short escape (``\\n``,
``\\"``, ``\\/``, ...) or as a ``\\uXXXX`` escape (hex digits in either case; a surrogate pair
outside the BMP), and the regex admits every one of these spellings, except that a lone
surrogate escape never stands for a character the pattern matches (an unanchored end still
takes any text). Refused, with the reason:
lookarounds, backreferences, word boundaries, inline flags, anchors other than a leading ``^``
and a trailing ``$``.
"""
from __future__ import annotations

import re
import re._parser as sre   # the standard library's own regex parser (Python 3.11+)
from functools import lru_cache

MAX_CODE = 0x10FFFF
# one character of a JSON string, any spelling ("/" as \x2f: the regex sits in Lark's /.../)
JSON_CHAR = r'(?:[^"\\\x00-\x1f]|\\(?:["\\\x2fbfnrt]|u[0-9a-fA-F]{4}))'
# the short escapes, as the letter after the backslash (written as JSON_CHAR writes them:
# Lark rewrites a backslash-quote and \x/\u escapes in a /regex/ before Python sees it)
_SHORT = {0x22: '"', 0x5C: "\\\\", 0x2F: "\\x2f", 0x08: "b", 0x0C: "f", 0x0A: "n", 0x0D: "r", 0x09: "t"}
_CATEGORIES = {sre.CATEGORY_DIGIT: r"\d", sre.CATEGORY_NOT_DIGIT: r"\D", sre.CATEGORY_WORD: r"\w",
               sre.CATEGORY_NOT_WORD: r"\W", sre.CATEGORY_SPACE: r"\s", sre.CATEGORY_NOT_SPACE: r"\S"}


class PatternError(ValueError):
    """A pattern this translation cannot express exactly (the message says what)."""


def pattern_regex(pattern: str) -> str:
    """A regex (gcd's terminal syntax) for the string bodies, between the quotes, whose decoded
    text ``re.search(pattern, text)`` finds."""
    try:
        parsed = sre.parse(pattern)
    except re.error as e:
        raise PatternError(f"not a regular expression: {e}") from None
    if parsed.state.flags & ~re.UNICODE:
        raise PatternError("inline flags")
    tree = list(parsed)
    start = bool(tree) and tree[0] == (sre.AT, sre.AT_BEGINNING)
    end = bool(tree) and tree[-1] == (sre.AT, sre.AT_END)
    body = _seq(tree[1 if start else 0:len(tree) - (1 if end else 0)])
    return ("" if start else f"{JSON_CHAR}*") + body + (f"(?:{_chars([(0x0A, 0x0A)])})?" if end else f"{JSON_CHAR}*")


def json_text_regex(regex: str) -> str:
    """``regex`` (over a string's characters, matched whole) as a regex over the string's JSON
    text, every spelling of each character admitted."""
    return _seq(list(sre.parse(regex)))


def _seq(items) -> str:
    return "".join(_item(op, arg) for op, arg in items)


def _item(op, arg) -> str:
    if op is sre.LITERAL:
        return _chars([(arg, arg)])
    if op is sre.NOT_LITERAL:
        return _chars(_complement([(arg, arg)]))
    if op is sre.ANY:
        return _chars(_complement([(0x0A, 0x0A)]))
    if op is sre.IN:
        return _chars(_class(arg))
    if op is sre.BRANCH:
        return "(?:" + "|".join(_seq(b) for b in arg[1]) + ")"
    if op is sre.SUBPATTERN:
        group, add_flags, del_flags, items = arg
        if add_flags or del_flags:
            raise PatternError("inline flags")
        return f"(?:{_seq(items)})"
    if op in (sre.MAX_REPEAT, sre.MIN_REPEAT, getattr(sre, "POSSESSIVE_REPEAT", None)):
        lo, hi, items = arg
        inner = f"(?:{_seq(items)})"
        if hi is sre.MAXREPEAT:
            return f"{inner}{{{lo},}}" if lo else f"{inner}*"
        return f"{inner}{{{lo},{hi}}}"
    if op is sre.AT:
        raise PatternError("an anchor (^, $, \\b, \\A, \\Z) that is not the pattern's first or last item")
    if op in (sre.ASSERT, sre.ASSERT_NOT):
        raise PatternError("a lookaround")
    if op in (sre.GROUPREF, sre.GROUPREF_EXISTS):
        raise PatternError("a backreference")
    raise PatternError(f"{str(op).lower()}")


def _class(items) -> list[tuple[int, int]]:
    """The code point ranges of a ``[...]`` class."""
    ranges, negate = [], False
    for op, arg in items:
        if op is sre.NEGATE:
            negate = True
        elif op is sre.LITERAL:
            ranges.append((arg, arg))
        elif op is sre.RANGE:
            ranges.append(arg)
        elif op is sre.CATEGORY:
            ranges += _category(_CATEGORIES[arg])
        else:
            raise PatternError(f"{str(op).lower()} in a character class")
    ranges = _merged(ranges)
    return _complement(ranges) if negate else ranges


@lru_cache(maxsize=None)
def _category(name: str) -> tuple[tuple[int, int], ...]:
    """Python's Unicode ranges for ``\\d``, ``\\w``, ``\\s`` (and their complements)."""
    regex = re.compile(name)
    out, begin = [], None
    for c in range(MAX_CODE + 2):
        inside = c <= MAX_CODE and regex.fullmatch(chr(c)) is not None
        if inside and begin is None:
            begin = c
        elif not inside and begin is not None:
            out.append((begin, c - 1))
            begin = None
    return tuple(out)


def _merged(ranges) -> list[tuple[int, int]]:
    out: list[list[int]] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return [(lo, hi) for lo, hi in out]


def _complement(ranges) -> list[tuple[int, int]]:
    out, at = [], 0
    for lo, hi in _merged(ranges):
        if lo > at:
            out.append((at, lo - 1))
        at = hi + 1
    return out + ([(at, MAX_CODE)] if at <= MAX_CODE else [])


def _chars(ranges) -> str:
    """A regex for one character of ``ranges`` as JSON text: itself, a short escape, or \\u escapes."""
    ranges = _merged(ranges)
    alternatives = []
    literal = _subtract(ranges, [(0, 0x1F), (0x22, 0x22), (0x5C, 0x5C), (0xD800, 0xDFFF)])
    if literal:
        outside = _complement(literal)   # a negated class where shorter (and cheap for Hypothesis' from_regex)
        items, negate = (outside, "^") if len(outside) <= len(literal) else (literal, "")
        alternatives.append(f"[{negate}" + "".join(_class_item(lo, hi) for lo, hi in items) + "]")
    short = "".join(text for code, text in _SHORT.items() if _contains(ranges, code))
    if short:
        alternatives.append(f"\\\\[{short}]")
    bmp = _subtract([(lo, min(hi, 0xFFFF)) for lo, hi in ranges if lo <= 0xFFFF], [(0xD800, 0xDFFF)])
    alternatives += ["\\\\u" + h for h in _hex_ranges(bmp)]
    for lo, hi in ranges:   # outside the BMP: a surrogate pair
        if hi >= 0x10000:
            for high_lo, high_hi, low_lo, low_hi in _pairs(max(lo, 0x10000), hi):
                alternatives.append(f"\\\\u(?:{'|'.join(_hex_range(high_lo, high_hi))})"
                                    f"\\\\u(?:{'|'.join(_hex_range(low_lo, low_hi))})")
    return "(?:" + "|".join(alternatives) + ")"


def _class_item(lo: int, hi: int) -> str:
    def one(c: int) -> str:
        # Lark turns \u escapes in a /regex/ into the characters themselves, so the ones
        # that mean something inside a class are escaped for the regex instead
        if chr(c) in "]\\^-[":
            return "\\" + chr(c)
        return f"\\U{c:08x}" if c > 0xFFFF else f"\\u{c:04x}"
    return one(lo) if lo == hi else f"{one(lo)}-{one(hi)}"


def _subtract(ranges, holes) -> list[tuple[int, int]]:
    keep = _complement(holes)
    out = []
    for lo, hi in ranges:
        for klo, khi in keep:
            a, b = max(lo, klo), min(hi, khi)
            if a <= b:
                out.append((a, b))
    return out


def _contains(ranges, code: int) -> bool:
    return any(lo <= code <= hi for lo, hi in ranges)


def _pairs(lo: int, hi: int):
    """(high surrogates from, to, low surrogates from, to) blocks covering code points lo..hi
    (>= 0x10000): a partial first block, the full blocks between, a partial last block."""
    def split(c: int) -> tuple[int, int]:
        return 0xD800 + ((c - 0x10000) >> 10), 0xDC00 + ((c - 0x10000) & 0x3FF)

    (h1, l1), (h2, l2) = split(lo), split(hi)
    if h1 == h2:
        return [(h1, h1, l1, l2)]
    out = []
    if l1 != 0xDC00:
        out.append((h1, h1, l1, 0xDFFF))
        h1 += 1
    last = None
    if l2 != 0xDFFF:
        last = (h2, h2, 0xDC00, l2)
        h2 -= 1
    if h1 <= h2:
        out.append((h1, h2, 0xDC00, 0xDFFF))
    return out + ([last] if last else [])


def _hex_ranges(ranges) -> list[str]:
    return [h for lo, hi in ranges for h in _hex_range(lo, hi)]


def _digit(d: int) -> str:
    c = f"{d:x}"
    return f"[{c}{c.upper()}]" if c.isalpha() else c


def _digits(lo: int, hi: int) -> str:
    """A class of hex digits lo..hi (either case)."""
    if lo == hi:
        return _digit(lo)
    chars = "".join(f"{d:x}" + (f"{d:x}".upper() if d > 9 else "") for d in range(lo, hi + 1))
    return f"[{chars}]"


def _hex_range(lo: int, hi: int, width: int = 4) -> list[str]:
    """Regexes for the ``width``-digit hex numerals lo..hi (either case), few alternatives."""
    if width == 0:
        return [""]
    size = 16 ** (width - 1)
    a, b = divmod(lo, size), divmod(hi, size)
    if a[0] == b[0]:
        return [_digit(a[0]) + rest for rest in _hex_range(a[1], b[1], width - 1)]
    out = []
    first, last = a[0], b[0]
    if a[1] != 0:
        out += [_digit(first) + rest for rest in _hex_range(a[1], size - 1, width - 1)]
        first += 1
    tail = []
    if b[1] != size - 1:
        tail = [_digit(last) + rest for rest in _hex_range(0, b[1], width - 1)]
        last -= 1
    if first <= last:
        out.append(_digits(first, last) + "[0-9a-fA-F]" * (width - 1))
    return out + tail
