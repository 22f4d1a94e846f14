"""gcd: grammar-constrained decoding with exact token masks.

    g = gcd.Grammar.from_file("grammars/json.lark")
    compiled = gcd.GrammarCompiler(gcd.Vocabulary.from_hf(tokenizer)).compile(g)
    m = compiled.matcher()
    m.fill_bitmask(bitmask, row=0); m.consume_token(token_id); m.is_accepting()

Modules imported on demand: ``gcd.hf`` (transformers loading, ``generate``), ``gcd.vllm``
(a logits processor for vLLM's engine), ``gcd.testing`` (Hypothesis strategies and
``check_grammar`` for your grammars), ``gcd.lint`` (``gcd check``'s warnings).
"""
from gcd.asap import ASApTrie
from gcd.compiler import CompiledGrammar, GrammarCompiler
from gcd.errors import GCDError, GrammarError, StoreError, VocabularyError
from gcd.grammar import Grammar
from gcd.holes import BudgetExceeded, Canvas, Hole, can_complete, complete
from gcd.infill import Infill, infill
from gcd.lm import HFLanguageModel, LanguageModel
from gcd.masks import allocate_token_bitmask, apply_token_bitmask_, bitmask_to_bool
from gcd.matcher import Matcher
from gcd.sampling import Sample, Samples, sample
from gcd.schema import UnsupportedSchemaError
from gcd.vocab import Vocabulary
from gcd import diffusion  # noqa: E402  (gcd.diffusion.generate)

__version__ = "0.1.0"


def __getattr__(name: str):
    """``gcd.GrammarLogitsProcessor`` without importing transformers at ``import gcd``."""
    if name == "GrammarLogitsProcessor":
        from gcd.processor import GrammarLogitsProcessor

        return GrammarLogitsProcessor
    raise AttributeError(f"module 'gcd' has no attribute {name!r}")


__all__ = [
    "ASApTrie",
    "BudgetExceeded",
    "Canvas",
    "CompiledGrammar",
    "GCDError",
    "Grammar",
    "GrammarCompiler",
    "GrammarError",
    "GrammarLogitsProcessor",
    "HFLanguageModel",
    "Hole",
    "Infill",
    "LanguageModel",
    "Matcher",
    "Sample",
    "Samples",
    "StoreError",
    "UnsupportedSchemaError",
    "Vocabulary",
    "VocabularyError",
    "allocate_token_bitmask",
    "apply_token_bitmask_",
    "bitmask_to_bool",
    "can_complete",
    "complete",
    "diffusion",
    "infill",
    "sample",
]
