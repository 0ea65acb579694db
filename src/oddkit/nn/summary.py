"""Text as the representation: an auto-encoder whose code is a short sequence of words.

Wang and Lee (2018): a sequence-to-sequence *summariser* reads a message and writes a shorter
sequence of words from the same vocabulary; a sequence-to-sequence *reconstructor* rebuilds the
message from that short sequence alone; a *discriminator* trained on real messages tells real word
sequences from the summariser's, and the summariser is rewarded for fooling it, which keeps the
code readable instead of a private language only the reconstructor understands.

The words are sampled with the straight-through Gumbel-softmax (Jang et al., 2017): the forward
pass uses a one-hot word, the backward pass the gradient of the tempered softmax, so the whole
chain is trained by back-propagation. The adversarial loss is the standard (non-saturating) GAN
loss of Goodfellow et al. (2014) on one-hot word sequences, not the Wasserstein loss with gradient
penalty the paper used: on sequences of one-hot words both the real and the generated inputs are
one-hot in the forward pass, which keeps the standard loss stable at this size. As in the paper,
the discriminator judges every prefix of a sequence (a left-to-right GRU with a logit after each
word), so the summariser learns which word made its summary stop looking real, not only that the
whole did.

Both sequence-to-sequence models are pointer-generators (See et al., 2017), as the paper's
summariser is: each word is drawn from a mixture of a softmax over the vocabulary and the attention
over the input's own words, so copying is as easy as writing any other word. The summariser copies
*forward only*: once it has copied the message's word at position ``j``, it can copy only from
positions after ``j``, so copied words keep the message's order (a summary then reads like a
shortened message rather than a bag of its words). The reconstructor copies from the summary.

Torch only; nothing of oddkit is imported here. Token ids are integers, ``pad_id`` marks padding.
Padding never changes what a sequence gets: the bidirectional encoders pack their batches, and
attention, copying and losses are masked.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_TINY = 1e-9


def summary_lengths(lengths: torch.Tensor, ratio: float, max_length: int) -> torch.Tensor:
    """How many words the summary of a message of ``lengths`` tokens has: ``ceil(ratio * n)``,
    at least 1, at most ``n - 1`` (shorter than the message whenever it has two tokens or more)
    and at most ``max_length``."""
    k = torch.ceil(lengths.float() * ratio).long()
    k = torch.minimum(k, (lengths - 1).clamp(min=1))
    return k.clamp(min=1, max=max_length)


def length_mask(lengths: torch.Tensor, width: int) -> torch.Tensor:
    """Boolean (n, width): True at positions below each row's length."""
    return torch.arange(width, device=lengths.device)[None, :] < lengths[:, None]


class _Attention(nn.Module):
    """Luong's bilinear ("general") attention of decoder states over masked encoder states."""

    def __init__(self, hidden: int):
        super().__init__()
        self.score = nn.Linear(hidden, hidden, bias=False)
        self.combine = nn.Linear(2 * hidden, hidden)

    def forward(self, queries: torch.Tensor, memory: torch.Tensor, mask: torch.Tensor,
                return_weights: bool = False):
        # queries (n, t, h), memory (n, s, h), mask (n, s) -> attended states (n, t, h)
        logits = torch.bmm(self.score(queries), memory.transpose(1, 2))
        logits = logits.masked_fill(~mask[:, None, :], -1e9)
        weights = torch.softmax(logits, dim=-1)
        attended = torch.tanh(self.combine(torch.cat([queries, torch.bmm(weights, memory)], dim=-1)))
        return (attended, weights) if return_weights else attended


