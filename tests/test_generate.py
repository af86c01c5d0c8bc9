"""Constrained decoding (course_lib.generate.SpanTrie, SpanConstraint) and the span readers (chapter 4).

The oracle for the trie is the text itself: the whole-word spans of a passage, listed by
splitting it on whitespace and punctuation with a regular expression.
"""
from __future__ import annotations

import math
import re

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from course_lib import rag
from course_lib.generate import Generator, SpanConstraint, SpanTrie

WORDS = st.sampled_from(["the", "river", "Nile", "1816", "Denver", "Broncos", "won", "in", "of", "a", "café",
                         "Zürich", "x", "AB12", "naïve", "—", "(Harvey)", "stethoscope", "Laennec's", "UNESCO"])
SEPARATORS = st.sampled_from([" ", " ", " ", ", ", ". ", "; ", " - ", "\n"])


@pytest.fixture(scope="module")
def tiny_generator():
    return Generator("tiny", max_new_tokens=8, batch_size=3)


def passages_strategy(max_words: int = 14):
    text = st.lists(st.tuples(WORDS, SEPARATORS), min_size=1, max_size=max_words).map(
        lambda pairs: "".join(w + s for w, s in pairs).strip())
    return st.lists(text, min_size=1, max_size=3)


def spans_in(trie: SpanTrie, tokenizer) -> set[str]:
    """Every stoppable path of the trie, decoded."""
    out, stack = set(), [((), trie.root)]
    while stack:
        prefix, node = stack.pop()
        for token, child in node.items():
            if token == SpanTrie.END:
                out.add(tokenizer.decode(list(prefix), clean_up_tokenization_spaces=False))
            else:
                stack.append((prefix + (token,), child))
    return out


def whole_word_spans(passage: str) -> set[str]:
    """Substrings that start at a non-space after a space (or the start) and end before a
    non-alphanumeric character (or the end), found by brute force."""
    starts = [m.start() for m in re.finditer(r"\S+", passage)]
    ends = [i for i in range(1, len(passage) + 1) if i == len(passage) or not passage[i].isalnum()]
    return {passage[s:e] for s in starts for e in ends if e > s}


def test_span_trie_by_hand(tiny_generator):
    tokenizer = tiny_generator.tokenizer
    trie = SpanTrie(["Denver Broncos won Super Bowl 50."], tokenizer, max_tokens=16)
    found = spans_in(trie, tokenizer)
    assert {"Denver Broncos", "Broncos won Super Bowl 50", "Bowl 50.", "50"} <= found
    assert not any(s.startswith(" ") or s.startswith("roncos") for s in found)
    assert "Denv" not in found  # never stops inside a word
    denver = tokenizer("Denver", add_special_tokens=False)["input_ids"]
    assert denver in trie and [] not in trie
    allowed, may_stop = trie.next_tokens(tokenizer("Denver Broncos won", add_special_tokens=False)["input_ids"])
    assert may_stop and tokenizer.decode(allowed).strip() == "Super"
    assert trie.next_tokens(tokenizer("Broncos lost", add_special_tokens=False)["input_ids"]) == ([], False)
    short = SpanTrie(["Denver Broncos won Super Bowl 50."], tokenizer, max_tokens=1)
    assert spans_in(short, tokenizer) <= {"Denver", "Broncos", "won", "Super", "Bowl", "50", "50."}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(passages=passages_strategy(), max_tokens=st.integers(1, 8))
