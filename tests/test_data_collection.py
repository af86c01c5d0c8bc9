"""Guards on the bundled collection (course_lib/data/collection/*.json).

Per-file checks run on each topic file; collection-wide checks assert the counts
the course promises. See course_lib/data/FORMAT.md for the authoring rules.
"""
from __future__ import annotations

import json
import re
import unicodedata
from itertools import combinations
from pathlib import Path

import pytest

from course_lib.text import STOP_WORDS, tokenize

COLLECTION = Path(__file__).resolve().parents[1] / "course_lib" / "data" / "collection"
FILES = sorted(COLLECTION.glob("*.json"))
AREAS = {"science", "history", "geography", "technology", "arts", "sport", "medicine", "economy"}
SIZE_BUDGET_BYTES = 1_500_000  # the whole bundled collection


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


TOPICS = {p.stem: _load(p) for p in FILES}
PASSAGES = {p["id"]: p for t in TOPICS.values() for p in t["passages"]}


def _content(text: str, stem: bool) -> set[str]:
    return set(tokenize(text, stopwords=STOP_WORDS, stem=stem))


def _clean(text: str) -> bool:
    return unicodedata.normalize("NFC", text) == text and not any(
        unicodedata.category(ch) == "Cc" for ch in text
    )


@pytest.fixture(params=sorted(TOPICS), ids=sorted(TOPICS))
def topic(request):
    return TOPICS[request.param]


def test_topic_header(topic):
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", topic["topic"])
    assert (COLLECTION / f"{topic['topic']}.json").exists(), "topic must equal the file name"
    assert topic["area"] in AREAS
    assert topic["split"] in {"train", "validation"}
    assert topic["title"].strip()


def test_passages(topic):
    for i, p in enumerate(topic["passages"], start=1):
        assert p["id"] == f"{topic['topic']}-{i:02d}", f"ids run -01, -02, ...: {p['id']}"
        n = len(p["text"].split())
        assert 60 <= n <= 180, f"{p['id']} has {n} words, expected 60-180"
        assert "\n" not in p["text"] and _clean(p["text"]) and _clean(p["title"]), p["id"]


def test_queries_and_qrels(topic):
    for q in topic["queries"]:
        assert q["id"].startswith(topic["topic"] + "-q") and q["text"].strip() and _clean(q["text"])
        assert any(g > 0 for g in q["qrels"].values()), f"{q['id']} has no relevant passage"
        for pid, grade in q["qrels"].items():
            assert pid in PASSAGES, f"{q['id']} judges unknown passage {pid}"
            assert grade in (0, 1, 2), f"{q['id']}: grade {grade} for {pid}"


def test_paraphrase_queries_share_no_content_word(topic):
    for q in (q for q in topic["queries"] if q["paraphrase"]):
        for pid, grade in q["qrels"].items():
            if grade == 0:
                continue
            for stem in (False, True):
                shared = _content(q["text"], stem) & _content(PASSAGES[pid]["text"], stem)
                assert not shared, f"{q['id']} shares {sorted(shared)} with {pid} (stem={stem})"


def test_qa(topic):
    ids = {p["id"] for p in topic["passages"]}
    for ex in topic["qa"]:
        assert ex["passage"] in ids, f"{ex['id']}: passage must belong to this topic"
        assert ex["context"] in ("passage", "article")
        assert ex["question"].strip().endswith("?") and _clean(ex["question"])
        n = len(ex["answers"])
        assert n == 1 if topic["split"] == "train" else 1 <= n <= 3, f"{ex['id']}: {n} answers"
        for a in ex["answers"]:
            assert a and a == a.strip(), f"{ex['id']}: answer {a!r} has outer white space"
            assert a in PASSAGES[ex["passage"]]["text"], f"{ex['id']}: {a!r} not in {ex['passage']}"


def test_multihop(topic):
    for mh in topic["multihop"]:
        first, second = mh["passages"]
        assert first != second and first in PASSAGES and second in PASSAGES, mh["id"]
        assert mh["answer"] in PASSAGES[second]["text"], f"{mh['id']}: answer not in {second}"
        assert mh["bridge"].strip() and mh["question"].strip().endswith("?")


def test_mcq(topic):
    for mc in topic["mcq"]:
        choices = mc["choices"]
        assert len(choices) == 4 and len(set(choices)) == 4, mc["id"]
        assert mc["answer"] in range(4), mc["id"]
        text = PASSAGES[mc["passage"]]["text"].lower()
        assert choices[mc["answer"]].lower() in text, f"{mc['id']}: correct choice not in passage"


# ---- collection-wide -------------------------------------------------------------


def _all(key):
    return [x for t in TOPICS.values() for x in t[key]]


