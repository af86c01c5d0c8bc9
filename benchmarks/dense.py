"""Time course_lib.dense against FAISS and sentence-transformers in one run.

1. Exact top-10 inner-product search, 100,000 x 384 float32 unit vectors, 1,000
   queries: ``course_lib.dense.exact_search`` (blocked matrix product + two-level
   top-k) against ``faiss.IndexFlatIP``.  Target: >= 0.8x FAISS's queries per second.
2. Encoding throughput of the packaged all-MiniLM-L6-v2 on the CPU (passages of the
   bundled collection per second) at batch sizes 16-128: ``BiEncoder.encode``
   against ``SentenceTransformer.encode`` (same model, same 256-token limit).
3. ``rerank`` (not by default): fine-tune the MiniLM cross-encoder on ``--pairs`` training pairs
   from the train topics (minutes), then compare BM25, the bi-encoder, their RRF
   fusion and reranking on the held-out validation topics (nDCG@10, MRR@10).

Every system runs with the same threads (``OMP_NUM_THREADS``, 1 unless set).
No assertion: read the table.  Run: make bench, or python benchmarks/dense.py [exact] [encode] [rerank].
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # the same threads for every system
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from course_lib import env, models  # noqa: E402
from course_lib.dense import BiEncoder, exact_search, reciprocal_rank_fusion  # noqa: E402

N, DIM, N_QUERIES, K = 100_000, 384, 1_000, 10
BATCH_SIZES = (16, 32, 64, 128)


def timed(fn):
    """(result, wall seconds, CPU seconds of this process) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def interleaved(systems: dict, repeat: int) -> dict:
    """{name: (result, best wall s, best CPU s)}, the systems taking turns so that both see the
    same load of a shared machine; CPU time counts only this process's work."""
    best = {name: [None, float("inf"), float("inf")] for name in systems}
    for _ in range(repeat):
        for name, fn in systems.items():
            result, wall, cpu = timed(fn)
            best[name] = [result, min(best[name][1], wall), min(best[name][2], cpu)]
    return best


def unit_vectors(rng, n: int) -> np.ndarray:
    X = rng.standard_normal((n, DIM), dtype=np.float32)
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def table(title: str, header: tuple, rows: list) -> None:
    print(f"\n{title}")
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows)]
    for row in (header, *rows):
        print("  ".join(str(x).rjust(w) for x, w in zip(row, widths)))


def exact_search_benchmark(repeat: int = 5) -> None:
    import faiss

    rng = np.random.default_rng(0)
    D, Q = unit_vectors(rng, N), unit_vectors(rng, N_QUERIES)
    index = faiss.IndexFlatIP(DIM)
    index.add(D)
    best = interleaved({"course_lib exact_search": lambda: exact_search(Q, D, K),
                        "faiss IndexFlatIP": lambda: index.search(Q, K)[::-1]}, repeat)
    (ids, scores), (faiss_ids, faiss_scores) = (best[name][0] for name in best)
    faiss_wall, faiss_cpu = best["faiss IndexFlatIP"][1:]
    table(
        f"Exact top-{K} search: {N:,} x {DIM} float32, {N_QUERIES:,} queries, best of {repeat} "
        f"(target: course_lib >= 0.80x faiss)",
        ("system", "queries/s (wall)", "ratio", "queries/s (CPU time)", "ratio"),
        [(name, f"{N_QUERIES / wall:,.0f}", f"{faiss_wall / wall:.2f}x", f"{N_QUERIES / cpu:,.0f}",
          f"{faiss_cpu / cpu:.2f}x") for name, (_, wall, cpu) in best.items()],
    )
    print(f"same ids as faiss: {(ids == faiss_ids).mean():.4%}; "
          f"max score difference {np.abs(scores - faiss_scores).max():.1e}")


def encoding_benchmark(passages: list[str], repeat: int = 2) -> None:
    import torch
    from sentence_transformers import SentenceTransformer

    path = str(models.packaged_minilm())
    ours = BiEncoder(path, cache=False, device="cpu")
    oracle = SentenceTransformer(path, device="cpu")
    oracle.max_seq_length = ours.max_length
    rows = []
    for batch_size in BATCH_SIZES:
        best = interleaved({
            "course_lib": lambda: ours.encode(passages, batch_size, progress=False),
            "sentence-transformers": lambda: oracle.encode(passages, batch_size=batch_size, show_progress_bar=False),
        }, repeat)
        (_, our_wall, our_cpu), (_, st_wall, st_cpu) = best.values()
        rows.append((batch_size, f"{len(passages) / our_wall:.1f}", f"{len(passages) / st_wall:.1f}",
                     f"{st_wall / our_wall:.2f}x", f"{len(passages) / our_cpu:.1f}", f"{len(passages) / st_cpu:.1f}",
                     f"{st_cpu / our_cpu:.2f}x"))
    table(
        f"Encoding {len(passages)} bundled passages with all-MiniLM-L6-v2 on the CPU, "
        f"{torch.get_num_threads()} torch thread(s), best of {repeat}: passages/s, course_lib vs sentence-transformers",
        ("batch size", "course_lib (wall)", "s-t (wall)", "ratio", "course_lib (CPU time)", "s-t (CPU time)", "ratio"),
        rows,
    )