def test_span_trie_holds_exactly_the_whole_word_spans(tiny_generator, passages, max_tokens):
    tokenizer = tiny_generator.tokenizer
    trie = SpanTrie(passages, tokenizer, max_tokens=max_tokens)
    oracle = set().union(*(whole_word_spans(p) for p in passages))
    found = spans_in(trie, tokenizer)
    assert found <= oracle  # sound: every answer the trie allows is a whole-word span of a passage
    # complete: every ASCII whole-word span that ends where one of the passage's own tokens ends
    # (read from a word on), within max_tokens tokens; "(Harvey)," has no span "(Harvey)" when ")," is one token
    reachable = set()
    for p in passages:
        for m in re.finditer(r"\S+", p):
            offsets = tokenizer(p[m.start():], add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
            reachable |= {p[m.start():m.start() + end] for _, end in offsets[:max_tokens]}
    ascii_short = {s for s in oracle & reachable if s.isascii() and not s[-1].isspace()}
    assert ascii_short <= found


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(passages=passages_strategy(), question=st.text(min_size=1, max_size=40))
def test_every_constrained_answer_is_a_span_of_its_passages(tiny_generator, passages, question):
    reader = rag.GenerativeReader(tiny_generator, decoding="spans", max_answer_tokens=6)
    chunks = [{"chunk_id": f"c{i}", "doc_id": f"d{i}", "title": "", "text": p} for i, p in enumerate(passages)]
    result = reader.read(question, chunks)
    answer = result["answer"]
    assert answer and answer in set().union(*(whole_word_spans(p) for p in passages))
    [n] = result["cited"]
    assert answer in passages[n - 1] and not any(answer in p for p in passages[:n - 1])
    assert result["doc_ids"] == [f"d{n - 1}"]


def test_span_constraint_masks_all_but_the_allowed_tokens(tiny_generator):
    tokenizer = tiny_generator.tokenizer
    trie = SpanTrie(["alpha beta gamma"], tokenizer, max_tokens=4)
    eos = tokenizer.eos_token_id
    beta = tokenizer(" beta", add_special_tokens=False)["input_ids"]
    alpha = tokenizer("alpha", add_special_tokens=False)["input_ids"]
    prompt = torch.tensor([[5, 6, 7]])
    assert len(alpha) == 1 and len(beta) == 1
    constraint = SpanConstraint([trie, trie], prompt_length=3, stop_ids=[eos])
    scores = torch.zeros(2, len(tokenizer))
    ids = torch.tensor([[5, 6, 7] + alpha, [5, 6, 7, eos]])
    out = constraint(ids, scores)
    assert set(torch.nonzero(out[0] == 0).flatten().tolist()) == {beta[0], eos}
    assert torch.all(out[1] == 0)  # a row that has stopped is left alone
    start = SpanConstraint([trie], prompt_length=3, stop_ids=[eos])(prompt, torch.zeros(1, len(tokenizer)))
    assert eos not in torch.nonzero(start[0] == 0).flatten().tolist()  # an empty answer is no span
    with pytest.raises(ValueError, match="stop_ids"):
        SpanConstraint([trie], 3, [])


def test_span_trie_and_generate_reject_bad_input(tiny_generator):
    with pytest.raises(TypeError, match="passages"):
        SpanTrie("one passage", tiny_generator.tokenizer)
    with pytest.raises(ValueError, match="max_tokens"):
        SpanTrie(["a b"], tiny_generator.tokenizer, max_tokens=0)
    with pytest.raises(ValueError, match="spans must hold one SpanTrie per prompt"):
        tiny_generator.generate(["a", "b"], spans=[SpanTrie(["a b"], tiny_generator.tokenizer)])
    with pytest.raises(ValueError, match="decoding must be one of"):
        rag.GenerativeReader(tiny_generator, decoding="yes")
    for name in ("max_answer_tokens", "sentences", "max_answer_words", "starts"):
        with pytest.raises(ValueError, match=name):
            rag.GenerativeReader(tiny_generator, **{name: 0})


def test_constrained_reader_closed_book_is_unconstrained_and_cached_per_passages(tiny_generator):
    free = rag.GenerativeReader(tiny_generator, decoding="free")
    spans = rag.GenerativeReader(tiny_generator, decoding="spans")
    assert spans.read("Who won?", None)["answer"] == free.read("Who won?", None)["answer"]
    ranked = rag.GenerativeReader(tiny_generator, decoding="ranked")
    assert ranked.read("Who won?", None)["answer"] == free.read("Who won?", None)["answer"]
    one = spans.read("Who won?", [{"chunk_id": "a", "doc_id": "a", "text": "Denver Broncos won"}])
    two = spans.read("Who won?", [{"chunk_id": "a", "doc_id": "a", "text": "Carolina Panthers lost"}])
    assert one["answer"] in "Denver Broncos won" and two["answer"] in "Carolina Panthers lost"


def test_training_shots_come_from_the_training_split():
    from course_lib import data

    shots = rag.training_shots(3)
    splits = data.load_squad_like()
    assert len(shots) == 3 and all(s["answer"] in s["passages"][0] for s in shots)
    assert {s["question"] for s in shots} <= set(splits["train"]["question"])
    assert not {s["question"] for s in shots} & set(splits["validation"]["question"])
    assert rag.training_shots(0) == []
    with pytest.raises(ValueError, match="n must be"):
        rag.training_shots(-1)


def brute_candidates(question: str, text: str, max_words: int) -> set[str]:
    """The oracle for answer_candidates: word runs by index arithmetic on str.split, edges stripped."""
    from course_lib.text import STOP_WORDS, tokenize

    words = text.split()
    asked = set(tokenize(question, stopwords=STOP_WORDS))
    out = set()
    for i in range(len(words)):
        for j in range(i + 1, min(i + max_words, len(words)) + 1):
            run = " ".join(words[i:j])
            first, last = words[i].strip(rag.EDGE_PUNCTUATION), words[j - 1].strip(rag.EDGE_PUNCTUATION)
            if not first or not last or first.lower() in STOP_WORDS or last.lower() in STOP_WORDS:
                continue
            span = run[run.index(first):len(run) - run[::-1].index(last[::-1])]
            if set(tokenize(span, stopwords=STOP_WORDS)) - asked:
                out.add(span)
    return out


def test_answer_candidates_by_hand():
    text = "The Denver Broncos won Super Bowl 50 (in 2016)."
    found = rag.answer_candidates("Who won Super Bowl 50?", text, max_words=2)
    assert found[:3] == ["Denver", "Denver Broncos", "Broncos"]
    assert "2016" in found and "50" not in found and "won" not in found  # question words say nothing new
    assert not any(c.split()[0].lower() in ("the", "in") for c in found)
    with pytest.raises(ValueError, match="max_words"):
        rag.answer_candidates("q", text, max_words=0)
    with pytest.raises(ValueError, match="n must be"):
        rag.best_sentences("q", [text], n=0)


@settings(max_examples=60, deadline=None)
@given(passages=passages_strategy(), question=st.text(min_size=1, max_size=40), max_words=st.integers(1, 4))
def test_answer_candidates_equal_the_brute_force_spans(passages, question, max_words):
    text = " ".join(passages)
    found = rag.answer_candidates(question, text, max_words)
    assert len(found) == len(set(found)) and all(c in text for c in found)
    assert {" ".join(c.split()) for c in found} == brute_candidates(question, text, max_words)


def test_best_sentences_by_hand():
    passages = ["Paris is big. The Eiffel tower is in Paris.", {"doc_id": "b", "text": "Towers of Paris are tall."}]
    assert rag.best_sentences("Where is the Eiffel tower?", passages, 2) == [
        (0, "The Eiffel tower is in Paris."), (1, "Towers of Paris are tall.")]


def full_pass_score(generator, prompt, text: str) -> float:
    """The oracle for one answer's log p(a, eos | prompt): one forward pass over prompt + a + eos,
    no cache, no batch."""
    ids = generator.tokenizer(generator.render(prompt), add_special_tokens=False)["input_ids"]
    tokens = generator.tokenizer(text, add_special_tokens=False)["input_ids"] + [generator.tokenizer.eos_token_id]
    with torch.inference_mode():
        logp = generator.model(torch.tensor([ids + tokens])).logits[0].log_softmax(-1)
    return float(sum(logp[len(ids) - 1 + k, t] for k, t in enumerate(tokens)))


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(passages=passages_strategy(), question=st.text(min_size=1, max_size=40),
       weights=st.lists(st.floats(-3, 3), min_size=len(rag.SPAN_FEATURES), max_size=len(rag.SPAN_FEATURES)))
def test_ranked_answer_is_the_best_scored_span_of_the_passages(tiny_generator, passages, question, weights):
    """Whatever the weights: the answer is a candidate span of the chosen sentences, its score is
    w . x with x's lm the full-pass log-probability, no candidate scores higher, and it cites the
    first passage that contains it."""
    weights = dict(zip(rag.SPAN_FEATURES, weights))
    reader = rag.GenerativeReader(tiny_generator, decoding="ranked", max_answer_words=3, starts=None,
                                  weights=weights)
    chunks = [{"chunk_id": f"c{i}", "doc_id": f"d{i}", "title": "", "text": p} for i, p in enumerate(passages)]
    result = reader.read(question, chunks)
    chosen = rag.best_sentences(question, chunks, reader.sentences)
    candidates = list(dict.fromkeys(a for _, t in chosen for a in rag.answer_candidates(question, t, 3)))
    if not candidates:
        assert result["answer"] == rag.NO_ANSWER and result["cited"] == []
        return
    [table] = reader.span_table([question], [chunks])
    assert table["spans"] == candidates and result["candidates"] == len(candidates)
    lm = table["features"][:, rag.SPAN_FEATURES.index("lm")]
    for span, value in list(zip(candidates, lm))[:4]:
        assert value == pytest.approx(full_pass_score(tiny_generator, result["prompt"], span), abs=1e-3)
    scores = table["features"] @ [weights[f] for f in rag.SPAN_FEATURES]
    assert result["answer"] in candidates and result["score"] == pytest.approx(scores.max(), abs=1e-6)
    assert any(result["answer"] in p for p in passages)                 # a span of the given passages
    [n] = result["cited"]
    assert result["answer"] in passages[n - 1] and not any(result["answer"] in p for p in passages[:n - 1])
    assert result["doc_ids"] == [f"d{n - 1}"]


def test_ranked_reader_keeps_the_candidates_of_the_likeliest_first_words(tiny_generator):
    """starts=2: the kept spans begin with the two first words of highest log p(w | q, S) (the oracle
    scores each first word alone), and they are all the candidates that begin so."""
    text = "Thomas Telford built the bridge in 1820 near Bristol. Masons from Bath finished the church in 1741."
    chunks = [{"doc_id": "d", "title": "", "text": text}]
    question = "Who built the bridge?"
    every = rag.GenerativeReader(tiny_generator, sentences=2, max_answer_words=3, starts=None)
    pruned = rag.GenerativeReader(tiny_generator, sentences=2, max_answer_words=3, starts=2)
    [all_spans] = every.span_table([question], [chunks])
    [kept] = pruned.span_table([question], [chunks])
    prompt = pruned.read(question, chunks)["prompt"]
    firsts = list(dict.fromkeys(a.split()[0] for a in all_spans["spans"]))
    best = sorted(firsts, key=lambda w: -tiny_generator.logprob(prompt, [w])[0])[:2]
    assert kept["spans"] == [a for a in all_spans["spans"] if a.split()[0] in best]
    rows = [all_spans["spans"].index(a) for a in kept["spans"]]
    assert kept["features"] == pytest.approx(all_spans["features"][rows])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.lists(st.tuples(WORDS, SEPARATORS), min_size=1, max_size=8).map(
    lambda pairs: " " + "".join(w + s for w, s in pairs).strip()), data=st.data())
