"""``Grammar.from_json_schema`` against ``jsonschema`` (the oracle): instances drawn from
the schemas (by ``instances`` below; hypothesis-jsonschema 0.23 no longer runs with current
Hypothesis), each checked valid by ``jsonschema`` first, are words; words drawn from the
grammar are valid instances; tables of invalid instances per keyword are rejected; every
unsupported keyword raises with its JSON pointer."""
from __future__ import annotations

import itertools
import json

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gcd
from gcd.testing import derivations

PERSON = {"type": "object", "properties": {
    "name": {"type": "string", "minLength": 1, "maxLength": 20},
    "age": {"type": "integer", "minimum": 0, "maximum": 150},
    "email": {"type": ["string", "null"]},
    "tags": {"type": "array", "items": {"enum": ["admin", "dev", "ops/oncall"]}, "maxItems": 3},
}, "required": ["name", "age"], "additionalProperties": False}

PRODUCT = {"type": "object", "properties": {
    "id": {"type": "integer"}, "price": {"type": "number"},
    "dimensions": {"type": "object", "properties": {"w": {"type": "number"}, "h": {"type": "number"}},
                   "required": ["w", "h"]},
    "status": {"const": "active"},
}, "required": ["id"]}

TREE = {"$defs": {"node": {"type": "object", "properties": {
    "value": {"anyOf": [{"type": "integer"}, {"type": "string", "maxLength": 5}]},
    "children": {"type": "array", "items": {"$ref": "#/$defs/node"}, "maxItems": 2},
}, "required": ["value"], "additionalProperties": False}}, "$ref": "#/$defs/node"}

POINT = {"type": "array", "prefixItems": [{"type": "number"}, {"type": "number"}], "items": False, "minItems": 2}

COUNTS = {"type": "object", "additionalProperties": {"type": "integer"}, "required": ["total"]}

CHOICE = {"oneOf": [{"type": "boolean"}, {"type": "null"}, {"type": "array", "items": {"type": "integer"},
                                                             "minItems": 1, "maxItems": 3}]}

SCHEMAS = {"person": PERSON, "product": PRODUCT, "tree": TREE, "point": POINT, "counts": COUNTS, "choice": CHOICE}
ORDER = ["name", "age", "email", "tags", "id", "price", "dimensions", "w", "h", "status", "value", "children", "total"]


def ordered(value):
    """``value`` with object keys in the schemas' property order (extra keys last)."""
    if isinstance(value, dict):
        keys = sorted(value, key=lambda k: (ORDER.index(k) if k in ORDER else len(ORDER), k))
        return {k: ordered(value[k]) for k in keys}
    if isinstance(value, list):
        return [ordered(v) for v in value]
    return value


def from_schema(schema, root=None):
    """A strategy for instances of ``schema`` (the keywords these tests use), valid by
    construction and checked with ``jsonschema`` where they are used."""
    root = schema if root is None else root
    if schema is True or schema == {}:
        leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5))
        return st.recursive(leaf, lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=4), kids,
                                                                                              max_size=3), max_leaves=5)
    if "$ref" in schema:
        node = root
        for part in schema["$ref"][2:].split("/") if schema["$ref"] != "#" else []:
            node = node[part]
        return st.deferred(lambda: from_schema(node, root))
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return st.one_of([from_schema(s, root) for s in schema[key]])
    types = schema.get("type")
    types = [types] if isinstance(types, str) else types
    if len(types) > 1:
        return st.one_of([from_schema({**schema, "type": t}, root) for t in types])
    kind = types[0]
    if kind == "null":
        return st.none()
    if kind == "boolean":
        return st.booleans()
    if kind == "integer":
        return st.integers(schema.get("minimum", -10**20), schema.get("maximum", 10**20))
    if kind == "number":
        return st.one_of(st.integers(-10**6, 10**6), st.floats(allow_nan=False, allow_infinity=False))
    if kind == "string":
        return st.text(min_size=schema.get("minLength", 0), max_size=schema.get("maxLength", 8))
    if kind == "array":
        prefix = [from_schema(s, root) for s in schema.get("prefixItems", [])]
        items = schema.get("items", True)
        lo, hi = schema.get("minItems", 0), schema.get("maxItems", len(prefix) + 3)
        rest = st.lists(from_schema(items, root), min_size=max(0, lo - len(prefix)),
                        max_size=max(0, hi - len(prefix))) if items is not False else st.just([])
        return st.tuples(*prefix, rest).map(lambda t: [*t[:-1], *t[-1]])
    props, required = schema.get("properties", {}), schema.get("required", [])
    extra = schema.get("additionalProperties", True)

    @st.composite
    def obj(draw):
        out = {}
        for name in [*props, *[r for r in required if r not in props]]:
            if name in required or draw(st.booleans()):
                out[name] = draw(from_schema(props.get(name, extra), root))
        if extra is not False:
            # any character: json.dumps escapes the control characters, the quote and the backslash
            plain = st.text(st.characters(blacklist_categories=("Cs",)), max_size=4)
            for key in draw(st.lists(plain, max_size=2)):   # (not a name ``ordered`` would sort among them)
                if key not in out and key not in props and key not in ORDER:
                    out[key] = draw(from_schema(extra, root))
        return out
    return obj()


@pytest.fixture(scope="module")
def grammars():
    return {name: gcd.Grammar.from_json_schema(schema) for name, schema in SCHEMAS.items()}