class _Encoder(nn.Module):
    """A bidirectional GRU over word vectors; its states are projected back to ``hidden``.

    Sequences shorter than the batch's width are packed (``pack_padded_sequence``): the backward
    direction of each starts at its own last word, never in the padding, so a sequence's states
    are those it has alone, whatever else is in the batch. A batch without padding runs the GRU
    directly, as before packing was added.
    """

    def __init__(self, embed: int, hidden: int):
        super().__init__()
        self.gru = nn.GRU(embed, hidden, batch_first=True, bidirectional=True)
        self.project = nn.Linear(2 * hidden, hidden)

    def forward(self, vectors: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        width = vectors.shape[1]
        lengths = mask.sum(1)
        if bool((lengths == width).all()):
            states, _ = self.gru(vectors)
        else:
            packed = nn.utils.rnn.pack_padded_sequence(vectors, lengths.clamp(min=1).cpu(), batch_first=True,
                                                       enforce_sorted=False)
            states, _ = nn.utils.rnn.pad_packed_sequence(self.gru(packed)[0], batch_first=True, total_length=width)
        states = torch.tanh(self.project(states))
        summary = (states * mask[..., None]).sum(1) / lengths.clamp(min=1)[:, None]
        return states, summary


class TextSummaryAutoEncoder(nn.Module):
    """Summariser, reconstructor and discriminator of the text-as-representation auto-encoder.

    Parameters
    ----------
    vocab_size : int
        Number of token ids (the tokenizer's vocabulary, special tokens included).
    pad_id, bos_id : int
        Padding id (never generated) and the start-of-sequence id fed to the decoders first.
    embed_dim, hidden_dim : int
        Width of the word vectors (shared by all three parts) and of the GRUs.
    summary_ratio : float
        The summary of an ``n``-token message has ``ceil(summary_ratio * n)`` words, at most ``n - 1``.
    max_summary_length : int
        Upper bound on a summary's length.
    forbidden_ids : sequence of int
        Ids the summariser may never write nor copy (padding, start/end markers, the unknown token).
    """

    def __init__(self, vocab_size: int, pad_id: int, bos_id: int, embed_dim: int = 64, hidden_dim: int = 128,
                 summary_ratio: float = 0.5, max_summary_length: int = 16, forbidden_ids=()):
        super().__init__()
        self.vocab_size, self.pad_id, self.bos_id = int(vocab_size), int(pad_id), int(bos_id)
        self.summary_ratio, self.max_summary_length = float(summary_ratio), int(max_summary_length)
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        forbidden = torch.zeros(vocab_size, dtype=torch.bool)
        forbidden[list({int(i) for i in forbidden_ids} | {self.pad_id})] = True
        self.register_buffer("forbidden", forbidden)
        # summariser: message -> words
        self.sum_encoder = _Encoder(embed_dim, hidden_dim)
        self.sum_cell = nn.GRUCell(embed_dim, hidden_dim)
        self.sum_attention = _Attention(hidden_dim)
        self.sum_out = nn.Linear(hidden_dim, vocab_size)
        self.sum_copy = nn.Linear(hidden_dim, 1)  # pointer-generator switch: write a word, or copy one
        # reconstructor: words -> message
        self.rec_encoder = _Encoder(embed_dim, hidden_dim)
        self.rec_gru = nn.GRU(embed_dim, hidden_dim, batch_first=True)
        self.rec_attention = _Attention(hidden_dim)
        self.rec_out = nn.Linear(hidden_dim, vocab_size)
        self.rec_copy = nn.Linear(hidden_dim, 1)  # the reconstructor's switch: write, or copy a summary word
        # discriminator: a word sequence -> logit of "a real message" after each word (its own word
        # vectors, so that its updates leave the summariser's alone)
        self.dis_embedding = nn.Linear(vocab_size, embed_dim, bias=False)
        self.dis_gru = nn.GRU(embed_dim, hidden_dim, batch_first=True)
        self.dis_out = nn.Sequential(nn.Linear(hidden_dim, hidden_dim), nn.LeakyReLU(0.2), nn.Linear(hidden_dim, 1))

    # -- the three parts ---------------------------------------------------------------------

    def summarize(self, tokens: torch.Tensor, lengths: torch.Tensor, n_words: torch.Tensor | None = None,
                  tau: float = 1.0, hard_sample: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Write the summaries of ``tokens`` (n, T) of ``lengths`` (n,).

        ``n_words`` (n,) is how many of the tokens are words (default ``lengths``; fewer when the
        sequences end with an end-of-sequence token): the summary length is computed from it.
        Returns the words as (n, K, V) one-hot rows (straight-through Gumbel-softmax when
        ``hard_sample``, else the most likely word; gradients flow through the tempered softmax
        either way) and the summaries' lengths (n,); K is the longest of them.
        """
        n, width = tokens.shape
        mask = length_mask(lengths, width)
        memory, state = self.sum_encoder(self.embedding(tokens), mask)
        k = summary_lengths(lengths if n_words is None else n_words, self.summary_ratio, self.max_summary_length)
        previous = self.embedding.weight[self.bos_id].expand(n, -1)
        positions = torch.arange(width, device=tokens.device)[None, :]
        copyable = mask & ~self.forbidden[tokens]  # never copy [UNK] nor a marker
        pointer = torch.full((n,), -1, dtype=torch.long, device=tokens.device)  # last copied position
        words = []
        for _ in range(int(k.max())):
            state = self.sum_cell(previous, state)
            attended, weights = self.sum_attention(state[:, None, :], memory, mask, return_weights=True)
            attended, weights = attended[:, 0], weights[:, 0]
            # pointer-generator (See et al., 2017), forward only: the attention over the message's
            # words after the last one copied, mixed with the vocabulary softmax
            allowed = copyable & (positions > pointer[:, None])
            pointing = weights * allowed
            can_copy = allowed.any(1, keepdim=True)
            pointing = pointing / pointing.sum(1, keepdim=True).clamp(min=_TINY)
            write = torch.where(can_copy, torch.sigmoid(self.sum_copy(attended)), torch.ones_like(pointing[:, :1]))
            vocabulary = torch.softmax(self.sum_out(attended).masked_fill(self.forbidden, -1e9), dim=-1)
            copied = torch.zeros_like(vocabulary).scatter_add(1, tokens, pointing)
            probs = write * vocabulary + (1 - write) * copied
            logits = torch.log(probs + _TINY).masked_fill(self.forbidden, -1e9)
            if hard_sample:
                word = F.gumbel_softmax(logits, tau=tau, hard=True)
            else:
                soft = torch.softmax(logits / tau, dim=-1)
                hard = F.one_hot(soft.argmax(-1), self.vocab_size).to(soft.dtype)
                word = hard + soft - soft.detach()
            words.append(word)
            with torch.no_grad():  # move the pointer to the first later position holding the chosen word
                match = allowed & (tokens == word.argmax(-1)[:, None])
                pointer = torch.where(match.any(1), match.float().argmax(1), pointer)
            previous = word @ self.embedding.weight
        return torch.stack(words, dim=1), k

    def _rebuild(self, states: torch.Tensor, memory: torch.Tensor, mask: torch.Tensor,
                 vectors_onehot: torch.Tensor) -> torch.Tensor:
        """Log-probabilities (n, t, V) of the next token from decoder ``states`` (n, t, h): the
        vocabulary softmax mixed with copying a summary word (its attention weight)."""
        attended, weights = self.rec_attention(states, memory, mask, return_weights=True)
        write = torch.sigmoid(self.rec_copy(attended))
        vocabulary = torch.softmax(self.rec_out(attended), dim=-1)
        copied = torch.bmm(weights, vectors_onehot)
        return torch.log(write * vocabulary + (1 - write) * copied + _TINY)

    def reconstruct_log_probs(self, words: torch.Tensor, word_lengths: torch.Tensor,
                              tokens: torch.Tensor) -> torch.Tensor:
        """Log-probabilities (n, T, V) of each token of ``tokens`` given the previous ones (teacher
        forcing) and the summary ``words`` (n, K, V one-hot rows, or (n, K) ids)."""
        onehot = self._one_hot(words)
        mask = length_mask(word_lengths, onehot.shape[1])
        memory, state = self.rec_encoder(onehot @ self.embedding.weight, mask)
        inputs = torch.cat([torch.full_like(tokens[:, :1], self.bos_id), tokens[:, :-1]], dim=1)
        states, _ = self.rec_gru(self.embedding(inputs), state[None].contiguous())
        return self._rebuild(states, memory, mask, onehot)

    def discriminate(self, words: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Logits (n, K) that each prefix of each word sequence (one-hot rows or ids) is the
        beginning of a real message; positions at or past a sequence's length are meaningless."""
        if words.dtype in (torch.int64, torch.int32):
            vectors = F.embedding(words, self.dis_embedding.weight.T)
        else:
            vectors = self.dis_embedding(words)
        mask = length_mask(lengths, vectors.shape[1])
        states, _ = self.dis_gru(vectors * mask[..., None].to(vectors.dtype))
        return self.dis_out(states)[..., 0]

    @torch.no_grad()
    def generate(self, words: torch.Tensor, word_lengths: torch.Tensor, max_length: int, eos_id: int,
                 no_repeat_ngram: int = 0) -> torch.Tensor:
        """Greedy decoding of messages (n, max_length) ids from summaries; ``pad_id`` after ``eos_id``.

        ``no_repeat_ngram`` > 0 forbids a token that would complete an n-gram of that size already
        in the same message (as Hugging Face's ``no_repeat_ngram_size``): a guard against greedy
        decoding looping on the summary's last words.
        """
        onehot = self._one_hot(words)
        mask = length_mask(word_lengths, onehot.shape[1])
        memory, state = self.rec_encoder(onehot @ self.embedding.weight, mask)
        state = state[None].contiguous()
        n = onehot.shape[0]
        previous = torch.full((n, 1), self.bos_id, dtype=torch.long, device=onehot.device)
        done = torch.zeros(n, dtype=torch.bool, device=onehot.device)
        out: list[torch.Tensor] = []
        size = int(no_repeat_ngram)
        for step in range(max_length):
            output, state = self.rec_gru(self.embedding(previous), state)
            scores = self._rebuild(output, memory, mask, onehot)[:, 0]
            scores[:, self.pad_id] = -1e9
            if size > 0 and step >= size - 1:
                rows = torch.stack(out, dim=1).tolist() if out else [[] for _ in range(n)]
                for i, row in enumerate(rows):
                    context = tuple(row[len(row) - size + 1:]) if size > 1 else ()
                    banned = [row[j + size - 1] for j in range(len(row) - size + 1)
                              if tuple(row[j:j + size - 1]) == context]
                    if banned and not done[i]:
                        scores[i, banned] = -1e9
            token = scores.argmax(-1).masked_fill(done, self.pad_id)
            out.append(token)
            done = done | (token == eos_id)
            previous = token[:, None]
        return torch.stack(out, dim=1)

    def _one_hot(self, words: torch.Tensor) -> torch.Tensor:
        if words.dtype in (torch.int64, torch.int32):
            return F.one_hot(words, self.vocab_size).to(self.embedding.weight.dtype)
        return words

    def reconstruction_loss(self, tokens: torch.Tensor, lengths: torch.Tensor, n_words: torch.Tensor | None = None,
                            tau: float = 1.0, hard_sample: bool = True
                            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-message mean token cross-entropy (n,) of rebuilding ``tokens`` from their summaries,
        with the summaries (one-hot rows) and their lengths."""
        words, k = self.summarize(tokens, lengths, n_words, tau=tau, hard_sample=hard_sample)
        log_probs = self.reconstruct_log_probs(words, k, tokens)
        mask = length_mask(lengths, tokens.shape[1]).to(log_probs.dtype)
        nll = -log_probs.gather(2, tokens[..., None])[..., 0]
        return (nll * mask).sum(1) / mask.sum(1).clamp(min=1), words, k


def repetition_loss(words: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Per-summary share (n,) of words that repeat an earlier word of the same summary.

    With one-hot rows (straight-through), word ``j`` repeats when its row overlaps the sum of the
    rows before it; the gradient flows through the soft rows, pushing each word away from those
    already written (a coverage penalty in the spirit of See et al., 2017)."""
    mask = length_mask(lengths, words.shape[1]).to(words.dtype)
    words = words * mask[..., None]
    earlier = torch.cumsum(words, dim=1) - words
    overlap = (words * earlier.clamp(max=1)).sum(-1)
    return overlap.sum(1) / mask.sum(1).clamp(min=1)


def _prefix_bce(logits: torch.Tensor, lengths: torch.Tensor, target: float) -> torch.Tensor:
    """Binary cross-entropy of every prefix's logit against ``target``, a mean over each
    sequence's prefixes, then over the batch."""
    mask = length_mask(lengths, logits.shape[1]).to(logits.dtype)
    bce = F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target), reduction="none")
    return ((bce * mask).sum(1) / mask.sum(1).clamp(min=1)).mean()


def discriminator_loss(model: TextSummaryAutoEncoder, fake: torch.Tensor, fake_lengths: torch.Tensor,
                       real: torch.Tensor, real_lengths: torch.Tensor) -> torch.Tensor:
    """The discriminator's standard GAN loss on every prefix (real -> 1, generated -> 0; generated
    words detached), a mean over prefixes and the batch."""
    return (_prefix_bce(model.discriminate(real, real_lengths), real_lengths, 1.0)
            + _prefix_bce(model.discriminate(fake.detach(), fake_lengths), fake_lengths, 0.0))


def adversarial_loss(model: TextSummaryAutoEncoder, fake: torch.Tensor, fake_lengths: torch.Tensor) -> torch.Tensor:
    """The summariser's non-saturating GAN loss ``-log D(prefix)`` over every prefix of its
    summaries, a mean over prefixes and the batch."""
    return _prefix_bce(model.discriminate(fake, fake_lengths), fake_lengths, 1.0)
