"""Constrained decoding of step 3: only catalogue titles the user has not seen.

A small model asked for "specific items" invents titles or repeats the history. With
the constraint, once a row has written the step-3 marker (``"Step 3:"``), every next
token must continue a catalogue title from a token trie, titles are separated by
``"; "``, and after ``max_items`` titles (fewer only when the token budget would cut the
next one) the row ends. A title is open to a row only if it is not in that row's
banned set (its history, and the titles it has named already), so a finished step 3
names only catalogue items outside the history, whatever the model prefers.

The trie is built once per tokenizer and catalogue (:class:`TitleTrie`);
:meth:`TitleTrie.processor` makes the per-batch ``LogitsProcessor`` (each batch keeps
its own per-row state) that :func:`slimkit.llm.generate.generate` runs after any other
processor (the local teacher's step scaffold). A token forced by an earlier processor
(one finite score left) is followed, not fought: the state machine just reads it.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

SEPARATOR = ";"
"""Between titles: titles contain commas ("Matrix, The (1999)"), rarely semicolons."""
DEFAULT_MARKER = "Step 3:"


@dataclass
class _Node:
    children: dict[int, _Node] = field(default_factory=dict)
    items: list[int] = field(default_factory=list)  # every item whose title passes here
    ends: list[int] = field(default_factory=list)  # items whose title ends here
    depth: int = 0  # tokens from the root


@dataclass(frozen=True)
class ItemConstraint:
    """What the caller asks for: the catalogue (item index -> title, ``[0]`` unused) and,
    per prompt, the item indices it must not name (its history)."""

    titles: Sequence[str]
    banned: Sequence[Collection[int]]
    max_items: int = 3
    marker: str = DEFAULT_MARKER
    max_new_tokens: int | None = None  # the decoding budget: a title that cannot end in it is closed


class TitleTrie:
    """Token trie over ``" " + title`` for every catalogue title (built once)."""

    def __init__(self, tokenizer: Any, titles: Sequence[str]):
        self.tokenizer = tokenizer
        self.root = _Node()
        self.length: dict[int, int] = {}  # item -> tokens of its title
        for item, title in enumerate(titles):
            if item == 0 or not str(title).strip():
                continue
            ids = self.title_tokens(title)
            self.length[item] = len(ids)
            node = self.root
            node.items.append(item)
            for token in ids:
                node = node.children.setdefault(int(token), _Node(depth=node.depth + 1))
                node.items.append(item)
            node.ends.append(item)
        self.shortest = min(self.length.values(), default=0)  # tokens of the shortest title
        self.separator = tokenizer.encode(SEPARATOR, add_special_tokens=False)
        newline = tokenizer.encode("\n", add_special_tokens=False)
        self.newline = newline[-1] if newline else None
        self.eos = tokenizer.eos_token_id

    def title_tokens(self, title: str) -> list[int]:
        return list(self.tokenizer.encode(" " + " ".join(str(title).split()), add_special_tokens=False))

    def processor(self, banned: Sequence[Collection[int]], start: int, *, max_items: int = 3,
                  marker: str = DEFAULT_MARKER, max_new_tokens: int | None = None):
        """A fresh logits processor for one batch: row ``b`` may not name ``banned[b]``;
        prompts are ``start`` tokens wide (left padded). With ``max_new_tokens``, a title
        is begun or continued only when it can end within the budget (no cut titles)."""
        from transformers import LogitsProcessor

        trie, tokenizer = self, self.tokenizer
        tail_tokens = max(8, 2 * len(tokenizer.encode(marker, add_special_tokens=False)))
        rows = len(banned)

        class TitlesOnly(LogitsProcessor):
            def __init__(self):
                self.mode = ["free"] * rows  # free -> titles -> done
                self.node: list[_Node] = [trie.root] * rows
                self.queue: list[list[int]] = [[] for _ in range(rows)]
                self.named: list[list[int]] = [[] for _ in range(rows)]
                self.banned = [set(b) for b in banned]

            def _open(self, b: int, node: _Node, left: int | None) -> bool:
                """Whether some title under ``node`` is open to row ``b`` and fits in ``left``
                more tokens (its end token counted, plus one to close the list)."""
                return any(i not in self.banned[b]
                           and (left is None or trie.length[i] - node.depth + 1 <= left)
                           for i in node.items)

            def _ends(self, b: int, node: _Node) -> int | None:
                return next((i for i in node.ends if i not in self.banned[b]), None)

            def _read(self, b: int, ids, last: int) -> None:
                """Move row ``b``'s state by its last token."""
                if self.mode[b] == "free":
                    tail = tokenizer.decode(ids[b, -tail_tokens:].tolist(), skip_special_tokens=True)
                    if tail.rstrip(" ").endswith(marker):
                        self.mode[b], self.node[b] = "titles", trie.root
                    return
                if self.mode[b] != "titles":
                    return
                if self.queue[b]:
                    self.queue[b].pop(0)
                    return
                node = self.node[b]
                if last in node.children:
                    self.node[b] = node.children[last]
                    return
                item = self._ends(b, node)
                if item is not None:  # a title ended; the token is a separator or the end
                    self.named[b].append(item)
                    self.banned[b].add(item)
                    if (last == trie.separator[0] and len(self.named[b]) < max_items):
                        self.queue[b] = list(trie.separator[1:])
                        self.node[b] = trie.root
                        return
                self.mode[b] = "done"  # forced off the trie, or the list is finished

            def _allowed(self, b: int, left: int | None) -> list[int]:
                if self.mode[b] == "done":
                    return [trie.eos]
                if self.queue[b]:
                    return [self.queue[b][0]]
                node = self.node[b]
                # a child consumes this token; its title needs (length - child depth) more
                allowed = [t for t, child in node.children.items()
                           if self._open(b, child, None if left is None else left - 1)]
                if node is not trie.root and self._ends(b, node) is not None:
                    # after this title: another one while fewer than max_items are named and
                    # one more still fits in the budget, else the end
                    room = left is None or left - 1 - len(trie.separator) > trie.shortest
                    if len(self.named[b]) + 1 < max_items and trie.separator and room:
                        allowed.append(trie.separator[0])
                    else:
                        allowed.append(trie.eos)
                        if trie.newline is not None:
                            allowed.append(trie.newline)
                return allowed or [trie.eos]  # nothing left to name: end

            def __call__(self, input_ids, scores):  # (B, T), (B, V)
                import torch

                generated = input_ids.shape[1] > start
                left = None if max_new_tokens is None else max_new_tokens - (input_ids.shape[1] - start)
                for b in range(rows):
                    if generated or self.mode[b] == "free":  # the prompt may end with the marker
                        self._read(b, input_ids, int(input_ids[b, -1]))
                    if self.mode[b] == "free":
                        continue
                    finite = torch.isfinite(scores[b])
                    if int(finite.sum()) == 1:
                        continue  # an earlier processor forces this token
                    allowed = torch.tensor(self._allowed(b, left), dtype=torch.long, device=scores.device)
                    allowed = allowed[allowed < scores.shape[1]]
                    keep = scores[b, allowed].clone()
                    scores[b, :] = float("-inf")
                    scores[b, allowed] = torch.where(torch.isfinite(keep), keep,
                                                     torch.zeros_like(keep) - 1e4)
                return scores

        return TitlesOnly()


def constraint_factory(trie: TitleTrie, constraint: ItemConstraint):
    """``(prompt indices of a batch, prompt width) -> LogitsProcessor`` for
    :func:`slimkit.llm.generate.generate`."""

    def make(batch: Sequence[int], width: int):
        return trie.processor([constraint.banned[i] for i in batch], width,
                              max_items=constraint.max_items, marker=constraint.marker,
                              max_new_tokens=constraint.max_new_tokens)

    return make


def answer_rule_params(*, no_repeat_ngram_size: int | None, constrain_items: bool,
                       constrain_max_items: int, constrain_candidates: int | None) -> dict[str, Any]:
    """The cache-key entries of the answer-only rules (no-repeat n-grams, constrained step
    3) that the student and the local teacher share: present only when a rule is on, so
    answers cached before these settings existed keep their keys."""
    params: dict[str, Any] = {}
    if no_repeat_ngram_size:
        params["answer_no_repeat_ngram_size"] = no_repeat_ngram_size
    if constrain_items:
        params["constrain_items"] = constrain_max_items
        if constrain_candidates:
            params["constrain_candidates"] = constrain_candidates
    return params
