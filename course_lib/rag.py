"""Retrieval-augmented generation: chunks, retrievers, prompts, readers, citations,
multi-hop retrieval and the evaluation of question answering (chapter 4).

A closed-book language model answers from what it memorised::

    p(x_1, ..., x_n) = prod_{i=1}^{n} p(x_i | [Q:]; q; [A:]; x_{<i})

Retrieval-augmented generation first retrieves passages R(q) for the question q, then
conditions the generator on them with an instruction::

    p(x_1, ..., x_n) = prod_{i=1}^{n} p(x_i | R(q); prompt; [Q:]; q; [A:]; x_{<i})

The pieces, each small enough to check by hand:

* chunking (:func:`chunk_spans`, :func:`chunk_document`, :func:`chunk_corpus`): cut
  documents into windows of ``size`` tokens overlapping by ``overlap`` tokens, keeping
  the document id, the chunk number and the character offsets, so
  ``text[start:end] == chunk["text"]`` and every chunk maps back to its source;
* retrievers behind one interface (:class:`Retriever`: ``search`` gives
  ``[(chunk_id, score), ...]``, ``retrieve`` the chunks themselves): :class:`BM25Retriever`,
  :class:`DenseRetriever`, :class:`HybridRetriever` (reciprocal rank fusion or
  :func:`weighted_fusion`) and :class:`RerankRetriever` (a cross-encoder second stage);
* prompts (:func:`build_prompt`, :func:`make_prompt`): the open-book template
  "Based on these texts, answer this question." with numbered passages, a closed-book
  template, few-shot examples as earlier chat turns, the model's chat template, and a
  token budget that drops the lowest-ranked passages first and says so;
* readers: :class:`GenerativeReader` (a :class:`course_lib.generate.Generator`) and
  :class:`ExtractiveReader` (a span-prediction model, :func:`course_lib.squad.answer_batch`);
  :class:`RAG` joins a retriever and a reader, answers :data:`NO_ANSWER` when no
  passage scores above ``min_score``, and cites the numbered passages it used
  (:func:`map_citations`);
* multi-hop retrieval (:func:`second_hop_query`, :func:`multi_hop`);
* evaluation (:func:`contains_answer`, :func:`answer_rank`, :func:`evaluate_qa`,
  :func:`answer_mcq`), on top of :mod:`course_lib.metrics` (EM, token F1, MRR, accuracy).

Conventions: a chunk is a dict ``{"chunk_id", "doc_id", "chunk", "start", "end",
"text", "title"}``; rankings are best first; scores of :func:`evaluate_qa` are shares
in [0, 1].
"""
from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .checks import check_int, check_text
from .metrics import exact_match, normalize_answer, token_f1
from .ranking import ranking_from_scores
from .text import STOP_WORDS, tokenize

NO_ANSWER = "I don't know"
OPEN_BOOK = "Based on these texts, answer this question."
CLOSED_BOOK = "Answer this question."
SHORT_ANSWER = "Reply with the answer only, in a few words."
CITE = "End with the number of the text you used, like [1]."
WORD = re.compile(r"\S+")
CITATION = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")


# =========================================================================== chunking
def chunk_spans(text: str, size: int = 64, overlap: int = 16) -> list[tuple[int, int]]:
    """Character spans ``(start, end)`` of word windows over ``text`` (chapter 4).

    Words are maximal runs of non-space characters.  Window j holds the words
    ``j * (size - overlap)`` to ``j * (size - overlap) + size - 1`` (fewer at the end),
    so consecutive windows share ``overlap`` words; the last window is the first one
    that reaches the last word.  A window's span runs from its first word's first
    character to its last word's last character, so ``text[start:end]`` is the
    chunk.  No words: no spans.
    """
    check_text(text, "text")
    _check_window(size, overlap)
    return _windows([(m.start(), m.end()) for m in WORD.finditer(text)], size, overlap)


def token_spans(text: str, tokenizer=None) -> list[tuple[int, int]]:
    """Character spans of the tokens of ``text``: words (``tokenizer=None``), or the
    tokens of a Hugging Face fast tokenizer (its offset mapping, spaces trimmed)."""
    check_text(text, "text")
    if tokenizer is None:
        return [(m.start(), m.end()) for m in WORD.finditer(text)]
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    spans = []
    for start, end in offsets:
        while start < end and text[start].isspace():
            start += 1
        if start < end:
            spans.append((start, end))
    return spans


def chunk_document(text: str, size: int = 64, overlap: int = 16, tokenizer=None) -> list[tuple[int, int]]:
    """:func:`chunk_spans` over the tokens of ``tokenizer`` (words when None)."""
    _check_window(size, overlap)
    return _windows(token_spans(text, tokenizer), size, overlap)


def _windows(spans: list[tuple[int, int]], size: int, overlap: int) -> list[tuple[int, int]]:
    out, step = [], size - overlap
    for first in range(0, len(spans), step):
        last = min(first + size, len(spans)) - 1
        out.append((spans[first][0], spans[last][1]))
        if last == len(spans) - 1:
            break
    return out


def chunk_corpus(docs, size: int = 64, overlap: int = 16, tokenizer=None) -> list[dict]:
    """Chunks of every document: ``docs`` is {doc_id: text}, {doc_id: {"text", "title"}},
    or a BEIR corpus (rows with ``_id``, ``title``, ``text``, such as
    :func:`course_lib.data.load_corpus`).  Each chunk is ``{"chunk_id": "<doc_id>#<n>",
    "doc_id", "chunk": n, "start", "end", "text", "title"}`` with
    ``source_text[start:end] == text``."""
    chunks = []
    for doc_id, title, text in _documents(docs):
        for n, (start, end) in enumerate(chunk_document(text, size, overlap, tokenizer)):
            chunks.append({"chunk_id": f"{doc_id}#{n}", "doc_id": doc_id, "chunk": n, "start": start, "end": end,
                           "text": text[start:end], "title": title})
    return chunks


def _documents(docs):
    if isinstance(docs, Mapping):
        for doc_id, value in docs.items():
            if isinstance(value, Mapping):
                text = _checked(value.get("text"), f"docs[{doc_id!r}]['text']")
                yield doc_id, str(value.get("title", "") or ""), text
            else:
                yield doc_id, "", _checked(value, f"docs[{doc_id!r}]")
        return
    columns = getattr(docs, "column_names", None)
    if columns is not None and {"_id", "text"} <= set(columns):
        titles = docs["title"] if "title" in columns else [""] * len(docs)
        for doc_id, title, text in zip(docs["_id"], titles, docs["text"]):
            yield doc_id, title or "", _checked(text, f"docs[{doc_id!r}]")
        return
    raise TypeError("docs must be a mapping {doc_id: text} or a BEIR corpus with _id and text, "
                    f"got {type(docs).__name__}")


def _checked(text, name):
    check_text(text, name)
    return text


