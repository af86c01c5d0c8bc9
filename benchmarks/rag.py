"""Retrieval-augmented generation (chapter 4) on real questions: SQuAD v1.1 dev.

The collection is every paragraph of a fixed sample of dev articles (one paragraph = one
chunk); the queries are a fixed sample of those articles' questions, each with its gold
paragraph.  Printed, in one run:

* retrieval: recall@k of the gold paragraph for BM25, dense and hybrid (RRF);
* reading: EM and token F1 (0-100, SQuAD's normalisation, best over the references) of
  closed-book, open-book with the gold paragraph, and open-book with each retriever's
  top k, for each reader; the share of answers found word for word in a passage, the
  citation precision (the cited passage is the gold paragraph, of the cited answers),
  and the seconds per answer.

Readers (``--readers``): ``free`` is the zero-shot reader the chapter started from;
``shots`` adds worked examples from the bundled QA training split; ``spans`` also
constrains decoding to spans of the passages (``course_lib.generate.SpanConstraint``);
``likelihood`` (with the same shots) ranks the candidate spans of the sentences closest to
the question by log p(answer, eos | question, sentences) alone; ``ranked`` ranks them by
w . x, the likelihood and the span features with the weights ``rag.SPAN_WEIGHTS``
(``GenerativeReader(decoding="ranked")``), or with weights fitted here by
``rag.fit_span_weights`` on ``--fit`` questions of the bundled training split (BM25 top k
over the bundled chunks; never on the dev questions): the printed weights are how
``rag.SPAN_WEIGHTS`` was made.

    .venv/bin/python benchmarks/rag.py [--articles 4] [--questions 100] [--k 3] [--readers free,ranked] [--fit 0]

The dev set is read from ``$QAIR_SHARED/data/squad`` (default: ``../shared`` beside the checkout).

Times depend on the machine's load: on a shared machine they are pessimistic.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEV = Path(os.environ.get("QAIR_SHARED", ROOT.parent / "shared")) / "data" / "squad" / "dev-v1.1.json.zip"
READERS = ("free", "shots", "spans", "likelihood", "ranked")


def sample(rows: list[dict], n_articles: int, n_questions: int, seed: int):
    """The paragraphs of ``n_articles`` articles drawn with ``seed`` (as chunks), and
    ``n_questions`` of their questions drawn with the same seed, with their gold chunk ids."""
    rng = np.random.default_rng(seed)
    titles = sorted({r["title"] for r in rows})
    chosen = set(rng.choice(titles, size=min(n_articles, len(titles)), replace=False).tolist())
    chunks, chunk_of, questions = [], {}, []
    for r in rows:
        if r["title"] not in chosen:
            continue
        key = (r["title"], r["context"])
        if key not in chunk_of:
            chunk_of[key] = f"{r['title']}-{len(chunks)}"
            chunks.append({"chunk_id": chunk_of[key], "doc_id": chunk_of[key], "title": r["title"].replace("_", " "),
                           "text": r["context"]})
        questions.append({"question": r["question"], "answers": r["answers"]["text"], "gold": chunk_of[key]})
    picked = sorted(rng.choice(len(questions), size=min(n_questions, len(questions)), replace=False).tolist())
    return chunks, [questions[i] for i in picked]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEV, help="SQuAD v1.1 dev JSON (zip)")
    parser.add_argument("--articles", type=int, default=4, help="dev articles whose paragraphs form the collection")
    parser.add_argument("--questions", type=int, default=100, help="questions sampled from those articles")
    parser.add_argument("--k", type=int, default=3, help="passages in the open-book prompt")
    parser.add_argument("--shots", type=int, default=2, help="worked examples of the few-shot readers")
    parser.add_argument("--readers", default=",".join(READERS), help=f"comma-separated, from {READERS}")
    parser.add_argument("--retrievers", default="BM25,dense,hybrid", help="comma-separated: BM25, dense, hybrid")
    parser.add_argument("--fit", type=int, default=0,
                        help="bundled training questions to fit the ranked reader's weights on (0: rag.SPAN_WEIGHTS)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads for the generator")
    options = parser.parse_args()
    os.environ.setdefault("COURSE_PROFILE", "cpu")

    from course_lib import env, metrics, rag
    from course_lib.data.squad_json import squad_rows
    from course_lib.generate import Generator

    readers = options.readers.split(",")
    if not set(readers) <= set(READERS):
        parser.error(f"--readers must name some of {READERS}, got {options.readers!r}")
    chunks, qs = sample(squad_rows(options.data), options.articles, options.questions, options.seed)
    questions = [q["question"] for q in qs]
    references = [q["answers"] for q in qs]
    gold = [q["gold"] for q in qs]
    by_id = {c["chunk_id"]: c for c in chunks}
    print(f"SQuAD v1.1 dev, seed {options.seed}: {options.articles} articles, {len(chunks)} paragraphs (the "
          f"collection), {len(qs)} questions; profile {env.profile()}, k = {options.k}")

    start = time.perf_counter()
    bm25 = rag.BM25Retriever(chunks)
    retrievers = {"BM25": bm25}
    wanted = options.retrievers.split(",")
    if "dense" in wanted or "hybrid" in wanted:
        dense = rag.DenseRetriever(chunks)
        retrievers.update({"dense": dense, "hybrid": rag.HybridRetriever([bm25, dense])})
    retrievers = {name: r for name, r in retrievers.items() if name in wanted}
    print(f"retrievers built in {time.perf_counter() - start:.1f} s")
    found = {name: r.retrieve_batch(questions, max(10, options.k)) for name, r in retrievers.items()}
    print("\nrecall of the gold paragraph")
    print(f"{'retriever':<10}" + "".join(f"{f'@{k}':>8}" for k in (1, 3, 5, 10)))
    for name, lists in found.items():
        row = [np.mean([g in [c["chunk_id"] for c in ps[:k]] for g, ps in zip(gold, lists)]) for k in (1, 3, 5, 10)]
        print(f"{name:<10}" + "".join(f"{v:8.3f}" for v in row))

    generator = Generator(max_new_tokens=16, threads=options.threads)
    shots = rag.training_shots(options.shots)
    weights = rag.SPAN_WEIGHTS
    if options.fit:
        from course_lib import data

        start = time.perf_counter()
        train = data.load_squad_like()["train"]
        picked = np.linspace(0, len(train) - 1, min(options.fit, len(train))).round().astype(int).tolist()
        fit_questions = [train[i]["question"] for i in picked]
        bundled = rag.BM25Retriever(rag.chunk_corpus(data.load_corpus(), 64, 16))
        weights = rag.fit_span_weights(rag.GenerativeReader(generator, shots=shots), fit_questions,
                                       bundled.retrieve_batch(fit_questions, options.k),
                                       [train[i]["answers"]["text"] for i in picked])
        print(f"\nweights fitted on {len(picked)} bundled training questions in {time.perf_counter() - start:.0f} s:")
    print("ranked reader's weights: {" + ", ".join(f"{n!r}: {w:.4g}" for n, w in weights.items()) + "}")
    likelihood = {name: float(name == "lm") for name in rag.SPAN_FEATURES}
    reader_of = {"free": rag.GenerativeReader(generator, decoding="free"),
                 "shots": rag.GenerativeReader(generator, shots=shots, decoding="free"),
                 "spans": rag.GenerativeReader(generator, shots=shots, decoding="spans"),
                 "likelihood": rag.GenerativeReader(generator, shots=shots, weights=likelihood),
                 "ranked": rag.GenerativeReader(generator, shots=shots, weights=weights)}
    conditions = {"closed-book": [None] * len(qs), "gold paragraph": [[by_id[g]] for g in gold]}
    conditions.update({f"{name} top {options.k}": [ps[:options.k] for ps in lists] for name, lists in found.items()})

    print(f"\nreading ({generator.name}, {len(qs)} questions; EM and F1 on 0-100)")
    header = f"{'reader':<7}{'passages':<18}{'EM':>7}{'F1':>7}{'in passage':>12}{'cite prec.':>12}{'s/answer':>10}"
    print(header)
    for reader_name in readers:
        reader = reader_of[reader_name]
        for condition, passage_lists in conditions.items():
            if reader_name in ("spans", "likelihood", "ranked") and condition == "closed-book":
                continue  # no passages, nothing to constrain: the same answers as "shots"
            start = time.perf_counter()
            results = reader.read_batch(questions, passage_lists)
            seconds = (time.perf_counter() - start) / len(qs)
            answers = [r["answer"] for r in results]
            em = 100 * np.mean([metrics.exact_match(a, ref) for a, ref in zip(answers, references)])
            f1 = 100 * np.mean([metrics.token_f1(a, ref) for a, ref in zip(answers, references)])
            inside, precision = "", ""
            if condition != "closed-book":
                inside = f"{np.mean([bool(a) and any(a in p['text'] for p in ps) for a, ps in zip(answers, passage_lists)]):.2f}"
                cited = [(r["doc_ids"][0], g) for r, g in zip(results, gold) if r["doc_ids"]]
                precision = f"{np.mean([d == g for d, g in cited]):.2f} of {len(cited)}" if cited else "none"
            print(f"{reader_name:<7}{condition:<18}{em:7.1f}{f1:7.1f}{inside:>12}{precision:>12}{seconds:10.2f}",
                  flush=True)


if __name__ == "__main__":
    main()