def test_prefix_logprobs_equal_each_prefix_scored_alone(tiny_generator, text, data):
    """The oracle: logprob(..., stop=True) of each prefix, and the full pass over prompt + prefix + eos."""
    ends = data.draw(st.lists(st.integers(1, len(text)), min_size=1, max_size=5))
    prompt = [{"role": "user", "content": "Where is it?"}]
    [got] = tiny_generator.prefix_logprobs([prompt], [text], [ends])
    assert got == pytest.approx(tiny_generator.logprob(prompt, [text[:e] for e in ends], stop=True), abs=1e-4)
    assert got[0] == pytest.approx(full_pass_score(tiny_generator, prompt, text[:ends[0]]), abs=1e-3)


def test_prefix_logprobs_bad_arguments(tiny_generator):
    with pytest.raises(ValueError, match="ends"):
        tiny_generator.prefix_logprobs(["q"], [" ab"], [[4]])
    with pytest.raises(ValueError, match="ends must hold one list"):
        tiny_generator.prefix_logprobs(["q"], [" ab"], [])
    with pytest.raises(ValueError, match="non-empty str"):
        tiny_generator.prefix_logprobs(["q"], [""], [[1]])


def test_answer_type_by_hand():
    cases = {"When did Harvey publish it?": "date", "In what year was it built?": "date",
             "How many players are in a team?": "number", "What percentage of people voted?": "number",
             "Who invented the stethoscope?": "person", "Whose ship sank?": "person",
             "Where is the Nile?": "place", "Which city hosted it?": "place", "What is a stethoscope?": "other"}
    assert {q: rag.answer_type(q) for q in cases} == cases
    with pytest.raises(TypeError, match="question"):
        rag.answer_type(None)


