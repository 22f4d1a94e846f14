"""JSON Schema -> Lark grammar whose words are JSON documents valid under the schema.

``schema_to_lark(schema, whitespace=..., property_order=...)`` returns the grammar text;
``Grammar.from_json_schema`` compiles it. A schema means what ``jsonschema`` (with its format
checker and the rfc3987 / rfc3339-validator packages) says it means, in the draft its
``$schema`` names (4, 6, 7, 2019-09, 2020-12; none: 2020-12): draft-04's boolean exclusive
bounds, a list ``items`` with ``additionalItems`` before 2020-12, ``$ref``'s siblings ignored
before 2019-09.

Expressed exactly: ``type`` (and lists), ``enum``, ``const`` (their values filtered by the
keywords beside them), ``properties``, ``required``, ``additionalProperties``,
``patternProperties`` (with ``additionalProperties: false`` and one value schema for all
patterns or patterns whose ``^``-anchored literal prefixes no key can share, or each
pattern's schema equal to ``additionalProperties``), ``minProperties`` /
``maxProperties`` (at least 2 only where no additional key may come: a repeated key is one
property to jsonschema), ``items``, ``prefixItems``, ``minItems``/``maxItems``,
``minLength``/``maxLength``, ``pattern`` (``gcd.pattern``: Python's ``re.search`` on the
decoded string), ``format`` (date, time, date-time, email, idn-email, ipv4, ipv6, uri,
uri-reference, uuid, as jsonschema's checker decides them: email asks only for an ``@``),
integer ``minimum``/``maximum``/``exclusiveMinimum``/``exclusiveMaximum`` (digit strings;
on other numbers bounds of 0 are a question of sign, and other bounds are met by numbers
written in plain decimal notation: with exponents the set is not regular), integer ``multipleOf`` (listed within
narrow bounds, or by the last digits for 2^a 5^b), ``anyOf``, ``oneOf`` whose branches
are disjoint (by type, listed values, a required property's listed values: tagged unions, or
a required property the other branch does not allow),
``oneOf`` of ``{"required": [name]}`` branches (exactly one of those keys), ``if``/``then``/
``else`` whose condition lists values or types of properties or required names (as
``(if and then) or (not if and else)``, the negation spelled out), ``allOf`` and the
siblings of ``anyOf``/``oneOf``/``$ref`` (merged: types intersected, bounds
tightened, required joined, a property held to the other side's ``additionalProperties``),
``$ref`` into the document (recursion included). Keywords outside the JSON Schema vocabulary
(``title``, ``x-...``, ``markdownDescription``) and formats jsonschema does not check
(``int32``, ``color-hex``) constrain nothing, to jsonschema and so to gcd. Anything else
(``uniqueItems``, ``not``, other ``if`` conditions, ``dependencies``, overlapping ``oneOf``, other references,
a length bound beside a pattern, ...) raises ``UnsupportedSchemaError`` naming the keyword and
its JSON pointer: nothing is silently ignored.

How words are written: properties appear in the schema's order (``property_order="schema"``)
or in any order, each at most once (``"any"``, for objects of up to 8 properties: the grammar
has one rule per subset); declared keys, ``enum`` and ``const`` values are written as
``json.dumps`` writes them (so the grammar does not accept ``"\\u0061"`` for the key ``"a"``,
nor ``1.0`` for ``const: 1``); an additional key differs from every declared name (a
duplicate key would let a later value override a checked one) and is written as
``json.dumps`` writes it up to the character where it parts from the declared names
(``_other_key`` says how), freely after. Strings allow every JSON escape and no control character (with
``minLength``/``maxLength``, no ``\\u`` escape of a surrogate: a character outside the BMP is
then written as itself). ``whitespace="flexible"`` allows JSON whitespace between tokens;
``"compact"`` allows none.
"""
from __future__ import annotations

import json
import math
import re
from decimal import Decimal
from urllib.parse import unquote
from typing import Any

from gcd.errors import GCDError
from gcd.pattern import JSON_CHAR, PatternError, json_text_regex, pattern_regex

# Keywords that constrain instances in some JSON Schema draft (3 to 2020-12). gcd expresses
# some of them; the others raise. Every other keyword (title, x-..., markdownDescription, ...)
# constrains nothing: ``jsonschema`` ignores it, and so does gcd.
VOCABULARY = {"type", "enum", "const", "multipleOf", "maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum",
              "maxLength", "minLength", "pattern", "maxItems", "minItems", "uniqueItems", "maxContains",
              "minContains", "contains", "maxProperties", "minProperties", "required", "dependentRequired",
              "dependentSchemas", "dependencies", "properties", "patternProperties", "additionalProperties",
              "propertyNames", "unevaluatedProperties", "unevaluatedItems", "items", "prefixItems",
              "additionalItems", "allOf", "anyOf", "oneOf", "not", "if", "then", "else", "$ref", "$dynamicRef",
              "$recursiveRef", "format", "disallow", "extends", "divisibleBy"}
SUPPORTED = {"if", "then", "else", "type", "enum", "const", "maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum", "maxLength",
             "minLength", "pattern", "maxItems", "minItems", "required", "properties", "additionalProperties",
             "patternProperties", "minProperties", "maxProperties", "multipleOf",
             "items", "prefixItems", "allOf", "anyOf", "oneOf", "$ref", "format"}
COMBINERS = ("allOf", "anyOf", "oneOf")
# gcd's own keyword (no JSON Schema has it: its name begins with NUL): values an instance may
# not equal, which negating an ``if`` condition needs
EXCEPT = "\x00gcd:except"
_WHY_NOT = {
    "uniqueItems": "not supported (arrays of distinct items are not context-free in general)",
    "not": "not supported (gcd does not complement schemas)",
    "if": "not supported (it needs the complement of its condition)",
    "then": "not supported (only meaningful with if)", "else": "not supported (only meaningful with if)",
    "dependencies": "not supported", "dependentRequired": "not supported", "dependentSchemas": "not supported",
    "propertyNames": "not supported (it would constrain every key's spelling)",
    "contains": "not supported", "unevaluatedProperties": "not supported", "unevaluatedItems": "not supported",
    "$dynamicRef": "not supported (dynamic scope)", "$recursiveRef": "not supported (dynamic scope)",
}
# the formats jsonschema's format checker knows (some only with optional packages); any other
# format is an annotation to it, and so to gcd
CHECKED_FORMATS = {"email", "idn-email", "hostname", "idn-hostname", "ipv4", "ipv6", "iri", "iri-reference", "uri",
                   "uri-reference", "uri-template", "date-time", "time", "date", "regex", "duration", "json-pointer",
                   "relative-json-pointer", "uuid", "color", "host-name", "ip-address"}
TYPES = ("object", "array", "string", "number", "integer", "boolean", "null")
# one character of a string with a length bound: \u escapes of surrogates (two of which make
# one character) are left out, so that the count is exact
_COUNTED_CHAR = r'(?:[^"\\\x00-\x1f]|\\(?:["\\\x2fbfnrt]|u(?:[0-9a-cA-Ce-fE-F][0-9a-fA-F]{3}|[dD][0-7][0-9a-fA-F]{2})))'


def _date_regex() -> str:
    """YYYY-MM-DD of a real day (what ``datetime.date.fromisoformat`` takes, years 0001-9999)."""
    year = "(?:[0-9]{3}[1-9]|[0-9]{2}[1-9]0|[0-9][1-9]00|[1-9]000)"
    leap = "(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:0[48]|[2468][048]|[13579][26])00)"
    days = ("(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)"
            "|02-(?:0[1-9]|1[0-9]|2[0-8]))")
    return f"(?:{year}-{days}|{leap}-02-29)"


_OCTET = "(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9][0-9]|[0-9])"   # no leading zeros, as ipaddress reads them
_HEX = "[0-9a-fA-F]"
_IPV4 = rf"{_OCTET}(?:\.{_OCTET}){{3}}"
# RFC 3339 time as rfc3339-validator checks it (on the upper-cased text, so t and z too; no leap second)
_TIME = r"(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]+)?(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
_ANY = "[\x00-\U0010ffff]*"


def _ipv6_regex(ipv4: str) -> str:
    """RFC 4291 text forms (RFC 3986's IPv6address): 8 groups, or fewer around one ``::``."""
    h16 = f"{_HEX}{{1,4}}"
    ls32 = f"(?:{h16}:{h16}|{ipv4})"
    forms = [f"(?:{h16}:){{6}}{ls32}", f"::(?:{h16}:){{5}}{ls32}", f"(?:{h16})?::(?:{h16}:){{4}}{ls32}"]
    forms += [f"(?:(?:{h16}:){{0,{k}}}{h16})?::(?:{h16}:){{{4 - k}}}{ls32}" for k in (1, 2)]
    forms += [f"(?:(?:{h16}:){{0,3}}{h16})?::{h16}:{ls32}", f"(?:(?:{h16}:){{0,4}}{h16})?::{ls32}",
              f"(?:(?:{h16}:){{0,5}}{h16})?::{h16}", f"(?:(?:{h16}:){{0,6}}{h16})?::"]
    return "(?:" + "|".join(forms) + ")"


