"""qair-course: shared, tested helpers for the chapters on question answering,
information retrieval and retrieval-augmented generation.

Modules
-------
Teaching, one family of formulas each:
``text`` (tokens, stop lists), ``sparse`` (tf-idf, the inverted index, BM25),
``metrics`` (ranking metrics, SQuAD EM/F1), ``dense`` (pooling, cosine, exact top-k,
RRF, batching), ``colbert`` (late interaction), ``ann`` (FAISS indexes), ``rerank``
(cross-encoders), ``generate`` (a causal LM: generation, span constraints, likelihoods),
``rag`` (chunking, retrievers, fusion, prompts, readers, multi-hop), ``squad``
(span-prediction readers: preprocessing, post-processing, training), ``models``
(which model for which profile, loading), ``data`` (the bundled collection, hub loaders).
Shared by them: ``ranking`` (the one top-k and its tie rule: score, then doc id),
``checks`` (argument checks whose errors name the argument), ``batching`` (batches of
texts, progress bars).
``plots`` draws the chapters' figures.
Running the course: ``env`` (platform, profile, device, hub), ``cgroup`` (memory limits),
``course`` (release, the main job, reports), ``project`` (badges, links).
Grading: ``grading`` (what test cells call), ``references`` (what exercises are graded
against), ``judge`` (the verdict, outside the kernel), ``grader`` (``make grade``),
``sandbox`` (the grading kernel's confinement), ``nbgrader_ext`` (nbgrader plug-ins),
``similarity`` (alike submissions).

Formula index
-------------
Every formula the course teaches, the chapter that teaches it and the function that
computes it (``tests/test_package.py`` imports each name, so the index cannot go stale)::

    ch  formula                                                        computed by
    1   tf = 1 + log10 count(t, d), 0 when count = 0                   sparse.tf_weight
    1   idf = log10(N / df)                                            sparse.idf_weight
    1   cos(q, d) = q . d / (|q| |d|)                                  sparse.cosine
    1   tf-idf cosine ranking (SMART ltc.ltc, lnc.ltc)                 sparse.TfidfRetriever
    1   postings lists: term -> [(doc, tf, positions)]                 sparse.InvertedIndex
    1   n-grams and feature hashing: |murmur3(t)| mod buckets          sparse.ngrams, sparse.feature_bucket
    1   what a stop list removes (tokens, postings, index size)        text.stop_list_effect
    2   BM25 idf: log(1 + (N - df + 0.5) / (df + 0.5)) and variants    sparse.bm25_idf
    2   BM25 tf: tf / (k1 (1 - b + b |d| / avgdl) + tf) and variants   sparse.bm25_tf
    2   BM25 score: sum over query terms of idf * tf factor            sparse.bm25_term_score, sparse.BM25
    2   P@k = |relevant in top k| / k                                  metrics.precision_at_k
    2   R@k = |relevant in top k| / |relevant|                         metrics.recall_at_k
    2   hit@k = 1 if a relevant document is in the top k               metrics.hit_at_k
    2   RR = 1 / rank of the first relevant; MRR its mean              metrics.reciprocal_rank, metrics.mean_reciprocal_rank
    2   AP = (1 / |relevant|) sum of P@i at relevant ranks; MAP        metrics.average_precision, metrics.mean_average_precision
    2   nDCG@k = DCG@k / IDCG@k, DCG = sum grade / log2(i + 1)         metrics.ndcg_at_k
    3   mean pooling: z = sum_t m_t h_t / sum_t m_t                    dense.mean_pool
    3   [CLS] pooling: z = h_0                                         dense.cls_pool
    3   unit length: x / |x|                                           dense.l2_normalize
    3   all cosines Q D^T of unit vectors                              dense.cosine_matrix
    3   top k: score descending, then doc id ascending                 ranking.top_k, ranking.ranking_from_scores
    3   exact top-k inner-product search                               dense.exact_search
    3   RRF(d) = sum_r 1 / (k + rank_r(d))                             dense.reciprocal_rank_fusion
    3   MaxSim: sum_i max_j q_i . d_j                                  colbert.maxsim
    3   ANN recall@k = |approximate & exact top k| / k                 ann.knn_recall
    3   cross-encoder logit w . tanh(W h_[CLS] + b) + c                rerank.CrossEncoder
    4   min-max: (s - min) / (max - min)                               rag.minmax
    4   weighted fusion (CombSUM): sum_i w_i norm_i(d)                 rag.weighted_fusion
    4   a span's log-likelihood: sum_i log p(a_i | prompt, a_<i)       generate.Generator
    4   multiple-choice accuracy                                       metrics.multiple_choice_accuracy
    4   EM, F1 and MRR of a question-answering run                     rag.evaluate_qa
    5   SQuAD normalisation (lower case, no punctuation or articles)   metrics.normalize_answer
    5   EM = max_r [normalize(pred) == normalize(r)]                   metrics.exact_match
    5   F1 = 2 P R / (P + R) over normalised tokens                    metrics.token_f1
    5   dataset EM and F1 (0-100)                                      metrics.squad_score
    5   answer token labels (start, end) in a window                   squad.label_positions
    5   span score start_logits[s] + end_logits[e] (valid spans)      squad.best_span, squad.postprocess
"""
__version__ = "0.1.0"
