"""Token vocabularies: the bytes that each token id stands for."""
from __future__ import annotations

import hashlib
import json
import operator
import re
from collections.abc import Callable, Iterable, Sequence
from functools import cached_property
from typing import Any

import numpy as np

from gcd.errors import VocabularyError

__all__ = ["Vocabulary"]

# Chat end-of-turn markers that join the tokenizer's EOS when its chat template uses them.
_END_OF_TURN = ("<|im_end|>", "<end_of_turn>", "<|eot_id|>")
_CONTROL = re.compile(r"<\|[^|\s]+\|>")
_BYTE_PIECE = re.compile(r"<0x([0-9A-Fa-f]{2})>")
# Round-trip check run by from_hf: ASCII, JSON punctuation, whitespace runs, multi-byte UTF-8.
_SAMPLES = (
    "Hello, world! 0123456789",
    ' {"key": [1, -2.5e3, true, null], "s": "a\\"b\\\\c"}',
    "line one\nline two\n\n\tindented  two  spaces   three\r\n",
    "héllo → 日本語 🎉",
    " leading space",
    "<tag attr='x'>{}[]()~`|^&*%$#@!?;:</tag>",
)


def _byte_level_table() -> dict[int, str]:
    """str.translate table from GPT-2's bytes_to_unicode alphabet to latin-1 chars (one per byte).

    Latin-1 code points outside the alphabet map to U+FFFF so that encoding to latin-1 fails.
    """
    kept = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table = {cp: "\uffff" for cp in range(256)}
    table.update({b: chr(b) for b in kept})
    shifted = (b for b in range(256) if b not in set(kept))
    table.update({256 + n: chr(b) for n, b in enumerate(shifted)})
    return table


_BYTE_LEVEL = _byte_level_table()


def _ids(name: str, values: Iterable[Any], size: int) -> list[int]:
    out = []
    for v in values:
        if isinstance(v, bool):
            raise VocabularyError(f"{name} must hold ints, not bool")
        try:
            i = operator.index(v)
        except TypeError:
            raise VocabularyError(f"{name} must hold ints, not {type(v).__name__}") from None
        if not 0 <= i < size:
            raise VocabularyError(f"{name}: token id {i} is out of range for a vocabulary of {size} tokens")
        out.append(i)
    return out