# =========================================================================== retrievers
class Retriever:
    """One interface for every retriever of this chapter, over a list of chunks.

    ``search(query, k)`` gives ``[(chunk_id, score), ...]`` best first;
    ``retrieve(query, k, min_score)`` gives the chunks themselves with ``score`` and
    ``rank`` added, keeping only those scoring at least ``min_score``;
    ``doc_ranking(query, k)`` ranks the source documents by their best chunk.
    Subclasses implement :meth:`search_batch`.
    """

    name = "retriever"

    def __init__(self, chunks: Sequence[Mapping]):
        self.chunks = _check_chunks(chunks)
        self.by_id = {c["chunk_id"]: c for c in self.chunks}

    def texts(self, with_title: bool = True) -> list[str]:
        """The text each chunk is indexed with: ``"title: text"`` when it has a title."""
        return [f"{c['title']}: {c['text']}" if with_title and c.get("title") else c["text"] for c in self.chunks]

    def search(self, query: str, k: int = 10) -> list[tuple[Any, float]]:
        return self.search_batch([query], k)[0]

    def search_batch(self, queries: Sequence[str], k: int = 10) -> list[list[tuple[Any, float]]]:
        raise NotImplementedError

    def retrieve(self, query: str, k: int = 3, min_score: float | None = None) -> list[dict]:
        return self.retrieve_batch([query], k, min_score)[0]

    def retrieve_batch(self, queries: Sequence[str], k: int = 3, min_score: float | None = None) -> list[list[dict]]:
        _check_queries(queries)
        return [[{**self.by_id[cid], "score": float(s), "rank": r}
                 for r, (cid, s) in enumerate(hits, start=1) if min_score is None or s >= min_score]
                for hits in self.search_batch(list(queries), k)]

    def doc_ranking(self, query: str, k: int = 10, depth: int | None = None) -> list:
        """The ids of the documents of the best chunks, best first, each once (at most ``k``)."""
        return self.doc_ranking_batch([query], k, depth)[0]

    def doc_ranking_batch(self, queries: Sequence[str], k: int = 10, depth: int | None = None) -> list[list]:
        check_int(k, "k")
        hits = self.search_batch(list(queries), depth or 4 * k)
        return [distinct([self.by_id[cid]["doc_id"] for cid, _ in h])[:k] for h in hits]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(chunks={len(self.chunks)})"


class BM25Retriever(Retriever):
    """BM25 over the chunks (:class:`course_lib.sparse.BM25`; options go to it)."""

    name = "BM25"

    def __init__(self, chunks, *, with_title: bool = True, **options):
        from .sparse import BM25

        super().__init__(chunks)
        self.bm25 = BM25(**options).index(self.texts(with_title), [c["chunk_id"] for c in self.chunks])

    def search_batch(self, queries, k: int = 10):
        _check_queries(queries)
        check_int(k, "k")
        return self.bm25.search_batch(list(queries), k)


class DenseRetriever(Retriever):
    """A bi-encoder over the chunks (:class:`course_lib.dense.BiEncoder`: the packaged
    all-MiniLM-L6-v2 offline, its embeddings cached on disk); scores are cosines."""

    name = "dense"

    def __init__(self, chunks, encoder=None, *, with_title: bool = True, profile: str | None = None):
        from .dense import BiEncoder

        super().__init__(chunks)
        if encoder is None:
            with _quiet_loading():
                encoder = BiEncoder(profile=profile)
        self.encoder = encoder
        texts, ids = self.texts(with_title), [c["chunk_id"] for c in self.chunks]
        self.encoder.index(texts, ids, progress=False)

    def search_batch(self, queries, k: int = 10):
        _check_queries(queries)
        check_int(k, "k")
        return self.encoder.search_batch(list(queries), k)


class HybridRetriever(Retriever):
    """Several retrievers over the same chunks, fused: each returns its top ``depth``,
    then reciprocal rank fusion (``fusion="rrf"``, :func:`course_lib.dense.reciprocal_rank_fusion`
    with constant ``rrf_k``) or :func:`weighted_fusion` of min-max normalised scores
    (``fusion="weighted"``, with ``weights``)."""

    name = "hybrid"

    def __init__(self, retrievers: Sequence[Retriever], *, fusion: str = "rrf", depth: int = 50, rrf_k: float = 60,
                 weights: Sequence[float] | None = None):
        if isinstance(retrievers, Retriever) or not retrievers or not all(isinstance(r, Retriever) for r in retrievers):
            raise TypeError("retrievers must be a non-empty list of Retriever objects")
        ids = [c["chunk_id"] for c in retrievers[0].chunks]
        if any([c["chunk_id"] for c in r.chunks] != ids for r in retrievers[1:]):
            raise ValueError("every retriever of a HybridRetriever must index the same chunks")
        if fusion not in ("rrf", "weighted"):
            raise ValueError(f"fusion must be 'rrf' or 'weighted', got {fusion!r}")
        check_int(depth, "depth")
        super().__init__(retrievers[0].chunks)
        self.retrievers, self.fusion, self.depth, self.rrf_k = list(retrievers), fusion, depth, rrf_k
        self.weights = None if weights is None else [float(w) for w in weights]
        if self.weights is not None and len(self.weights) != len(self.retrievers):
            raise ValueError(f"weights must have one number per retriever ({len(self.retrievers)}), got {weights!r}")
        self.name = "+".join(r.name for r in self.retrievers) + (" (RRF)" if fusion == "rrf" else " (weighted)")

    def search_batch(self, queries, k: int = 10):
        from .dense import reciprocal_rank_fusion

        _check_queries(queries)
        check_int(k, "k")
        per_retriever = [r.search_batch(list(queries), max(k, self.depth)) for r in self.retrievers]
        fused = []
        for rankings in zip(*per_retriever):
            if self.fusion == "rrf":
                fused.append(reciprocal_rank_fusion(list(rankings), k=self.rrf_k)[:k])
            else:
                fused.append(weighted_fusion(list(rankings), self.weights)[:k])
        return fused


class RerankRetriever(Retriever):
    """Two stages: ``first_stage`` returns ``depth`` chunks, a cross-encoder
    (:class:`course_lib.rerank.CrossEncoder`) rescores them."""

    name = "rerank"

    def __init__(self, first_stage: Retriever, cross_encoder=None, *, depth: int = 20, profile: str | None = None,
                 with_title: bool = True):
        from .rerank import CrossEncoder

        if not isinstance(first_stage, Retriever):
            raise TypeError("first_stage must be a Retriever")
        check_int(depth, "depth")
        super().__init__(first_stage.chunks)
        self.first_stage, self.depth = first_stage, depth
        if cross_encoder is None:
            with _quiet_loading():
                cross_encoder = CrossEncoder(profile=profile)
        self.cross_encoder = cross_encoder
        self._texts = dict(zip([c["chunk_id"] for c in self.chunks], self.texts(with_title)))
        self.name = f"{first_stage.name} + cross-encoder"

    def search_batch(self, queries, k: int = 10):
        _check_queries(queries)
        check_int(k, "k")
        firsts = self.first_stage.search_batch(list(queries), max(k, self.depth))
        return [self.cross_encoder.rerank(q, hits, self._texts, k=k) for q, hits in zip(queries, firsts)]


def minmax(scores: Sequence[float]) -> list[float]:
    """Scores scaled to [0, 1]: (s - min) / (max - min); all 1.0 when every score is equal."""
    values = [float(s) for s in scores]
    if not values:
        return []
    low, high = min(values), max(values)
    return [1.0] * len(values) if high == low else [(s - low) / (high - low) for s in values]


