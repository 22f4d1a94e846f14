"""``GrammarCompiler``: a grammar against a vocabulary -> ``CompiledGrammar``, cached on disk.

The disk cache (``default_cache_dir()``) holds one file per compiled grammar under
``compiled/`` and one per vocabulary under ``vocab/`` (the arrays every grammar over that
vocabulary starts from), in the format of ``gcd.store``: JSON and raw arrays, memory-mapped
read-only on load, never code. A file's name is the compile's cache key: a hash of what
decides the language and the lexing, the vocabulary, and gcd's own source.
"""
from __future__ import annotations

import collections
import contextlib
import functools
import gc
import hashlib
import os
import random
import re
import threading
import time
import warnings
from pathlib import Path

import numpy as np

from gcd import store
from gcd.automata import TokenAutomata, vocabulary_groups
from gcd.grammar import Grammar
from gcd.parser import ParseTable
from gcd.recognizer import Recognizer
from gcd.vocab import Vocabulary

CACHE_FORMAT = 7   # the layout of a cache file; the source digest covers the code that reads it
_VOCAB_ARRAYS = ("flat_bytes", "token_starts", "lengths")


def default_cache_dir() -> Path:
    """``$GCD_CACHE_DIR`` or ``~/.cache/gcd``; compiled grammars live in its ``compiled/``."""
    return Path(os.environ.get("GCD_CACHE_DIR") or Path.home() / ".cache" / "gcd")


@functools.cache
def source_digest() -> str:
    """sha256 of gcd's own source files: any change to the code gives new cache keys."""
    h = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


class CompiledGrammar:
    """A grammar compiled against a vocabulary: ``matcher()`` per sequence; picklable.

    Masks are computed lazily beyond what compilation precomputed and cached inside, within
    ``cache_bytes`` (see ``GrammarCompiler``); the caches never change what a mask is.
    Matchers of one compiled grammar may be used from several threads.
    """

    def __init__(self, grammar: Grammar, vocab: Vocabulary, automata: TokenAutomata, compile_seconds: float,
                 cache_key: str) -> None:
        self.grammar = grammar
        self.vocab = vocab
        self.automata = automata
        self.compile_seconds = compile_seconds
        self.cache_key = cache_key
        self._ignorable: np.ndarray | None = None

    def matcher(self, *, max_trailing: int | None = None):
        """A new ``Matcher`` at the start of the text. ``max_trailing``: once the text is a word
        and this many tokens made only of ``%ignore`` text (whitespace, comments) have followed
        it, only EOS (default None: no bound, the grammar's exact language)."""
        from gcd.matcher import Matcher

        return Matcher(self, max_trailing=max_trailing)

    def ignorable_tokens(self) -> np.ndarray:
        """bool ``[V]`` (read-only): tokens whose text is one or more ``%ignore`` lexemes."""
        if self._ignorable is None:
            patterns = [t.pattern.to_regexp() for t in self.grammar.terminals if t.name in self.grammar.ignore]
            flags = np.zeros(self.vocab.size, dtype=bool)
            if patterns:
                whole = re.compile("(?:" + "|".join(f"(?:{p})" for p in patterns) + ")+")
                specials = self.vocab.special_token_ids
                for t in range(self.vocab.size):
                    data = self.vocab.token_bytes(t)
                    if data and t not in specials:
                        try:
                            flags[t] = whole.fullmatch(data.decode("utf-8")) is not None
                        except UnicodeDecodeError:
                            pass
            flags.flags.writeable = False
            self._ignorable = flags
        return self._ignorable

    @property
    def bitmask_width(self) -> int:
        """int32 words per bitmask row: ceil(vocab size / 32)."""
        return self.automata.words

    def stats(self) -> dict:
        rec = self.automata.recognizer
        table = rec.parser.table
        return {
            "terminals": len(self.grammar.terminals),
            "rules": len(self.grammar.rules),
            "parser": "LALR(1)" if table.is_lalr else f"general ({len(table.conflicts)} conflicts)",
            "parser_states": len(table.actions),
            "lexer_candidate_sets": rec.lexer.n_candidate_sets,
            "lexer_states": rec.lexer.n_states,
            **self.automata.stats(),
            "vocab_size": self.vocab.size,
            "compile_seconds": round(self.compile_seconds, 3),
        }

    def export(self) -> tuple[dict, dict]:
        """(JSON-able structure, arrays): what the cache file holds."""
        rec_meta, rec_arrays = self.automata.recognizer.export()
        aut_meta, aut_arrays = self.automata.export()
        meta = {"format": CACHE_FORMAT, "key": self.cache_key, "vocab": self.vocab.fingerprint,
                "grammar": {"start": self.grammar.start, "terminals": len(self.grammar.terminals),
                            "rules": len(self.grammar.rules),
                            "path": str(self.grammar.path) if self.grammar.path else None},
                "compile_seconds": self.compile_seconds, "created": time.time(),
                "recognizer": rec_meta, "automata": aut_meta}
        return meta, {**rec_arrays, **aut_arrays}

    def __reduce__(self):
        return _unpickle, (self.grammar, self.vocab, store.encode(*self.export()))