def test_counts():
    assert len(TOPICS) >= 30
    assert len(PASSAGES) >= 400
    queries = _all("queries")
    assert len(queries) >= 150
    assert sum(q["paraphrase"] for q in queries) >= 40
    assert sum(len(q["qrels"]) > 1 for q in queries) >= 50, "many queries need several judgments"
    assert len(_all("qa")) >= 600
    assert len(_all("multihop")) >= 40
    assert len(_all("mcq")) >= 60


def test_ids_unique():
    ids = [x["id"] for key in ("passages", "queries", "qa", "multihop", "mcq") for x in _all(key)]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    assert not dupes, dupes


def test_both_splits_and_long_articles():
    splits = {t["split"] for t in TOPICS.values()}
    assert splits == {"train", "validation"}
    assert sum(ex["context"] == "article" for ex in _all("qa")) >= 30


def test_mcq_answer_positions_are_balanced():
    positions = [mc["answer"] for mc in _all("mcq")]
    for i in range(4):
        assert positions.count(i) >= len(positions) // 8, f"answer index {i} is rare"


def _shingles(text: str, n: int = 5) -> set[tuple[str, ...]]:
    words = tokenize(text)
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def test_no_near_duplicate_passages():
    sh = {pid: _shingles(p["text"]) for pid, p in PASSAGES.items()}
    for a, b in combinations(sh, 2):
        union = sh[a] | sh[b]
        jaccard = len(sh[a] & sh[b]) / len(union) if union else 1.0
        assert jaccard < 0.3, f"{a} and {b} are near duplicates (Jaccard {jaccard:.2f})"


def test_size_budget():
    size = sum(p.stat().st_size for p in FILES)
    assert size <= SIZE_BUDGET_BYTES, f"collection is {size} bytes, budget {SIZE_BUDGET_BYTES}"


# ---- the controlled collection of chapter 2 (course_lib/data/controlled) ----

def test_controlled_collection_is_well_formed():
    from course_lib.data import load_controlled

    c = load_controlled()
    raw = json.loads((COLLECTION.parent / "controlled" / "lengths.json").read_text(encoding="utf-8"))
    assert len({d["id"] for d in raw["documents"]}) == len(raw["documents"]) == len(c.documents)
    assert len({q["id"] for q in raw["queries"]}) == len(raw["queries"]) == len(c.queries)
    assert 30 <= len(c.documents) <= 60 and 10 <= len(c.queries) <= 20
    for qid, judged in c.qrels.items():
        assert set(judged) <= set(c.documents), qid
        assert set(judged.values()) <= {0, 1, 2} and 2 in judged.values(), qid
    assert all(_clean(t) and _clean(x) for t, x in c.documents.values())
    assert not set(c.documents) & set(PASSAGES)          # no id clash with the bundled passages
    load_controlled().qrels["q01"].clear()                # each call reads afresh
    assert load_controlled().qrels["q01"]


def test_controlled_collection_varies_length_and_repeats_terms():
    """What it is for: documents of very different lengths, and unjudged-relevant ones repeating a query term."""
    from course_lib.data import load_controlled

    c = load_controlled()
    words = sorted(len(text.split()) for _, text in c.documents.values())
    assert words[0] <= 20 and words[-1] >= 30 * words[0]
    stuffed = [(qid, d) for qid, judged in c.qrels.items() for d, grade in judged.items() if grade == 0
               and max(tokenize(" ".join(c.documents[d])).count(t) for t in tokenize(c.queries[qid])) >= 10]
    assert len(stuffed) >= 5, stuffed


def test_on_the_controlled_collection_bm25_beats_tfidf_and_needs_both_parameters():
    """The lesson chapter 2 draws from it: BM25 (k1 = 1.5, b = 0.75) beats the tf-idf cosine by a clear margin,
    and presence only (k1 = 0), no length normalisation (b = 0) or full normalisation (b = 1) each lose."""
    from course_lib import metrics, sparse
    from course_lib.data import load_controlled

    c = load_controlled()
    ids = list(c.documents)
    docs = [tokenize(f"{t} {x}") for t, x in c.documents.values()]
    queries = {q: tokenize(text) for q, text in c.queries.items()}

    def ndcg(retriever):
        return metrics.evaluate_run(retriever.index(docs, ids).run(queries, k=10), c.qrels, ["ndcg@10"])["ndcg@10"]

    bm25 = ndcg(sparse.BM25(k1=1.5, b=0.75))
    assert bm25 - ndcg(sparse.TfidfRetriever()) >= 0.05
    for k1, b in [(0.0, 0.75), (1.5, 0.0), (1.5, 1.0)]:
        assert ndcg(sparse.BM25(k1=k1, b=b)) < bm25 - 0.01, (k1, b)