def weighted_fusion(rankings: Sequence, weights: Sequence[float] | None = None) -> list[tuple[Any, float]]:
    """Combine retrievers by their normalised scores (CombSUM; chapter 4).

    ``rankings[i]`` is a search result ``[(doc_id, score), ...]``.  Each ranking's
    scores are min-max normalised (:func:`minmax`), then

        fused(d) = sum_i w_i * norm_i(d),   norm_i(d) = 0 when ranking i lacks d,

    with ``weights`` w_i (all 1 by default).  Returns ``[(doc_id, fused), ...]`` by
    fused score descending, then doc id ascending.
    """
    if isinstance(rankings, (str, Mapping)) or not isinstance(rankings, Sequence) or not rankings:
        raise ValueError("rankings must be a non-empty list of search results [(doc_id, score), ...]")
    w = [1.0] * len(rankings) if weights is None else [float(x) for x in weights]
    if len(w) != len(rankings):
        raise ValueError(f"weights must have one number per ranking ({len(rankings)}), got {weights!r}")
    parts: dict[Any, list[float]] = {}
    for wi, ranking in zip(w, rankings):
        ids = [d for d, _ in ranking]
        if len(set(ids)) != len(ids):
            raise ValueError("a ranking lists a doc id twice")
        for d, s in zip(ids, minmax([s for _, s in ranking])):
            parts.setdefault(d, []).append(wi * s)
    fused = {d: math.fsum(v) for d, v in parts.items()}
    return [(d, fused[d]) for d in ranking_from_scores(fused)]


def distinct(items) -> list:
    """The items in order of first appearance, each once."""
    return list(dict.fromkeys(items))


# =========================================================================== prompts
def build_prompt(question: str, passages: Sequence[str], instruction: str | None = None) -> str:
    """The reader's prompt (chapter 4), open-book when there are passages::

        Based on these texts, answer this question.

        [1] first passage
        [2] second passage

        Question: <question>
        Answer:

    Closed-book (no passages): the instruction "Answer this question.", a blank line,
    then the question and answer lines.  ``instruction`` replaces the default first
    line (:data:`OPEN_BOOK` or :data:`CLOSED_BOOK`).  Lines end with "\\n"; the
    prompt ends with "Answer:" (no space).
    """
    check_text(question, "question")
    if isinstance(passages, str) or not isinstance(passages, Sequence):
        raise TypeError(f"passages must be a list of str, got {type(passages).__name__}")
    if instruction is None:
        instruction = OPEN_BOOK if passages else CLOSED_BOOK
    lines = [instruction, ""]
    if passages:
        lines += [f"[{i}] {_checked(p, f'passages[{i - 1}]')}" for i, p in enumerate(passages, start=1)] + [""]
    lines += [f"Question: {question}", "Answer:"]
    return "\n".join(lines)


def passage_text(passage, with_title: bool = True) -> str:
    """The text of a passage in a prompt: a str as it is, a chunk as "title: text"."""
    if isinstance(passage, str):
        return passage
    if with_title and passage.get("title"):
        return f"{passage['title']}: {passage['text']}"
    return passage["text"]


@dataclass
class Prompt:
    """A prompt ready for a :class:`course_lib.generate.Generator`: the chat ``messages``
    (few-shot turns, then the question), the passages it kept and those the token
    budget dropped, and a ``note`` saying so."""

    question: str
    messages: list[dict]
    passages: list = field(default_factory=list)
    dropped: list = field(default_factory=list)
    open_book: bool = True
    tokens: int | None = None
    note: str = ""

    @property
    def text(self) -> str:
        """The last user message: the prompt :func:`build_prompt` wrote."""
        return self.messages[-1]["content"]


def make_prompt(question: str, passages: Sequence | None = None, *, shots: Sequence[Mapping] = (),
                instruction: str | None = None, style: str = SHORT_ANSWER, with_title: bool = True,
                tokenizer=None, budget: int | None = None,
                count_tokens: Callable[[list[dict]], int] | None = None) -> Prompt:
    """The full prompt for one question, in chat messages (chapter 4).

    ``passages=None`` is closed-book; a list (chunks or strings, best first) is
    open-book with :func:`build_prompt`'s numbered template.  ``style`` is added to the
    instruction ("Based on these texts, answer this question. Reply with the answer
    only, in a few words.").  ``shots`` are worked examples ``{"question", "answer"}``
    (with ``"passages"`` for open-book), given as earlier user/assistant turns: few-shot
    prompting; none is zero-shot.

    Token budget: with ``budget`` (tokens) and ``tokenizer`` (the generator's, its chat
    template applied) or ``count_tokens(messages)``, the lowest-ranked passages are
    dropped one at a time until the prompt fits; ``dropped`` lists them and ``note``
    says so.  A prompt that does not fit even without passages raises ``ValueError``.
    """
    open_book = passages is not None
    if open_book and (isinstance(passages, str) or not isinstance(passages, Sequence)):
        raise TypeError("passages must be a list of chunks or str (or None: closed-book), "
                        f"got {type(passages).__name__}")
    passages = list(passages or [])
    base = instruction or (OPEN_BOOK if open_book else CLOSED_BOOK)
    full_instruction = f"{base} {style}".strip() if style else base
    history = []
    for i, shot in enumerate(shots):
        if not isinstance(shot, Mapping) or "question" not in shot or "answer" not in shot:
            raise ValueError(f"shots[{i}] must be a dict with 'question' and 'answer', got {shot!r}")
        shot_passages = [passage_text(p, with_title) for p in shot.get("passages", [])] if open_book else []
        history += [{"role": "user", "content": build_prompt(shot["question"], shot_passages, full_instruction)},
                    {"role": "assistant", "content": shot["answer"]}]

    def messages_for(kept):
        texts = [passage_text(p, with_title) for p in kept]
        return history + [{"role": "user", "content": build_prompt(question, texts, full_instruction)}]

    counter = count_tokens
    if counter is None and tokenizer is not None:
        counter = token_counter(tokenizer)
    if budget is not None and counter is None:
        raise ValueError("a token budget needs the generator's tokenizer (or count_tokens)")
    kept, dropped = passages, []
    tokens = counter(messages_for(kept)) if counter is not None else None
    if budget is not None:
        check_int(budget, "budget")
        kept, dropped = fit_budget(passages, budget, lambda ps: counter(messages_for(ps)))
        tokens = counter(messages_for(kept))
    note = ""
    if dropped:
        first = len(kept) + 1
        numbers = ", ".join(f"[{i}]" for i in range(first, first + len(dropped)))
        note = (f"{len(dropped)} of {len(passages)} passages dropped ({numbers}, the lowest ranked) "
                f"to fit the {budget}-token budget: the prompt has {tokens} tokens.")
    return Prompt(question, messages_for(kept), kept, dropped, open_book, tokens, note)


def fit_budget(passages: Sequence, budget: int, count: Callable[[list], int]) -> tuple[list, list]:
    """Keep the best passages whose prompt fits ``budget`` tokens: drop the last
    (lowest-ranked) passage while ``count(kept) > budget``.  Returns ``(kept, dropped)``;
    raises ``ValueError`` if the prompt without passages is already too long."""
    kept = list(passages)
    while count(kept) > budget:
        if not kept:
            raise ValueError(f"the prompt does not fit the {budget}-token budget even without passages")
        kept.pop()
    return kept, list(passages)[len(kept):]


def token_counter(tokenizer) -> Callable[[list[dict]], int]:
    """``count(messages)``: the tokens the model reads, with its chat template when it has one."""

    def count(messages: list[dict]) -> int:
        if getattr(tokenizer, "chat_template", None):
            text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        else:
            text = " ".join(m["content"] for m in messages)
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    return count