@pytest.mark.parametrize("name", SCHEMAS)
def test_valid_instances_are_words(grammars, name):
    grammar = grammars[name]

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(from_schema(SCHEMAS[name]), st.sampled_from([None, 2]), st.booleans())
    def check(instance, indent, compact):
        jsonschema.validate(instance, SCHEMAS[name])
        text = json.dumps(ordered(instance), indent=indent, ensure_ascii=False,
                          separators=(",", ":") if compact and indent is None else None)
        assert grammar.accepts(text), text

    check()


@pytest.mark.parametrize("order", ["schema", "any"])
@pytest.mark.parametrize("name", SCHEMAS)
def test_words_are_valid_instances(request, name, order):
    grammar = request.getfixturevalue("grammars" if order == "schema" else "any_order")[name]

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(derivations(grammar.text, grammar.start, separator=" "))
    def check(word):
        if grammar.accepts(word):   # drawn by Lark's reading; gcd's is the one that counts
            jsonschema.validate(json.loads(word), SCHEMAS[name])

    check()


@pytest.mark.parametrize("name, text", [
    ("person", '{"age": 3}'),                                        # required
    ("person", '{"name": "", "age": 3}'),                            # minLength
    ("person", '{"name": "' + "x" * 21 + '", "age": 3}'),           # maxLength
    ("person", '{"name": "x", "age": 3.5}'),                         # integer
    ("person", '{"name": "x", "age": 3, "tags": ["root"]}'),         # enum
    ("person", '{"name": "x", "age": 3, "tags": ["dev","dev","dev","dev"]}'),   # maxItems
    ("person", '{"name": "x", "age": 3, "extra": 1}'),               # additionalProperties: false
    ("person", '{"name": "a\\u0000b", "age": 3}'.replace("\\u0000", "\x01")),   # a control character
    ("product", '{"id": 1, "status": "inactive"}'),                  # const
    ("product", '{"id": 1, "dimensions": {"w": 1}}'),                # nested required
    ("product", '{"id": 1, "id": "x"}'),                             # a duplicate key
    ("tree", '{"value": "toolong", "children": []}'),                # anyOf branch maxLength
    ("tree", '{"value": 1, "children": [{"value": 2}, {"value": 3}, {"value": 4}]}'),   # nested maxItems
    ("point", "[1]"), ("point", "[1, 2, 3]"),                        # prefixItems / items: false
    ("counts", '{"a": 1}'), ("counts", '{"total": 1, "a": "x"}'),    # required without properties; extra schema
    ("counts", '{"total": null}'),                                   # ... which holds the required one too
    ("choice", "[]"), ("choice", "[1, 2, 3, 4]"), ("choice", '"x"'),  # oneOf
    ("person", '{"name": "x", "age": -1}'), ("person", '{"name": "x", "age": 151}'),   # integer bounds
])
def test_invalid_instances_are_rejected(grammars, name, text):
    try:
        value = json.loads(text)
    except ValueError:   # not JSON at all (a raw control character in a string)
        pass
    else:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(value, SCHEMAS[name])
    assert not grammars[name].accepts(text)


@pytest.mark.parametrize("name, text", [
    ("person", '{"name": "Ada", "age": 36, "email": null, "tags": ["ops/oncall"]}'),
    ("product", '{"id": 7, "price": 9.5e-1, "dimensions": {"w": 1, "h": 2, "d": 3}, "status": "active", "x": [1]}'),
    ("tree", '{"value": 1, "children": [{"value": "leaf"}, {"value": 2, "children": []}]}'),
    ("counts", '{"total": 3, "a": 1, "b/c": 2}'),
    ("choice", "true"), ("choice", "[1,2]"),
])
def test_valid_instances_from_a_table(grammars, name, text):
    jsonschema.validate(json.loads(text), SCHEMAS[name])
    assert grammars[name].accepts(text)


