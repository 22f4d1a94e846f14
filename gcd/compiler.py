"""``GrammarCompiler``: a grammar against a vocabulary -> ``CompiledGrammar``, cached on disk."""
from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
import time
import warnings
from pathlib import Path

from gcd.automata import TokenAutomata
from gcd.grammar import Grammar
from gcd.vocab import Vocabulary


CACHE_FORMAT = 2   # bumped whenever the pickled layout of a compiled grammar changes


def default_cache_dir() -> Path:
    """``$GCD_CACHE_DIR`` or ``~/.cache/gcd``; compiled grammars live in its ``compiled/``."""
    return Path(os.environ.get("GCD_CACHE_DIR") or Path.home() / ".cache" / "gcd")


class CompiledGrammar:
    """A grammar compiled against a vocabulary: immutable, picklable; ``matcher()`` per sequence.

    Masks are computed lazily beyond what compilation precomputed and cached inside; the
    caches never change what a mask is.
    """

    def __init__(self, grammar: Grammar, vocab: Vocabulary, automata: TokenAutomata, compile_seconds: float) -> None:
        self.grammar = grammar
        self.vocab = vocab
        self.automata = automata
        self.compile_seconds = compile_seconds

    def matcher(self):
        from gcd.matcher import Matcher

        return Matcher(self)

    @property
    def bitmask_width(self) -> int:
        """int32 words per bitmask row: ceil(vocab size / 32)."""
        return self.automata.words

    def stats(self) -> dict:
        rec = self.grammar.recognizer
        return {
            "terminals": len(self.grammar.terminals),
            "rules": len(self.grammar.rules),
            "parser": "LALR(1)" if rec.parser.table.is_lalr else f"general ({len(rec.parser.table.conflicts)} conflicts)",
            "parser_states": len(rec.parser.table.actions),
            "lexer_candidate_sets": rec.lexer.n_candidate_sets,
            "lexer_states": rec.lexer.n_states,
            "token_outcomes": len(self.automata._outcomes),
            "vocab_size": self.vocab.size,
            "compile_seconds": round(self.compile_seconds, 3),
        }


class GrammarCompiler:
    """Compiles grammars for one vocabulary.

    ``cache_dir``: where compiled grammars are kept (default ``default_cache_dir()``);
    ``cache=False`` turns the disk cache off (default: on, unless ``$GCD_CACHE=0``).
    ``progress``: show a progress bar on compiles that take more than a second.
    """

    def __init__(self, vocab: Vocabulary, *, cache: bool | None = None, cache_dir: str | Path | None = None,
                 progress: bool = True) -> None:
        if not isinstance(vocab, Vocabulary):
            raise TypeError(f"GrammarCompiler needs a gcd.Vocabulary, not {type(vocab).__name__}")
        self.vocab = vocab
        self.cache = os.environ.get("GCD_CACHE", "1") != "0" if cache is None else cache
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.progress = progress
        self.max_lexer_states = 2000   # lexer states whose token outcomes compiling precomputes
        self.warm_masks = 300          # parser configurations whose masks compiling precomputes

    def compile(self, grammar: Grammar | str) -> CompiledGrammar:
        if isinstance(grammar, str):
            grammar = Grammar(grammar)
        path = self.cache_dir / "compiled" / f"{self.cache_key(grammar)}.pkl" if self.cache else None
        if path is not None and path.exists():
            try:
                with open(path, "rb") as f:
                    return pickle.load(f)
            except Exception as e:  # a stale or damaged entry is rebuilt, and said so
                warnings.warn(f"gcd: ignoring unreadable compile cache {path}: {e}", stacklevel=2)
        compiled = self._compile(grammar)
        if path is not None:
            _write_atomic(path, pickle.dumps(compiled, protocol=pickle.HIGHEST_PROTOCOL))
        return compiled

    def cache_key(self, grammar: Grammar) -> str:
        from gcd import __version__

        h = hashlib.sha256()
        for part in (__version__, str(CACHE_FORMAT), grammar.start, self.vocab.fingerprint,
                     repr([(t.name, t.pattern.to_regexp(), t.priority) for t in grammar.terminals]),
                     repr([str(r) for r in grammar.rules]), repr(sorted(grammar.ignore))):
            h.update(part.encode() + b"\0")
        return h.hexdigest()[:32]

    def _compile(self, grammar: Grammar) -> CompiledGrammar:
        from tqdm.auto import tqdm

        t0 = time.perf_counter()
        rec = grammar.recognizer
        automata = TokenAutomata(rec, self.vocab)
        configs = automata.explore()
        todo = list(dict.fromkeys(rec.fresh(c) for c in configs))
        seen = set(todo)
        warm = configs[: self.warm_masks]
        with tqdm(total=len(todo) + len(warm), desc="gcd: compiling grammar", delay=1.0,
                  disable=not self.progress, leave=False) as bar:
            while todo:  # the vocabulary lexed from lexeme starts, then from the mid-lexeme states tokens end in
                lex = todo.pop()
                out = automata.outcome(lex, 0)
                bar.update()
                for nxt in out.dense_states + out.sparse_states:
                    if nxt[1] is None and nxt not in seen and len(seen) < self.max_lexer_states:
                        seen.add(nxt)
                        todo.append(nxt)
                        bar.total += 1
            for config in warm:  # masks of the first configurations: their sub-results are shared widely
                automata.mask((config, rec.fresh(config)))
                bar.update()
        return CompiledGrammar(grammar, self.vocab, automata, time.perf_counter() - t0)


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