# =========================================================================== citations
def map_citations(answer: str, passages: Sequence[Mapping]) -> list:
    """The document ids an answer cites (chapter 4).

    A citation is a bracketed number or list of numbers, "[2]" or "[1, 3]", naming
    the numbered passages of the prompt ([1] = ``passages[0]``).  Returns the
    ``doc_id`` of each cited passage in order of first mention, each once; numbers
    outside 1..len(passages) are ignored.
    """
    check_text(answer, "answer")
    ids = []
    for match in CITATION.finditer(answer):
        for number in match.group(1).split(","):
            n = int(number)
            if 1 <= n <= len(passages):
                ids.append(passages[n - 1]["doc_id"])
    return distinct(ids)


def strip_citations(answer: str) -> str:
    """The answer without its "[n]" markers."""
    return " ".join(CITATION.sub(" ", answer).split())


def supporting(answer: str, passages: Sequence) -> list[int]:
    """The numbers (1-based) of the passages that contain the answer (:func:`contains_answer`)."""
    if not answer.strip() or answer == NO_ANSWER:
        return []
    return [i for i, p in enumerate(passages, start=1) if contains_answer(passage_text(p, False), [answer])]


# =========================================================================== answer candidates
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
EDGE_PUNCTUATION = "\"'“”‘’()[]{},.;:!?"


def sentences(text: str) -> list[str]:
    """The sentences of ``text``: split after ".", "!" or "?" followed by white space."""
    check_text(text, "text")
    return [s for s in SENTENCE_END.split(text.strip()) if s]


def best_sentences(question: str, passages: Sequence, n: int = 2) -> list[tuple[int, str]]:
    """The ``n`` sentences of ``passages`` that share the most content words with the question
    (:func:`course_lib.text.content_words`, stemmed), as ``(passage index, sentence)``; ties go to
    the better-ranked passage, then the earlier sentence."""
    check_text(question, "question")
    check_int(n, "n")
    asked = set(tokenize(question, stopwords=STOP_WORDS, stem=True))
    scored = []
    for j, p in enumerate(passages):
        for position, sentence in enumerate(sentences(passage_text(p, False))):
            overlap = len(asked & set(tokenize(sentence, stopwords=STOP_WORDS, stem=True)))
            scored.append((-overlap, j, position, sentence))
    return [(j, sentence) for _, j, _, sentence in sorted(scored)[:n]]


def answer_candidates(question: str, text: str, max_words: int = 5) -> list[str]:
    """The candidate answers in ``text`` (chapter 4): every run of 1..``max_words`` words,
    without the punctuation at its edges, whose first and last words are not stop words and
    that says something the question does not (a content word outside the question).
    Each candidate once, in order of first appearance."""
    return [span for span, _, _ in candidate_spans(question, text, max_words)]


def candidate_spans(question: str, text: str, max_words: int = 5) -> list[tuple[str, int, int]]:
    """:func:`answer_candidates` with where each first occurs: ``(span, first word, last word)``,
    word numbers counted in ``text.split()`` from 0."""
    check_text(question, "question")
    check_text(text, "text")
    check_int(max_words, "max_words")
    asked = set(tokenize(question, stopwords=STOP_WORDS))
    matches = list(WORD.finditer(text))
    words = [m.group().strip(EDGE_PUNCTUATION) for m in matches]
    found: dict[str, tuple[str, int, int]] = {}
    for i in range(len(words)):
        for j in range(i, min(i + max_words, len(words))):
            first, last = words[i], words[j]
            if not first or not last or first.lower() in STOP_WORDS or last.lower() in STOP_WORDS:
                continue
            raw = text[matches[i].start():matches[j].end()]
            span = raw[raw.index(first):len(raw) - raw[::-1].index(last[::-1])]
            if span not in found and set(tokenize(span, stopwords=STOP_WORDS)) - asked:
                found[span] = (span, i, j)
    return list(found.values())


# =========================================================================== span features
ANSWER_TYPES = ("date", "number", "person", "place", "other")
_TYPE_PATTERNS = (
    ("date", re.compile(r"\b(when|what (year|century|decade|date|day|month|time|period|era)|which (year|century|decade)"
                        r"|how long ago)\b")),
    ("number", re.compile(r"\bhow (many|much|long|old|far|large|big|tall|high|deep|wide|often)\b"
                          r"|\bwhat (percentage|percent|proportion|number|amount|size|length|fraction)\b")),
    ("person", re.compile(r"\b(who|whom|whose)\b")),
    ("place", re.compile(r"\bwhere\b|\b(what|which) (city|country|state|place|region|town|continent|river)\b")),
)
MONTHS = frozenset("january february march april may june july august september october november december".split())
NUMBER_WORDS = frozenset("one two three four five six seven eight nine ten eleven twelve twenty thirty forty fifty "
                         "sixty seventy eighty ninety hundred hundreds thousand thousands million millions billion "
                         "dozen half once twice".split())
SPAN_FEATURES = ("lm", "words", "distance", "window", "echo", "type", "untyped", "comma", "sentence")
WINDOW = 5
# fitted by fit_span_weights with the cpu profile's generator (SmolLM2-135M-Instruct) and the reader's defaults, on
# 80 questions of the bundled training split (evenly spaced) with their BM25 top 3 chunks of the bundled collection
# (the fit benchmarks/rag.py --fit 80 runs); on those questions (in sample): EM 13.8 / F1 17.2 ranking by the
# likelihood alone, EM 43.8 / F1 54.8 with these weights
# On SQuAD dev (benchmarks/rag.py's sample, seed 0, 4 articles, 30 questions, BM25 top 3): EM 16.7 / F1 19.6 by
# the likelihood alone, EM 40.0 / F1 45.9 with these weights.
SPAN_WEIGHTS = {"lm": 0.1695, "words": 0.0429, "distance": -1.265, "window": -0.9271, "echo": -1.2549, "type": 1.2749,
                "untyped": -1.5032, "comma": -0.2009, "sentence": -2.4717}


def answer_type(question: str) -> str:
    """What kind of answer the question asks for (chapter 4), from its wh-words: ``"date"``
    (when, what year ...), ``"number"`` (how many/much/long ...), ``"person"`` (who),
    ``"place"`` (where, which city ...), else ``"other"``; the first rule that matches wins."""
    check_text(question, "question")
    lowered = question.lower()
    return next((kind for kind, pattern in _TYPE_PATTERNS if pattern.search(lowered)), "other")