@pytest.mark.parametrize("schema, keyword, pointer", [
    ({"type": "string", "pattern": "^a+$", "maxLength": 3}, "maxLength", "#/maxLength"),
    ({"properties": {"x": {"type": "number", "minimum": 3, "exclusiveMaximum": 3}}}, "minimum", "#/properties/x"),
    ({"type": "integer", "minimum": 5, "maximum": 4}, "minimum", "#"),
    ({"type": "integer", "multipleOf": 3}, "multipleOf", "#/multipleOf"),
    ({"type": "number", "multipleOf": 5}, "multipleOf", "#/multipleOf"),
    ({"type": "integer", "multipleOf": 0.1}, "multipleOf", "#/multipleOf"),
    ({"patternProperties": {"^x": {"type": "integer"}}}, "patternProperties", "#/patternProperties/^x"),
    ({"patternProperties": {"^x": {"type": "integer"}, "y": {}}, "additionalProperties": False},
     "patternProperties", "#/patternProperties/y"),
    ({"patternProperties": {"^x": {"type": "integer"}, "^xy": {}}, "additionalProperties": False},
     "patternProperties", "#/patternProperties/^xy"),
    ({"properties": {"xa": {}}, "patternProperties": {"^x": {}}, "additionalProperties": False},
     "patternProperties", "#/patternProperties"),
    ({"enum": []}, "enum", "#/enum"),
    ({"type": "string", "format": "hostname"}, "format", "#/format"),
    ({"type": "array", "uniqueItems": True}, "uniqueItems", "#/uniqueItems"),
    ({"properties": {"a": {"not": {"type": "null"}}}}, "not", "#/properties/a/not"),
    ({"if": {"items": {"type": "string"}}, "then": {"minItems": 1}}, "if", "#/if"),
    ({"type": "string", "enum": ["2024-01-01"], "format": "date"}, "format", "#/format"),
    ({"$schema": "http://json-schema.org/draft-03/schema#", "type": "string"}, "$schema", "#/$schema"),
    ({"type": "array", "items": [{"type": "integer"}]}, "items", "#/items"),
    ({"$defs": {"a": {"$id": "https://example.com/a", "items": {"$ref": "#/$defs/b"}}, "b": {}}, "$ref": "#/$defs/a"},
     "$id", "#/$defs/a/$id"),
    ({"allOf": [{"type": "string", "pattern": "a"}, {"pattern": "b"}]}, "pattern", "#/allOf/pattern"),
    ({"allOf": [{"type": "string"}, {"type": "integer"}]}, "allOf", "#/allOf"),
    ({"type": "string", "format": "date", "maxLength": 12}, "maxLength", "#/maxLength"),
    ({"oneOf": [{"type": "integer"}, {"minimum": 3}]}, "oneOf", "#/oneOf"),
    ({"$ref": "https://example.com/s.json"}, "$ref", "#/$ref"),
    ({"items": {"$ref": "#/$defs/missing"}}, "$ref", "#/items/$ref"),
])
def test_unsupported_keywords_raise_with_their_pointer(schema, keyword, pointer):
    with pytest.raises(gcd.UnsupportedSchemaError) as e:
        gcd.Grammar.from_json_schema(schema)
    assert isinstance(e.value, gcd.GCDError) and e.value.keyword == keyword and e.value.pointer == pointer
    assert pointer in str(e.value)


def test_compact_whitespace_and_json_text_and_model_classes():
    compact = gcd.Grammar.from_json_schema(json.dumps(POINT), whitespace="compact")
    assert compact.accepts("[1,2]") and not compact.accepts("[1, 2]")

    class Model:   # pydantic-style: anything with model_json_schema()
        @staticmethod
        def model_json_schema():
            return PERSON

    assert gcd.Grammar.from_json_schema(Model).accepts('{"name": "x", "age": 1}')
    with pytest.raises(ValueError):
        gcd.Grammar.from_json_schema(POINT, whitespace="pretty")


def _walks(compiled, tokenizer, vocab, text: str) -> bool:
    """Whether ``text``, tokenized by the tokenizer, walks the matcher to an accepting end (True
    too when the tokenizer changes a rare character: nothing to walk)."""
    ids = tokenizer.encode(text, add_special_tokens=False)
    if b"".join(vocab.token_bytes(t) for t in ids) != text.encode():
        return True
    m = compiled.matcher()
    return all(m.consume_token(t) for t in ids) and m.is_accepting()


@pytest.mark.parametrize("name", SCHEMAS)
def test_drawn_instances_walk_token_by_token_with_smollm2(smollm2_tokenizer, smollm2_vocab, grammars, name):
    compiled = gcd.GrammarCompiler(smollm2_vocab, progress=False, precompute_seconds=0).compile(grammars[name])

    @settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
    @given(from_schema(SCHEMAS[name]))
    def check(instance):
        text = json.dumps(ordered(instance), ensure_ascii=False)
        assert _walks(compiled, smollm2_tokenizer, smollm2_vocab, text), text

    check()


@pytest.mark.parametrize("name", ["pet", "employee", "colour", "draft 7", "extensions", "map"])
def test_merged_schemas_walk_token_by_token_with_smollm2(smollm2_tokenizer, smollm2_vocab, name):
    schema, valid, invalid = MERGED[name]
    compiled = gcd.GrammarCompiler(smollm2_vocab, progress=False, precompute_seconds=0).compile(
        gcd.Grammar.from_json_schema(schema))
    for text in valid:
        assert _walks(compiled, smollm2_tokenizer, smollm2_vocab, text), text
    for text in invalid:
        assert not _walks(compiled, smollm2_tokenizer, smollm2_vocab, text), text


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.one_of(st.none(), st.integers(-10**4, 10**4)), st.one_of(st.none(), st.integers(-10**4, 10**4)),
       st.sampled_from(["minimum", "exclusiveMinimum"]), st.sampled_from(["maximum", "exclusiveMaximum"]),
       st.lists(st.integers(-2 * 10**4, 2 * 10**4), min_size=5, max_size=20))
def test_integer_bounds_are_exact(lo, hi, lo_key, hi_key, probes):
    schema = {"type": "integer", **({lo_key: lo} if lo is not None else {}), **({hi_key: hi} if hi is not None else {})}
    try:
        grammar = gcd.Grammar.from_json_schema(schema)
    except gcd.UnsupportedSchemaError:   # no integer in the bounds
        assert not any(jsonschema.Draft202012Validator(schema).is_valid(n) for n in range(-2 * 10**4, 2 * 10**4))
        return
    for n in [*probes, *(b + d for b in (lo, hi) if b is not None for d in (-1, 0, 1))]:
        assert grammar.accepts(str(n)) == jsonschema.Draft202012Validator(schema).is_valid(n), (schema, n)
    assert not grammar.accepts("01") and not grammar.accepts("1.0")