def test_span_features_by_hand():
    sentence = "In 1816, the French physician René Laennec invented the stethoscope in Paris."
    # words: 0 In, 1 1816, 2 the, 3 French, 4 physician, 5 René, 6 Laennec, 7 invented, 8 the, 9 stethoscope,
    # 10 in, 11 Paris.   Question words (stemmed): invent, stethoscop
    year = rag.span_features("When was the stethoscope invented?", sentence, 1, 1)
    assert year == {"words": 1.0, "distance": pytest.approx(math.log1p(6)), "window": 0.0, "echo": 0.0,
                    "type": 1.0, "untyped": 0.0, "comma": 0.0}
    name = rag.span_features("Who invented the stethoscope?", sentence, 5, 6)
    assert name["type"] == 1.0 and name["distance"] == pytest.approx(math.log1p(1)) and name["window"] == 1.0
    wrong = rag.span_features("When was the stethoscope invented?", sentence, 5, 6)
    assert wrong["type"] == 0.0 and wrong["untyped"] == 1.0
    comma = rag.span_features("What happened?", sentence, 1, 4)
    assert comma["comma"] == 1.0 and comma["words"] == 4.0 and comma["distance"] == pytest.approx(math.log1p(12))
    echo = rag.span_features("Who invented the stethoscope?", sentence, 7, 9)
    assert echo["echo"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="first and last"):
        rag.span_features("Who?", sentence, 3, 12)