def _uri_regexes() -> tuple[str, str]:
    """RFC 3986 ``URI`` and ``URI-reference`` (Appendix A), as the rfc3987 package reads them:
    its ``dec-octet`` takes leading zeros, and its ``$`` also matches before a final newline."""
    unreserved, pct, sub = r"[a-zA-Z0-9_.~-]", f"%{_HEX}{{2}}", r"[!$&'()*+,;=]"
    pchar = f"(?:{unreserved}|{pct}|{sub}|[:@])"
    segment, segment_nz = f"{pchar}*", f"{pchar}+"
    segment_nz_nc = f"(?:{unreserved}|{pct}|{sub}|@)+"
    path_abempty = f"(?:/{segment})*"
    path_absolute = f"/(?:{segment_nz}(?:/{segment})*)?"
    ipv4 = r"(?:(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)\.){3}(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)"
    ip_literal = rf"\[(?:{_ipv6_regex(ipv4)}|v{_HEX}+\.(?:{unreserved}|{sub}|:)+)\]"
    host = f"(?:{ip_literal}|{ipv4}|(?:{unreserved}|{pct}|{sub})*)"
    authority = f"(?:(?:{unreserved}|{pct}|{sub}|:)*@)?{host}(?::[0-9]*)?"
    rest = rf"(?:\?(?:{pchar}|[/?])*)?(?:#(?:{pchar}|[/?])*)?"
    scheme, rootless = "[a-zA-Z][a-zA-Z0-9+.-]*:", f"{segment_nz}(?:/{segment})*"
    shared = f"(?://{authority}{path_abempty}|{path_absolute}|)"   # the paths URI and relative-ref share
    uri = f"{scheme}(?:{shared}|{rootless}){rest}"
    # URI | relative-ref with one copy of the authority (with two, the DFA is too large)
    reference = f"(?:(?:{scheme})?{shared}|{scheme}{rootless}|{segment_nz_nc}(?:/{segment})*){rest}"
    return uri + "\\n?", reference + "\\n?"


_URI, _URI_REFERENCE = _uri_regexes()
# format -> regex over the decoded string's characters (``gcd.pattern.json_text_regex`` spells it
# as JSON), each as jsonschema's format checker decides it with its optional packages installed
FORMATS = {
    "date": _date_regex(),
    "time": f"{_TIME}\n?",                       # rfc3339-validator's $ takes a final newline
    "date-time": f"{_date_regex()}[Tt]{_TIME}\n?",
    "email": f"{_ANY}@{_ANY}",                   # jsonschema asks only for an @
    "idn-email": f"{_ANY}@{_ANY}",
    "ipv4": _IPV4,
    "ipv6": _ipv6_regex(_IPV4),                   # ipaddress.IPv6Address, no %scope
    "uri": _URI,
    "uri-reference": _URI_REFERENCE,
    "uuid": rf"{_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}}",
}


class UnsupportedSchemaError(GCDError):
    """A schema keyword gcd cannot express exactly (``keyword``, at JSON pointer ``pointer``)."""

    def __init__(self, keyword: str, pointer: str, why: str = "not supported") -> None:
        self.keyword, self.pointer = keyword, pointer
        super().__init__(f"{keyword!r} at {pointer}: {why}")


def schema_to_lark(schema: Any, *, whitespace: str = "flexible", property_order: str = "schema") -> str:
    """The Lark text of the grammar for ``schema`` (a dict, JSON text, or an object with
    ``model_json_schema()``, such as a pydantic model class)."""
    if whitespace not in ("flexible", "compact"):
        raise ValueError(f"whitespace must be 'flexible' or 'compact', not {whitespace!r}")
    if property_order not in ("schema", "any"):
        raise ValueError(f"property_order must be 'schema' or 'any', not {property_order!r}")
    if hasattr(schema, "model_json_schema"):
        schema = schema.model_json_schema()
    elif isinstance(schema, (str, bytes)):
        try:
            schema = json.loads(schema)
        except ValueError as e:
            raise GCDError(f"the schema is not JSON: {e}") from None
    return _Builder(schema, property_order).build(whitespace)


_STRING = f'/"{JSON_CHAR}*"/'   # any JSON string, any number: terminals
_NUMBER = r"/-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/"
MAX_ANY_ORDER = 8   # property_order="any": one rule per subset of an object's properties
MAX_ALTERNATIVES = 256   # branches a merge may distribute anyOf/oneOf into


