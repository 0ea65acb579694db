"""A tree as the embedding: DIORA, the deep inside-outside recursive auto-encoder.

Drozdov et al. (2019). Every span of a sentence gets an *inside* vector (what the span says, built
bottom-up by composing its two halves, averaged over all split points with weights from a learned
compatibility score) and an *outside* vector (what the rest of the sentence says about the span,
built top-down from the span's parent and sibling). Training asks the outside vector of each word
-- computed from everything *but* that word -- to predict the word, so the chart must find which
words belong together. The code of a sentence is the binary tree that CKY finds on the
compatibility scores (the Viterbi version of the inside pass).

Compositions are the paper's MLP variant (one tanh layer, unit-normalised output), compatibility
scores are bilinear; the word is predicted with a softmax over the vocabulary (the paper samples
negatives instead, which a small vocabulary does not need). Sentences in one batch have the same
length (batch by length); the chart costs O(n³) compositions per sentence, in time and memory, so
keep sentences short (tens of tokens): ``oddkit.detectors.TreeAutoEncoder`` charts a longer text in
windows (its ``max_chart_length``).

Torch only; nothing of oddkit is imported here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _unit(x: torch.Tensor) -> torch.Tensor:
    return F.normalize(x, dim=-1)


class DIORA(nn.Module):
    """The inside-outside chart auto-encoder.

    Parameters
    ----------
    vocab_size : int
        Number of token ids.
    embed_dim, hidden_dim : int
        Width of the word vectors and of the chart's vectors.
    """

    def __init__(self, vocab_size: int, embed_dim: int = 64, hidden_dim: int = 64):
        super().__init__()
        self.vocab_size = int(vocab_size)
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.leaf = nn.Linear(embed_dim, hidden_dim)
        self.inside_compose = nn.Linear(2 * hidden_dim, hidden_dim)
        self.inside_score = nn.Bilinear(hidden_dim, hidden_dim, 1, bias=False)
        self.outside_compose_left = nn.Linear(2 * hidden_dim, hidden_dim)   # sibling on the left
        self.outside_compose_right = nn.Linear(2 * hidden_dim, hidden_dim)  # sibling on the right
        self.outside_score = nn.Bilinear(hidden_dim, hidden_dim, 1, bias=False)
        self.root = nn.Parameter(torch.randn(hidden_dim) * 0.1)
        self.predict = nn.Linear(hidden_dim, vocab_size)

    def inside(self, tokens: torch.Tensor):
        """The inside pass over ``tokens`` (B, n) of one length.

        Returns, per span length ``l`` (1 .. n), the inside vectors (n - l + 1, B, H), inside scores
        (n - l + 1, B) and, for ``l >= 2``, the compatibility of each split (l - 1, n - l + 1, B):
        split ``a`` of the span starting at ``i`` joins (i .. i+a-1) and (i+a .. i+l-1).
        """
        B, n = tokens.shape
        leaves = _unit(torch.tanh(self.leaf(self.embedding(tokens)))).transpose(0, 1)  # (n, B, H)
        vectors = {1: leaves}
        scores = {1: leaves.new_zeros(n, B)}
        compat = {}
        for length in range(2, n + 1):
            spans = n - length + 1
            left = torch.stack([vectors[a][:spans] for a in range(1, length)])              # (K, S, B, H)
            right = torch.stack([vectors[length - a][a:a + spans] for a in range(1, length)])
            left_score = torch.stack([scores[a][:spans] for a in range(1, length)])          # (K, S, B)
            right_score = torch.stack([scores[length - a][a:a + spans] for a in range(1, length)])
            composed = _unit(torch.tanh(self.inside_compose(torch.cat([left, right], dim=-1))))
            local = self.inside_score(left.contiguous(), right.contiguous())[..., 0]
            total = local + left_score + right_score
            weights = torch.softmax(total, dim=0)
            vectors[length] = (weights[..., None] * composed).sum(0)
            scores[length] = (weights * total).sum(0)
            compat[length] = local
        return vectors, scores, compat

    def outside(self, vectors: dict, scores: dict, n: int, batch: int):
        """The outside pass: outside vectors per span length (n - l + 1, B, H)."""
        outside = {n: _unit(self.root).expand(1, batch, -1)}
        outside_scores = {n: self.root.new_zeros(1, batch)}
        for length in range(n - 1, 0, -1):
            spans = n - length + 1
            candidates, candidate_scores, valid = [], [], []
            index = torch.arange(spans)
            for sibling in range(1, n - length + 1):
                parent = length + sibling
                parent_spans = n - parent + 1
                # sibling on the right: parent starts at i, sibling at i + length; needs i < parent_spans
                ok = index < parent_spans
                take = index.clamp(max=parent_spans - 1)
                p_vec, p_score = outside[parent][take], outside_scores[parent][take]
                s_idx = (index + length).clamp(max=n - sibling)
                s_vec, s_score = vectors[sibling][s_idx], scores[sibling][s_idx]
                candidates.append(_unit(torch.tanh(self.outside_compose_right(torch.cat([p_vec, s_vec], -1)))))
                candidate_scores.append(self.outside_score(p_vec.contiguous(), s_vec.contiguous())[..., 0]
                                        + p_score + s_score)
                valid.append(ok)
                # sibling on the left: parent and sibling start at i - sibling; needs i >= sibling
                ok = index >= sibling
                start = (index - sibling).clamp(min=0, max=parent_spans - 1)
                p_vec, p_score = outside[parent][start], outside_scores[parent][start]
                s_idx = start.clamp(max=n - sibling)
                s_vec, s_score = vectors[sibling][s_idx], scores[sibling][s_idx]
                candidates.append(_unit(torch.tanh(self.outside_compose_left(torch.cat([p_vec, s_vec], -1)))))
                candidate_scores.append(self.outside_score(p_vec.contiguous(), s_vec.contiguous())[..., 0]
                                        + p_score + s_score)
                valid.append(ok)
            stacked = torch.stack(candidates)                       # (C, S, B, H)
            total = torch.stack(candidate_scores)                   # (C, S, B)
            mask = torch.stack(valid)[..., None].expand_as(total)   # (C, S, B)
            weights = torch.softmax(total.masked_fill(~mask, -1e9), dim=0)
            outside[length] = (weights[..., None] * stacked).sum(0)
            outside_scores[length] = (weights * total.masked_fill(~mask, 0.0)).sum(0)
        return outside

    def token_losses(self, tokens: torch.Tensor) -> torch.Tensor:
        """Cross-entropy (B, n) of predicting each word from its outside vector."""
        B, n = tokens.shape
        vectors, scores, _ = self.inside(tokens)
        outside = self.outside(vectors, scores, n, B)
        logits = self.predict(outside[1]).transpose(0, 1)  # (B, n, V)
        return F.cross_entropy(logits.reshape(B * n, -1), tokens.reshape(-1), reduction="none").view(B, n)

    @torch.no_grad()
    def parse(self, tokens: torch.Tensor) -> list:
        """The highest-scoring binary tree of each sentence (CKY on the compatibility scores), as
        nested tuples of token positions: ``((0, 1), (2, 3))``."""
        B, n = tokens.shape
        _, _, compat = self.inside(tokens)
        trees = []
        for b in range(B):
            best = {(i, i): (0.0, i) for i in range(n)}
            for length in range(2, n + 1):
                local = compat[length][:, :, b].tolist()  # (K, S)
                for i in range(n - length + 1):
                    j = i + length - 1
                    options = [(best[(i, i + a - 1)][0] + best[(i + a, j)][0] + local[a - 1][i], a)
                               for a in range(1, length)]
                    value, a = max(options)
                    best[(i, j)] = (value, (best[(i, i + a - 1)][1], best[(i + a, j)][1]))
            trees.append(best[(0, n - 1)][1])
        return trees
