"""Argument checks shared by the library. Each returns the checked value (converted where
said) or raises an error that names the argument and says what was expected."""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np


def check_int(value, name: str, low: int = 1) -> int:
    """``value`` if it is an int (not a bool) >= ``low``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    return int(value)


def check_text(value, name: str, *, blank: bool = True) -> str:
    """``value`` if it is a str (and, with ``blank=False``, not only white space)."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")
    if not blank and not value.strip():
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    return value


def check_texts(texts, name: str) -> list[str]:
    """``texts`` as a non-empty list of strings."""
    if isinstance(texts, str):
        raise TypeError(f"{name} must be a list of strings, got one str: wrap it in a list")
    if not isinstance(texts, Sequence) or not texts:
        raise ValueError(f"{name} must be a non-empty list of strings, got {texts!r:.80}")
    bad = next((t for t in texts if not isinstance(t, str)), None)
    if bad is not None:
        raise TypeError(f"{name} must hold only strings, got a {type(bad).__name__}: {bad!r:.60}")
    return list(texts)


def check_array(value, name: str, ndim, *, allow_inf: bool = False) -> np.ndarray:
    """``value`` as a numeric numpy array with ``ndim`` dimensions (an int or a tuple),
    non-empty, without NaN (or infinity, unless ``allow_inf``); integers become float64."""
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError, RuntimeError) as err:
        raise TypeError(f"{name} must be an array of numbers: {err}") from None
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"{name} must be an array of numbers, got dtype {arr.dtype}")
    dims = (ndim,) if isinstance(ndim, int) else ndim
    if arr.ndim not in dims:
        raise ValueError(f"{name} must have {' or '.join(map(str, dims))} dimensions, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape})")
    if arr.dtype.kind != "f":
        arr = arr.astype(np.float64)
    valid = not np.isnan(arr.min()) if allow_inf else np.isfinite(arr).all()  # one pass (min propagates NaN)
    if not valid:
        raise ValueError(f"{name} contains {'NaN' if np.isnan(arr).any() else 'infinity'}")
    return arr


def check_permutation(value, name: str, N: int) -> np.ndarray:
    """``value`` as an int array holding each of 0..N-1 once (one place per document)."""
    rank = np.asarray(value)
    if (rank.shape != (N,) or rank.dtype.kind not in "iu" or rank.min() < 0 or rank.max() >= N
            or np.bincount(rank, minlength=N).max() != 1):
        raise ValueError(f"{name} must be a permutation of 0..{N - 1} (one place per document), got {value!r:.80}")
    return rank


def check_same_dim(A: np.ndarray, a: str, B: np.ndarray, b: str) -> None:
    """``A`` and ``B`` (named ``a`` and ``b``) have vectors of one dimension (their last axis)."""
    if A.shape[-1] != B.shape[-1]:
        raise ValueError(f"{a} and {b} must have the same vector dimension, got {A.shape[-1]} and {B.shape[-1]}")


def check_doc_ids(doc_ids, N: int) -> list:
    """One unique id per document, all str or all int (``None``: 0 .. N-1)."""
    if doc_ids is None:
        return list(range(N))
    if isinstance(doc_ids, (str, bytes)) or not isinstance(doc_ids, Iterable):
        raise TypeError(f"doc_ids must be a list of ids, got {type(doc_ids).__name__}")
    doc_ids = [d.item() if isinstance(d, np.generic) else d for d in doc_ids]
    if len(doc_ids) != N:
        raise ValueError(f"doc_ids must have one id per document: {len(doc_ids)} ids for {N} docs")
    kinds = {type(d) for d in doc_ids}
    if not (kinds <= {str} or kinds <= {int}):
        raise TypeError(f"doc_ids must be all str or all int, got {sorted(k.__name__ for k in kinds)}")
    if len(set(doc_ids)) != N:
        seen, dup = set(), None
        for d in doc_ids:
            if d in seen:
                dup = d
                break
            seen.add(d)
        raise ValueError(f"doc_ids must be unique, {dup!r} appears twice")
    return doc_ids


def ranked_ids(ranking, name: str) -> list:
    """The doc ids of one ranking (a list of ids, or of (doc_id, score) pairs), checked unique."""
    if isinstance(ranking, np.ndarray):
        ranking = ranking.tolist()
    if isinstance(ranking, (str, bytes, Mapping)) or not isinstance(ranking, Sequence):
        raise TypeError(f"{name} must be a list of doc ids, got {type(ranking).__name__}")
    ids = [item[0] if isinstance(item, tuple) and len(item) == 2 else item for item in ranking]
    ids = [d.item() if isinstance(d, np.generic) else d for d in ids]
    try:
        if len(set(ids)) != len(ids):
            raise ValueError(f"{name} lists a doc id more than once")
    except TypeError:
        raise TypeError(f"{name} must hold hashable doc ids (str or int)") from None
    return ids