class _Builder:
    def __init__(self, root: Any, property_order: str = "schema") -> None:
        self.root = root
        self.any_order = property_order == "any"
        self.draft = _draft(root)
        self.rules: dict[str, str] = {}
        self.names: dict[str, str] = {}   # pointer -> rule name
        self.terminals: dict[str, str] = {}

    def build(self, whitespace: str) -> str:
        start = self.rule(self.root, "#")
        lines = [f"start: {start}"] + [f"{name}: {body}" for name, body in self.rules.items()]
        lines += [f"{name}: {body}" for name, body in self.terminals.items()]
        if whitespace == "flexible":
            lines += [r"%ignore /[ \t\n\r]+/"]
        return "\n".join(lines) + "\n"

    # -- rules ------------------------------------------------------------------------
    def rule(self, schema: Any, pointer: str, key: str | None = None) -> str:
        """The rule name for the schema at ``pointer`` (built once; ``key`` names a schema
        gcd derived there, such as a merge)."""
        key = key or pointer
        name = self.names.get(key)
        if name is None:
            name = self.names[key] = f"s{len(self.names)}"
            self.rules[name] = ""   # reserved: recursion through $ref finds the name
            self.rules[name] = self.body(schema, pointer)
        return name

    def body(self, schema: Any, pointer: str) -> str:
        if schema is False:
            raise UnsupportedSchemaError("false", pointer, "a schema that no value satisfies")
        if not isinstance(schema, (dict, bool)):
            raise UnsupportedSchemaError(type(schema).__name__, pointer, "a schema is an object or a boolean")
        schema = self.constraints(schema, pointer)
        if not schema:
            return self.any_value()
        if set(schema) == {"$ref"}:
            return self.rule(self.resolve(schema["$ref"], pointer), self.target(schema["$ref"], pointer))
        if "$ref" in schema or any(c in schema for c in COMBINERS):
            return self.combined(schema, pointer)
        if "const" in schema or "enum" in schema:
            return self.values(schema, pointer)
        types = _type_list(schema.get("type", TYPES))
        if "integer" in types and "number" in types:
            types = [t for t in types if t != "integer"]
        bodies = [b for b in (self.typed(t, schema, pointer) for t in types) if b is not None]
        if not bodies:
            raise UnsupportedSchemaError("type", pointer, "no value of these types is left")
        return " | ".join(f"({b})" for b in bodies)

    def constraints(self, schema: dict | bool, pointer: str) -> dict:
        """The keywords of ``schema`` that constrain instances, read as its draft reads them
        (draft-04's boolean exclusive bounds, a list ``items`` before 2020-12, ``$ref``'s
        siblings ignored before 2019-09, formats ``jsonschema`` does not check dropped); a
        keyword gcd cannot express raises."""
        if schema is True:
            return {}
        base = schema.get("$id", schema.get("id") if self.draft <= 4 else None)
        if (pointer != "#" and isinstance(base, str) and not base.startswith("#") and '"$ref"' in json.dumps(schema)):
            raise UnsupportedSchemaError("$id", f"{pointer}/$id", "a $id below the root (it changes what $ref means)")
        out = {}
        for key, v in schema.items():
            if key == EXCEPT:
                out[key] = v
                continue
            if key not in VOCABULARY or key == "additionalItems":   # (read with a list "items", below)
                continue
            if key in ("then", "else") and "if" not in schema:   # ignored without an if
                continue
            if key == "uniqueItems" and (v is False or schema.get("maxItems", 2) <= 1):
                continue
            if key in ("minProperties", "minContains") and v == 0:
                continue
            if key not in SUPPORTED:
                raise UnsupportedSchemaError(key, f"{pointer}/{_escape(key)}", _WHY_NOT.get(key, "not supported"))
            out[key] = v
        if "type" in out:
            for t in _type_list(out["type"]):
                if t not in TYPES:
                    raise UnsupportedSchemaError("type", f"{pointer}/type", f"unknown type {t!r}")
        if self.draft <= 4:   # draft-04: exclusiveMinimum/-Maximum are flags on minimum/maximum
            for bound, flag in (("minimum", "exclusiveMinimum"), ("maximum", "exclusiveMaximum")):
                if isinstance(out.get(flag), bool):
                    if out.pop(flag) and bound in out:
                        out[flag] = out.pop(bound)
        if isinstance(out.get("items"), list):
            if self.draft >= 2020:
                raise UnsupportedSchemaError("items", f"{pointer}/items", "a list of schemas (prefixItems since 2020-12)")
            out["prefixItems"] = out.pop("items")
            out["items"] = schema.get("additionalItems", True)
        if "format" in out and out["format"] not in CHECKED_FORMATS:
            del out["format"]   # jsonschema checks no such format: an annotation
        if "$ref" in out and self.draft <= 7:
            return {"$ref": out["$ref"]}   # before 2019-09, $ref's siblings are ignored
        if "if" in out:   # (if and then) or (not if and else), the negation spelled out
            cond, then, other = out.pop("if"), out.pop("then", True), out.pop("else", True)
            branches = [{"allOf": [cond, then]}, *({"allOf": [n, other]} for n in self.negations(cond, pointer))]
            if "anyOf" in out:
                out["allOf"] = [*out.get("allOf", []), {"anyOf": branches}]
            else:
                out["anyOf"] = branches
        return out

    def negations(self, cond: Any, pointer: str) -> list[Any]:
        """Schemas whose instances together are exactly those ``cond`` rejects, for the
        conditions real schemas branch on: properties with listed values or a type, required
        names, an object type. Others raise."""
        at = f"{pointer}/if"
        if isinstance(cond, bool):
            return [] if cond else [True]
        c = self.constraints(cond, at)
        if set(c) - {"properties", "required", "type"} or c.get("type", "object") != "object":
            raise UnsupportedSchemaError("if", at, "a condition other than listed values or types of properties "
                                         "(gcd spells out its negation)")
        out: list[Any] = [{"type": [t for t in TYPES if t != "object"]}] if "type" in c else []
        out += [{"type": "object", "properties": {name: False}} for name in c.get("required", [])]
        for name, sub in c.get("properties", {}).items():
            s = self.flat(sub, f"{at}/properties/{_escape(name)}", 0) if sub is not True else {}
            if set(s) - {"type", "enum"} or not s:
                raise UnsupportedSchemaError("if", at, f"a condition on {name!r} other than listed values or a type")
            if "enum" in s:
                listed = [v for v in s["enum"] if "type" not in s or self.satisfies(v, "type", s["type"], at)]
                negated = {EXCEPT: listed}
            else:
                kinds = _type_list(s["type"])
                negated = {"type": [t for t in TYPES if t not in kinds and not (t == "integer" and "number" in kinds)]}
                if not negated["type"]:
                    continue
                if "integer" in kinds and "number" not in kinds:
                    raise UnsupportedSchemaError("if", at, "a condition of integer type (its negation has non-integer "
                                                 "numbers)")
            out.append({"type": "object", "required": [name], "properties": {name: negated}})
        return out

    def combined(self, schema: dict, pointer: str) -> str:
        """``$ref`` with siblings, ``allOf``, and ``anyOf``/``oneOf`` with siblings: the
        conjunction of the parts as one schema (``anyOf``/``oneOf`` with the rest merged into
        each branch; a branch no value satisfies is left out)."""
        choices = [c for c in ("anyOf", "oneOf") if c in schema]
        if len(choices) > 1:
            raise UnsupportedSchemaError("oneOf", f"{pointer}/oneOf", "anyOf and oneOf in one schema")
        rest = {k: v for k, v in schema.items() if k not in ("anyOf", "oneOf", "allOf")}
        if not choices and set(schema) == {"allOf"} and len(schema["allOf"]) == 1:
            return self.rule(schema["allOf"][0], f"{pointer}/allOf/0")
        for key in [c for c in COMBINERS if c in schema]:
            if not isinstance(schema[key], list) or not schema[key]:
                raise UnsupportedSchemaError(key, f"{pointer}/{key}", "needs a non-empty list")
        where = f"{pointer}/allOf" if "allOf" in schema else pointer
        try:   # inherited first: the allOf parts, then $ref's target, then the schema's own keywords
            parts = [*schema.get("allOf", []), rest]
            merged = self.flat(parts[0], where, 0)   # a $ref resolved: merged, not written back as it was
            for part in parts[1:]:
                merged = self.conjoin(merged, part, where)
        except _Empty:
            raise UnsupportedSchemaError("allOf" if "allOf" in schema else "$ref", where,
                                         "no value satisfies all of its parts") from None
        if not choices:
            return self.rule(merged, where, key=f"{where}#merged")
        choice = choices[0]
        branches = []
        alone = self.one_required(schema[choice], pointer) if choice == "oneOf" else None
        for i, b in enumerate(schema[choice]):
            at = f"{pointer}/{choice}/{i}"
            if alone is not None:   # "exactly one of these keys": the others are absent
                b = {"required": [alone[i]], "properties": {n: False for n in alone if n != alone[i]}}
            if not merged and alone is None:
                branches.append((at, b, at))
                continue
            try:
                branches.append((at, self.conjoin(merged, b, at), f"{at}#merged"))
            except _Empty:
                continue
        if not branches:
            raise UnsupportedSchemaError(choice, f"{pointer}/{choice}", "no branch can be satisfied")
        if choice == "oneOf":
            for i, (_, x, _) in enumerate(branches):
                for _, y, _ in branches[:i]:
                    if not self.disjoint(x, y, pointer):
                        raise UnsupportedSchemaError("oneOf", f"{pointer}/oneOf",
                                                     "branches that may overlap (gcd needs them disjoint)")
        return " | ".join(self.rule(b, at, key=key) for at, b, key in branches)

    def one_required(self, branches: list, pointer: str) -> list[str] | None:
        """The names, when every ``oneOf`` branch is ``{"required": [name]}`` (and perhaps
        ``"type": "object"``): "exactly one of these properties"."""
        names = []
        for b in branches:
            c = self.constraints(b, pointer) if isinstance(b, dict) else None
            if not c or set(c) - {"required", "type"} or c.get("type", "object") != "object" \
                    or len(c.get("required", [])) != 1:
                return None
            names.append(c["required"][0])
        return names if len(set(names)) == len(names) else None

    def values(self, schema: dict, pointer: str) -> str:
        """``const`` / ``enum``: the listed values that also meet the schema's other keywords."""
        if "const" in schema:
            listed, at = [schema["const"]], f"{pointer}/const"
        else:
            listed, at = schema["enum"], f"{pointer}/enum"
            if not isinstance(listed, list) or not listed:
                raise UnsupportedSchemaError("enum", at, "an enum needs at least one value")
        keep = [(i, v) for i, v in enumerate(listed) if all(self.satisfies(v, k, schema[k], pointer) for k in schema
                                                             if k not in ("const", "enum"))]
        if "const" in schema and "enum" in schema:
            keep = [(i, v) for i, v in keep if any(_same(v, w) for w in schema["enum"])]
        if not keep:
            raise UnsupportedSchemaError("enum" if "enum" in schema else "const", at, "no listed value is valid")
        if "const" in schema:
            return self.value(schema["const"], at)
        return " | ".join(f"({self.value(v, f'{at}/{i}')})" for i, v in keep)

    def satisfies(self, v: Any, key: str, arg: Any, pointer: str) -> bool:
        """Whether the listed value ``v`` meets keyword ``key`` (those that bear on single values)."""
        kind = _json_type(v)
        if key == EXCEPT:
            return not any(_same(v, x) for x in arg)
        if key == "type":
            kinds = _type_list(arg)
            return kind in kinds or (kind == "integer" and "number" in kinds)
        if key in ("minLength", "maxLength", "pattern"):
            if kind != "string":
                return True
            if key == "pattern":
                return re.search(arg, v) is not None
            return len(v) >= arg if key == "minLength" else len(v) <= arg
        if key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
            if kind not in ("integer", "number"):
                return True
            return {"minimum": v >= arg, "maximum": v <= arg, "exclusiveMinimum": v > arg,
                    "exclusiveMaximum": v < arg}[key]
        if key in ("minItems", "maxItems"):
            return kind != "array" or (len(v) >= arg if key == "minItems" else len(v) <= arg)
        raise UnsupportedSchemaError(key, f"{pointer}/{key}", "beside enum or const")

    # -- conjunction (allOf, siblings) -------------------------------------------------
    def flat(self, schema: Any, pointer: str, depth: int) -> dict:
        """``schema``'s constraints with a top-level ``$ref`` resolved into them; ``_Empty`` for ``false``."""
        if schema is False:
            raise _Empty
        if not isinstance(schema, (dict, bool)):
            raise UnsupportedSchemaError(type(schema).__name__, pointer, "a schema is an object or a boolean")
        out = self.constraints(schema, pointer)
        if "$ref" in out:
            ref = out.pop("$ref")
            out = self.conjoin(self.resolve(ref, pointer), out, pointer, depth + 1)
        if "const" in out:
            const = out.pop("const")
            enum = [v for v in out.get("enum", [const]) if _same(v, const)]
            if not enum:
                raise _Empty
            out["enum"] = enum
        return out

    def conjoin(self, a: Any, b: Any, pointer: str, depth: int = 0) -> dict:
        """A schema whose instances are those valid under both ``a`` and ``b``; ``_Empty`` when
        there are none gcd can see; ``UnsupportedSchemaError`` where it cannot merge them."""
        if depth > 24:
            raise UnsupportedSchemaError("allOf", pointer, "merging recurses too deep (recursive references)")
        for x, y in ((a, b), (b, a)):
            if x is True or x == {} or _same_schema(x, y):   # nothing to merge: keep y as written
                if y is False:
                    raise _Empty
                return {} if y is True else y if "$ref" not in y else self.flat(y, pointer, depth + 1)
        a, b = self.flat(a, pointer, depth), self.flat(b, pointer, depth)
        for first in (True, False):   # (a's keywords come before b's: the order of properties)
            x, y = (a, b) if first else (b, a)
            if "allOf" in x:   # inherited first: x's parts, then x's own keywords
                merged: Any = {}
                for part in [*x["allOf"], {k: v for k, v in x.items() if k != "allOf"}]:
                    merged = self.conjoin(merged, part, pointer, depth + 1)
                return self.conjoin(merged, y, pointer, depth + 1) if first else self.conjoin(
                    y, merged, pointer, depth + 1)
        for first in (True, False):
            x, y = (a, b) if first else (b, a)
            for c in ("anyOf", "oneOf"):
                if c in x:
                    rest = {k: v for k, v in x.items() if k != c}
                    base = self.conjoin(rest, y, pointer, depth + 1) if first else self.conjoin(
                        y, rest, pointer, depth + 1)
                    branches = []
                    for branch in x[c]:
                        try:
                            merged = self.conjoin(base, branch, pointer, depth + 1)
                        except _Empty:
                            continue
                        nested = c == "anyOf" and set(merged) == {"anyOf"}   # an anyOf of anyOfs: one list
                        branches += merged["anyOf"] if nested else [merged]
                        if len(branches) > MAX_ALTERNATIVES:
                            raise UnsupportedSchemaError("allOf", pointer, f"merging makes over {MAX_ALTERNATIVES} "
                                                         "alternatives (anyOf, oneOf or if in several parts)")
                    if not branches:
                        raise _Empty
                    return {c: branches}
        out = {**a, **b}
        if "type" in a and "type" in b:
            out["type"] = _common_types(a["type"], b["type"])
        if "enum" in a and "enum" in b:
            out["enum"] = [v for v in a["enum"] if any(_same(v, w) for w in b["enum"])]
            if not out["enum"]:
                raise _Empty
        for key in ("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties"):
            if key in a and key in b:
                out[key] = max(a[key], b[key])
        for key in ("maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties"):
            if key in a and key in b:
                out[key] = min(a[key], b[key])
        if "required" in a and "required" in b:
            out["required"] = list(dict.fromkeys([*a["required"], *b["required"]]))
        if EXCEPT in a and EXCEPT in b:
            out[EXCEPT] = [*a[EXCEPT], *b[EXCEPT]]
        for key in ("format", "pattern"):
            if key in a and key in b and a[key] != b[key]:
                raise UnsupportedSchemaError(key, f"{pointer}/{key}", f"two different {key}s to merge")
        keyed = ("properties", "additionalProperties", "patternProperties")
        if all(any(k in x for k in keyed) for x in (a, b)) and any("patternProperties" in x for x in (a, b)):
            raise UnsupportedSchemaError("patternProperties", f"{pointer}/patternProperties",
                                         "merging patternProperties with other property keywords")
        if any(k in x for x in (a, b) for k in ("properties", "additionalProperties")):
            self.conjoin_properties(a, b, out, pointer, depth)
        if any(k in x for x in (a, b) for k in ("items", "prefixItems")):
            self.conjoin_items(a, b, out, pointer, depth)
        return out

    def conjoin_properties(self, a: dict, b: dict, out: dict, pointer: str, depth: int) -> None:
        pa, pb = a.get("properties", {}), b.get("properties", {})
        ea, eb = a.get("additionalProperties", True), b.get("additionalProperties", True)
        try:
            extra = self.conjoin(ea, eb, pointer, depth + 1)
        except _Empty:
            extra = False
        props = {}
        for name in [*pa, *(n for n in pb if n not in pa)]:
            try:
                props[name] = self.conjoin(pa.get(name, ea), pb.get(name, eb), pointer, depth + 1)
            except _Empty:   # no value satisfies both: the property may not be there
                props[name] = False
        out["properties"] = props
        out["additionalProperties"] = extra

    def conjoin_items(self, a: dict, b: dict, out: dict, pointer: str, depth: int) -> None:
        pa, pb = a.get("prefixItems", []), b.get("prefixItems", [])
        ia, ib = a.get("items", True), b.get("items", True)
        try:
            items = self.conjoin(ia, ib, pointer, depth + 1)
        except _Empty:
            items = False
        prefix = []
        for i in range(max(len(pa), len(pb))):
            try:
                prefix.append(self.conjoin(pa[i] if i < len(pa) else ia, pb[i] if i < len(pb) else ib,
                                           pointer, depth + 1))
            except _Empty:   # no item can stand at i: the array ends before it
                items = False
                break
        out["prefixItems"], out["items"] = prefix, items

    def disjoint(self, a: Any, b: Any, pointer: str, depth: int = 0) -> bool:
        """Whether no instance is valid under both, as far as types, listed values, a required
        property's listed values, or a property one requires and the other forbids show."""
        a, b = self.flat(a, pointer, depth), self.flat(b, pointer, depth)
        if any(c in x for x in (a, b) for c in COMBINERS):
            return False
        ta, tb = _kinds(a), _kinds(b)
        if not ta & tb:
            return True
        if "enum" in a and "enum" in b and not any(_same(v, w) for v in a["enum"] for w in b["enum"]):
            return True
        if ta & tb <= {"object"}:
            pa, pb = a.get("properties", {}), b.get("properties", {})
            for name in set(a.get("required", [])) & set(b.get("required", [])):
                if name in pa and name in pb and depth < 8 and self.disjoint(pa[name], pb[name], pointer, depth + 1):
                    return True
            for x, y in ((a, b), (b, a)):   # x requires a name y does not allow
                if any(_forbids(y, name) for name in x.get("required", [])):
                    return True
        return False

    def typed(self, kind: str, schema: dict, pointer: str) -> str | None:
        """The rule body for the instances of one JSON type (None when none is left)."""
        excluded = [v for v in schema.get(EXCEPT, []) if _json_type(v) == kind
                    or (kind == "number" and _json_type(v) == "integer")]
        if excluded:
            return self.typed_except(kind, schema, excluded, pointer)
        if kind == "null":
            return '"null"'
        if kind == "boolean":
            return '"true" | "false"'
        bounds = [v for _, v in _bounds(schema, pointer)] if kind in ("integer", "number") else []
        if "multipleOf" in schema and kind in ("integer", "number"):
            if kind == "number":
                raise UnsupportedSchemaError("multipleOf", f"{pointer}/multipleOf",
                                             "on numbers that need not be integers (1.5e1 is a multiple of 5)")
            lo, hi = _integer_bounds(schema, pointer)
            return self.terminal(f"MULTIPLE{len(self.terminals)}", f"/{_multiples_regex(schema, lo, hi, pointer)}/")
        if kind == "integer":
            if not bounds:
                return self.terminal("INTEGER", r"/-?(?:0|[1-9][0-9]*)/")
            lo, hi = _integer_bounds(schema, pointer)
            return self.terminal(f"INTEGER{len(self.terminals)}", f"/{integer_range_regex(lo, hi)}/")
        if kind == "number" and bounds and all(v == 0 for v in bounds):
            return self.terminal(f"NUMBER_SIGNED{len(self.terminals)}", f"/{_signed_number_regex(schema, pointer)}/")
        if kind == "number" and bounds:
            return self.terminal(f"NUMBER_RANGE{len(self.terminals)}", f"/{_plain_number_regex(schema, pointer)}/")
        if kind == "number":
            return self.terminal("NUMBER", _NUMBER)
        if kind == "string":
            return self.string(schema, pointer)
        if kind == "array":
            return self.array(schema, pointer)
        return self.object(schema, pointer)

    def typed_except(self, kind: str, schema: dict, excluded: list, pointer: str) -> str | None:
        """One JSON type's instances but ``excluded`` (from a negated ``if`` condition)."""
        if kind == "null":
            return None
        if kind == "boolean":
            left = [b for b in ("true", "false") if not any(_same(b == "true", x) for x in excluded)]
            return " | ".join(f'"{b}"' for b in left) or None
        if kind == "string":
            if any(k in schema for k in ("minLength", "maxLength", "pattern", "format")):
                raise UnsupportedSchemaError("if", pointer, "values a condition lists, beside a length, pattern or format")
            return self.terminal(f"STRING_EXCEPT{len(self.terminals)}", "/" + _other_key(excluded) + "/")
        if kind == "integer" and "multipleOf" not in schema:
            lo, hi = _integer_bounds(schema, pointer)
            ranges, at = [], lo
            for n in sorted({int(v) for v in excluded}):
                if (hi is None or n <= hi) and (at is None or n >= at):
                    ranges.append((at, n - 1))
                    at = n + 1
            ranges.append((at, hi))
            parts = [integer_range_regex(a, b) for a, b in ranges if a is None or b is None or a <= b]
            return self.terminal(f"INTEGER_EXCEPT{len(self.terminals)}", f"/(?:{'|'.join(parts)})/") if parts else None
        raise UnsupportedSchemaError("if", pointer, f"a condition listing {kind} values (gcd cannot spell out the "
                                     "other values)")

    def string(self, schema: dict, pointer: str) -> str:
        if "format" in schema:
            if "pattern" in schema:
                raise UnsupportedSchemaError("pattern", f"{pointer}/pattern", "a pattern beside format")
            return self.formatted(schema, pointer)
        if "pattern" in schema:
            return self.patterned(schema, pointer)
        lo, hi = _counts(schema, "minLength", "maxLength", pointer)
        if lo == 0 and hi is None:
            return self.terminal("STRING", _STRING)
        count = f"{{{lo},{'' if hi is None else hi}}}"
        return self.terminal(f"STRING_{lo}_{'' if hi is None else hi}", f'/"{_COUNTED_CHAR}{count}"/')

    def patterned(self, schema: dict, pointer: str) -> str:
        """A string whose decoded text ``re.search(pattern, ...)`` finds (see ``gcd.pattern``)."""
        _no_length_bound(schema, pointer, "pattern")
        pattern = schema["pattern"]
        if not isinstance(pattern, str):
            raise UnsupportedSchemaError("pattern", f"{pointer}/pattern", "must be a string")
        try:
            regex = pattern_regex(pattern)
        except PatternError as e:
            raise UnsupportedSchemaError("pattern", f"{pointer}/pattern", str(e)) from None
        return self.terminal(f"PATTERN{len(self.terminals)}", f'/"{regex}"/')

    def formatted(self, schema: dict, pointer: str) -> str:
        """A string of a ``format`` gcd expresses exactly (its characters also as JSON escapes)."""
        name = schema["format"]
        if name not in FORMATS:
            raise UnsupportedSchemaError("format", f"{pointer}/format",
                                         f"{name!r} (supported: {', '.join(sorted(FORMATS))})")
        _no_length_bound(schema, pointer, "format")
        return self.terminal("FORMAT_" + re.sub(r"\W", "_", name.upper()), f'/"{json_text_regex(FORMATS[name])}"/')

    def array(self, schema: dict, pointer: str) -> str:
        first = [self.rule(x, f"{pointer}/prefixItems/{i}") for i, x in enumerate(schema.get("prefixItems", []))]
        items = schema.get("items", True)
        rest = None if items is False else self.rule(items, f"{pointer}/items")
        lo, hi = _counts(schema, "minItems", "maxItems", pointer)
        k = len(first)
        if rest is None:
            hi = k if hi is None else min(hi, k)
        alternatives = []
        for n in range(lo, (k if hi is None else min(hi, k)) + 1):   # n items, all from the prefix
            alternatives.append('"[" ' + ' "," '.join(first[:n]) + ' "]"' if n else '"[" "]"')
        if rest is not None and (hi is None or hi > k):                # more than the prefix
            more_lo = max(lo - k, 1)
            seq = " ".join([*(f'{x} ","' for x in first), rest] + [f'"," {rest}'] * (more_lo - 1))
            if hi is None:
                seq += f' ("," {rest})*'
            elif hi - k > more_lo:
                seq += f' ("," {rest})~0..{hi - k - more_lo}'
            alternatives.append(f'"[" {seq} "]"')
        if not alternatives:
            raise UnsupportedSchemaError("minItems", f"{pointer}/minItems", "more items than the schema allows")
        return " | ".join(f"({a})" for a in alternatives)

    def object(self, schema: dict, pointer: str) -> str:
        props = schema.get("properties", {})
        required = schema.get("required", [])
        names = list(props) + [r for r in required if r not in props]
        extra = schema.get("additionalProperties", True)
        patterns = self.patterns(schema, pointer)
        members = []
        for name in names:
            if props.get(name) is False:   # may not be there (additional keys may not spell it either)
                if name in required:
                    raise UnsupportedSchemaError("required", f"{pointer}/required", f"{name!r} is required but "
                                                 "no value of it is valid")
                continue
            matched = [(f"{pointer}/patternProperties/{_escape(p)}", s) for p, s, _ in patterns if re.search(p, name)]
            at = f"{pointer}/properties/{_escape(name)}"
            if name in props and not matched:
                value = self.rule(props[name], at)
            elif name in props or matched:   # a declared name a pattern also matches: both hold
                merged: Any = props.get(name, {})
                try:
                    for where, s in matched:
                        merged = self.conjoin(merged, s, where)
                except _Empty:
                    raise UnsupportedSchemaError("patternProperties", matched[0][0],
                                                 f"no value of {name!r} satisfies its schemas") from None
                value = self.rule(merged, at, key=f"{at}#patterns")
            elif extra is False:   # required, yet not allowed
                raise UnsupportedSchemaError("required", f"{pointer}/required",
                                             f"{name!r} is required but additionalProperties is false")
            else:                  # required and not declared: an additional property, held to its schema
                value = self.rule(extra, f"{pointer}/additionalProperties")
            key = self.literal(json.dumps(name, ensure_ascii=False))
            members.append((f"{key} \":\" {value}", name in required))
        extra_member = None
        if patterns and extra is False:   # the other keys are those the patterns match
            # a required-only name may come again as a pattern key: its schema is the pattern's either way
            if any(re.search(p, name) for p, _, _ in patterns for name in props):
                raise UnsupportedSchemaError("patternProperties", f"{pointer}/patternProperties",
                                             "a pattern that also matches a declared property")
            groups: dict[str, list[tuple]] = {}   # one member per value schema: its patterns' keys
            for triple in patterns:
                groups.setdefault(json.dumps(triple[1], sort_keys=True), []).append(triple)
            alternatives = []
            for group in groups.values():
                (first, sub, _) = group[0]
                regex = "|".join(r for _, _, r in group)
                value = self.rule(sub, f"{pointer}/patternProperties/{_escape(first)}")
                key = self.terminal(f"KEY{len(self.terminals)}", f'/"(?:{regex})"/')
                alternatives.append(f'{key} ":" {value}')
            extra_member = alternatives[0] if len(alternatives) == 1 else f"({' | '.join(alternatives)})"
        elif extra is not False:
            value = self.rule(extra, f"{pointer}/additionalProperties")
            key = self.terminal(f"KEY{len(self.terminals)}", "/" + _other_key(names) + "/")
            extra_member = f'{key} ":" {value}'
        n = len(members)
        base = self.names.setdefault(f"{pointer}/#object", f"o{len(self.names)}")
        counts = self.property_counts(schema, pointer, extra_member is not None)
        if self.any_order:
            if counts != (0, None):
                raise UnsupportedSchemaError("minProperties" if counts[0] else "maxProperties", pointer,
                                             "property counts with property_order='any'")
            return self.any_order_object(base, members, extra_member, pointer)
        if counts != (0, None):
            return self.counted_object(base, members, extra_member, *counts, pointer)
        # A_i: members i.. with none written yet; B_i: with one written (a comma comes first)
        a = [f"{base}_a{i}" for i in range(n + 1)]
        b = [f"{base}_b{i}" for i in range(n + 1)]
        for i, (member, needed) in enumerate(members):
            self.rules[a[i]] = f"{member} {b[i + 1]}" + ("" if needed else f" | {a[i + 1]}")
            self.rules[b[i]] = f'"," {member} {b[i + 1]}' + ("" if needed else f" | {b[i + 1]}")
        if extra_member:
            self.rules[a[n]] = f'[{extra_member} ("," {extra_member})*]'
            self.rules[b[n]] = f'("," {extra_member})*'
        else:
            self.rules[a[n]] = ""
            self.rules[b[n]] = ""
        return f'"{{" {a[0]} "}}"'

    def property_counts(self, schema: dict, pointer: str, extras: bool) -> tuple[int, int | None]:
        """``minProperties``/``maxProperties``. With additional keys allowed, at least 2
        raises: the grammar cannot tell a repeated additional key (one property to jsonschema)
        from two."""
        lo, hi = _counts(schema, "minProperties", "maxProperties", pointer)
        if lo >= 2 and extras:
            raise UnsupportedSchemaError("minProperties", f"{pointer}/minProperties",
                                         "2 or more beside additional properties (a repeated key counts once)")
        return lo, hi

    def counted_object(self, base: str, members: list[tuple[str, bool]], extra: str | None, lo: int,
                       hi: int | None, pointer: str) -> str:
        """Members in schema order with between ``lo`` and ``hi`` of them written: one rule per
        (next member, members written so far), the count held at ``lo`` once reached when
        there is no ``hi``."""
        n, cap = len(members), hi if hi is not None else lo
        states: dict[tuple[int, int], str] = {}

        def step(c: int, member: str, after: int) -> str | None:
            """``member`` written as the (c+1)-th, then the rule for position ``after``."""
            if hi is not None and c + 1 > hi:
                return None
            c2 = min(c + 1, cap)
            target = f"{base}_{n}_{c}" if (after, c2) == (n, c) else states.get((after, c2))   # extras loop at the cap
            comma = '"," ' if c else ""
            return None if target is None else f"{comma}{member} {target}"

        for i in range(n, -1, -1):   # from the end (and the highest count), so that successors are known
            for c in range(cap, -1, -1):
                if i == n:
                    more = step(c, extra, n) if extra else None
                    body = (f"[{more}]" if more else "") if c >= lo else more
                else:
                    member, needed = members[i]
                    alts = [x for x in (step(c, member, i + 1), None if needed else states.get((i + 1, c))) if x]
                    body = " | ".join(alts) if alts else None
                if body is not None:
                    states[i, c] = f"{base}_{i}_{c}"
                    self.rules[states[i, c]] = body
        if (0, 0) not in states:
            raise UnsupportedSchemaError("minProperties" if lo else "maxProperties", pointer,
                                         "no object has that many properties")
        return f'"{{" {states[0, 0]} "}}"'

    def patterns(self, schema: dict, pointer: str) -> list[tuple[str, Any, str]]:
        """``patternProperties`` as (pattern, schema, key regex) triples, where gcd can express the keys they
        govern: with ``additionalProperties: false``, patterns of one schema or patterns no key
        can match two of (``^`` and literal prefixes none of which begins another); otherwise
        each pattern's schema must be the ``additionalProperties`` schema (gcd does not
        intersect or complement key patterns)."""
        found = schema.get("patternProperties", {})
        if not isinstance(found, dict):
            raise UnsupportedSchemaError("patternProperties", f"{pointer}/patternProperties", "must be an object")
        pairs = list(found.items())
        extra = schema.get("additionalProperties", True)
        prefixes = [_literal_prefix(p) for p, _ in pairs]
        apart = all(a and b and not a.startswith(b) and not b.startswith(a)
                    for i, a in enumerate(prefixes) for b in prefixes[:i])
        out = []
        for p, s in pairs:
            at = f"{pointer}/patternProperties/{_escape(p)}"
            out.append((p, s, self.key_regex(p, at)))
            if extra is False and not apart and not _same_schema(s, pairs[0][1]):
                raise UnsupportedSchemaError("patternProperties", at, "keys two patterns of different schemas may match")
            if extra is not False and not _same_schema(s, extra):
                raise UnsupportedSchemaError("patternProperties", at, "a pattern's schema differs from additionalProperties")
        return out

    def key_regex(self, pattern: Any, pointer: str) -> str:
        if not isinstance(pattern, str):
            raise UnsupportedSchemaError("patternProperties", pointer, "a pattern is a string")
        try:
            return pattern_regex(pattern)
        except PatternError as e:
            raise UnsupportedSchemaError("patternProperties", pointer, str(e)) from None

    def any_order_object(self, base: str, members: list[tuple[str, bool]], extra: str | None, pointer: str) -> str:
        """Members in any order, each at most once, the required ones all present: one rule
        per set of members written so far (a comma comes first in each), extras anywhere."""
        n = len(members)
        if n > MAX_ANY_ORDER:
            raise UnsupportedSchemaError("properties", f"{pointer}/properties",
                                         f"{n} properties in any order (at most {MAX_ANY_ORDER}: one rule per subset)")
        needed = sum(1 << i for i, (_, req) in enumerate(members) if req)

        def alternatives(written: int, comma: str) -> list[str]:
            out = [f"{comma}{m} {base}_s{written | 1 << i}" for i, (m, _) in enumerate(members)
                   if not written >> i & 1]
            return out + ([f"{comma}{extra} {base}_s{written}"] if extra else [])

        for written in range(0 if extra else 1, 1 << n):   # nothing written: only after an extra
            alts = alternatives(written, '"," ')
            body = " | ".join(alts)
            self.rules[f"{base}_s{written}"] = (f"[{body}]" if body else "") if written & needed == needed else body
        first = " | ".join(alternatives(0, ""))
        self.rules[f"{base}_first"] = f"[{first}]" if needed == 0 else first
        return f'"{{" {base}_first "}}"'

    # -- pieces ------------------------------------------------------------------------
    def value(self, v: Any, pointer: str) -> str:
        """A rule body matching exactly the JSON value ``v`` as ``json.dumps`` writes it."""
        if isinstance(v, dict):
            inner = ' "," '.join(f'{self.literal(json.dumps(k, ensure_ascii=False))} ":" ({self.value(x, pointer)})'
                                 for k, x in v.items())
            return f'"{{" {inner} "}}"'
        if isinstance(v, list):
            return '"[" ' + ' "," '.join(f"({self.value(x, pointer)})" for x in v) + ' "]"'
        return self.literal(json.dumps(v, ensure_ascii=False))

    def literal(self, text: str) -> str:
        return json.dumps(text, ensure_ascii=False)   # a Lark string literal: JSON string syntax is Lark's

    def terminal(self, name: str, pattern: str) -> str:
        self.terminals.setdefault(name, pattern)
        return name

    def any_value(self) -> str:
        name = self.names.get("#any")
        if name is None:
            name = self.names["#any"] = "any_value"
            string, number = self.terminal("STRING", _STRING), self.terminal("NUMBER", _NUMBER)
            self.rules["any_value"] = (f'{string} | {number} | "true" | "false" | "null" | "[" [any_value '
                                       f'("," any_value)*] "]" | "{{" [{string} ":" any_value ("," {string} ":" '
                                       f'any_value)*] "}}"')
        return name

    def resolve(self, ref: Any, pointer: str) -> Any:
        node = self.root
        for part in self.target(ref, pointer)[2:].split("/") if ref != "#" else []:
            part = unquote(part).replace("~1", "/").replace("~0", "~")   # a URI fragment: %-escapes too
            try:
                node = node[int(part)] if isinstance(node, list) else node[part]
            except (KeyError, IndexError, ValueError, TypeError):
                raise UnsupportedSchemaError("$ref", f"{pointer}/$ref", f"{ref!r} points at nothing") from None
        return node

    @staticmethod
    def target(ref: Any, pointer: str) -> str:
        if not isinstance(ref, str) or not (ref == "#" or ref.startswith("#/")):
            raise UnsupportedSchemaError("$ref", f"{pointer}/$ref", f"only references into this schema, not {ref!r}")
        return ref


