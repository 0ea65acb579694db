"""A GRU sequence auto-encoder for token sequences (texts).

The encoder reads the whole sequence (both directions) into a short code; the decoder rebuilds the
sequence token by token from that code alone, with teacher forcing (at each step it is given the
true previous token, as in Bowman et al. 2016). The per-token negative log-likelihood of the input
under the decoder is the reconstruction loss; a text unlike the training texts is rebuilt badly and
gets a high loss.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

__all__ = ["SequenceAutoEncoder"]


class SequenceAutoEncoder(nn.Module):
    """Encoder -> code -> decoder over token ids, with GRUs.

    Input rows are token ids ``[BOS] t1 ... tn [EOS] [PAD] ...`` of shape ``(batch, length)``; the
    decoder predicts ``t1 ... tn [EOS]`` from the code and ``[BOS] t1 ... tn``.

    Parameters
    ----------
    vocab_size : int
        Number of token ids.
    embedding_dim : int
        Width of the token embeddings (shared by encoder and decoder).
    hidden_size : int
        Width of the GRUs' states.
    code_size : int
        Width of the code between encoder and decoder (the bottleneck).
    num_layers : int, default 1
        Stacked GRU layers in the encoder and in the decoder.
    pad_id : int, default 0
        The padding id: its embedding is zero and its positions carry no loss.
    unk_id : int, default 1
        The id that word dropout puts in place of decoder inputs.

    References
    ----------
    Cho et al., "Learning phrase representations using RNN encoder-decoder for statistical machine
    translation", EMNLP 2014. Bowman et al., "Generating sentences from a continuous space",
    CoNLL 2016 (word dropout on the decoder's inputs makes the decoder rely on the code).
    """

    def __init__(self, vocab_size: int, embedding_dim: int, hidden_size: int, code_size: int,
                 num_layers: int = 1, pad_id: int = 0, unk_id: int = 1):
        super().__init__()
        self.pad_id, self.unk_id = int(pad_id), int(unk_id)
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=self.pad_id)
        self.encoder = nn.GRU(embedding_dim, hidden_size, num_layers=num_layers, batch_first=True,
                              bidirectional=True)
        self.to_code = nn.Linear(2 * num_layers * hidden_size, code_size)
        self.from_code = nn.Linear(code_size, num_layers * hidden_size)
        self.decoder = nn.GRU(embedding_dim + code_size, hidden_size, num_layers=num_layers, batch_first=True)
        self.output = nn.Linear(hidden_size, vocab_size)
        self.num_layers, self.hidden_size = num_layers, hidden_size

    def lengths(self, tokens: torch.Tensor) -> torch.Tensor:
        """Tokens before the padding in each row."""
        return (tokens != self.pad_id).sum(dim=1)

    def encode(self, tokens: torch.Tensor) -> torch.Tensor:
        """Codes ``(batch, code_size)`` of rows of token ids ``(batch, length)``."""
        lengths = self.lengths(tokens).clamp(min=1).cpu()
        packed = pack_padded_sequence(self.embedding(tokens), lengths, batch_first=True, enforce_sorted=False)
        _, hidden = self.encoder(packed)  # (num_layers * 2, batch, hidden)
        hidden = hidden.transpose(0, 1).reshape(tokens.shape[0], -1)
        return torch.tanh(self.to_code(hidden))

    def decode_states(self, code: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        """The decoder's states ``(batch, steps, hidden_size)`` given the code and the decoder inputs
        (teacher forcing: the true previous tokens)."""
        state = torch.tanh(self.from_code(code)).reshape(code.shape[0], self.num_layers, self.hidden_size)
        embedded = self.embedding(inputs)
        steps = torch.cat([embedded, code[:, None, :].expand(-1, inputs.shape[1], -1)], dim=2)
        out, _ = self.decoder(steps, state.transpose(0, 1).contiguous())
        return out

    def decode_logits(self, code: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        """Next-token logits ``(batch, steps, vocab_size)`` given the code and the decoder inputs
        (teacher forcing: the true previous tokens)."""
        return self.output(self.decode_states(code, inputs))

    def _decoder_inputs(self, tokens: torch.Tensor, word_dropout: float,
                        generator: torch.Generator | None) -> torch.Tensor:
        """``tokens`` without their last column; ``word_dropout`` replaces that share of them (not
        ``[BOS]``, not padding) by ``[UNK]``."""
        inputs = tokens[:, :-1]
        if word_dropout > 0:
            drop = torch.rand(inputs.shape, generator=generator).to(inputs.device) < word_dropout
            drop[:, 0] = False
            inputs = inputs.masked_fill(drop & (inputs != self.pad_id), self.unk_id)
        return inputs

    def forward(self, tokens: torch.Tensor, word_dropout: float = 0.0,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """Logits of each next token ``(batch, length - 1, vocab_size)``; ``word_dropout`` replaces
        that share of the decoder's input tokens (not ``[BOS]``) by ``[UNK]``."""
        return self.decode_logits(self.encode(tokens), self._decoder_inputs(tokens, word_dropout, generator))

    def token_losses(self, tokens: torch.Tensor, word_dropout: float = 0.0,
                     generator: torch.Generator | None = None) -> torch.Tensor:
        """Negative log-likelihood of each target token ``(batch, length - 1)``; 0 at padding.

        The output layer and the softmax run on the real (non-padding) positions only, gathered
        into one contiguous block: the vocabulary-wide softmax is most of the cost, and padding
        would otherwise take a large share of it (SMS messages: a third of the positions of a
        shuffled batch are real tokens).
        """
        states = self.decode_states(self.encode(tokens), self._decoder_inputs(tokens, word_dropout, generator))
        targets = tokens[:, 1:]
        real = targets != self.pad_id
        losses = nn.functional.cross_entropy(self.output(states[real]), targets[real], reduction="none")
        return torch.zeros(targets.shape, dtype=losses.dtype, device=losses.device).masked_scatter(real, losses)
