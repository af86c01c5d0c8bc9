"""qair-course: shared, tested helpers for the chapters on question answering,
information retrieval and retrieval-augmented generation.

One module per idea: ``env`` (where we run), ``text`` (tokens), ``sparse``
(tf-idf, BM25), ``metrics`` (evaluation), ``dense``, ``rag``, ``squad``,
``models`` (loading), ``data`` (the bundled collection), ``grading``.
"""
__version__ = "0.1.0"