def span_features(question: str, sentence: str, first: int, last: int) -> dict[str, float]:
    """The surface features of the candidate answer made of words ``first..last`` of
    ``sentence.split()`` (chapter 4; the classic features of SQuAD's logistic-regression
    baseline, cut down).  With Q the question's stemmed content words:

    * ``words``: the span's length in words;
    * ``distance``: log(1 + d), d the number of words between the span and the nearest
      word of Q outside it in the sentence (d = len(sentence) when there is none);
    * ``window``: the share of Q found within :data:`WINDOW` words left or right of the span;
    * ``echo``: the share of the span's words that are in Q (an answer rarely repeats the question);
    * ``type``: 1 when the span has the shape :func:`answer_type` asks for: a year, a month
      or a number for "date", a number (digits or a number word) for "number", every word
      capitalised for "person" and "place"; else 0 ("other" is never typed);
    * ``untyped``: 1 when a "date" or "number" question gets a span without any number;
    * ``comma``: 1 when the span holds a comma (a list, or two clauses).
    """
    check_text(question, "question")
    check_text(sentence, "sentence")
    words = [w.strip(EDGE_PUNCTUATION) for w in sentence.split()]
    if not (isinstance(first, int) and isinstance(last, int) and 0 <= first <= last < len(words)):
        raise ValueError(f"first and last must be word numbers with 0 <= first <= last < {len(words)}, "
                         f"got {first!r} and {last!r}")
    asked = set(tokenize(question, stopwords=STOP_WORDS, stem=True))
    stems = [set(tokenize(w, stopwords=STOP_WORDS, stem=True)) for w in words]
    outside = [i for i, stem in enumerate(stems) if stem & asked and not first <= i <= last]
    d = min((first - i if i < first else i - last) for i in outside) if outside else len(words)
    near = set().union(*(stems[i] for i in range(max(0, first - WINDOW), min(len(words), last + WINDOW + 1))
                         if not first <= i <= last))
    span = words[first:last + 1]
    kind = answer_type(question)
    digits = any(any(ch.isdigit() for ch in w) for w in span)
    number = digits or any(w.lower() in NUMBER_WORDS for w in span)
    capitals = all(w[:1].isupper() or w.lower() in STOP_WORDS for w in span) and span[0][:1].isupper()
    typed = {"date": number or any(w.lower() in MONTHS for w in span), "number": number,
             "person": capitals, "place": capitals, "other": False}[kind]
    return {"words": float(len(span)),
            "distance": math.log1p(d),
            "window": len(near & asked) / len(asked) if asked else 0.0,
            "echo": sum(bool(stem & asked) for stem in stems[first:last + 1]) / len(span),
            "type": float(typed),
            "untyped": float(kind in ("date", "number") and not number and not typed),
            "comma": float("," in " ".join(sentence.split()[first:last + 1]).strip(EDGE_PUNCTUATION))}


# =========================================================================== readers
class GenerativeReader:
    """A language model that reads the retrieved passages and writes the answer.

    ``read_batch(questions, passage_lists)`` builds each :func:`make_prompt` (``None``
    instead of a list: closed-book), generates greedily in batches and returns
    ``{"answer", "raw", "cited", "doc_ids", "prompt"}``: the cleaned short answer,
    the generated text, the passage numbers the answer cites ("[n]" markers, or else
    the passages containing the answer) and their document ids.

    ``decoding`` says how an open-book answer is written (closed-book is always free); the
    default, ``"ranked"``, won on SQuAD dev (benchmarks/rag.py):

    * ``"free"``: greedy generation, the answer cleaned of labels and citation markers;
    * ``"spans"``: greedy decoding under a :class:`course_lib.generate.SpanConstraint`: a
      span of at most ``max_answer_tokens`` tokens of one passage, whole words;
    * ``"ranked"``: the reader as a ranker of spans, by features and the model's likelihood.
      The ``sentences`` sentences that share most words with the question
      (:func:`best_sentences`) make the prompt; the :func:`candidate_spans` of them (up to
      ``max_answer_words`` words) are the answers it may give, those that begin with one of
      the ``starts`` likeliest first words (None: all).  Each candidate a gets the
      features x(a) of :data:`SPAN_FEATURES` (:meth:`span_table`): the model's
      log p(a, eos | question, sentences), and surface features of the span (answer type,
      distance to the question's words, ...).  The answer is the highest-scoring one::

          answer = argmax_{a in candidates} w . x(a)

      with the weights ``weights`` (default :data:`SPAN_WEIGHTS`, fitted by
      :func:`fit_span_weights` on the bundled training questions).

    A span answer cites the first (best-ranked) passage that contains it.
    """

    DECODINGS = ("free", "spans", "ranked")

    def __init__(self, generator, *, style: str = SHORT_ANSWER, shots: Sequence[Mapping] = (),
                 budget: int | None = None, with_title: bool = True, max_new_tokens: int | None = None,
                 decoding: str = "ranked", max_answer_tokens: int = 12, sentences: int = 3,
                 max_answer_words: int = 6, starts: int | None = 8, weights: Mapping[str, float] | None = None):
        if decoding not in self.DECODINGS:
            raise ValueError(f"decoding must be one of {self.DECODINGS}, got {decoding!r}")
        for value, name in ((max_answer_tokens, "max_answer_tokens"), (sentences, "sentences"),
                            (max_answer_words, "max_answer_words")):
            check_int(value, name)
        if starts is not None:
            check_int(starts, "starts")
        self.weights = _check_weights(SPAN_WEIGHTS if weights is None else weights)
        self.generator, self.style, self.shots, self.budget = generator, style, list(shots), budget
        self.with_title, self.max_new_tokens = with_title, max_new_tokens
        self.decoding, self.max_answer_tokens = decoding, max_answer_tokens
        self.sentences, self.max_answer_words, self.starts = sentences, max_answer_words, starts

    def prompt(self, question: str, passages: Sequence | None) -> Prompt:
        return make_prompt(question, passages, shots=self.shots, style=self.style, with_title=self.with_title,
                           tokenizer=self.generator.tokenizer if self.budget else None, budget=self.budget)

    def read_batch(self, questions: Sequence[str], passage_lists: Sequence) -> list[dict]:
        from .generate import SpanTrie, clean_answer

        _check_queries(questions, "questions")
        if len(passage_lists) != len(questions):
            raise ValueError("passage_lists must have one entry (a list, or None for closed-book) per question")
        ranked = [i for i, ps in enumerate(passage_lists) if ps and self.decoding == "ranked"]
        results = dict(zip(ranked, self._rank_spans([questions[i] for i in ranked],
                                                    [passage_lists[i] for i in ranked]))) if ranked else {}
        todo = [i for i in range(len(questions)) if i not in results]     # closed-book is always free
        prompts = {i: self.prompt(questions[i], passage_lists[i]) for i in todo}
        spans = {i for i in todo if self.decoding == "spans" and prompts[i].passages}
        free = [i for i in todo if i not in spans]
        raws = {}
        if free:
            raws.update(zip(free, self.generator.generate([prompts[i] for i in free], self.max_new_tokens)))
        if spans:
            order = sorted(spans)
            tries = [SpanTrie([passage_text(p, False) for p in prompts[i].passages], self.generator.tokenizer,
                              self.max_answer_tokens) for i in order]
            raws.update(zip(order, self.generator.generate([prompts[i] for i in order], self.max_new_tokens,
                                                           spans=tries)))
        for i in todo:
            prompt, raw = prompts[i], raws[i]
            kept = prompt.passages
            if i in spans:
                answer = raw
                cited = next(([n] for n, p in enumerate(kept, start=1) if raw and raw in passage_text(p, False)), [])
            else:
                answer = clean_answer(strip_citations(raw))
                marked = [int(n) for m in CITATION.finditer(raw) for n in m.group(1).split(",")]
                cited = [n for n in distinct(marked) if 1 <= n <= len(kept)] or supporting(answer, kept)
            results[i] = {"answer": answer, "raw": raw, "cited": cited, "doc_ids": _doc_ids(kept, cited),
                          "prompt": prompt}
        return [results[i] for i in range(len(questions))]

    def span_table(self, questions: Sequence[str], passage_lists: Sequence) -> list[dict]:
        """What the ``"ranked"`` decoding decides from, per question: ``{"prompt", "spans",
        "passage", "features"}`` with one row of ``features`` (:data:`SPAN_FEATURES`, in that
        order) per candidate span, and the number of the first passage that contains it.

        With ``starts``, only the candidates that begin with one of the ``starts`` first words
        w of highest log p(w | q, S) are kept (one cheap pass scores the first words).
        ``lm`` = log p(a, eos | q, S) comes from :meth:`course_lib.generate.Generator.prefix_logprobs`:
        the candidates that start at one word are prefixes of the longest of them, so one pass
        over it scores them all (the few-shot turns are read once for all questions);
        ``sentence`` is the rank (0 = best) of the sentence the span comes from; the others
        are :func:`span_features`."""
        _check_queries(questions, "questions")
        tables = []
        for question, passages in zip(questions, passage_lists):
            chosen = best_sentences(question, passages, self.sentences)
            prompt = make_prompt(question, [text for _, text in chosen], shots=self.shots, style=self.style,
                                 with_title=False)
            spans, rows, groups = [], [], {}
            for rank, (_, text) in enumerate(chosen):
                for span, first, last in candidate_spans(question, text, self.max_answer_words):
                    if span in spans:
                        continue
                    spans.append(span)
                    rows.append({**span_features(question, text, first, last), "sentence": float(rank)})
                    groups.setdefault((rank, first), []).append(len(spans) - 1)
            tables.append({"prompt": prompt, "spans": spans, "rows": rows, "groups": list(groups.values())})
        if self.starts is not None:
            self._keep_starts(tables)
        texts, ends, owners = [], [], []
        for i, table in enumerate(tables):
            for members in table.pop("groups"):
                texts.append(max((table["spans"][m] for m in members), key=len))
                ends.append([len(table["spans"][m]) for m in members])
                owners.append((i, members))
        scores = self.generator.prefix_logprobs([tables[i]["prompt"] for i, _ in owners], texts, ends) \
            if texts else []
        for (i, members), values in zip(owners, scores):
            for m, value in zip(members, values):
                tables[i]["rows"][m]["lm"] = float(value)
        for table, passages in zip(tables, passage_lists):
            kept = [m for m, row in enumerate(table["rows"]) if "lm" in row]
            table["spans"] = [table["spans"][m] for m in kept]
            table["features"] = np.array([[table["rows"][m][name] for name in SPAN_FEATURES] for m in kept]).reshape(
                len(kept), len(SPAN_FEATURES))
            del table["rows"]
            table["passage"] = [next(n for n, p in enumerate(passages, start=1) if span in passage_text(p, False))
                                for span in table["spans"]]
        return tables

    def _keep_starts(self, tables: list[dict]) -> None:
        """Keep, in each table, the groups of candidates whose first word is one of the ``starts``
        first words w of highest log p(w | q, S) (ties: the earlier word)."""
        firsts = [(i, w) for i, t in enumerate(tables)
                  for w in distinct(t["spans"][members[0]].split()[0] for members in t["groups"])]
        scores = self.generator.logprob([tables[i]["prompt"] for i, _ in firsts], [w for _, w in firsts]) \
            if firsts else []
        ranked: dict[int, list[tuple[float, int, str]]] = {}
        for n, ((i, w), score) in enumerate(zip(firsts, scores)):
            ranked.setdefault(i, []).append((-float(score), n, w))
        for i, table in enumerate(tables):
            keep = {w for _, _, w in sorted(ranked.get(i, []))[:self.starts]}
            table["groups"] = [members for members in table["groups"] if table["spans"][members[0]].split()[0] in keep]

    def _rank_spans(self, questions: list[str], passage_lists: list) -> list[dict]:
        """The ``"ranked"`` decoding: the candidate with the highest ``w . x`` (:meth:`span_table`)."""
        w = np.array([self.weights[name] for name in SPAN_FEATURES])
        results = []
        for table, passages in zip(self.span_table(questions, passage_lists), passage_lists):
            if not table["spans"]:
                results.append({"answer": NO_ANSWER, "raw": NO_ANSWER, "cited": [], "doc_ids": [],
                                "prompt": table["prompt"], "score": float("-inf"), "candidates": 0})
                continue
            scores = table["features"] @ w
            best = int(np.argmax(scores))
            cited = [table["passage"][best]]
            results.append({"answer": table["spans"][best], "raw": table["spans"][best], "cited": cited,
                            "doc_ids": _doc_ids(passages, cited), "prompt": table["prompt"],
                            "score": float(scores[best]), "candidates": len(table["spans"])})
        return results

    def read(self, question: str, passages: Sequence | None) -> dict:
        return self.read_batch([question], [passages])[0]