def _unpickle(grammar: Grammar, vocab: Vocabulary, data: bytes) -> CompiledGrammar:
    meta, arrays = store.decode(data)
    return _restore(grammar, vocab, meta, arrays, shared_groups(vocab))


def _restore(grammar: Grammar, vocab: Vocabulary, meta: dict, arrays: dict, groups: dict,
             cache_bytes: int = 512 << 20) -> CompiledGrammar:
    """A compiled grammar from a cache file's contents; ``StoreError`` if they do not fit."""
    try:
        if meta.get("format") != CACHE_FORMAT or meta.get("vocab") != vocab.fingerprint:
            raise store.StoreError("written by another gcd or for another vocabulary")
        with _gc_paused():
            return _restore_objects(grammar, vocab, meta, arrays, groups, cache_bytes)
    except store.StoreError:
        raise
    except (KeyError, ValueError, IndexError, TypeError) as e:
        raise store.StoreError(f"inconsistent contents: {type(e).__name__}: {e}") from None


@contextlib.contextmanager
def _gc_paused():
    """Bulk loading allocates many small objects, each batch of which would start a collection
    of the whole heap (slow with torch loaded); none of them is garbage."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _restore_objects(grammar: Grammar, vocab: Vocabulary, meta: dict, arrays: dict, groups: dict,
                     cache_bytes: int) -> CompiledGrammar:
    lexer_arrays = {k[len("lexer."):]: v for k, v in arrays.items() if k.startswith("lexer.")}
    rec = Recognizer(grammar, table=ParseTable.from_json(meta["recognizer"]["table"]),
                     lexer=(meta["recognizer"]["lexer"], lexer_arrays), cache_items=cache_items(cache_bytes))
    automata = TokenAutomata(rec, vocab, cache_bytes, shared_groups=groups)
    automata.restore(meta["automata"], arrays)
    return CompiledGrammar(grammar, vocab, automata, float(meta["compile_seconds"]), meta["key"])


_shared_lock = threading.Lock()
_shared: dict[str, dict] = {}   # vocabulary fingerprint -> its groups (loaded or computed), per process


def shared_groups(vocab: Vocabulary, cache_dir: Path | None = None) -> dict:
    """The vocabulary's token groups that all its grammars share: read from (or written to)
    ``cache_dir/vocab`` when a cache folder is given, and kept for the process. The
    vocabulary's own arrays (token bytes, offsets, lengths) are taken from the file too."""
    with _shared_lock:
        groups = _shared.get(vocab.fingerprint)
        if groups is not None:
            return groups
        path = cache_dir / "vocab" / f"{vocab_key(vocab)}.gcd" if cache_dir is not None else None
        if path is not None and path.exists():
            try:
                meta, arrays = store.read(path)
                if meta.get("key") != vocab_key(vocab) or meta.get("vocab") != vocab.fingerprint:
                    raise store.StoreError("the file's key is not its name")
                groups = {k[len("groups."):]: v for k, v in arrays.items() if k.startswith("groups.")}
                missing = {"starts", "ids", "offsets", "bitsets", "rows", "uniform", "digests", "first_bytes"} - set(groups)
                if missing or not set(_VOCAB_ARRAYS) <= set(arrays):
                    raise store.StoreError(f"arrays missing: {sorted(missing)}")
                for name in _VOCAB_ARRAYS:
                    vocab.__dict__.setdefault(name, arrays[name])
            except store.StoreError as e:
                groups = None
                warnings.warn(f"gcd: rebuilding the unusable cache file {path}: {e}", stacklevel=3)
        if groups is None:
            groups = vocabulary_groups(vocab)
            if path is not None:
                arrays = {name: getattr(vocab, name) for name in _VOCAB_ARRAYS}
                arrays.update({f"groups.{k}": v for k, v in groups.items()})
                store.write(path, {"key": vocab_key(vocab), "vocab": vocab.fingerprint, "size": vocab.size,
                                   "created": time.time()}, arrays)
        _shared[vocab.fingerprint] = groups
        return groups