FORMAT_CHECKER = jsonschema.Draft202012Validator.FORMAT_CHECKER
# near a format's strings: its own characters, some others, and JSON escapes of them
FORMAT_TEXT = {"date": r"[0-9]{4}-[0-9]{2}-[0-9]{2}|[0-9]{3,5}-[0-9]{1,2}-[0-9]{1,3}|2024-02-29|[0-9-]{8,11}",
               "ipv4": r"([0-9]{1,3}\.){3}[0-9]{1,3}|(25[0-9]|0[0-9]?)(\.[0-9]{1,3}){2,4}",
               "uuid": r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|[0-9a-gA-G-]{36}",
               "time": r"([01][0-9]|2[0-9]):[0-6][0-9]:[0-6][0-9](\.[0-9]{0,3})?([Zzt]|[+-][0-2][0-9]:[0-6][0-9]|)\n?",
               "date-time": r"(2024-02-29|2023-02-29|[0-9]{4}-[01][0-9]-[0-3][0-9])[Tt ]([01][0-9]|2[0-9]):[0-5][0-9]:"
                            r"[0-6][0-9](\.[0-9]{0,2})?([Zz]|[+-][0-2][0-9]:[0-5][0-9])?\n?",
               "email": r"[a-z@. \n]{0,8}",
               "ipv6": r"([0-9a-fA-F]{1,5}:{1,2}){0,8}[0-9a-fA-F]{0,4}|::1?|([0-9a-f]{1,4}:){1,6}:?"
                       r"(25[0-9]|0?[0-9]{1,2})(\.[0-9]{1,3}){3}|::ffff:[0-9.]{7,15}|fe80::1%eth0",
               "uri": r"[a-zA-Z+][a-z0-9+.-]{0,3}:(//([a-z:]+@)?(\[[0-9a-fv:.]{2,12}\]|[a-z0-9.%]{0,6})(:[0-9]{0,3})?)?"
                      r"(/[a-z0-9%:@!$&'()*+,;= -]{0,4}){0,3}(\?[a-z=&/?]{0,5})?(#[a-z/?#]{0,4})?\n?|[a-z :/%]{0,8}",
               "uri-reference": r"(//[a-z.@:\[\]]{0,5})?(/?[a-z0-9:%@ ]{0,4}){0,3}(\?[a-z=?]{0,3})?(#[a-z#]{0,3})?\n?"
                                r"|[a-z]{1,3}:[a-z/]{0,5}|[a-z :/%?#\[\]]{0,8}"}


@pytest.mark.parametrize("name", sorted(FORMAT_TEXT))
def test_formats_agree_with_jsonschema(name):
    schema = {"type": "string", "format": name}
    grammar = gcd.Grammar.from_json_schema(schema)
    validator = jsonschema.Draft202012Validator(schema, format_checker=FORMAT_CHECKER)

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.from_regex(FORMAT_TEXT[name], fullmatch=True), st.data())
    def agree(text, data):
        doc = _json_text(text, data)
        assert grammar.accepts(doc) == validator.is_valid(json.loads(doc)), doc

    agree()


@pytest.mark.parametrize("name, valid, invalid", [
    ("date", ["2024-02-29", "2000-02-29", "2016-02-29", "1996-02-29", "0001-01-01", "9999-12-31", "2023-04-30"],
     ["2023-02-29", "1900-02-29", "2100-02-29", "0000-01-01", "2024-04-31", "2024-13-01", "2024-1-01", "24-01-01"]),
    ("ipv4", ["1.2.3.4", "255.255.255.255", "0.0.0.0", "10.0.0.255"],
     ["256.1.1.1", "01.2.3.4", "1.2.3", "1.2.3.4.5", "1.2.3.-4"]),
    ("uuid", ["123e4567-e89b-12d3-a456-426614174000", "123E4567-E89B-12D3-A456-426614174000"],
     ["123e4567e89b12d3a456426614174000", "123e4567-e89b-12d3-a456-42661417400g", "{123e4567-e89b-12d3-a456-426614174000}"]),
    ("time", ["12:00:00Z", "23:59:59.123+01:00", "00:00:00z", "08:30:00-05:00"],
     ["24:00:00Z", "12:00:60Z", "12:00:00", "12:00Z", "12:00:00+1:00"]),
    ("date-time", ["2024-02-29T12:00:00Z", "1985-04-12t23:20:50.52z", "1996-12-19T16:39:57-08:00"],
     ["2023-02-29T12:00:00Z", "2024-01-01 12:00:00Z", "2024-01-01T12:00:00", "0000-01-01T00:00:00Z"]),
    ("email", ["ada@example.com", "a@b", "@"], ["ada.example.com", ""]),
    ("ipv6", ["::1", "::", "2001:db8::8a2e:370:7334", "::ffff:192.0.2.128", "1:2:3:4:5:6:7:8", "1::8"],
     ["1:2:3:4:5:6:7:8:9", "1::2::3", "12345::", "::ffff:192.0.2.256", "fe80::1%eth0", "::ffff:01.2.3.4"]),
    ("uri", ["https://example.com/a/b?q=1#top", "mailto:ada@example.com", "urn:isbn:0451450523", "http://[::1]:80/",
             "file:///etc/hosts", "a:"],
     ["example.com", "/relative/path", "http://exa mple.com", "http://[::1/", "1http://x", ""]),
    ("uri-reference", ["https://example.com/a", "/relative/path", "../up", "?q=1", "#frag", "", "//host/x"],
     ["http://exa mple.com", "a:b c", "%zz", "//[::1/"]),
])
def test_format_tables(name, valid, invalid):
    schema = {"type": "string", "format": name}
    grammar = gcd.Grammar.from_json_schema(schema)
    validator = jsonschema.Draft202012Validator(schema, format_checker=FORMAT_CHECKER)
    for text in valid:
        assert validator.is_valid(text) and grammar.accepts(json.dumps(text)), text
    for text in invalid:
        assert not validator.is_valid(text) and not grammar.accepts(json.dumps(text)), text