def fit_span_weights(reader: GenerativeReader, questions: Sequence[str], passage_lists: Sequence,
                     references: Sequence[Sequence[str]], *, C: float = 1.0) -> dict[str, float]:
    """The weights w of the ranked reader, fitted by logistic regression (chapter 4).

    Every candidate span a of every question (``reader.span_table``) is one example with
    features x(a) and label y = 1 when a is a reference answer (exact match after SQuAD's
    normalisation), else 0.  With each feature scaled to mean 0 and variance 1,
    p(y = 1 | x) = sigma(v . z + b) is fitted by maximum likelihood with an L2 penalty
    ||v||^2 / (2C) (scikit-learn's ``LogisticRegression``); w_f = v_f / sd_f brings the
    weights back to the raw features (b and the means shift every candidate's score
    equally, so they do not change the argmax).  Returns {feature: w_f}.  Fit on training
    questions, never on the questions you evaluate on."""
    from sklearn.linear_model import LogisticRegression

    if not isinstance(reader, GenerativeReader):
        raise TypeError(f"reader must be a GenerativeReader, got {type(reader).__name__}")
    if not (len(questions) == len(passage_lists) == len(references)) or not questions:
        raise ValueError("questions, passage_lists and references must be non-empty lists of one length")
    if not (isinstance(C, (int, float)) and not isinstance(C, bool) and math.isfinite(C) and C > 0):
        raise ValueError(f"C must be a number > 0, got {C!r}")
    tables = reader.span_table(list(questions), list(passage_lists))
    X = np.concatenate([t["features"] for t in tables])
    y = np.array([exact_match(span, refs) for t, refs in zip(tables, references) for span in t["spans"]])
    if len(set(y.tolist())) < 2:
        raise ValueError("the candidates need both labels to fit: some reference answers must be among them, "
                         "and not every candidate can be one")
    sd = X.std(axis=0)
    sd[sd == 0] = 1.0
    model = LogisticRegression(C=C, max_iter=1000).fit((X - X.mean(axis=0)) / sd, y)
    return {name: float(v / d) for name, v, d in zip(SPAN_FEATURES, model.coef_[0], sd)}


def _check_weights(weights) -> dict[str, float]:
    if not isinstance(weights, Mapping) or set(weights) != set(SPAN_FEATURES):
        raise ValueError(f"weights must be a dict with one number for each of {SPAN_FEATURES}, got {weights!r}")
    out = {}
    for name in SPAN_FEATURES:
        value = weights[name]
        if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not math.isfinite(value):
            raise ValueError(f"weights[{name!r}] must be a finite number, got {value!r}")
        out[name] = float(value)
    return out


def _doc_ids(passages: Sequence, cited: Sequence[int]) -> list:
    """The document ids of the cited passages (1-based numbers; plain-string passages have none)."""
    return distinct([passages[n - 1]["doc_id"] for n in cited if not isinstance(passages[n - 1], str)])