def test_fit_span_weights_learns_the_deciding_feature_and_the_reader_uses_them(tiny_generator):
    """Tiny: the answers are the years, so the fitted weight of "type" on "when" questions is the
    largest positive one; a reader given those weights answers with the year."""
    text = ("The bridge over the river was built in 1820 by Thomas Telford and the town grew quickly. "
            "Its old church was finished in 1741 by masons from Bristol and rebuilt later.")
    questions = ["When was the bridge over the river built?", "When was the old church finished?"] * 3
    passages = [[{"doc_id": "d", "title": "", "text": text}]] * 6
    references = [["1820"], ["1741"]] * 3
    reader = rag.GenerativeReader(tiny_generator, decoding="ranked", sentences=2, max_answer_words=3, starts=None)
    weights = rag.fit_span_weights(reader, questions, passages, references)
    assert set(weights) == set(rag.SPAN_FEATURES) and weights["type"] > 0
    fitted = rag.GenerativeReader(tiny_generator, decoding="ranked", sentences=2, max_answer_words=3, starts=None,
                                  weights=weights)
    assert [r["answer"] for r in fitted.read_batch(questions[:2], passages[:2])] == ["1820", "1741"]
    with pytest.raises(ValueError, match="both labels"):
        rag.fit_span_weights(reader, questions[:1], passages[:1], [["not in the text"]])
    with pytest.raises(ValueError, match="C must be"):
        rag.fit_span_weights(reader, questions, passages, references, C=0)
    with pytest.raises(ValueError, match="one length"):
        rag.fit_span_weights(reader, questions, passages[:1], references)
    with pytest.raises(TypeError, match="reader"):
        rag.fit_span_weights(tiny_generator, questions, passages, references)


def test_ranked_reader_bad_weights(tiny_generator):
    with pytest.raises(ValueError, match="weights must be a dict"):
        rag.GenerativeReader(tiny_generator, weights={"lm": 1.0})
    with pytest.raises(ValueError, match=r"weights\['lm'\] must be a finite number"):
        rag.GenerativeReader(tiny_generator, weights={**rag.SPAN_WEIGHTS, "lm": float("nan")})


def test_logprob_with_stop_in_batches_equals_one_pair_at_a_time(tiny_generator):
    """More continuations than one batch holds (4 * batch_size = 12): each scored alone is the oracle."""
    words = [f"w{i} x{i % 3}" for i in range(30)]
    prompt = [{"role": "user", "content": "Name a word."}]
    together = tiny_generator.logprob(prompt, words, stop=True)
    alone = [tiny_generator.logprob(prompt, [w], stop=True)[0] for w in words]
    assert together == pytest.approx(alone, abs=1e-4)
    eos = tiny_generator.tokenizer.eos_token
    assert together[0] == pytest.approx(tiny_generator.logprob(prompt, [words[0] + eos])[0], abs=1e-4)