def cache_items(cache_bytes: int) -> int:
    """Entries of each item-counted cache (parser steps, viability) for a byte budget: one per 4 KiB."""
    return max(64, cache_bytes // 4096)


def vocab_key(vocab: Vocabulary) -> str:
    """The name of a vocabulary's cache file: its fingerprint, and gcd's format and source."""
    return hashlib.sha256(f"{CACHE_FORMAT}|{source_digest()}|{vocab.fingerprint}".encode()).hexdigest()[:32]


class GrammarCompiler:
    """Compiles grammars for one vocabulary.

    ``cache_dir``: where compiled grammars are kept (default ``default_cache_dir()``);
    ``cache=False`` turns the disk cache off (default: on, unless ``$GCD_CACHE=0``).
    ``progress``: show a progress bar on compiles that take more than a second.
    ``precompute_seconds``: how long compiling may spend lexing the vocabulary from the
    lexer states decoding will meet and warming the masks of the parser configurations it
    will meet first (breadth-first from the start, then along seeded random walks), so that
    first visits do not stall (default: 0.5 s plus 1.7 s per 50k tokens, at most 12 s; it
    stops earlier when there is nothing left to do, or after ``warm_inside`` masks inside
    lexemes and ``walk_masks`` along walks).
    ``cache_bytes``: the budget of each compiled grammar's in-memory caches (default 512 MiB):
    masks and token outcomes stay within it, and the parser's and recogniser's caches keep one
    entry per 4 KiB of it (a few hundred bytes each); beyond that the least recently used
    entries are evicted, a few at a time.
    """

    def __init__(self, vocab: Vocabulary, *, cache: bool | None = None, cache_dir: str | Path | None = None,
                 progress: bool = True, precompute_seconds: float | None = None,
                 cache_bytes: int = 512 << 20) -> None:
        if not isinstance(vocab, Vocabulary):
            raise TypeError(f"GrammarCompiler needs a gcd.Vocabulary, not {type(vocab).__name__}")
        self.vocab = vocab
        self.cache = os.environ.get("GCD_CACHE", "1") != "0" if cache is None else cache
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.progress = progress
        self.precompute_seconds = (min(12.0, 0.5 + 1.7 * vocab.size / 50_000) if precompute_seconds is None
                                   else precompute_seconds)
        self.cache_bytes = cache_bytes
        self.explore_configs = 1000    # parser configurations explored from the start
        self.warm_masks = 1000         # of them, those whose masks compiling computes
        self.warm_inside = 1000        # masks computed for them inside a lexeme (each kept in the cache file)
        self.walk_length = 60          # terminals per seeded random parser walk (after the breadth-first ones)
        self.walk_patience = 2000      # walks stop when, of this many configurations in a row,
        self.walk_rate = 3             # under this many in 100 needed a new mask
        self.walk_masks = 20_000       # or after computing this many masks (each kept in the cache file)
        self.walk_ends = 8             # lexer states warmed after one token from a lexeme start, the commonest

    def compile(self, grammar: Grammar | str) -> CompiledGrammar:
        if isinstance(grammar, str):
            grammar = Grammar(grammar)
        key = self.cache_key(grammar)
        path = self.cache_path(grammar, key) if self.cache else None
        groups = shared_groups(self.vocab, self.cache_dir if self.cache else None)
        if path is not None and path.exists():
            try:
                with _gc_paused():   # the header's JSON is tens of thousands of small objects too
                    meta, arrays = store.read(path)
                if meta.get("key") != key:
                    raise store.StoreError("the file's key is not its name")
                return _restore(grammar, self.vocab, meta, arrays, groups, self.cache_bytes)
            except store.StoreError as e:  # never executed, never trusted: rebuilt, and said so
                warnings.warn(f"gcd: rebuilding the unusable cache file {path}: {e}", stacklevel=2)
        compiled = self._compile(grammar, key, groups)
        if path is not None:
            store.write(path, *compiled.export())
        return compiled

    def cache_path(self, grammar: Grammar, key: str | None = None) -> Path:
        return self.cache_dir / "compiled" / f"{key or self.cache_key(grammar)}.gcd"

    def cache_key(self, grammar: Grammar) -> str:
        """Hash of a canonical description of what decides the compiled automata: each
        terminal's name, kind (string or regex), pattern, flags and priority, in order; the
        rules (as a set); the ignored terminals; the start; the vocabulary; gcd's source."""
        description = [
            CACHE_FORMAT, source_digest(), self.vocab.fingerprint, grammar.start,
            [[t.name, type(t.pattern).__name__, t.pattern.value, sorted(t.pattern.flags), t.priority]
             for t in grammar.terminals],
            sorted([r.origin.name, [s.name for s in r.expansion]] for r in grammar.rules),
            sorted(grammar.ignore),
        ]
        return hashlib.sha256(repr(description).encode()).hexdigest()[:32]

    def _compile(self, grammar: Grammar, key: str, groups: dict) -> CompiledGrammar:
        t0 = time.perf_counter()
        built = grammar.__dict__.get("recognizer")   # its parse table, if the grammar has one already
        rec = Recognizer(grammar, table=built.parser.table if built is not None else None,
                         cache_items=cache_items(self.cache_bytes))
        automata = TokenAutomata(rec, self.vocab, self.cache_bytes, shared_groups=groups)
        self._precompute(automata, t0 + self.precompute_seconds)
        return CompiledGrammar(grammar, self.vocab, automata, time.perf_counter() - t0, key)

    def _precompute(self, automata: TokenAutomata, deadline: float) -> None:
        """Until the deadline: lex the vocabulary from the lexeme starts of the first parser
        configurations (breadth-first) and of every parser state, warm the first ones' masks,
        lex it from the lexeme starts random walks meet, then from the mid-lexeme states tokens
        end in, warm the masks of the first configurations inside a lexeme (in a key, a number,
        whitespace: where most tokens leave the text), then the masks along random walks."""
        from tqdm.auto import tqdm

        rec = automata.recognizer
        configs = automata.explore(self.explore_configs)
        starts = list(dict.fromkeys([rec.lexeme_start(c)[0] for c in configs] + rec.lexeme_starts()))
        warm = configs[: self.warm_masks]
        with tqdm(total=len(starts) + 2 * len(warm), desc="gcd: compiling grammar", delay=1.0,
                  disable=not self.progress, leave=False) as bar:
            todo, seen = [], set(starts)
            for lex in starts:
                self._more(automata, lex, seen, todo)
                bar.update()
                if time.perf_counter() > deadline:
                    return
            for config in warm:  # masks of the first configurations: their sub-results are shared widely
                automata.mask((config, rec.lexeme_start(config)[0]))
                bar.update()
                if time.perf_counter() > deadline:
                    return
            self._discover(automata, seen, todo, deadline)
            for i, lex in enumerate(todo):  # breadth-first: the mid-lexeme states nearest the starts first
                if time.perf_counter() > deadline:
                    return
                self._more(automata, lex, seen, todo)
                bar.total = bar.n + len(todo) - i + len(warm)   # the mid-lexeme masks come last
                bar.update()
            inside, reachable = self.warm_inside, {}   # lexeme start -> the states a lexeme reaches from it
            for config in warm:
                start = rec.lexeme_start(config)[0][0]
                if start not in reachable:
                    reachable[start] = rec.lexer.reachable(start)
                for s in reachable[start]:
                    state = (config, (s, None))
                    if rec.is_viable(state)[0]:
                        automata.mask(state)
                        inside -= 1
                    if inside <= 0 or time.perf_counter() > deadline:
                        break
                bar.update()
                if time.perf_counter() > deadline:
                    return
                if inside <= 0:
                    break
            bar.total = bar.n + self.walk_masks
            self._wander(automata, deadline, bar)

    def _discover(self, automata: TokenAutomata, seen: set, todo: list, deadline: float) -> None:
        """Random parser walks (seeded) until ``walk_patience`` configurations in a row met no
        new lexeme start or the deadline passes, lexing the vocabulary from each new one: a
        lexeme start first met while decoding costs the most (the whole vocabulary is lexed)."""
        rec, rng, idle = automata.recognizer, random.Random(0), 0
        while idle < self.walk_patience and time.perf_counter() < deadline:
            for config in automata.walk(rng, self.walk_length):
                idle += 1
                start = rec.lexeme_start(config)[0]
                if start not in seen:
                    seen.add(start)
                    self._more(automata, start, seen, todo)
                    idle = 0

    def _wander(self, automata: TokenAutomata, deadline: float, bar) -> None:
        """Random parser walks (seeded: the same every compile) until fewer than ``walk_rate``
        in 100 of the last ``walk_patience`` configurations needed a new mask (the walks have
        met most of what they will meet), ``walk_masks`` masks are computed or the deadline
        passes. At each configuration, warm its masks at its lexeme start and in the
        ``walk_ends`` lexer states most tokens end in from there (inside a string, after a
        number: where decoding is right after one token)."""
        rec, rng, masks = automata.recognizer, random.Random(0), 0
        ends: dict[tuple, list[int]] = {}   # lexeme start -> the lexer states tokens end in from it
        news, recent = collections.deque(), 0   # per configuration: did it need a new mask? How many did
        while masks < self.walk_masks:
            for config in automata.walk(rng, self.walk_length):
                start = rec.lexeme_start(config)[0]
                if start not in ends:
                    ends[start] = [start[0]] + automata.token_ends(start[0])[:self.walk_ends]
                before = automata.computed
                for s in ends[start]:
                    state = (config, (s, None))
                    if rec.is_viable(state)[0]:
                        automata.mask(state)
                new = automata.computed - before
                masks += new
                bar.update(new)
                news.append(new > 0)
                recent += new > 0
                if len(news) > self.walk_patience:
                    recent -= news.popleft()
                if masks >= self.walk_masks or time.perf_counter() > deadline:
                    return
                if len(news) == self.walk_patience and recent * 100 < len(news) * self.walk_rate:
                    return

    @staticmethod
    def _more(automata: TokenAutomata, lex: tuple, seen: set, todo: list) -> None:
        """Lex the vocabulary from ``lex`` and queue the mid-lexeme states its tokens end in."""
        out = automata.outcome((lex[0], None), 0)
        for end in out.dense_ends + out.sparse_ends:
            if end[1] is None and end not in seen:
                seen.add(end)
                todo.append(end)
