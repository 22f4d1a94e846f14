"""Print the regular expression of grammars/python_expr.lark's NAME: an ASCII identifier that
is not one of Python's keywords. gcd's terminals take no lookahead longer than one character,
so the keywords' complement is spelled out as a trie: at each keyword prefix, either the next
character leaves every keyword, or it goes on along one.

Run: python scripts/python_names.py"""
from __future__ import annotations

import keyword

LATER = "A-Za-z0-9_"
REST = f"[{LATER}]*"


def _class(chars: set[str]) -> str:
    """A character class of chars, runs of three or more written as ranges."""
    codes, runs = sorted(map(ord, chars)), []
    for c in codes:
        if runs and c == runs[-1][1] + 1:
            runs[-1][1] = c
        else:
            runs.append([c, c])
    return "[" + "".join(f"{chr(a)}-{chr(b)}" if b - a >= 2 else "".join(map(chr, range(a, b + 1)))
                         for a, b in runs) + "]"


def _names(trie: dict, prefix: str) -> str:
    """The suffixes that make prefix + suffix a name; prefix is a prefix of some keyword."""
    later = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
    allowed = later - set("0123456789") if not prefix else later
    children = sorted(c for c in trie if c != "")
    alternatives = [c + _names(trie[c], prefix + c) for c in children]
    alternatives.append(_class(allowed - set(children)) + REST)
    body = "(" + "|".join(alternatives) + ")"
    return body + "?" if prefix and "" not in trie else body


def name_regex() -> str:
    trie: dict = {}
    for word in keyword.kwlist:
        node = trie
        for c in word:
            node = node.setdefault(c, {})
        node[""] = {}
    return _names(trie, "")


if __name__ == "__main__":
    print(name_regex())