def test_a_format_without_a_type_constrains_only_strings():
    grammar = gcd.Grammar.from_json_schema({"properties": {"d": {"format": "date"}}})
    assert grammar.accepts('{"d": 1}') and grammar.accepts('{"d": "2024-01-31"}') and grammar.accepts('{"d": null}')
    assert not grammar.accepts('{"d": "2024-01-32"}')


def shuffled(value, rng):
    """``value`` with every object's keys in a random order."""
    if isinstance(value, dict):
        keys = list(value)
        rng.shuffle(keys)
        return {k: shuffled(value[k], rng) for k in keys}
    if isinstance(value, list):
        return [shuffled(v, rng) for v in value]
    return value


@pytest.fixture(scope="module")
def any_order():
    return {name: gcd.Grammar.from_json_schema(schema, property_order="any") for name, schema in SCHEMAS.items()}


@pytest.mark.parametrize("name", SCHEMAS)
def test_any_order_accepts_instances_with_keys_in_any_order(any_order, name):
    grammar = any_order[name]

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(from_schema(SCHEMAS[name]), st.randoms(use_true_random=False))
    def check(instance, rng):
        jsonschema.validate(instance, SCHEMAS[name])
        text = json.dumps(shuffled(instance, rng), ensure_ascii=False)
        assert grammar.accepts(text), text

    check()


@pytest.mark.parametrize("text, ok", [
    ('{"age": 3, "name": "x"}', True), ('{"tags": [], "age": 3, "name": "x"}', True),
    ('{"age": 3}', False),                                   # a required property missing
    ('{"age": 3, "name": "x", "age": 4}', False),            # a property twice
    ('{"name": "x", "age": 3, "extra": 1}', False),          # additionalProperties: false
])
def test_any_order_table(any_order, text, ok):
    assert any_order["person"].accepts(text) is ok
    assert ok or not gcd.Grammar.from_json_schema(PERSON).accepts(text)


def test_any_order_refuses_objects_too_large_for_it():
    schema = {"type": "object", "properties": {f"p{i}": {"type": "integer"} for i in range(9)}}
    with pytest.raises(gcd.UnsupportedSchemaError, match="9 properties in any order"):
        gcd.Grammar.from_json_schema(schema, property_order="any")
    gcd.Grammar.from_json_schema(schema)   # in schema order: fine


PATTERNS = [r"^[a-z]+$", r"^\d{3}-\d{4}$", "abc", r"^(foo|bar)/baz", r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$", r"^.{2}$",
            r"^[A-Z]{2}[0-9]*$", r"x?y+$", r'^[^"\\]*$']


def _json_text(text: str, data) -> str:
    """``text`` as a JSON string, each character as json.dumps writes it or as \\u escapes (hex
    digits in either case; a surrogate pair outside the BMP)."""
    out = []
    for ch in text:
        if data.draw(st.integers(0, 3)) == 0:
            units, case = ch.encode("utf-16-be"), data.draw(st.sampled_from("xX"))
            out.append("".join(f"\\u{int.from_bytes(units[i:i + 2], 'big'):04{case}}" for i in range(0, len(units), 2)))
        else:
            out.append(json.dumps(ch, ensure_ascii=False)[1:-1])
    return '"' + "".join(out) + '"'


@pytest.mark.parametrize("pattern", PATTERNS)
def test_patterns_agree_with_jsonschema(pattern):
    """gcd's reading of ``pattern`` is Python's re.search on the decoded string, as in
    jsonschema: strings drawn from the pattern, near it and at random, with random escapes."""
    schema = {"type": "string", "pattern": pattern}
    grammar = gcd.Grammar.from_json_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    text = st.one_of(st.from_regex(pattern), st.from_regex(pattern).map(lambda s: s[1:] + s[:1]),
                     st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=6),
                     st.text(alphabet='ab/"\\\n\t xyz09-@.', max_size=8))

    @settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
    @given(text, st.data())
    def agree(s, data):
        doc = _json_text(s, data)
        assert grammar.accepts(doc) == validator.is_valid(json.loads(doc)), (pattern, doc)

    agree()


@pytest.mark.parametrize("pattern, why", [(r"^a(?=b)", "lookaround"), (r"^(a)\1$", "backreference"),
                                          (r"\bword\b", "anchor"), (r"(?i)abc", "inline flags"),
                                          (r"^(?i:abc)$", "inline flags"), (r"a^b", "anchor")])
def test_patterns_gcd_cannot_express_raise(pattern, why):
    with pytest.raises(gcd.UnsupportedSchemaError, match=why) as e:
        gcd.Grammar.from_json_schema({"properties": {"code": {"type": "string", "pattern": pattern}}})
    assert e.value.pointer == "#/properties/code/pattern"


