"""Pairs of submissions whose solution cells are unusually alike (the instructor report).

Code is normalised before comparing: comments and docstrings dropped, every identifier
that is not a keyword or a builtin renamed ``ID``, literals kept by kind (``NUM``, ``STR``),
and the release's stub lines removed. Each submission is a bag of token n-grams (n = 1..3),
weighted with the course's own tf-idf (:func:`course_lib.sparse.tf_weight`,
:func:`course_lib.sparse.idf_weight`) and compared by cosine (:func:`course_lib.sparse.cosine`).
Reordered functions keep the same bag; renamed variables and changed comments vanish.
"""
from __future__ import annotations

import builtins
import io
import keyword
import tokenize
from collections import Counter
from itertools import combinations

from .sparse import cosine, idf_weight, ngrams, tf_weight

_KEEP = set(keyword.kwlist) | set(dir(builtins))
_SKIP = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
         tokenize.ENCODING, tokenize.ENDMARKER}


def code_tokens(source: str, stub: str = "") -> list[str]:
    """Normalised tokens of ``source`` with the lines of ``stub`` (the release's code) removed."""
    if not isinstance(source, str):
        raise TypeError(f"source must be a str, got {type(source).__name__}")
    stub_lines = {line.strip() for line in stub.splitlines() if line.strip()}
    kept = "\n".join(line for line in source.splitlines()
                     if line.strip() not in stub_lines and not line.lstrip().startswith(("%", "!")))
    tokens, previous = [], None  # previous significant token type (None: start of the code)
    try:
        for tok in tokenize.generate_tokens(io.StringIO(kept + "\n").readline):
            if tok.type in (tokenize.COMMENT, tokenize.NL):
                continue
            statement_start = previous in (tokenize.INDENT, tokenize.NEWLINE, tokenize.DEDENT, None)
            previous = tok.type
            if tok.type in _SKIP or (tok.type == tokenize.STRING and statement_start):
                continue  # layout, or a docstring / bare string statement
            if tok.type == tokenize.NAME:
                tokens.append(tok.string if tok.string in _KEEP else "ID")
            elif tok.type == tokenize.NUMBER:
                tokens.append("NUM")
            elif tok.type == tokenize.STRING:
                tokens.append("STR")
            else:
                tokens.append(tok.string)
    except (tokenize.TokenError, IndentationError, SyntaxError):
        tokens.append("UNPARSABLE")
    return tokens


def _bag(tokens: list[str]) -> Counter:
    return Counter(tokens) + Counter(ngrams(tokens, 2)) + Counter(ngrams(tokens, 3))


def tfidf_vectors(token_lists: dict[str, list[str]]) -> dict[str, dict[str, float]]:
    """{name: {term: tf * idf}} over the given submissions (the corpus for df and N)."""
    bags = {name: _bag(tokens) for name, tokens in token_lists.items()}
    df = Counter(term for bag in bags.values() for term in bag)
    N = len(bags)
    return {name: {t: tf_weight(c) * idf_weight(N, df[t]) for t, c in bag.items()} for name, bag in bags.items()}


def similar_pairs(token_lists: dict[str, list[str]], threshold: float = 0.8,
                  min_tokens: int = 20) -> list[tuple[str, str, float]]:
    """(a, b, cosine) for every pair of submissions with cosine >= ``threshold``, most alike first.

    Submissions with fewer than ``min_tokens`` tokens (blank or nearly) are left out.
    """
    if not 0 <= threshold <= 1:
        raise ValueError(f"threshold must be in [0, 1], got {threshold!r}")
    kept = {name: tokens for name, tokens in token_lists.items() if len(tokens) >= min_tokens}
    if len(kept) < 2:
        return []
    vectors = tfidf_vectors(kept)
    pairs = [(a, b, cosine(vectors[a], vectors[b])) for a, b in combinations(sorted(vectors), 2)]
    return sorted((p for p in pairs if p[2] >= threshold), key=lambda p: (-p[2], p[0], p[1]))