class ExtractiveReader:
    """A span-prediction reader (chapter 5's model): the answer is a span copied from one
    retrieved passage, the one whose best span scores highest
    (:func:`course_lib.squad.answer_batch`), so its citation is that passage."""

    def __init__(self, model_name_or_path: str | None = None, *, profile: str | None = None, model=None, tokenizer=None,
                 min_span_score: float = 0.0):
        if model is None:
            from transformers import AutoModelForQuestionAnswering, AutoTokenizer

            from . import models

            source = model_name_or_path or models.resolve("extractive-reader", profile)
            with _quiet_loading():
                tokenizer = AutoTokenizer.from_pretrained(source)
                model = AutoModelForQuestionAnswering.from_pretrained(source)
        if tokenizer is None:
            raise ValueError("pass the tokenizer with the model")
        self.model, self.tokenizer, self.min_span_score = model.eval(), tokenizer, min_span_score

    def read_batch(self, questions: Sequence[str], passage_lists: Sequence) -> list[dict]:
        from .squad import answer_batch

        _check_queries(questions, "questions")
        pairs = [(i, j, q, passage_text(p, False))
                 for i, (q, ps) in enumerate(zip(questions, passage_lists)) for j, p in enumerate(ps or [])]
        spans = []
        if pairs:
            spans = answer_batch([q for _, _, q, _ in pairs], [t for *_, t in pairs], self.model, self.tokenizer)
        best: dict[int, tuple[float, int, dict]] = {}
        for (i, j, _, _), span in zip(pairs, spans):
            if span["answer"] and (i not in best or span["score"] > best[i][0]):
                best[i] = (span["score"], j, span)
        results = []
        for i, ps in enumerate(passage_lists):
            if i not in best or best[i][0] < self.min_span_score:
                results.append({"answer": NO_ANSWER, "raw": "", "cited": [], "doc_ids": [], "score": 0.0})
                continue
            score, j, span = best[i]
            doc = ps[j]["doc_id"] if isinstance(ps[j], Mapping) else None
            results.append({"answer": span["answer"], "raw": span["answer"], "cited": [j + 1],
                            "doc_ids": [doc] if doc is not None else [], "score": score,
                            "start": span["start"], "end": span["end"]})
        return results

    def read(self, question: str, passages: Sequence) -> dict:
        return self.read_batch([question], [passages])[0]


class RAG:
    """Retriever + reader (chapter 4): retrieve ``k`` chunks, keep those scoring at least
    ``min_score``, answer :data:`NO_ANSWER` if none is left, else let the reader answer
    from them.  ``k=0`` (or ``retriever=None``) is closed-book."""

    def __init__(self, retriever: Retriever | None, reader, *, k: int = 3, min_score: float | None = None):
        if k < 0:
            raise ValueError(f"k must be >= 0, got {k!r}")
        self.retriever, self.reader, self.k, self.min_score = retriever, reader, k, min_score

    def answer_batch(self, questions: Sequence[str]) -> list[dict]:
        _check_queries(questions, "questions")
        if self.retriever is None or self.k == 0:
            found = [None] * len(questions)
        else:
            found = self.retriever.retrieve_batch(list(questions), self.k, self.min_score)
        ask = [i for i, ps in enumerate(found) if ps is None or ps]
        answers = self.reader.read_batch([questions[i] for i in ask], [found[i] for i in ask]) if ask else []
        out: list[dict] = [{"question": q, "answer": NO_ANSWER, "raw": "", "cited": [], "doc_ids": [], "passages": []}
                           for q in questions]
        for i, a in zip(ask, answers):
            out[i] = {"question": questions[i], **a, "passages": found[i] or []}
        return out

    def answer(self, question: str) -> dict:
        return self.answer_batch([question])[0]


# =========================================================================== multi-hop
def second_hop_query(question: str, passage: str, n_terms: int = 5) -> str:
    """The query of a second retrieval hop (chapter 4): the question followed by the
    ``n_terms`` most frequent terms of the first hop's passage that the question lacks.

    Terms are :func:`course_lib.text.tokenize` tokens without :data:`course_lib.text.STOP_WORDS`;
    ties in frequency go to the term that appears first in the passage.  Returns
    ``question + " " + " ".join(terms)`` (the question alone when no term is new).
    """
    check_text(question, "question")
    check_text(passage, "passage")
    if not isinstance(n_terms, int) or isinstance(n_terms, bool) or n_terms < 0:
        raise ValueError(f"n_terms must be an int >= 0, got {n_terms!r}")
    asked = set(tokenize(question))
    terms = [t for t in tokenize(passage, stopwords=STOP_WORDS) if t not in asked]
    counts = Counter(terms)
    first = {t: i for i, t in reversed(list(enumerate(terms)))}
    best = sorted(counts, key=lambda t: (-counts[t], first[t]))[:n_terms]
    return " ".join([question] + best) if best else question


def multi_hop(question: str, retriever: Retriever, k: int = 3, *, bridge: str | Callable[[str, dict], str] = "terms",
              n_terms: int = 5) -> dict:
    """Two retrieval hops: retrieve ``k`` chunks for the question, extract a bridge from
    the best one, retrieve ``k`` more with the augmented query.

    ``bridge``: ``"terms"`` (:func:`second_hop_query`), ``"title"`` (the question and
    the best chunk's title), or ``bridge(question, best_chunk) -> query`` (for example
    a generator asked for the bridging entity).  Returns ``{"first", "query", "second",
    "doc_ids"}``: both hops' chunks, the second query, and the documents of the first
    hop then those of the second, which skips the documents the first hop found.
    """
    first = retriever.retrieve(question, k)
    if not first:
        return {"first": [], "query": question, "second": [], "doc_ids": []}
    top = first[0]
    if bridge == "terms":
        query = second_hop_query(question, top["text"], n_terms)
    elif bridge == "title":
        query = f"{question} {top.get('title', '')}".strip()
    elif callable(bridge):
        query = bridge(question, top)
    else:
        raise ValueError(f"bridge must be 'terms', 'title' or a function, got {bridge!r}")
    seen = {c["doc_id"] for c in first}
    # the second hop looks for new evidence: chunks of documents the first hop found are skipped
    second = [c for c in retriever.retrieve(query, k + len(first) * 8) if c["doc_id"] not in seen][:k]
    doc_ids = distinct([c["doc_id"] for c in first] + [c["doc_id"] for c in second])
    return {"first": first, "query": query, "second": second, "doc_ids": doc_ids}


def bridge_prompt(question: str, passage) -> list[dict]:
    """Chat messages asking a generator for the bridge of a two-hop question: the name in
    the first hop's passage that the second hop should look up."""
    return [{"role": "user", "content": (
        f"Text: {passage_text(passage, False)}\n\nQuestion: {question}\n\n"
        "Which person, place or thing named in the text do we need to look up next to answer the question? "
        "Reply with the name only.")}]


# =========================================================================== evaluation
def contains_answer(text: str, answers: str | Sequence[str]) -> bool:
    """Does ``text`` contain one of ``answers`` as whole words, after SQuAD normalisation
    (:func:`course_lib.metrics.normalize_answer`)?  An answer normalised to nothing never matches."""
    check_text(text, "text")
    refs = [answers] if isinstance(answers, str) else list(answers)
    padded = f" {normalize_answer(text)} "
    return any(n and f" {n} " in padded for n in map(normalize_answer, refs))