JSON_NUMBER = r"-?(0|[1-9][0-9]{0,3})(\.[0-9]{1,3})?([eE][+-]?[0-9]{1,2})?"


@pytest.mark.parametrize("bounds", [{"minimum": 0}, {"exclusiveMinimum": 0}, {"maximum": 0}, {"exclusiveMaximum": 0},
                                    {"minimum": 0, "maximum": 0.0}, {"minimum": 0, "exclusiveMinimum": 0}])
def test_number_bounds_of_zero_agree_with_jsonschema(bounds):
    schema = {"type": "number", **bounds}
    grammar = gcd.Grammar.from_json_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)

    @settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.one_of(st.from_regex(JSON_NUMBER, fullmatch=True), st.sampled_from(["0", "-0", "-0.0e5", "0.000"])))
    def agree(text):
        assert grammar.accepts(text) == validator.is_valid(json.loads(text)), text

    agree()


def test_number_bounds_go_by_the_decimal_value():
    """1e-400 is positive, though Python's json reads it as 0.0 (so jsonschema disagrees)."""
    assert gcd.Grammar.from_json_schema({"type": "number", "exclusiveMinimum": 0}).accepts("1e-400")
    with pytest.raises(gcd.UnsupportedSchemaError, match="no number lies within"):
        gcd.Grammar.from_json_schema({"type": "number", "exclusiveMinimum": 0, "maximum": 0})


# -- conjunctions, siblings, drafts: each schema with instances jsonschema calls valid / invalid
MERGED = {
    "pet": ({"$defs": {
        "Cat": {"type": "object", "properties": {"kind": {"const": "cat"}, "lives": {"type": "integer", "minimum": 0,
                                                                                  "maximum": 9}},
                "required": ["kind", "lives"]},
        "Dog": {"type": "object", "properties": {"kind": {"const": "dog"}, "good": {"type": "boolean"}},
                "required": ["kind"]}},
        "oneOf": [{"$ref": "#/$defs/Cat"}, {"$ref": "#/$defs/Dog"}]},
        ['{"kind": "cat", "lives": 9}', '{"kind": "dog"}', '{"kind": "dog", "good": true, "lives": 99}'],
        ['{"kind": "cat"}', '{"kind": "cat", "lives": 10}', '{"kind": "fox"}', '{"lives": 1}', "[]"]),
    "employee": ({"$defs": {"person": {"type": "object", "properties": {"name": {"type": "string", "minLength": 1}},
                                       "required": ["name"]}},
                  "allOf": [{"$ref": "#/$defs/person"},
                            {"properties": {"salary": {"type": "integer", "minimum": 0}}, "required": ["salary"]}]},
                 ['{"name": "Ada", "salary": 10}', '{"name": "Ada", "salary": 0, "team": "x"}'],
                 ['{"name": "Ada"}', '{"salary": 1}', '{"name": "", "salary": 1}', '{"name": "A", "salary": -1}']),
    "closed": ({"allOf": [{"type": "object", "properties": {"id": {"type": "integer"}}, "additionalProperties": False},
                          {"properties": {"id": {"minimum": 1}, "name": {"type": "string"}}}]},
               ['{"id": 1}', "{}"], ['{"id": 0}', '{"id": 1, "name": "x"}', '{"name": "x"}']),
    "colour": ({"type": "string", "anyOf": [{"enum": ["red", "green", 7]}, {"pattern": "^#[0-9a-f]{6}$"}]},
               ['"red"', '"#00ff00"'], ["7", '"#00FF00"', '"blue"', "null"]),
    "short enum": ({"type": ["string", "null"], "maxLength": 4, "enum": ["red", "green", None, 1, "blue"]},
                   ['"red"', '"blue"', "null"], ['"green"', "1"]),
    "ref siblings 2020": ({"$defs": {"pos": {"type": "integer", "minimum": 0}},
                           "properties": {"n": {"$ref": "#/$defs/pos", "maximum": 9}}},
                          ['{"n": 0}', '{"n": 9}', '{}'], ['{"n": 10}', '{"n": -1}']),
    "draft 7": ({"$schema": "http://json-schema.org/draft-07/schema#", "markdownDescription": "a config",
                 "definitions": {"port": {"type": "integer", "minimum": 1, "maximum": 65535}},
                 "type": "object", "x-taplo": {"hidden": True},
                 "properties": {"port": {"$ref": "#/definitions/port", "minimum": 1000},   # sibling ignored
                                "hosts": {"type": "array", "items": [{"type": "string"}],
                                          "additionalItems": {"type": "integer"}},
                                "mode": {"type": "string", "format": "our-own-format"}}},
                ['{"port": 5}', '{"hosts": ["a", 1, 2]}', '{"hosts": []}', '{"mode": "anything"}'],
                ['{"port": 0}', '{"hosts": [1]}', '{"hosts": ["a", "b"]}', '{"mode": 1}']),
    "extensions": ({"type": "object", "properties": {"name": {"type": "string"}}, "patternProperties": {"^x-": {}},
                    "additionalProperties": False},
                   ['{"name": "a"}', '{"name": "a", "x-foo": [1]}', '{"x-": 1}'], ['{"name": "a", "y": 1}', '{"xx": 1}']),
    "map": ({"type": "object", "patternProperties": {"^[a-z]+$": {"type": "integer"}, "^_[0-9]$": {"type": "integer"}},
             "required": ["id"], "additionalProperties": False},
            ['{"id": 1}', '{"id": 2, "abc": 1, "_1": 3}'], ['{"id": "x"}', '{"id": 1, "ABC": 1}', '{"abc": 1}']),
    "prefixed maps": ({"type": "object", "patternProperties": {"^description_[a-z]+$": {"type": "string"},
                                                               "^count_": {"type": "integer"}},
                       "additionalProperties": False},
                      ['{"description_en": "x", "count_a": 1}', '{}', '{"count_": 2, "description_fr": ""}'],
                      ['{"description_en": 1}', '{"count_a": "x"}', '{"other": 1}', '{"description_EN": "x"}']),
    "one key of": ({"type": "object", "properties": {"vcs": {"type": "string"}, "url": {"type": "string"}},
                    "oneOf": [{"required": ["vcs"]}, {"required": ["url"]}]},
                   ['{"vcs": "git"}', '{"url": "x", "name": 1}'], ['{}', '{"vcs": "git", "url": "x"}', '{"vcs": 1}']),
    "required vs closed": ({"oneOf": [{"type": "object", "properties": {"a": {}}, "required": ["a"]},
                                      {"type": "object", "properties": {"b": {}}, "additionalProperties": False}]},
                           ['{"a": 1}', '{"b": 1}', '{}', '{"a": 1, "b": 2}', '{"a": 1, "c": 2}'], ['{"c": 1}', "1"]),
    "draft 4": ({"$schema": "http://json-schema.org/draft-04/schema#", "id": "http://example.com/root.json",
                 "type": "object", "properties": {"n": {"type": "integer", "minimum": 0, "exclusiveMinimum": True,
                                                        "maximum": 10, "exclusiveMaximum": False}}},
                ['{"n": 1}', '{"n": 10}'], ['{"n": 0}', '{"n": 11}']),
}


