"""Text anomalies: a sequence auto-encoder whose score is how badly it rebuilds a message."""

from __future__ import annotations

from numbers import Integral

import numpy as np
import pandas as pd
import torch
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from oddkit.detectors.base import BaseDetector, refuse_sparse
from oddkit.detectors.params import (
    Interval,
    StrOptions,
    fraction_below_one,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
)
from oddkit.exceptions import ModelFileError, TooFewRowsError
from oddkit.train import fit_module, resolve_device, seeded, torch_threads

__all__ = ["TextAutoEncoderDetector"]

SCORE_CHUNK_ROWS = 512
"""Texts scored together in one forward pass."""


class TextAutoEncoderDetector(BaseDetector):
    """Anomalies among texts: a GRU sequence auto-encoder trained on normal messages.

    The texts are split into subword tokens by a byte-pair-encoding vocabulary learned from the
    training texts (Hugging Face ``tokenizers``). A bidirectional GRU encodes each message into a
    code of ``code_size`` numbers; a GRU decoder rebuilds the message token by token from that code
    (teacher forcing). The anomaly score of a message is the mean, over its tokens (the end-of-text
    token included), of the negative log-likelihood the decoder gives the true token: a message
    whose words, spelling or order are unlike the training messages' is rebuilt badly and scores
    high. :meth:`explain` shows which tokens raise it.

    Parameters
    ----------
    text_col : str or None, default None
        The DataFrame column holding the texts (None: ``"text"``, or the only column). Lists of
        strings and Series need none.
    tokenizer : {"bpe", "word"}, default "bpe"
        Subword (byte-pair encoding) or whole-word vocabulary (see
        :class:`oddkit.data.text.TextTokenizer`).
    vocab_size : int, default 2000
        The largest vocabulary, special tokens included.
    lowercase : bool, default True
        Lower-case texts before tokenizing.
    max_length : int, default 64
        Tokens kept of each text (its beginning).
    embedding_dim : int, default 64
        Width of the token embeddings.
    hidden_size : int, default 128
        Width of the GRU states.
    code_size : int, default 32
        Width of the code between encoder and decoder.
    num_layers : int, default 1
        Stacked GRU layers.
    word_dropout : float in [0, 1), default 0.0
        Share of the decoder's input tokens replaced by ``[UNK]`` during training, so that the
        decoder must rely on the code (Bowman et al., 2016). 0 was chosen over 0.25 by the loss on
        held-out normal messages of the SMS benchmark (``benchmarks/TEXT_ANOMALY.md``).
    epochs : int, default 20
        Most passes over the training texts.
    batch_size : int, default 64
        Texts per training step.
    lr : float, default 3e-3
        Adam's learning rate.
    weight_decay : float, default 0.0
        Adam's L2 penalty.
    validation_fraction : float in [0, 1), default 0.1
        Training texts held out for early stopping.
    patience : int or None, default 3
        Epochs without improvement of the held-out loss before training stops (None: never).
    contamination : float in (0, 0.5], default 0.1
        Share of training texts above ``threshold_``.
    device : str, default "cpu"
        ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"`` or ``"auto"``.
    n_threads : int or None, default None
        Most torch threads while fitting and scoring (None: torch's setting). On a machine shared
        with other jobs, 1 is often much faster: the SMS fit of the README took 49 s with 1 thread
        and 14 min with torch's default of 2 on the same loaded 2-core machine.
    random_state : int, RandomState or None, default None
        Seed of the weights, shuffling and word dropout; the same seed gives the same scores.
    verbose : int, default 0
        1 shows a progress bar while fitting.

    Attributes
    ----------
    preprocessor_ : oddkit.data.text.TextPreprocessor
        The fitted tokenizer (``preprocessor_.tokenizer_``) and the text column.
    model_ : oddkit.nn.sequence.SequenceAutoEncoder
        The trained network.
    history_ : dict
        Per-epoch training and held-out losses, the best epoch, whether training stopped early.
    n_features_in_ : int
        1 (one text per row).
    feature_names_in_ : ndarray of str
        The text column's name, when fitted on a DataFrame.
    decision_scores_, threshold_, labels_, threshold_goal_
        As for every detector (see :class:`~oddkit.detectors.base.BaseDetector`).

    References
    ----------
    Cho et al., "Learning phrase representations using RNN encoder-decoder for statistical machine
    translation", EMNLP 2014. Bowman et al., "Generating sentences from a continuous space",
    CoNLL 2016. Sennrich, Haddow and Birch, "Neural machine translation of rare words with subword
    units", ACL 2016.

    Examples
    --------
    >>> from oddkit.data.text import synthetic_corpus
    >>> texts, y = synthetic_corpus(300, 20, random_state=0)
    >>> detector = TextAutoEncoderDetector(epochs=5, random_state=0).fit(texts[:300])  # doctest: +SKIP
    >>> detector.decision_function(texts[300:]).mean() > detector.decision_scores_.mean()  # doctest: +SKIP
    True
    """

    _parameter_constraints: dict = {
        "text_col": [str, None],
        "tokenizer": [StrOptions({"bpe", "word"})],
        "vocab_size": [Interval(Integral, 8, None, closed="left")],
        "lowercase": ["boolean"],
        "max_length": [positive_int],
        "embedding_dim": [positive_int],
        "hidden_size": [positive_int],
        "code_size": [positive_int],
        "num_layers": [positive_int],
        "word_dropout": [fraction_below_one],
        "epochs": [positive_int],
        "batch_size": [positive_int],
        "lr": [positive_float],
        "weight_decay": [non_negative_float],
        "validation_fraction": [fraction_below_one],
        "patience": [non_negative_int, None],
    }

    def __init__(self, text_col=None, tokenizer="bpe", vocab_size=2000, lowercase=True, max_length=64,
                 embedding_dim=64, hidden_size=128, code_size=32, num_layers=1, word_dropout=0.0, epochs=20,
                 batch_size=64, lr=3e-3, weight_decay=0.0, validation_fraction=0.1, patience=3,
                 contamination=0.1, device="cpu", n_threads=None, random_state=None, verbose=0):
        self.text_col = text_col
        self.tokenizer = tokenizer
        self.vocab_size = vocab_size
        self.lowercase = lowercase
        self.max_length = max_length
        self.embedding_dim = embedding_dim
        self.hidden_size = hidden_size
        self.code_size = code_size
        self.num_layers = num_layers
        self.word_dropout = word_dropout
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.contamination = contamination
        self.device = device
        self.n_threads = n_threads
        self.random_state = random_state
        self.verbose = verbose

    # -- input ----------------------------------------------------------------------------------

    def _prepare(self, X, reset: bool) -> np.ndarray:
        """Texts -> int64 rows of token ids ``[BOS] ... [EOS] [PAD]...`` (fitting the tokenizer when
        ``reset``)."""
        from oddkit.data.text import TextPreprocessor, TextTokenizer, texts_of

        refuse_sparse(X)
        if not reset:
            return self.preprocessor_.transform(X)
        texts, name = texts_of(X, self.text_col)
        if len(texts) < 2:
            raise TooFewRowsError(f"fitting needs at least 2 texts, got {len(texts)}; pass more training data")
        tokenizer = TextTokenizer(kind=self.tokenizer, vocab_size=int(self.vocab_size), lowercase=bool(self.lowercase),
                                  max_length=int(self.max_length))
        self.preprocessor_ = TextPreprocessor(text_col=name, tokenizer=tokenizer).fit(texts)
        self.preprocessor_.text_col_ = name
        self.n_features_in_ = 1
        if name is not None:
            self.feature_names_in_ = np.asarray([name], dtype=object)
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        self._record_training_data(pd.DataFrame({name or "text": texts}))
        return self.preprocessor_.rows(texts)

    # -- the network ----------------------------------------------------------------------------

    def _build_module(self, vocab_size: int):
        from oddkit.data.text import TextTokenizer
        from oddkit.nn.sequence import SequenceAutoEncoder

        return SequenceAutoEncoder(vocab_size, int(self.embedding_dim), int(self.hidden_size), int(self.code_size),
                                   num_layers=int(self.num_layers), pad_id=TextTokenizer.pad_id,
                                   unk_id=TextTokenizer.unk_id)

    def _row_loss(self, module, batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Mean token loss of each row of a batch (word dropout only while training)."""
        lengths = module.lengths(batch)
        batch = batch[:, :int(lengths.max())]  # the batch's own longest text, not the data set's
        dropout = float(self.word_dropout) if module.training else 0.0
        losses = module.token_losses(batch, dropout, generator)
        return losses.sum(dim=1) / (lengths - 1).clamp(min=1)

    def _fit_array(self, Z: np.ndarray) -> None:
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        device = resolve_device(self.device)
        with torch_threads(self.n_threads), seeded(seed) as generator:
            self.model_ = self._build_module(self.preprocessor_.tokenizer_.vocab_size_).to(device)
            # Batches are not grouped by length: measured at a0d7c14, 1.3x faster still, but on SMS
            # it gave a worse held-out loss and a lower AUROC on one of two seeds
            # (benchmarks/TEXT_FIT_SPEED.md).
            history = fit_module(
                self.model_, self._row_loss, torch.from_numpy(Z).to(device), epochs=int(self.epochs),
                batch_size=int(self.batch_size), lr=float(self.lr), weight_decay=float(self.weight_decay),
                validation_fraction=float(self.validation_fraction), patience=self.patience, generator=generator,
                verbose=self.verbose, description=type(self).__name__)
        self.history_ = history.to_dict()

    def _token_losses(self, Z: np.ndarray) -> np.ndarray:
        """Per-token losses ``(n, length - 1)`` (0 at padding), in chunks of texts of similar length."""
        device = resolve_device(self.device)
        out = np.zeros((Z.shape[0], max(Z.shape[1] - 1, 1)), dtype=np.float64)
        lengths = (Z != self.model_.pad_id).sum(axis=1)
        order = np.argsort(lengths, kind="stable")
        self.model_.eval()
        with torch_threads(self.n_threads), torch.inference_mode():
            for start in range(0, Z.shape[0], SCORE_CHUNK_ROWS):
                rows = order[start:start + SCORE_CHUNK_ROWS]
                width = int(lengths[rows].max())
                batch = torch.from_numpy(np.ascontiguousarray(Z[rows, :width])).to(device)
                out[rows, :width - 1] = self.model_.token_losses(batch).double().cpu().numpy()
        return out

    def _score_array(self, Z: np.ndarray) -> np.ndarray:
        losses = self._token_losses(Z)
        n_targets = np.maximum((Z != self.model_.pad_id).sum(axis=1) - 1, 1)
        return losses.sum(axis=1) / n_targets

    # -- explanation ----------------------------------------------------------------------------

    def explain(self, X) -> pd.DataFrame:
        """Which tokens raise each text's score: one row per token of each text.

        Parameters
        ----------
        X : list of str, pandas.Series or DataFrame
            Texts, as for :meth:`decision_function`.

        Returns
        -------
        pandas.DataFrame
            Columns ``row`` (the text's index: a Series' or DataFrame's index, else 0 .. n-1),
            ``position`` (0 = first token), ``token`` (the token as the tokenizer split it;
            ``[EOS]`` is the end of the text, ``[UNK]`` a character never seen in training),
            ``word_index`` and ``word`` (the whitespace-separated word of the text the token belongs
            to, as written there; ``[EOS]`` for the end), ``loss`` (the negative log-likelihood of
            that token under the decoder), and
            ``contribution`` (``loss`` divided by the text's number of tokens). A text's
            contributions sum to its score (before the out-of-range guarantee of
            :meth:`decision_function`); ``share`` is the contribution divided by that sum.
        """
        import re

        check_is_fitted(self)
        texts = self.preprocessor_.texts(X)
        Z = self.preprocessor_.rows(texts)
        losses = self._token_losses(Z)
        index = list(X.index) if isinstance(X, (pd.Series, pd.DataFrame)) else list(range(Z.shape[0]))
        tok = self.preprocessor_.tokenizer_
        records = []
        for i, (text, word_of) in enumerate(zip(texts, tok.words(texts))):
            words = re.findall(r"\S+", text)
            n = int((Z[i] != tok.pad_id).sum()) - 1
            total = float(losses[i, :n].sum())
            for position in range(n):
                loss = float(losses[i, position])
                if position < len(word_of):
                    w = word_of[position]
                    token, word = tok.id_to_token(int(Z[i, position + 1])), words[w] if words else ""
                else:  # the end of the text
                    token, w, word = "[EOS]", len(words), "[EOS]"
                records.append((index[i], position, token, w, word, loss, loss / n,
                                loss / total if total > 0 else 1.0 / n))
        return pd.DataFrame.from_records(records, columns=["row", "position", "token", "word_index", "word", "loss",
                                                           "contribution", "share"])

    # -- saving ---------------------------------------------------------------------------------

    def _get_model_state(self):
        arrays = {name: tensor.detach().cpu().numpy() for name, tensor in self.model_.state_dict().items()}
        meta = {"vocab_size": int(self.preprocessor_.tokenizer_.vocab_size_), "history": self.history_}
        return arrays, meta, self.preprocessor_.files()

    def _set_model_state(self, arrays, meta, files):
        from oddkit.data.text import TextPreprocessor
        from oddkit.persist import load_module_weights

        if not isinstance(self.preprocessor_, TextPreprocessor):
            raise ModelFileError("a text detector's folder must hold text preprocessing (config.json's "
                                 "preprocessor kind 'text')")
        vocab_size = meta["vocab_size"]
        if vocab_size != self.preprocessor_.tokenizer_.vocab_size_:
            raise ModelFileError(f"the network's vocabulary ({vocab_size!r}) differs from tokenizer.json's "
                                 f"({self.preprocessor_.tokenizer_.vocab_size_})")
        self.history_ = dict(meta["history"])
        module = load_module_weights(lambda: self._build_module(vocab_size), arrays, "text auto-encoder")
        self.model_ = module.to(resolve_device(self.device)).eval()