def answer_rank(passages: Sequence, answers: str | Sequence[str], k: int | None = None) -> int | None:
    """The rank (1-based) of the first of ``passages`` (str or chunks) containing an answer, within the top ``k``."""
    top = passages if k is None else passages[:k]
    return next((r for r, p in enumerate(top, start=1) if contains_answer(passage_text(p, False), answers)), None)


def evaluate_qa(predictions: Sequence[str], references: Sequence[Sequence[str]], rankings: Sequence[Sequence[str]],
                k: int = 10) -> dict[str, float]:
    """Exact match, token F1 and MRR@k of a question-answering run (0-1 scale; chapter 4).

    ``predictions[i]`` answers question i, ``references[i]`` lists its reference
    answers, ``rankings[i]`` the passage texts retrieved for it, best first.

        EM  = mean_i max_r [normalize(pred_i) == normalize(r)]
        F1  = mean_i max_r token_F1(pred_i, r)
        MRR = mean_i 1 / rank_i,   rank_i = the first of the top k passages that contains
              a reference answer (:func:`contains_answer`); 1 / rank_i = 0 when none does.

    Returns ``{"exact_match", "f1", "mrr"}``.
    """
    if not (len(predictions) == len(references) == len(rankings)) or not predictions:
        raise ValueError("predictions, references and rankings must be non-empty lists of one length")
    check_int(k, "k")
    n = len(predictions)
    em = math.fsum(exact_match(p, r) for p, r in zip(predictions, references)) / n
    f1 = math.fsum(token_f1(p, r) for p, r in zip(predictions, references)) / n
    ranks = [answer_rank(list(ranking), refs, k) for ranking, refs in zip(rankings, references)]
    mrr = math.fsum(1.0 / r for r in ranks if r is not None) / n
    return {"exact_match": em, "f1": f1, "mrr": mrr}


def training_shots(n: int = 2) -> list[dict]:
    """``n`` worked examples ``{"question", "answer", "passages"}`` for a few-shot reader
    prompt, from the bundled QA ``train`` split (never the validation questions): the
    questions whose answer sits in the shortest sentence, one per passage, ties by id.
    The passage of a shot is that sentence: the shot shows the format (a short span,
    copied from the text) and costs few tokens."""
    from .data.bundled import passages, topics

    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise ValueError(f"n must be an int >= 0, got {n!r}")
    texts = passages()

    def sentence(ex):
        text = texts[ex["passage"]]["text"]
        return next((s for s in re.split(r"(?<=[.!?])\s+", text) if ex["answers"][0] in s), text)

    examples = [ex for t in topics() if t["split"] == "train" for ex in t["qa"]]
    examples.sort(key=lambda ex: (len(sentence(ex)), ex["id"]))
    shots, used = [], set()
    for ex in examples:
        if len(shots) == n:
            break
        if ex["passage"] not in used:
            used.add(ex["passage"])
            shots.append({"question": ex["question"], "answer": ex["answers"][0], "passages": [sentence(ex)]})
    return shots


def qa_gold_passages() -> dict[str, str]:
    """{QA id: id of the passage that holds its answer} for the bundled SQuAD-style questions."""
    from .data.bundled import topics

    return {ex["id"]: ex["passage"] for t in topics() for ex in t["qa"]}


# ------------------------------------------------------------------ multiple choice
LETTERS = "ABCD"


def mcq_prompt(question: str, choices: Sequence[str] | None = None, shots: Sequence[Mapping] = ()) -> str:
    """A multiple-choice prompt in plain text.  With ``choices`` (MMLU style) they are
    listed as "A. ..." lines and the answer is a letter; without, the answer is the
    choice's text (cloze).  ``shots`` are solved examples ``{"question", "choices",
    "answer"}`` (``answer`` an index) put first: few-shot; none: zero-shot."""
    blocks = []
    for shot in shots:
        shot_choices = shot["choices"] if choices is not None else None
        answer = LETTERS[shot["answer"]] if choices is not None else shot["choices"][shot["answer"]]
        blocks.append(f"{mcq_prompt(shot['question'], shot_choices)} {answer}")
    body = f"Question: {question}\n"
    if choices is not None:
        body += "".join(f"{LETTERS[i]}. {c}\n" for i, c in enumerate(choices))
    blocks.append(body + "Answer:")
    return "\n\n".join(blocks)


def answer_mcq(generator, questions: Sequence[Mapping], *, shots: Sequence[Mapping] = (), mode: str = "cloze",
               per_token: bool = True) -> list[int]:
    """The chosen index of each multiple-choice question ``{"question", "choices"}`` by
    log-likelihood: the choice whose continuation the model finds most likely.

    ``mode="cloze"``: score " <choice text>" after "Question: ...\\nAnswer:"
    (``per_token`` averages over the choice's tokens, so long choices are not
    penalised); ``mode="letter"``: list the choices and score " A" ... " D" (MMLU).
    """
    if mode not in ("cloze", "letter"):
        raise ValueError(f"mode must be 'cloze' or 'letter', got {mode!r}")
    prompts, continuations, owners = [], [], []
    for i, q in enumerate(questions):
        choices = list(q["choices"])
        prompt = mcq_prompt(q["question"], choices if mode == "letter" else None, shots)
        options = [f" {LETTERS[j]}" for j in range(len(choices))] if mode == "letter" else [f" {c}" for c in choices]
        prompts += [prompt] * len(options)
        continuations += options
        owners += [i] * len(options)
    scores = generator.logprob(prompts, continuations, per_token=per_token and mode == "cloze")
    best: dict[int, tuple[float, int]] = {}
    counter = Counter()
    for i, s in zip(owners, scores):
        j = counter[i]
        counter[i] += 1
        if i not in best or s > best[i][0]:
            best[i] = (float(s), j)
    return [best[i][1] for i in range(len(questions))]


# =========================================================================== checks
def _quiet_loading():
    """:func:`course_lib.models.quiet_loading`, the models module imported only when a model loads."""
    from . import models

    return models.quiet_loading()




def _check_window(size, overlap) -> None:
    if not isinstance(size, (int, np.integer)) or isinstance(size, bool) or size < 1:
        raise ValueError(f"size must be an int >= 1, got {size!r}")
    if not isinstance(overlap, (int, np.integer)) or isinstance(overlap, bool) or not 0 <= overlap < size:
        raise ValueError(f"overlap must be an int with 0 <= overlap < size ({size}), got {overlap!r}")






def _check_queries(queries, name: str = "queries") -> None:
    if isinstance(queries, str) or not isinstance(queries, Sequence):
        raise TypeError(f"{name} must be a list of str, got {type(queries).__name__}")
    for i, q in enumerate(queries):
        check_text(q, f"{name}[{i}]")


def _check_chunks(chunks) -> list[dict]:
    if isinstance(chunks, (str, Mapping)) or not isinstance(chunks, Sequence) or not chunks:
        raise ValueError("chunks must be a non-empty list of chunk dicts (see chunk_corpus)")
    out = []
    for i, c in enumerate(chunks):
        if not isinstance(c, Mapping) or not {"chunk_id", "doc_id", "text"} <= set(c):
            raise ValueError(f"chunks[{i}] must be a dict with chunk_id, doc_id and text, got {c!r}")
        out.append(dict(c))
    ids = [c["chunk_id"] for c in out]
    if len(set(ids)) != len(ids):
        raise ValueError("chunk ids must be unique")
    return out