@pytest.mark.parametrize("name", MERGED)
def test_merged_schemas_agree_with_jsonschema(name):
    schema, valid, invalid = MERGED[name]
    check = jsonschema.validators.validator_for(schema)(schema)
    grammar = gcd.Grammar.from_json_schema(schema)
    for text in valid:
        assert check.is_valid(json.loads(text)), text
        assert grammar.accepts(text), text
    for text in invalid:
        assert not check.is_valid(json.loads(text)), text
        assert not grammar.accepts(text), text

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    @given(derivations(grammar.text, grammar.start, separator=" "))
    def words_are_valid(word):
        if grammar.accepts(word):
            assert check.is_valid(json.loads(word)), word

    words_are_valid()


def test_formats_jsonschema_does_not_check_are_annotations():
    # jsonschema's format checker knows no "int32" or "markdown": they constrain nothing
    assert gcd.Grammar.from_json_schema({"type": "integer", "format": "int32"}).accepts(str(2 ** 40))
    assert gcd.Grammar.from_json_schema({"type": "string", "format": "markdown"}).accepts('"# any *text*"')


@pytest.mark.parametrize("schema", [
    {"type": "object", "properties": {"a": {}, "b": {}, "c": {}}, "required": ["b"], "minProperties": 2,
     "maxProperties": 2, "additionalProperties": False},
    {"type": "object", "properties": {"a": {}, "b": {}, "c": {}}, "minProperties": 2, "additionalProperties": False},
    {"type": "object", "properties": {"a": {}}, "minProperties": 1, "maxProperties": 2},
    {"type": "object", "minProperties": 1},
    {"type": "object", "properties": {"a": {}}, "maxProperties": 0},
])
def test_property_counts_agree_with_jsonschema_on_every_key_set(schema):
    grammar, check = gcd.Grammar.from_json_schema(schema), jsonschema.Draft202012Validator(schema)
    for r in range(6):
        for keys in itertools.combinations("abcxy", r):
            text = json.dumps({k: 1 for k in keys})
            assert grammar.accepts(text) == check.is_valid(json.loads(text)), text


def test_min_properties_of_two_beside_additional_keys_raise():
    # {"x": 1, "x": 2} is one property to jsonschema; the grammar would count two
    with pytest.raises(gcd.UnsupportedSchemaError, match="minProperties"):
        gcd.Grammar.from_json_schema({"type": "object", "minProperties": 2})


@pytest.mark.parametrize("schema", [
    {"type": "integer", "multipleOf": 5}, {"type": "integer", "multipleOf": 4}, {"type": "integer", "multipleOf": 100},
    {"type": "integer", "multipleOf": 7, "minimum": -30, "maximum": 100},
    {"type": "integer", "multipleOf": 10, "exclusiveMinimum": 0, "maximum": 1000},
])
def test_integer_multiples_agree_with_jsonschema(schema):
    grammar, check = gcd.Grammar.from_json_schema(schema), jsonschema.Draft202012Validator(schema)
    for n in [*range(-250, 1250), 10 ** 12, 10 ** 12 + 4, -10 ** 15 - 5, 123456789000]:
        assert grammar.accepts(json.dumps(n)) == check.is_valid(n), n


@pytest.mark.parametrize("bounds", [{"minimum": 1, "maximum": 30}, {"minimum": 0, "maximum": 1},
                                    {"exclusiveMinimum": 0.5, "exclusiveMaximum": 2.25}, {"minimum": -1.5},
                                    {"maximum": -0.25}, {"minimum": -30.5, "exclusiveMaximum": -1},
                                    {"minimum": 0.1, "maximum": 0.1}])
