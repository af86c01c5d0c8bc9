"""Text processing shared by every chapter: one tokenizer, one stop list.

Chapters 1-4 all call :func:`tokenize`, so a term means the same thing in every
notebook and the numbers agree across chapters.

The default tokenizer

* lower-cases the text (``str.lower``),
* keeps maximal runs of unicode letters and digits (the regex ``[^\\W_]+``):
  punctuation, hyphens, apostrophes and underscores split words,
  so ``"Don't stop-words"`` gives ``["don", "t", "stop", "words"]``,
* keeps one-letter tokens (``"a"``, ``"7"``, ``"x"``); drop them with the stop
  list or ``min_len=2`` (scikit-learn's default pattern drops them).

Stemming is optional and uses the Snowball English stemmer from PyStemmer.
"""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from functools import lru_cache

TOKEN_PATTERN = re.compile(r"[^\W_]+")

# Our English stop list: function words only (articles, pronouns, auxiliaries,
# prepositions, conjunctions, a few adverbs), 1-3 per line for easy review.
# Content words such as "new", "first" or "year" are deliberately left in.
STOP_WORDS = frozenset(
    """
    a an the
    and or nor but if then else so than
    of in on at by for with from to into onto upon about above below over under
    between through during before after against among around across along within without
    up down out off near
    is am are was were be been being
    do does did done doing
    have has had having
    will would shall should can could may might must
    i me my mine myself we us our ours ourselves
    you your yours yourself yourselves
    he him his himself she her hers herself
    it its itself they them their theirs themselves
    this that these those there here
    what which who whom whose when where why how
    all any both each few more most other some such
    no not only own same too very just also
    as until while because although though
    s t d ll m re ve
    """.split()
)


def tokenize(
    text: str,
    *,
    stopwords: Iterable[str] | None = None,
    stem: bool = False,
    min_len: int = 1,
) -> list[str]:
    """Split ``text`` into lower-case terms.

    ``stopwords``: terms to drop (pass :data:`STOP_WORDS` for ours).
    ``stem``: apply the Snowball English stemmer after stop-word removal.
    ``min_len``: drop tokens shorter than this many characters.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    if not isinstance(min_len, int) or isinstance(min_len, bool) or min_len < 1:
        raise ValueError(f"min_len must be an int >= 1, got {min_len!r}")
    tokens = TOKEN_PATTERN.findall(text.lower())
    if min_len > 1:
        tokens = [t for t in tokens if len(t) >= min_len]
    if stopwords is not None:
        stop = _stop_set(stopwords)
        tokens = [t for t in tokens if t not in stop]
    if stem:
        tokens = _stemmer().stemWords(tokens)
    return tokens


def content_words(text: str) -> set[str]:
    """The set of terms of ``text`` that are not on :data:`STOP_WORDS`."""
    return set(tokenize(text, stopwords=STOP_WORDS))


def _stop_set(stopwords) -> frozenset:
    if isinstance(stopwords, (set, frozenset)):
        return stopwords
    if isinstance(stopwords, (str, bytes)) or not isinstance(stopwords, Iterable):
        raise TypeError(f"stopwords must be a collection of words, got {type(stopwords).__name__}")
    return frozenset(stopwords)


@lru_cache(maxsize=1)
def _stemmer():
    import Stemmer  # PyStemmer: Snowball stemmers in C

    return Stemmer.Stemmer("english")


def stop_list_effect(documents: Iterable[str], stopwords: Iterable[str] = STOP_WORDS) -> dict:
    """Measure what a stop list removes from a collection.

    Returns token counts, vocabulary sizes and postings counts (one posting per
    distinct (term, document) pair, i.e. the size of an inverted index) with and
    without the stop list, and the share of tokens the stop list removes.
    """
    if isinstance(documents, (str, bytes)) or not isinstance(documents, Iterable):
        raise TypeError(f"documents must be a collection of texts, got {type(documents).__name__}")
    stop = _stop_set(stopwords)
    tokens = postings = kept_tokens = kept_postings = 0
    vocabulary: set[str] = set()
    kept_vocabulary: set[str] = set()
    for doc in documents:
        counts = Counter(tokenize(doc))
        tokens += sum(counts.values())
        postings += len(counts)
        vocabulary.update(counts)
        kept = {t: c for t, c in counts.items() if t not in stop}
        kept_tokens += sum(kept.values())
        kept_postings += len(kept)
        kept_vocabulary.update(kept)
    return {
        "tokens": tokens,
        "tokens_without_stop_words": kept_tokens,
        "vocabulary": len(vocabulary),
        "vocabulary_without_stop_words": len(kept_vocabulary),
        "postings": postings,
        "postings_without_stop_words": kept_postings,
        "share_of_tokens_removed": (tokens - kept_tokens) / tokens if tokens else 0.0,
    }