class _Empty(Exception):
    """No value satisfies a conjunction (a branch to leave out, or an error where none may go)."""


def _draft(root: Any) -> int:
    """The draft ``root``'s ``$schema`` names (3, 4, 6, 7, 2019, 2020; 2020 when it names none,
    as jsonschema assumes)."""
    uri = root.get("$schema", "") if isinstance(root, dict) else ""
    uri = uri if isinstance(uri, str) else ""
    for mark, draft in (("draft-03", 3), ("draft-04", 4), ("draft-06", 6), ("draft-07", 7), ("2019-09", 2019)):
        if mark in uri:
            if draft == 3:
                raise UnsupportedSchemaError("$schema", "#/$schema", "draft 3 (its required and type mean other things)")
            return draft
    return 2020


def _json_type(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "integer" if v.is_integer() else "number"   # 1.0 is an integer since draft 6
    if isinstance(v, str):
        return "string"
    return "array" if isinstance(v, list) else "object"


def _key(v: Any) -> Any:
    """JSON equality as jsonschema reads it: 1 == 1.0, true != 1, key order does not count."""
    if isinstance(v, bool) or v is None:
        return ("b", v)
    if isinstance(v, (int, float)):
        return ("n", v)
    if isinstance(v, list):
        return ("a", tuple(_key(x) for x in v))
    if isinstance(v, dict):
        return ("o", tuple(sorted((k, _key(x)) for k, x in v.items())))
    return ("s", v)


def _same(a: Any, b: Any) -> bool:
    return _key(a) == _key(b)


def _same_schema(a: Any, b: Any) -> bool:
    """Whether two schemas are written the same (``true`` and ``{}`` alike)."""
    return _same({} if a is True else a, {} if b is True else b)


def _literal_prefix(pattern: str) -> str:
    """The text every match of a ``^``-anchored pattern begins with ("" if none or unanchored)."""
    import re._parser as sre

    try:
        items = list(sre.parse(pattern))
    except re.error:
        return ""
    if not items or items[0] != (sre.AT, sre.AT_BEGINNING):
        return ""
    out = []
    for op, arg in items[1:]:
        if op is not sre.LITERAL:
            break
        out.append(chr(arg))
    return "".join(out)


def _forbids(schema: dict, name: str) -> bool:
    """Whether an object valid under ``schema`` cannot have the property ``name``."""
    props = schema.get("properties", {})
    if name in props:
        return props[name] is False
    if any(re.search(p, name) for p in schema.get("patternProperties", {})):
        return False
    return schema.get("additionalProperties", True) is False


def _type_list(t: Any) -> list[str]:
    """A ``type`` keyword's value as a list of type names."""
    return [t] if isinstance(t, str) else list(t)


def _kinds(schema: dict) -> set[str]:
    """The JSON types an instance may have (``number`` includes ``integer``)."""
    kinds = set(_type_list(schema.get("type", TYPES)))
    if "number" in kinds:
        kinds.add("integer")
    if "enum" in schema:
        listed = {_json_type(v) for v in schema["enum"]}
        kinds &= listed | ({"number"} if "integer" in listed else set())
    return kinds


def _common_types(a: Any, b: Any) -> list[str]:
    """The types both type keywords admit (``integer`` is part of ``number``)."""
    a, b = _type_list(a), _type_list(b)
    out = [t for t in a if t in b or (t == "integer" and "number" in b)]
    out += [t for t in b if t == "integer" and "number" in a and t not in out]
    if not out:
        raise _Empty
    return out


def _counts(schema: dict, lo_key: str, hi_key: str, pointer: str) -> tuple[int, int | None]:
    """A count's bounds (``minLength``/``maxLength``, ``minItems``/``maxItems``, ...): 0 and
    None when absent; anything but an integer >= 0 raises."""
    lo, hi = schema.get(lo_key, 0), schema.get(hi_key)
    for key, v in ((lo_key, lo), (hi_key, hi)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
            raise UnsupportedSchemaError(key, f"{pointer}/{key}", "must be an integer >= 0")
    return lo, hi


def _no_length_bound(schema: dict, pointer: str, beside: str) -> None:
    """Refuse minLength/maxLength beside ``beside`` (gcd would have to intersect the languages)."""
    for key in ("minLength", "maxLength"):
        if key in schema:
            raise UnsupportedSchemaError(key, f"{pointer}/{key}", f"a length bound beside {beside}")


_EXP = "(?:[eE][+-]?[0-9]+)?"
_ZERO = r"0(?:\.0+)?"                                       # a mantissa whose value is 0
_NONZERO = r"(?:[1-9][0-9]*(?:\.[0-9]+)?|0\.0*[1-9][0-9]*)"   # one whose value is not


def _signed_number_regex(schema: dict, pointer: str) -> str:
    """JSON numbers within bounds of 0 (``minimum: 0``, ``exclusiveMaximum: 0``, ...), the
    bounds real schemas put on prices and counts: a sign question, hence regular. The number's
    decimal value counts (``1e-400`` is positive, though Python reads it as 0.0). Other
    bounds: ``_plain_number_regex``."""
    lo = hi = None   # None: no bound; True: inclusive (minimum / maximum); False: exclusive
    for key, _ in _bounds(schema, pointer):   # (all of them 0)
        inclusive = not key.startswith("exclusive")
        if key.endswith("inimum"):
            lo = inclusive if lo is None else lo and inclusive
        else:
            hi = inclusive if hi is None else hi and inclusive
    zero, nonzero = f"{_ZERO}{_EXP}", f"{_NONZERO}{_EXP}"
    if lo is not None and hi is not None:
        if not (lo and hi):
            raise UnsupportedSchemaError("exclusiveMinimum" if not lo else "exclusiveMaximum", pointer,
                                         "no number lies within the bounds")
        return f"-?{zero}"
    if lo is not None:
        return f"(?:{nonzero}|{zero}|-{zero})" if lo else nonzero
    return f"(?:-{nonzero}|-{zero}|{zero})" if hi else f"-{nonzero}"


def _plain_number_regex(schema: dict, pointer: str) -> str:
    """JSON numbers in plain decimal notation (no exponent) within the schema's bounds, by
    decimal value: the spelling gcd writes numbers in when a bound other than 0 is on a
    non-integer number (with an exponent the set is not regular: 0.000...01e+N)."""
    lo = hi = None   # (Decimal, strict)
    for key, v in _bounds(schema, pointer):
        bound = (Decimal(repr(v)) if isinstance(v, float) else Decimal(v), key.startswith("exclusive"))
        if key.endswith("inimum"):
            lo = bound if lo is None or bound > lo else lo
        else:
            hi = bound if hi is None or (bound[0], not bound[1]) < (hi[0], not hi[1]) else hi
    zero = (Decimal(0), False)
    positive = [] if hi is not None and hi[0] < 0 else _unsigned_range(lo if lo and lo[0] >= 0 else zero, hi)
    negative = [] if lo is not None and lo[0] > 0 else _unsigned_range(
        (-hi[0], hi[1]) if hi is not None and hi[0] <= 0 else zero, (-lo[0], lo[1]) if lo is not None else None)
    if not positive and not negative:
        raise UnsupportedSchemaError("minimum" if lo else "maximum", pointer, "no number lies within the bounds")
    return "(?:" + "|".join([*(f"-(?:{x})" for x in negative), *positive]) + ")"


def _unsigned_range(lo: tuple, hi: tuple | None) -> list[str]:
    """Regexes, longest integer parts first (``re.match`` takes the first alternative that
    matches), for plain decimals I(.F)? with lo <= value <= hi (bounds (Decimal >= 0, strict))."""
    (a, a_strict), (b, b_strict) = lo, hi if hi is not None else (None, False)
    ia, fa = _parts(a)
    if b is not None:
        ib, fb = _parts(b)
        if b < a or (b == a and (a_strict or b_strict)):
            return []
        if ia == ib:
            n = max(len(fa), len(fb))
            tail = _fraction(_between(fa.ljust(n, "0"), fb.ljust(n, "0"), a_strict, b_strict))
            return [f"{ia}{tail}"] if tail is not None else []
    out = []
    if b is not None:
        tail = _fraction(_le(fb, b_strict))
        out += [f"{ib}{tail}"] if tail is not None else []
    middle = _naturals(ia + 1, ib - 1 if b is not None else None)
    out += [f"(?:{'|'.join(middle)})(?:\\.[0-9]+)?"] if middle else []
    tail = _fraction(_ge(fa, a_strict))
    out += [f"{ia}{tail}"] if tail is not None else []
    return out


def _parts(d: Decimal) -> tuple[int, str]:
    """The integer part and the fraction's digits (no trailing zeros) of d >= 0."""
    text = f"{d:f}"
    whole, _, frac = text.partition(".")
    return int(whole), frac.rstrip("0")


def _fraction(digits: tuple[str | None, bool]) -> str | None:
    """The text after an integer part: "." and one of the digit strings, or nothing if the
    empty one is allowed (None: no text at all)."""
    regex, empty = digits
    if regex is None:
        return "" if empty else None
    return f"(?:\\.(?:{regex}))?" if empty else f"\\.(?:{regex})"


def _ge(f: str, strict: bool) -> tuple[str | None, bool]:
    """Digit strings D (the regex of non-empty ones, whether the empty one) with 0.D >= 0.f (> if strict)."""
    if not f:
        return ("0*[1-9][0-9]*", False) if strict else ("[0-9]+", True)
    c = int(f[0])
    alts = [f"[{c + 1}-9][0-9]*"] if c < 9 else []
    alts += _then(str(c), _ge(f[1:], strict))
    return "|".join(alts) or None, False


def _le(f: str, strict: bool) -> tuple[str | None, bool]:
    """Digit strings D with 0.D <= 0.f (< if strict); f has a non-zero digit or is empty."""
    if not f:
        return (None, False) if strict else ("0+", True)
    c = int(f[0])
    alts = [f"[0-{c - 1}][0-9]*"] if c > 0 else []
    alts += _then(str(c), _le(f[1:], strict))
    return "|".join(alts) or None, True


def _between(a: str, b: str, lo_strict: bool, hi_strict: bool) -> tuple[str | None, bool]:
    """Digit strings D with 0.a <= 0.D <= 0.b (a and b of one length, 0.a <= 0.b)."""
    empty = not a.strip("0") and not lo_strict and (not hi_strict or bool(b.strip("0")))
    if not a:
        return ("0+" if empty else None), empty
    ca, cb = int(a[0]), int(b[0])
    if ca == cb:
        alts = _then(str(ca), _between(a[1:], b[1:], lo_strict, hi_strict))
    else:
        alts = _then(str(ca), _ge(a[1:].rstrip("0"), lo_strict))
        alts += [f"[{ca + 1}-{cb - 1}][0-9]*"] if cb - ca > 1 else []
        alts += _then(str(cb), _le(b[1:].rstrip("0"), hi_strict))
    return "|".join(alts) or None, empty


def _then(digit: str, rest: tuple[str | None, bool]) -> list[str]:
    """``digit`` followed by one of the digit strings ``rest`` describes."""
    regex, empty = rest
    if regex and empty:
        return [f"{digit}(?:{regex})?"]
    if regex:
        return [f"{digit}(?:{regex})"]
    return [digit] if empty else []


BOUNDS = ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum")


def _bounds(schema: dict, pointer: str) -> list[tuple[str, int | float]]:
    """The schema's numeric bounds as (keyword, value); a value other than a finite number raises."""
    out = []
    for key in BOUNDS:
        if key in schema:
            v = schema[key]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise UnsupportedSchemaError(key, f"{pointer}/{key}", "must be a finite number")
            out.append((key, v))
    return out


def _integer_bounds(schema: dict, pointer: str) -> tuple[int | None, int | None]:
    """The inclusive integer bounds the schema's minimum/maximum keywords give."""
    lo = hi = None
    for key, v in _bounds(schema, pointer):
        if key == "minimum":
            b = math.ceil(v)
            lo = b if lo is None else max(lo, b)
        elif key == "exclusiveMinimum":
            b = math.floor(v) + 1
            lo = b if lo is None else max(lo, b)
        elif key == "maximum":
            b = math.floor(v)
            hi = b if hi is None else min(hi, b)
        else:
            b = math.ceil(v) - 1
            hi = b if hi is None else min(hi, b)
    if lo is not None and hi is not None and lo > hi:
        raise UnsupportedSchemaError("minimum" if "minimum" in schema else "exclusiveMinimum", pointer,
                                     "no integer lies within the bounds")
    return lo, hi


MAX_LISTED = 2000   # integers a multipleOf regex may list one by one


def _multiples_regex(schema: dict, lo: int | None, hi: int | None, pointer: str) -> str:
    """JSON integers within the bounds that are multiples of ``multipleOf``: the multiples
    listed when the range holds at most ``MAX_LISTED``; otherwise, for k = 2^a 5^b, the
    integers whose last max(a, b) digits are a multiple of k. Other cases raise."""
    k = schema["multipleOf"]
    at = f"{pointer}/multipleOf"
    if isinstance(k, float) and k.is_integer():
        k = int(k)
    if isinstance(k, bool) or not isinstance(k, int) or k <= 0:
        raise UnsupportedSchemaError("multipleOf", at, "other than a positive integer (jsonschema divides "
                                     "floats in floating point: to it 3 is not a multiple of 0.1)")
    if lo is not None and hi is not None and (hi - lo) // k <= MAX_LISTED:
        listed = [n for n in range(lo + (-lo) % k, hi + 1, k)]
        if not listed:
            raise UnsupportedSchemaError("multipleOf", at, "no multiple lies within the bounds")
        # longest first (re.match takes the first alternative that matches), and in one order
        # whatever the hash seed: the text is part of the compile's cache key
        texts = sorted({str(n) for n in listed} | ({"-0"} if 0 in listed else set()), key=lambda t: (-len(t), t))
        return "(?:" + "|".join(texts) + ")"
    if lo is not None or hi is not None:
        raise UnsupportedSchemaError("multipleOf", at, f"beside bounds holding more than {MAX_LISTED} multiples")
    twos, fives, rest = 0, 0, k
    while rest % 2 == 0:
        twos, rest = twos + 1, rest // 2
    while rest % 5 == 0:
        fives, rest = fives + 1, rest // 5
    digits = max(twos, fives)
    if rest != 1 or 10 ** digits // k > MAX_LISTED:
        raise UnsupportedSchemaError("multipleOf", at, "unbounded, of a number other than 2^a 5^b (as a regular "
                                     "language its digit strings would be too long to write)")
    tails = [str(n).zfill(digits) for n in range(0, 10 ** digits, k)] if digits else []
    small = sorted((str(n) for n in range(k, 10 ** digits, k)), key=len, reverse=True)
    long = f"[1-9][0-9]*(?:{'|'.join(tails)})" if digits else "[1-9][0-9]*"
    return f"-?(?:{'|'.join([long, *small, '0'])})"


def integer_range_regex(lo: int | None, hi: int | None) -> str:
    """A regex for the JSON integers n with lo <= n <= hi (None: unbounded), ``-0`` included
    where 0 is."""
    parts = []
    if hi is None or hi >= 0:
        parts += _naturals(max(lo, 0) if lo is not None else 0, hi)
    if lo is None or lo < 0:
        neg = _naturals(max(-hi, 1) if hi is not None else 1, -lo if lo is not None else None)
        parts += [f"-(?:{'|'.join(neg)})"] if neg else []
    if (lo is None or lo <= 0) and (hi is None or hi >= 0):
        parts.append("-0")
    return "(?:" + "|".join(parts) + ")"


def _naturals(a: int, b: int | None) -> list[str]:
    """Regexes (no leading zeros) for the integers a..b >= 0 (b None: unbounded), longest
    numbers first: a terminal means what ``re.match`` takes, which tries alternatives in order."""
    return _by_length(a, b)[::-1]


def _by_length(a: int, b: int | None) -> list[str]:
    if b is not None and a > b:
        return []
    out = []
    length = len(str(a))
    while True:
        top = 10 ** length - 1
        lo_l = max(a, 10 ** (length - 1) if length > 1 else 0)
        hi_l = top if b is None else min(b, top)
        if lo_l <= hi_l:
            out.append(_same_length(str(lo_l), str(hi_l)))
        if b is not None and top >= b:
            return out
        if b is None:
            out.append(f"[1-9][0-9]{{{length},}}")
            return out
        length += 1


def _same_length(x: str, y: str) -> str:
    """A regex for the digit strings from x to y (of equal length)."""
    if len(x) == 1:
        return x if x == y else f"[{x}-{y}]"
    if x[0] == y[0]:
        return x[0] + f"(?:{_same_length(x[1:], y[1:])})"
    n = len(x) - 1
    parts = [x[0] + f"(?:{_same_length(x[1:], '9' * n)})"]
    if int(x[0]) + 1 <= int(y[0]) - 1:
        parts.append(f"[{int(x[0]) + 1}-{int(y[0]) - 1}][0-9]{{{n}}}")
    parts.append(y[0] + f"(?:{_same_length('0' * n, y[1:])})")
    return "(?:" + "|".join(parts) + ")"


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


# where a key leaves the declared names: an escape of a control character or of a character
# beyond ASCII (json.dumps writes those so), whatever the names are
_LEAVE_ESCAPE = r"\\u(?:00[01][0-9a-fA-F]|00[89a-fA-F][0-9a-fA-F]|0[1-9a-fA-F][0-9a-fA-F]{2}|[1-9a-fA-F][0-9a-fA-F]{3})"


def _other_key(names: list[str]) -> str:
    """A regex for JSON keys whose decoded text differs from every name in ``names``. Along a
    prefix of a name the key is written as ``json.dumps(..., ensure_ascii=False)`` writes it;
    at the character where it leaves the prefixes, printable ASCII is written as itself (a
    quote, backslash or slash may be a short escape) and other characters as themselves or
    escapes; after that, any spelling. (Admitting every spelling at
    the leaving point would need automaton states per name prefix and escape digit: too many
    for objects of many properties.)"""
    trie: dict = {}
    for name in names:
        node = trie
        for ch in name:
            node = node.setdefault(ch, {})
        node[None] = {}
    leave, end = [], []

    def walk(node: dict, prefix: str) -> None:
        children = sorted(c for c in node if c is not None)
        spelled = re.escape(json.dumps(prefix, ensure_ascii=False)[1:-1]).replace("/", "\\x2f")
        if any(ord(c) < 0x20 or ord(c) >= 0x80 for c in children):   # rare: spell the class exactly
            other = json_text_regex("[^" + "".join(re.escape(c) for c in children) + "]")
        else:
            banned = "".join(re.escape(c) for c in children).replace("/", "\\x2f")
            short = "".join(e for c, e in (('"', '"'), ("\\", "\\\\"), ("/", "\\x2f")) if c not in children)
            other = f'(?:[^"\\\\\\x00-\\x1f{banned}]|\\\\[{short}bfnrt]|{_LEAVE_ESCAPE})'
        leave.append(spelled + other)      # leave the names' prefixes here
        if None not in node:
            end.append(spelled)            # stop at a prefix that is no name
        for c in children:
            walk(node[c], prefix + c)

    walk(trie, "")
    return '"(?:(?:' + "|".join(leave) + f"){JSON_CHAR}*|" + "|".join(end) + ')"'