def test_number_bounds_agree_with_jsonschema_in_plain_decimals(bounds):
    schema = {"type": "number", **bounds}
    grammar, check = gcd.Grammar.from_json_schema(schema), jsonschema.Draft202012Validator(schema)
    near = [abs(float(v)) for v in bounds.values()]

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.booleans(), st.sampled_from([0, 1, 2, 29, 30, 31, 100, *(int(v) for v in near)]),
           st.text("0123456789", max_size=4), st.sampled_from(["", "0", "9", "5"]))
    def agree(negative, whole, digits, last):
        text = ("-" if negative else "") + str(whole) + ("." + digits + last if digits + last else "")
        assert grammar.accepts(text) == check.is_valid(json.loads(text)), text

    agree()
    assert not grammar.accepts("1e0") and not grammar.accepts("0.5E1")   # the spelling: no exponent


CONDITIONS = [  # (schema with if/then/else, its declared names in the order gcd writes them)
    ({"type": "object", "properties": {"type": {"enum": ["fixed", "auto"]}, "size": {"type": "integer"}},
      "if": {"properties": {"type": {"const": "fixed"}}}, "then": {"required": ["size"]},
      "else": {"properties": {"size": False}}}, ["type", "size"]),
    ({"type": "object", "allOf": [
        {"if": {"properties": {"kind": {"const": "a"}}}, "then": {"properties": {"x": {"type": "integer"}}}},
        {"if": {"properties": {"kind": {"const": "b"}}}, "then": {"properties": {"x": {"type": "string"}}}}]},
     ["kind", "x"]),
    ({"type": "object", "if": {"properties": {"t": {"type": "string"}}, "required": ["t"]},
      "then": {"required": ["s"]}, "else": {"maxProperties": 1}}, ["t", "s"]),
    ({"type": "object", "properties": {"n": {"type": "integer"}}, "if": {"properties": {"n": {"enum": [1, 2]}}},
      "then": {"required": ["one"]}}, ["n", "one"]),
    ({"if": {"type": "object", "properties": {"b": {"const": True}}}, "then": {"required": ["c"]},
      "else": {"type": ["object", "null"]}}, ["b", "c"]),
]


@pytest.mark.parametrize("schema, declared", CONDITIONS)
def test_if_then_else_agrees_with_jsonschema(schema, declared):
    grammar, check = gcd.Grammar.from_json_schema(schema), jsonschema.Draft202012Validator(schema)
    names = ["type", "size", "kind", "x", "t", "s", "n", "one", "b", "c"]
    values = [None, True, False, 0, 1, 2, 3, -1, "a", "b", "fixed", "auto", "x", "", [], {}]

    @settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(st.sampled_from(names), unique=True, max_size=3), st.data())
    def agree(keys, data):
        keys.sort(key=lambda k: (declared.index(k) if k in declared else len(declared), names.index(k)))
        doc = {k: data.draw(st.sampled_from(values)) for k in keys}
        assert grammar.accepts(json.dumps(doc)) == check.is_valid(doc), doc

    agree()
    for other in (None, 1, "s", []):
        assert grammar.accepts(json.dumps(other)) == check.is_valid(other)


def test_if_conditions_gcd_cannot_negate_raise():
    with pytest.raises(gcd.UnsupportedSchemaError, match="if"):
        gcd.Grammar.from_json_schema({"if": {"minProperties": 2}, "then": {"required": ["a"]}})
    with pytest.raises(gcd.UnsupportedSchemaError, match="if"):   # its negation needs every number but 1
        gcd.Grammar.from_json_schema({"properties": {"x": {"type": "number"}}, "if": {"properties": {"x": {"const": 1}}},
                                      "then": {"required": ["y"]}})


def test_ipv6_agrees_with_ipaddress_on_every_group_count():
    import ipaddress

    grammar = gcd.Grammar.from_json_schema({"type": "string", "format": "ipv6"})

    def valid(text):
        try:
            return not getattr(ipaddress.IPv6Address(text), "scope_id", "")
        except ValueError:
            return False

    for before, after in itertools.product(range(9), range(9)):
        for middle in ("::", ":"):
            for tail in ("", ":1.2.3.4" if after else "1.2.3.4"):
                text = ":".join(["a"] * before) + middle + ":".join(["b"] * after) + tail
                assert grammar.accepts(json.dumps(text)) == valid(text), text


def test_grammar_text_is_the_same_whatever_the_hash_seed():
    # the text decides the compile's cache key: set order must not leak into it
    import os
    import subprocess
    import sys

    schemas = [{"type": "integer", "multipleOf": 16, "minimum": -2048, "maximum": 4096},
               *(schema for schema, _, _ in MERGED.values()), *(schema for schema, _ in CONDITIONS)]
    code = ("import json, sys; from gcd.schema import schema_to_lark; "
            "print(json.dumps([schema_to_lark(s) for s in json.loads(sys.stdin.read())]))")
    texts = [subprocess.run([sys.executable, "-c", code], input=json.dumps(schemas), capture_output=True, text=True,
                            check=True, env={**os.environ, "PYTHONHASHSEED": seed}).stdout for seed in ("1", "2")]
    assert texts[0] == texts[1]
