"""The similarity report: normalised code tokens, the course's tf-idf, planted near-copies found."""
from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from course_lib import similarity

INDEPENDENT = {
    "ana": '''
import math
def tf_weight(count):
    return 1 + math.log10(count) if count > 0 else 0.0

def ngrams(tokens, n=2):
    out = list(tokens)
    for size in range(2, n + 1):
        for i in range(len(tokens) - size + 1):
            out.append(" ".join(tokens[i:i + size]))
    return out
''',
    "ben": '''
import numpy as np
def tf_weight(count):
    c = np.asarray(count, dtype=float)
    w = np.where(c > 0, 1.0 + np.log10(np.maximum(c, 1)), 0.0)
    return float(w) if w.ndim == 0 else w

def ngrams(tokens, n=2):
    result = []
    k = 1
    while k <= n:
        result += [" ".join(tokens[j:j + k]) for j in range(0, len(tokens) - k + 1)]
        k += 1
    return result
''',
    "chloe": '''
from math import log10
def tf_weight(count):
    if count <= 0:
        return 0
    return log10(count) + 1

def ngrams(tokens, n=2):
    grams = [t for t in tokens]
    grams.extend(a + " " + b for a, b in zip(tokens, tokens[1:]))
    if n > 2:
        raise NotImplementedError("only bigrams")
    return grams
''',
    "dev": '''
import math

def ngrams(words, n=2):
    return [" ".join(words[s:s + m]) for m in range(1, n + 1) for s in range(len(words) - m + 1)]

def tf_weight(c):
    try:
        return 0.0 if c == 0 else 1.0 + math.log(c, 10)
    except ValueError:
        raise ValueError("count must be >= 0")
''',
}
# ana's code with the variables renamed, the functions reordered and comments changed
COPY = '''
import math
# n-grams of a token list
def ngrams(words, order=2):
    grams = list(words)   # unigrams first
    for width in range(2, order + 1):
        for start in range(len(words) - width + 1):
            grams.append(" ".join(words[start:start + width]))
    return grams

def tf_weight(c):
    """Log-scaled tf."""
    return 1 + math.log10(c) if c > 0 else 0.0
'''


def test_renames_comments_and_docstrings_vanish():
    a = similarity.code_tokens("def f(x):\n    # hi\n    return x + 1\n")
    b = similarity.code_tokens('def g(count):\n    """Doc."""\n    return count + 2  # bye\n')
    assert a == b == ["def", "ID", "(", "ID", ")", ":", "return", "ID", "+", "NUM"]


def test_stub_lines_are_removed():
    stub = "# YOUR CODE HERE\nraise NotImplementedError()"
    assert similarity.code_tokens("def f():\n    raise NotImplementedError()\n", stub) == ["def", "ID", "(", ")", ":"]


def test_unparsable_code_gives_a_marker_not_an_error():
    assert similarity.code_tokens("def f(:\n  )))")[-1] == "UNPARSABLE"


def test_planted_copy_is_the_only_pair_found():
    tokens = {name: similarity.code_tokens(src) for name, src in {**INDEPENDENT, "eve": COPY}.items()}
    pairs = similarity.similar_pairs(tokens, threshold=0.8)
    assert [(a, b) for a, b, _ in pairs] == [("ana", "eve")], pairs
    others = [c for a, b, c in similarity.similar_pairs(tokens, threshold=0.0) if "eve" not in (a, b)]
    assert max(others) < pairs[0][2] - 0.3, (others, pairs)


def test_blank_submissions_are_left_out():
    tokens = {"a": similarity.code_tokens("x = 1"), "b": similarity.code_tokens("y = 2")}
    assert similarity.similar_pairs(tokens) == []


def test_threshold_is_checked():
    with pytest.raises(ValueError, match="threshold"):
        similarity.similar_pairs({}, threshold=1.5)


@given(st.dictionaries(st.sampled_from("abcde"), st.lists(st.sampled_from(["ID", "(", ")", "NUM", "+"]), max_size=40),
                       max_size=5))
def test_pairs_are_symmetric_bounded_and_sorted(token_lists):
    pairs = similarity.similar_pairs(token_lists, threshold=0.0, min_tokens=1)
    assert all(a < b and -1e-9 <= c <= 1 + 1e-9 for a, b, c in pairs)
    assert [c for _, _, c in pairs] == sorted((c for _, _, c in pairs), reverse=True)