class Vocabulary:
    """Maps token ids to the bytes they stand for.

    ``tokens[i]`` is token i's bytes; ``None``, ``b""``, ids in ``special_token_ids`` and EOS
    ids are special: ``token_bytes`` gives ``b""`` for them and a grammar never allows them
    (the matcher adds EOS where the text so far is a word of the grammar).
    Equality and hashing go by ``fingerprint``; pickles leave out the cached arrays.
    """

    def __init__(self, tokens: Sequence[bytes | None], *, eos_token_id: int | Sequence[int] | None = None,
                 special_token_ids: Iterable[int] = ()) -> None:
        if isinstance(tokens, (bytes, bytearray, str)):
            raise VocabularyError("tokens must be a sequence of bytes (or None), one per token id")
        try:
            tokens = list(tokens)
        except TypeError:
            raise VocabularyError(f"tokens must be a sequence of bytes (or None), not {type(tokens).__name__}") from None
        if not tokens:
            raise VocabularyError("a vocabulary needs at least one token")
        size = len(tokens)
        if eos_token_id is None:
            eos_token_id = ()
        elif isinstance(eos_token_id, (int, np.integer)):
            eos_token_id = (eos_token_id,)
        eos = tuple(dict.fromkeys(_ids("eos_token_id", eos_token_id, size)))
        if not set(map(type, tokens)) <= {bytes, type(None)}:
            for i, tok in enumerate(tokens):
                if isinstance(tok, (bytes, bytearray)):
                    tokens[i] = bytes(tok)
                elif tok is not None:
                    raise VocabularyError(f"token {i} must be bytes or None, not {type(tok).__name__}: {tok!r:.60}")
        special = set(_ids("special_token_ids", special_token_ids, size)) | set(eos)
        special.update(i for i, tok in enumerate(tokens) if not tok)
        stored = [tok or b"" for tok in tokens]
        for i in special:
            stored[i] = b""
        self.size: int = size
        self.tokens: tuple[bytes, ...] = tuple(stored)
        self.eos_token_ids: tuple[int, ...] = eos
        self.special_token_ids: frozenset[int] = frozenset(special)

    def __len__(self) -> int:
        return self.size

    def __repr__(self) -> str:
        return (f"Vocabulary(size={self.size}, eos_token_ids={self.eos_token_ids}, "
                f"specials={len(self.special_token_ids)}, fingerprint={self.fingerprint[:12]})")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Vocabulary):
            return NotImplemented
        return self.size == other.size and self.fingerprint == other.fingerprint

    def __hash__(self) -> int:
        return hash(self.fingerprint)

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()
                if k not in ("flat_bytes", "token_starts", "lengths", "ids_by_bytes")}

    def token_bytes(self, token_id: int) -> bytes:
        """The bytes of ``token_id`` (``b""`` for special tokens)."""
        if not 0 <= token_id < self.size:
            raise IndexError(f"token id {token_id} is out of range for a vocabulary of {self.size} tokens")
        return self.tokens[token_id]

    @cached_property
    def lengths(self) -> np.ndarray:
        """int32 [V]: byte length of each token (0 for specials). Read-only."""
        out = np.fromiter(map(len, self.tokens), dtype=np.int32, count=self.size)
        out.flags.writeable = False
        return out

    @cached_property
    def token_starts(self) -> np.ndarray:
        """int64 [V + 1]: token i's bytes are ``flat_bytes[token_starts[i]:token_starts[i + 1]]``. Read-only."""
        out = np.zeros(self.size + 1, dtype=np.int64)
        np.cumsum(self.lengths, out=out[1:])
        out.flags.writeable = False
        return out

    @cached_property
    def flat_bytes(self) -> np.ndarray:
        """uint8: every token's bytes, one after another (then one zero byte). Read-only."""
        out = np.frombuffer(b"".join(self.tokens) + b"\0", dtype=np.uint8)
        out.flags.writeable = False
        return out

    @cached_property
    def ids_by_bytes(self) -> dict[bytes, tuple[int, ...]]:
        """The ids of the tokens spelling each byte string, ascending (special tokens left out);
        for spelling fixed text with tokens. Treat as read-only."""
        table: dict[bytes, list[int]] = {}
        for t, data in enumerate(self.tokens):
            if data and t not in self.special_token_ids:
                table.setdefault(data, []).append(t)
        return {data: tuple(ids) for data, ids in table.items()}

    @cached_property
    def fingerprint(self) -> str:
        """sha256 hex digest of all token bytes, the special ids and the EOS ids: a cache key."""
        h = hashlib.sha256(b"gcd.Vocabulary/1")
        counts = (self.size, len(self.special_token_ids), len(self.eos_token_ids))
        for part in (counts, self.lengths, sorted(self.special_token_ids), self.eos_token_ids):
            h.update(np.asarray(part, dtype="<i8").tobytes())
        h.update(b"".join(self.tokens))
        return h.hexdigest()

    @classmethod
    def from_hf(cls, tokenizer: Any, *, eos_token_ids: Sequence[int] | None = None) -> Vocabulary:
        """Exact vocabulary of a Hugging Face tokenizer (fast or slow); ``len(tokenizer)`` tokens.

        Token strings are decoded by the tokenizer's scheme, read from its backend's
        decoder and pre-tokenizer (slow tokenizers: ``byte_decoder`` / ``sp_model``):

        * byte-level BPE (``ByteLevel``; GPT-2, SmolLM2, Llama 3, Qwen): each char of GPT-2's
          bytes_to_unicode alphabet is one byte (``Ġ`` = space, ``Ċ`` = newline);
        * SentencePiece (``Metaspace``, or ``Replace("▁", " ")``; Llama 2, Gemma): ``▁`` = space,
          ``<0xNN>`` = byte NN when the model has byte fallback, otherwise UTF-8 text.

        Special (never allowed by a grammar): ``all_special_ids``, BOS/PAD/UNK/EOS, added tokens
        (marked special or not) other than whitespace runs, ``<|...|>`` control tokens, ids
        without a token. Added whitespace-run tokens stand for their content's UTF-8 bytes. A
        dummy-prefix space that the tokenizer adds at the start of text is not part of any token.

        EOS: ``eos_token_ids`` if given, else ``tokenizer.eos_token_id`` plus each chat
        end-of-turn token (``<|im_end|>``, ``<end_of_turn>``, ``<|eot_id|>``) that the tokenizer
        has as an added token and its chat template uses.

        Raises ``VocabularyError`` if a token cannot be mapped, no EOS is known, or encoding a
        built-in sample text does not give back its exact bytes.
        """
        name = type(tokenizer).__name__
        size = len(tokenizer)
        pieces: list[str | None] = list(tokenizer.convert_ids_to_tokens(list(range(size))))
        added = dict(getattr(tokenizer, "added_tokens_decoder", None) or {})
        special = {i for i in (tokenizer.bos_token_id, tokenizer.pad_token_id, tokenizer.unk_token_id)
                   if i is not None}
        special.update(tokenizer.all_special_ids)
        # added tokens are control tokens unless they are plain whitespace runs (Gemma spells
        # newlines and indentation with those); markup-like ones such as <start_of_image>,
        # <table> or [multimodal] stay out of the grammar's reach even when not marked special
        special.update(i for i, t in added.items() if t.special or t.content.strip())
        special.update(i for i, p in enumerate(pieces) if p is None or (p[:2] == "<|" and _CONTROL.fullmatch(p)))

        decode, scheme = _piece_decoder(tokenizer)
        tokens: list[bytes | None] = [None] * size
        bad: list[str] = []
        for i, piece in enumerate(pieces):
            if piece is None or i in special:
                continue
            try:
                tokens[i] = added[i].content.encode("utf-8") if i in added else decode(piece)
            except (UnicodeError, ValueError):
                bad.append(piece)
        if bad:
            raise VocabularyError(
                f"{name}: cannot map {len(bad)} token(s) to bytes under the {scheme} scheme, e.g. {bad[:5]!r}")

        if eos_token_ids is None:
            eos = [] if tokenizer.eos_token_id is None else [tokenizer.eos_token_id]
            template = getattr(tokenizer, "chat_template", None) or ""
            template = json.dumps(template) if isinstance(template, dict) else str(template)
            by_content = {t.content: i for i, t in added.items()}
            eos += [by_content[m] for m in _END_OF_TURN if m in template and m in by_content]
            if not eos:
                raise VocabularyError(f"{name} has no eos_token_id: pass eos_token_ids=[...]")
            eos_token_ids = eos
        _check_round_trip(tokenizer, tokens, name)
        return cls(tokens, eos_token_id=eos_token_ids, special_token_ids=special)


