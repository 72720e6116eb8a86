"""Tokenizers that need no download: word-level vocabularies for the tiny models and random weights.

The pretrained backbones bring their own tokenizer (CLIP BPE for ModelScope, UMT5 SentencePiece for
Wan) in their ``tokenizer/`` folder. A model built from a configuration alone (random weights, the
tiny models) uses a small word-level tokenizer instead: a :class:`transformers.PreTrainedTokenizerFast`
over a :mod:`tokenizers` ``WordLevel`` model, lower-cased, split on whitespace and punctuation,
with begin/end tokens. It is saved next to the tiny weights and loads with ``AutoTokenizer``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable

PAD, UNK, BOS, EOS = "[PAD]", "[UNK]", "[BOS]", "[EOS]"
SPECIAL_TOKENS = (PAD, UNK, BOS, EOS)

# A base vocabulary of the words referring expressions are made of (colours, places, motion, the
# kinds of dynamic processes); dataset words are added to it when a tiny model is trained.
BASE_WORDS = """
a an the of in on at to from into onto over under above below behind near next by with and or its it is
that which who this those these one two three left right top bottom middle centre center upper lower side
front back far close corner edge part area region whole big small large tiny little long short thin thick
wide narrow bright dark light pale deep red orange yellow green blue purple pink white black grey gray brown
gold silver golden transparent clear glowing shiny striped spotted moving rising falling spreading growing
shrinking expanding melting burning breaking shattering flickering flashing waving rolling flowing dripping
drifting floating sinking bubbling boiling freezing dissolving inflating deflating turning spinning swirling
crashing splashing rippling blowing pouring leaking exploding collapsing opening closing fading appearing
smoke steam fog mist cloud clouds fire flame flames spark sparks lava water wave waves ripple ripples drop
drops rain snow ice glass pane window fragment fragments shard shards light lights lamp beam sun shadow
candle wax chocolate butter paper match balloon bubble bubbles foam ink paint sand dust powder liquid
surface sky ground floor wall table pan pot cup bowl bottle circle square blob shape object thing stuff
plume column trail ring rings puddle stream jet spray cloudlike slowly quickly fast slow across up down
out away around through toward towards upward downward outward
""".split()


def _words_of(text: str) -> list[str]:
    return re.findall(r"\w+|[^\w\s]", text.lower())


def vocabulary(
    texts: Iterable[str] = (), *, base: Iterable[str] = BASE_WORDS, max_size: int | None = None
) -> list[str]:
    """Special tokens, then the base words, then words of ``texts`` by frequency (ties alphabetical)."""
    counts: dict[str, int] = {}
    for text in texts:
        for word in _words_of(text):
            counts[word] = counts.get(word, 0) + 1
    words: list[str] = list(SPECIAL_TOKENS)
    seen = set(words)
    for word in base:
        word = word.lower()
        if word not in seen:
            seen.add(word)
            words.append(word)
    for word, _ in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        if word not in seen:
            seen.add(word)
            words.append(word)
    if max_size is not None:
        words = words[:max_size]
    return words


def build_word_tokenizer(words: list[str], max_length: int):
    """A word-level ``PreTrainedTokenizerFast`` with ``[BOS] words [EOS]`` and ``[PAD]`` padding."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    if list(words[: len(SPECIAL_TOKENS)]) != list(SPECIAL_TOKENS):
        words = list(SPECIAL_TOKENS) + [w for w in words if w not in SPECIAL_TOKENS]
    vocab = {word: index for index, word in enumerate(dict.fromkeys(words))}
    backend = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    backend.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A {EOS}", special_tokens=[(BOS, vocab[BOS]), (EOS, vocab[EOS])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        model_max_length=max_length,
    )


def offline_tokenizer(vocab_size: int, max_length: int, texts: Iterable[str] = ()):
    """The word-level tokenizer for a model built from its config (at most ``vocab_size`` words)."""
    return build_word_tokenizer(vocabulary(texts, max_size=vocab_size), max_length)


def load_tokenizer(path: str | Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path))