def rerank_benchmark(n_pairs: int, save_to: str | None) -> None:
    """Fine-tune the cross-encoder on the train topics; evaluate on the validation topics."""
    import torch

    from course_lib.data import bundled
    from course_lib.metrics import evaluate_run
    from course_lib.rerank import train_cross_encoder, training_pairs
    from course_lib.sparse import BM25

    corpus = {pid: p["text"] for pid, p in bundled.passages().items()}
    split = {name: [t for t in bundled.topics() if t["split"] == name] for name in ("train", "validation")}

    def query_set(topics, kind: str):
        """The retrieval queries, or the QA questions as queries (relevant: the passage holding the answer)."""
        if kind == "queries":
            return ({q["id"]: q["text"] for t in topics for q in t["queries"]},
                    {q["id"]: dict(q["qrels"]) for t in topics for q in t["queries"]})
        return ({x["id"]: x["question"] for t in topics for x in t["qa"]},
                {x["id"]: {x["passage"]: 1} for t in topics for x in t["qa"]})

    bm25 = BM25().index(list(corpus.values()), list(corpus))
    (queries, qrels), (questions, answers) = (query_set(split["train"], kind) for kind in ("queries", "qa"))
    pairs = training_pairs(queries | questions, qrels | answers, corpus, bm25.search, negatives=3)
    keep = np.random.default_rng(0).choice(len(pairs), min(n_pairs, len(pairs)), replace=False)
    pairs = [pairs[i] for i in sorted(keep)]
    print(f"\nFine-tuning the MiniLM cross-encoder on {len(pairs)} pairs ({sum(y for *_, y in pairs):.0f} "
          f"positive), 1 epoch, batch 16, {torch.get_num_threads()} torch thread(s)")
    reranker, wall, cpu = timed(
        lambda: train_cross_encoder(pairs, str(models.packaged_minilm()), epochs=1, batch_size=16, progress=False,
                                    save_to=save_to))
    print(f"fine-tuning took {wall:.0f} s wall clock, {cpu:.0f} s of CPU time")

    encoder = BiEncoder(str(models.packaged_minilm()), cache=False)
    encoder.index(list(corpus.values()), list(corpus), progress=False)
    rows = []
    for kind in ("queries", "qa"):
        queries, qrels = query_set(split["validation"], kind)
        texts = list(queries.values())
        bm25_top = [bm25.search(q, 20) for q in texts]
        dense_top = encoder.search_batch(texts, 20)
        runs = {
            "BM25": bm25_top,
            "bi-encoder (MiniLM, mean)": dense_top,
            "RRF(BM25, bi-encoder)": [reciprocal_rank_fusion([b, d]) for b, d in zip(bm25_top, dense_top)],
            "BM25 top-20 -> cross-encoder": [reranker.rerank(q, b, corpus) for q, b in zip(texts, bm25_top)],
            "bi-encoder top-20 -> cross-encoder": [reranker.rerank(q, d, corpus) for q, d in zip(texts, dense_top)],
        }
        for name, rankings in runs.items():
            run = {qid: dict(r[:10]) for qid, r in zip(queries, rankings)}
            scores = evaluate_run(run, qrels, ("ndcg@10", "mrr@10"))
            rows.append((f"{kind} ({len(queries)})", name, f"{scores['ndcg@10']:.3f}", f"{scores['mrr@10']:.3f}"))
    table("Held-out validation topics (QA questions: the relevant passage is the one holding the answer)",
          ("queries", "system", "nDCG@10", "MRR@10"), rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("sections", nargs="*", choices=("exact", "encode", "rerank"), default=["exact", "encode"],
                        help="what to run (default: exact encode; rerank fine-tunes for minutes)")
    parser.add_argument("--pairs", type=int, default=2000, help="training pairs for rerank (default 2000)")
    parser.add_argument("--save-to", help="rerank: save the fine-tuned cross-encoder there "
                                          "(course_lib.rerank.fine_tuned_path() is where CrossEncoder() looks)")
    args = parser.parse_args()
    env.hub_available()  # decide offline at once
    env.quiet()
    print(f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}, {os.cpu_count()} CPUs")
    if "exact" in args.sections:
        exact_search_benchmark()
    if "encode" in args.sections:
        from course_lib.data import bundled

        encoding_benchmark([p["text"] for p in bundled.passages().values()][:128])
    if "rerank" in args.sections:
        rerank_benchmark(args.pairs, args.save_to)


if __name__ == "__main__":
    main()