def _from_byte_level(piece: str) -> bytes:
    return piece.translate(_BYTE_LEVEL).encode("latin-1")


def _unknown(piece: str) -> bytes:
    raise ValueError(piece)


def _metaspace(space: str, byte_fallback: bool) -> Callable[[str], bytes]:
    def decode(piece: str) -> bytes:
        if byte_fallback and piece[:3] == "<0x" and (m := _BYTE_PIECE.fullmatch(piece)):
            return bytes((int(m[1], 16),))
        return piece.replace(space, " ").encode("utf-8")
    return decode


def _components(obj: Any) -> list[dict[str, Any]]:
    """The JSON configs of a tokenizers normalizer/pre-tokenizer/decoder, Sequences flattened."""
    if obj is None:
        return []
    stack, out = [json.loads(obj.__getstate__())], []
    while stack:
        c = stack.pop(0)
        subs = c.get("decoders") or c.get("pretokenizers") or c.get("normalizers")
        if c.get("type") == "Sequence" and subs is not None:
            stack[:0] = subs
        else:
            out.append(c)
    return out


def _piece_decoder(tokenizer: Any) -> tuple[Callable[[str], bytes], str]:
    """(piece -> bytes function, scheme name) for the tokenizer's token strings."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:  # slow (Python) tokenizer
        if hasattr(tokenizer, "byte_decoder"):
            return _from_byte_level, "byte-level"
        if hasattr(tokenizer, "sp_model"):
            return _metaspace("▁", True), "SentencePiece"
        return _unknown, "unknown (slow tokenizer without byte_decoder or sp_model)"
    decoders = _components(backend.decoder)
    types = {c.get("type") for c in decoders}
    if "ByteLevel" in types or "ByteLevel" in {c.get("type") for c in _components(backend.pre_tokenizer)}:
        return _from_byte_level, "byte-level"
    byte_fallback = "ByteFallback" in types or bool(getattr(backend.model, "byte_fallback", False))
    for c in decoders:
        if c.get("type") == "Metaspace":
            return _metaspace(c.get("replacement", "▁"), byte_fallback), "SentencePiece"
        if c.get("type") == "Replace" and c.get("content") == " " and "String" in c.get("pattern", {}):
            return _metaspace(c["pattern"]["String"], byte_fallback), "SentencePiece"
    return _unknown, f"unknown (decoders {sorted(map(str, types))})"


def _check_round_trip(tokenizer: Any, tokens: list[bytes | None], name: str) -> None:
    """Concatenated token bytes of each encoded sample must equal the sample's UTF-8 bytes.

    If the tokenizer adds a dummy-prefix space at the start of text ("x" -> b" x"), one extra
    leading space is allowed (Metaspace adds none to text that already starts with a space).
    """
    def mapped(text: str) -> bytes:
        ids = tokenizer.encode(text, add_special_tokens=False)
        return b"".join(tokens[i] or b"" for i in ids)

    dummy_prefix = mapped("x") == b" x"
    for text in _SAMPLES:
        got, want = mapped(text), text.encode("utf-8")
        if got != want and not (dummy_prefix and got == b" " + want):
            raise VocabularyError(
                f"{name}: token bytes do not round-trip: {text!r} encodes to tokens whose bytes are {got!r}"
                f"{' (after a dummy-prefix space)' if dummy_prefix else ''}; the tokenizer normalises"
                " text or its token scheme is not understood")
