"""Auto-encoders of text whose code a person can read: a short text, or a tree over the words.

- :class:`TextSummaryAutoEncoder`: the code of a message is a shorter sequence of words from the
  vocabulary (Wang and Lee, 2018), kept readable by a discriminator trained on real messages.
- :class:`TreeAutoEncoder`: the code of a message is a binary tree over its words (DIORA, Drozdov
  et al., 2019).

Both learn from texts (a list of strings, a pandas Series, or a DataFrame with a text column), tokenise them
with a word-level :class:`oddkit.data.text.TextTokenizer` fitted on the training texts, and score
a text by how badly they rebuild it (mean cross-entropy per token): higher = more anomalous.
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
import pandas as pd
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from oddkit.detectors.base import BaseDetector, refuse_sparse
from oddkit.detectors.params import Interval, non_negative_float, positive_float, positive_int
from oddkit.exceptions import DataError, ModelFileError, ParameterError, TooFewRowsError

__all__ = ["TextSummaryAutoEncoder", "TreeAutoEncoder"]

_BRACKETS = {"(": "-LRB-", ")": "-RRB-"}


class _TextCodeAutoEncoder(BaseDetector):
    """What the two readable-code auto-encoders share: tokenizer, threshold, scores, saving."""

    _parameter_constraints: dict = {
        "text_col": [str, None],
        "vocab_size": [Interval(Integral, 8, None, closed="left")],
        "min_frequency": [positive_int],
        "max_length": [Interval(Integral, 2, None, closed="left")],
        "embed_dim": [positive_int],
        "hidden_dim": [positive_int],
        "epochs": [positive_int],
        "batch_size": [positive_int],
        "lr": [positive_float],
    }

    # -- to implement ------------------------------------------------------------------------

    def _build(self):
        raise NotImplementedError

    def _train(self, ids: list[list[int]], generator, end_epoch) -> dict[str, list[float]]:
        """Train ``model_``; call ``end_epoch(train_loss)`` after each epoch; return the per-epoch
        losses by name (``train_loss`` first)."""
        raise NotImplementedError

    def _losses(self, ids: list[list[int]]) -> np.ndarray:
        raise NotImplementedError

    def _total_epochs(self) -> int:
        """Passes over the training texts that ``fit`` makes (the progress bar's length)."""
        return int(self.epochs)

    # -- shared --------------------------------------------------------------------------------

    def _texts(self, X) -> list[str]:
        """The texts of ``X`` (from the training column when ``X`` is a DataFrame)."""
        refuse_sparse(X)
        return self.preprocessor_.texts(X)

    def _encode(self, texts: list[str], cut: bool = True) -> list[list[int]]:
        ids = self.preprocessor_.tokenizer_.encode(texts)
        empty = [i for i, row in enumerate(ids) if not row]
        if empty:
            raise DataError(f"{len(empty)} text(s) hold no token (rows {empty[:5]}); every text needs a word")
        return [row[: self.max_length] for row in ids] if cut else ids

    def _scoring_ids(self, texts: list[str]) -> list[list[int]]:
        """Token ids of ``texts`` as :meth:`decision_function` scores them: its first ``max_length``
        tokens here. ``fit`` scores the training texts through this too, so ``decision_scores_``
        (and the threshold set from them) are the scores ``decision_function`` gives those texts."""
        return self._encode(texts)

    def fit(self, X, y=None):
        """Learn the vocabulary and the auto-encoder from the texts ``X``; ``y`` is ignored.

        Parameters
        ----------
        X : list of str, pandas.Series or one-column DataFrame
            The training texts (mostly normal).
        y : ignored

        Returns
        -------
        self
        """
        import torch

        from oddkit.data.text import TextPreprocessor, TextTokenizer, texts_of
        from oddkit.train import History, epoch_progress, seeded, torch_threads

        self._validate_params()
        refuse_sparse(X)
        texts, name = texts_of(X, self.text_col)
        if len(texts) < 2:
            raise TooFewRowsError(f"fitting needs at least 2 texts, got {len(texts)}; pass more training texts")
        tokenizer = TextTokenizer(kind="word", vocab_size=int(self.vocab_size), min_frequency=int(self.min_frequency))
        self.preprocessor_ = TextPreprocessor(text_col=name, tokenizer=tokenizer).fit(texts)
        self.preprocessor_.text_col_ = name
        ids = self._encode(texts)
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        with (torch_threads(self.n_threads), seeded(seed) as generator,
              epoch_progress(self.verbose, f"fitting {type(self).__name__}", self._total_epochs()) as advance):
            self.model_ = self._build()
            self.history_ = self._train(ids, generator, lambda loss: advance(History(train_loss=[loss])))
            self.model_.eval()
        self.n_features_in_ = 1
        if name is not None:
            self.feature_names_in_ = np.asarray([name], dtype=object)
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        self._record_training_data(pd.DataFrame({name or "text": texts}))
        with torch.inference_mode():  # scored as decision_function scores them (its ids may be longer)
            self.decision_scores_ = self._checked_training_scores(self._scores(self._scoring_ids(texts)))
        self._set_score_statistics(self.decision_scores_)
        self._set_contamination_threshold()  # the threshold's provenance and miss-cost column reset too
        return self

    def _scores(self, ids: list[list[int]]) -> np.ndarray:
        from oddkit.train import torch_threads

        with torch_threads(self.n_threads):
            return np.asarray(self._losses(ids), dtype=np.float64)

    def decision_function(self, X) -> np.ndarray:
        """Anomaly score of each text: the mean cross-entropy (nats) per token of rebuilding it;
        higher = more anomalous. Every score is finite.

        Parameters
        ----------
        X : list of str, pandas.Series or one-column DataFrame

        Returns
        -------
        ndarray of shape (n_texts,)
        """
        import torch

        check_is_fitted(self)
        ids = self._scoring_ids(self._texts(X))
        with torch.inference_mode():
            return self._guarded_scores(self._scores(ids), None)

    def explain(self, X):
        from oddkit.exceptions import ExplainError

        raise ExplainError(f"{type(self).__name__} does not split its score by column (it reads one text column)")

    def _get_model_state(self):
        arrays = {name: tensor.detach().cpu().numpy() for name, tensor in self.model_.state_dict().items()}
        meta = {"vocab_size": int(self.preprocessor_.tokenizer_.vocab_size_), "history": self.history_}
        return arrays, meta, self.preprocessor_.files()

    def _set_model_state(self, arrays, meta, files):
        from oddkit.persist import load_module_weights

        from oddkit.data.text import TextPreprocessor

        if not isinstance(self.preprocessor_, TextPreprocessor):
            raise ModelFileError(f"the saved {type(self).__name__} has no text preprocessing")
        if meta.get("vocab_size") != self.preprocessor_.tokenizer_.vocab_size_:
            raise ModelFileError(f"the saved network's vocabulary ({meta.get('vocab_size')!r}) is not the "
                                 f"tokenizer's ({self.preprocessor_.tokenizer_.vocab_size_})")
        history = meta.get("history")
        if not isinstance(history, dict):
            raise ModelFileError("the saved training history is not an object")
        self.history_ = history
        self.model_ = load_module_weights(self._build, arrays, type(self).__name__)
        self.model_.eval()

    def _batches(self, n: int, generator, lengths=None):
        """Shuffled index batches; with ``lengths``, each batch holds texts of one length."""
        import torch

        order = torch.randperm(n, generator=generator).numpy()
        size = int(self.batch_size)
        if lengths is None:
            return [order[i:i + size] for i in range(0, n, size)]
        batches = []
        lengths = np.asarray(lengths)
        for length in np.unique(lengths):
            members = order[lengths[order] == length]
            batches += [members[i:i + size] for i in range(0, len(members), size)]
        return [batches[i] for i in torch.randperm(len(batches), generator=generator).numpy()]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.two_d_array = False
        return tags


def _padded(rows: list[list[int]], pad: int, end: int | None = None):
    """(n, T) long tensor of the rows (``end`` appended to each) padded with ``pad``, and lengths."""
    import torch

    rows = [list(r) + ([] if end is None else [end]) for r in rows]
    width = max(len(r) for r in rows)
    out = torch.full((len(rows), width), pad, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, :len(r)] = torch.tensor(r, dtype=torch.long)
    return out, torch.tensor([len(r) for r in rows], dtype=torch.long)


class TextSummaryAutoEncoder(_TextCodeAutoEncoder):
    """An auto-encoder whose code is a short text: a few words from the vocabulary.

    A sequence-to-sequence summariser (bidirectional GRU encoder, GRU decoder with attention)
    writes, for a message of ``n`` word tokens, ``ceil(summary_ratio * n)`` words (at most
    ``n - 1`` and ``max_summary_length``), each sampled by the straight-through Gumbel-softmax;
    a second sequence-to-sequence model rebuilds the message from those words alone; a
    discriminator learns to tell the summaries from the first words of real training messages,
    judging every prefix, and the summariser is trained to fool it (standard non-saturating GAN
    loss, weight ``adversarial_weight``), which keeps the summaries readable (Wang and Lee, 2018).
    Without the discriminator (``adversarial_weight=0``) the code is still made of vocabulary
    words, but in an order only the reconstructor need understand.

    Both sequence-to-sequence models can copy (pointer-generators, See et al., 2017): the
    summariser copies words of the message, forward only (after copying the word at position
    ``j`` it can copy only from later positions, so copied words keep the message's order), and
    the reconstructor copies words of the summary. Neither the unknown token nor a marker is ever
    written into a summary.

    Training runs ``pretrain_epochs`` of plain auto-encoding (summariser and reconstructor on the
    reconstruction loss, the discriminator already learning), then ``epochs`` with the
    adversarial loss added.

    Score: the mean cross-entropy per token of rebuilding the message (with its end marker) from
    its summary, the summary taken greedily (the most likely word at each step, so scores repeat
    exactly): higher = more anomalous. Scoring, :meth:`encode_text` and :meth:`decode_text` take
    each text on its own, so what a text gets does not depend on the other texts passed with it.
    While training, the encoders read each message of a batch packed to its own length (the
    backward GRU never runs over padding).

    As an anomaly detector it is weak: on SMS messages it ranks spam against held-out ham no better
    than chance (AUROC 0.516 ± 0.112 over 3 seeds, ``benchmarks/TEXT_SUMMARY.md``); for detecting
    anomalous texts use
    :class:`~oddkit.detectors.TextAutoEncoderDetector` (AUROC 0.946 ± 0.004 on the SMS Spam
    Collection, ``benchmarks/TEXT_ANOMALY.md``). This model is for the readable code.

    Parameters
    ----------
    text_col : str or None, default=None
        The DataFrame column holding the texts (None: ``"text"``, or the only column). Lists of
        strings and Series need none.
    summary_ratio : float, default=0.5
        Summary length as a share of the message's length, in (0, 1): smaller codes are more
        compressed and harder to rebuild from.
    max_summary_length : int, default=12
        Longest summary.
    adversarial_weight : float, default=0.3
        Weight of the discriminator's loss in the summariser's; 0 trains no discriminator. Larger
        weights push the summaries towards the look of real messages at the cost of
        reconstruction.
    temperature : float, default=0.5
        Temperature of the Gumbel-softmax. Lower values make the softmax whose gradient trains the
        summariser closer to the one-hot word actually used (less biased, noisier gradients);
        0.5 was chosen on held-out training messages (``benchmarks/TEXT_SUMMARY_SELECTION.md``).
    repetition_weight : float, default=1.0
        Weight of a penalty on summary words that repeat an earlier word of the same summary, a
        guard against the collapse to one frequent word (``day day day``) that a summariser
        without copying fell into; 0 turns it off. Chosen like ``temperature`` (on SMS
        validation messages, one seed, token accuracy 0.34 with it, 0.25 without).
    pretrain_epochs : int, default=2
        Epochs of plain auto-encoding before the adversarial ``epochs``: a discriminator facing
        an untrained summariser wins at once and its gradient then says little, so the summariser
        first learns to write codes that carry the message, and the discriminator learns
        alongside. 0 starts adversarial at once (on the same validation messages: perplexity 465
        against 270 with 2 epochs of pre-training).
    vocab_size : int, default=2000
        Largest vocabulary of the word tokenizer, special tokens included.
    min_frequency : int, default=2
        A word must occur this often in the training texts to enter the vocabulary (rarer words
        become ``[UNK]``, which a summary never uses).
    max_length : int, default=30
        Tokens of a text used (its beginning).
    embed_dim, hidden_dim : int, default=64, 128
        Width of the word vectors and of the GRUs.
    epochs : int, default=10
        Passes over the training texts with the adversarial loss, after ``pretrain_epochs``.
    batch_size : int, default=64
    lr : float, default=2e-3
        Adam's learning rate (summariser, reconstructor and discriminator).
    contamination : float, default=0.1
        Share of training texts above the threshold set at fit time.
    n_threads : int, optional
        torch threads for fitting and scoring (default: torch's setting).
    random_state : int, RandomState or None
        Seed of the tokenizer-independent randomness (weights, batches, Gumbel noise).
    verbose : int, default=0
        1 shows a progress bar with the last loss while fitting (on stderr); 2 keeps it on screen.

    Attributes
    ----------
    model_ : oddkit.nn.summary.TextSummaryAutoEncoder
        The trained summariser, reconstructor and discriminator.
    preprocessor_ : oddkit.data.text.TextPreprocessor
        The word tokenizer (``preprocessor_.tokenizer_``) and the text column.
    history_ : dict
        Per epoch (``pretrain_epochs + epochs`` of them): ``train_loss`` (mean reconstruction
        loss), ``repetition`` (share of repeated summary words) and, with the discriminator,
        ``discriminator_loss`` and ``adversarial_loss``.
    feature_names_in_ : ndarray of str
        The text column's name, when fitted on a DataFrame.
    decision_scores_, threshold_, labels_, threshold_goal_, n_features_in_
        As for every detector (``n_features_in_`` is 1: one text per row).

    References
    ----------
    - Wang, Y.-S. and Lee, H.-Y. "Learning to encode text as human-readable summaries using
      generative adversarial networks." EMNLP, 2018.
    - See, A., Liu, P. J. and Manning, C. D. "Get to the point: summarization with
      pointer-generator networks." ACL, 2017.
    - Jang, E., Gu, S. and Poole, B. "Categorical reparameterization with Gumbel-softmax." ICLR, 2017.

    Examples
    --------
    >>> from oddkit.data.text import synthetic_corpus
    >>> texts, _ = synthetic_corpus(200, 0)
    >>> model = TextSummaryAutoEncoder(epochs=2, random_state=0).fit(texts)  # doctest: +SKIP
    >>> model.encode_text(texts[:1])  # doctest: +SKIP
    ['the cat sees']
    """

    _parameter_constraints: dict = {
        "summary_ratio": [Interval(Real, 0, 1, closed="neither")],
        "max_summary_length": [positive_int],
        "adversarial_weight": [non_negative_float],
        "temperature": [positive_float],
        "repetition_weight": [non_negative_float],
        "pretrain_epochs": [Interval(Integral, 0, None, closed="left")],
    }

    def __init__(self, text_col=None, summary_ratio=0.5, max_summary_length=12, adversarial_weight=0.3, temperature=0.5,
                 repetition_weight=1.0, pretrain_epochs=2, vocab_size=2000, min_frequency=2, max_length=30,
                 embed_dim=64, hidden_dim=128, epochs=10, batch_size=64, lr=2e-3, contamination=0.1, n_threads=None,
                 random_state=None, verbose=0):
        self.text_col = text_col
        self.summary_ratio = summary_ratio
        self.max_summary_length = max_summary_length
        self.adversarial_weight = adversarial_weight
        self.temperature = temperature
        self.repetition_weight = repetition_weight
        self.pretrain_epochs = pretrain_epochs
        self.vocab_size = vocab_size
        self.min_frequency = min_frequency
        self.max_length = max_length
        self.embed_dim = embed_dim
        self.hidden_dim = hidden_dim
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.contamination = contamination
        self.n_threads = n_threads
        self.random_state = random_state
        self.verbose = verbose

    def _total_epochs(self) -> int:
        return int(self.pretrain_epochs) + int(self.epochs)

    def _build(self):
        from oddkit.nn.summary import TextSummaryAutoEncoder as Module

        tok = self.preprocessor_.tokenizer_
        return Module(tok.vocab_size_, tok.pad_id, tok.bos_id, int(self.embed_dim), int(self.hidden_dim),
                      float(self.summary_ratio), int(self.max_summary_length),
                      forbidden_ids=(tok.pad_id, tok.bos_id, tok.eos_id, tok.unk_id))

    def _train(self, ids, generator, end_epoch):
        import torch

        from oddkit.nn.summary import adversarial_loss, discriminator_loss, length_mask, repetition_loss

        model, tok = self.model_, self.preprocessor_.tokenizer_
        adversarial = float(self.adversarial_weight) > 0
        discriminator = [p for n, p in model.named_parameters() if n.startswith("dis_")]
        autoencoder = [p for n, p in model.named_parameters() if not n.startswith("dis_")]
        opt = torch.optim.Adam(autoencoder, lr=float(self.lr))
        opt_d = torch.optim.Adam(discriminator, lr=float(self.lr)) if adversarial else None
        history = {"train_loss": [], "repetition": []}
        if adversarial:
            history.update(discriminator_loss=[], adversarial_loss=[])
        model.train()
        for epoch in range(self._total_epochs()):
            gan_phase = epoch >= int(self.pretrain_epochs)
            totals = dict.fromkeys(history, 0.0)
            count = 0
            for batch in self._batches(len(ids), generator):
                rows = [ids[i] for i in batch]
                tokens, lengths = _padded(rows, tok.pad_id, tok.eos_id)
                loss, words, k = model.reconstruction_loss(tokens, lengths, lengths - 1, tau=float(self.temperature))
                loss = loss.mean()
                repeated = repetition_loss(words, k).mean()
                objective = loss + float(self.repetition_weight) * repeated
                if adversarial:
                    # real word sequences: other messages of the batch, cut to the summaries' lengths
                    perm = torch.randperm(len(rows), generator=generator)
                    real, real_n = _padded([rows[int(i)] for i in perm], tok.pad_id)
                    real_lengths = torch.minimum(real_n, k)
                    real = real[:, : words.shape[1]]
                    real = real * length_mask(real_lengths, real.shape[1])
                    d_loss = discriminator_loss(model, words, k, real, real_lengths)
                    opt_d.zero_grad()
                    d_loss.backward(inputs=discriminator)
                    opt_d.step()
                    if gan_phase:
                        g_loss = adversarial_loss(model, words, k)
                        objective = objective + float(self.adversarial_weight) * g_loss
                    else:  # pre-training: the summariser is not pushed yet; the loss is recorded
                        with torch.no_grad():
                            g_loss = adversarial_loss(model, words.detach(), k)
                    totals["discriminator_loss"] += float(d_loss.detach()) * len(rows)
                    totals["adversarial_loss"] += float(g_loss.detach()) * len(rows)
                opt.zero_grad()
                objective.backward(inputs=autoencoder)
                torch.nn.utils.clip_grad_norm_(autoencoder, 5.0)
                opt.step()
                totals["train_loss"] += float(loss.detach()) * len(rows)
                totals["repetition"] += float(repeated.detach()) * len(rows)
                count += len(rows)
            for name in history:
                history[name].append(totals[name] / count)
            end_epoch(history["train_loss"][-1])
        return history

    def _summaries(self, ids):
        """Each text's summary (word ids) and score, each text summarised on its own: no padding
        and no neighbour, whose rounding in a batched product could move a score in its last bits,
        so a text's summary and score are those it gets alone, to the bit."""
        tok = self.preprocessor_.tokenizer_

        def one(row):
            tokens, lengths = _padded([row], tok.pad_id, tok.eos_id)
            loss, words, k = self.model_.reconstruction_loss(tokens, lengths, lengths - 1, hard_sample=False)
            return words[0, : int(k[0])].argmax(-1).tolist(), loss[0].item()

        results = [one(row) for row in ids]
        return [r[0] for r in results], np.array([r[1] for r in results], dtype=np.float32)

    def _losses(self, ids):
        import torch

        with torch.inference_mode():
            return self._summaries(ids)[1]

    def encode_text(self, texts, return_scores: bool = False):
        """The summary of each text: a few vocabulary words separated by spaces.

        Parameters
        ----------
        texts : list of str, pandas.Series or one-column DataFrame
        return_scores : bool, default=False
            Also return each text's anomaly score. Scoring summarises the text anyway, so this
            gives the summaries and the scores for the work of one: the scores are those
            :meth:`decision_function` returns, to the bit.

        Returns
        -------
        summaries : list of str
            One summary per text, shorter (in tokens) than the text when it has two tokens or more;
            each text's is the one it gets alone.
        scores : ndarray of shape (n_texts,)
            Only with ``return_scores=True``: ``decision_function(texts)``.
        """
        import torch

        from oddkit.train import torch_threads

        check_is_fitted(self)
        tok = self.preprocessor_.tokenizer_
        with torch_threads(self.n_threads), torch.inference_mode():
            words, scores = self._summaries(self._scoring_ids(self._texts(texts)))
        summaries = [" ".join(tok.id_to_token(i) for i in row) for row in words]
        if not return_scores:
            return summaries
        return summaries, self._guarded_scores(np.asarray(scores, dtype=np.float64), None)

    def decode_text(self, summaries, no_repeat_ngram: int = 0) -> list[str]:
        """Rebuild messages from summaries (strings of words, e.g. from :meth:`encode_text`).

        Words outside the vocabulary are read as ``[UNK]``. Each message is decoded greedily, at
        most ``max_length`` tokens, from its summary alone (the other summaries passed change
        nothing).

        Parameters
        ----------
        summaries : list of str, pandas.Series or one-column DataFrame
        no_repeat_ngram : int, default=0
            When > 0, a rebuilt message never repeats an n-gram of this many tokens: greedy
            decoding otherwise tends to loop on the summary's last words (``brothas brothas
            brothas``). The loops go, but on SMS validation messages token accuracy fell (0.340
            plain, 0.318 with 2, 0.327 with 3; ``benchmarks/TEXT_SUMMARY_SELECTION.md``), so 0,
            plain decoding, is the default.

        Returns
        -------
        list of str
        """
        import torch

        from oddkit.train import torch_threads

        check_is_fitted(self)
        if isinstance(no_repeat_ngram, bool) or not isinstance(no_repeat_ngram, Integral) or no_repeat_ngram < 0:
            raise ParameterError(f"no_repeat_ngram must be a whole number, 0 or more; got {no_repeat_ngram!r}")
        tok = self.preprocessor_.tokenizer_
        rows = self._encode(self._texts(summaries), cut=False)
        rows = [r[: int(self.max_summary_length)] for r in rows]

        def rebuilt(row):  # each summary decoded on its own, as _summaries does
            words, k = _padded([row], tok.pad_id)
            generated = self.model_.generate(words, k, int(self.max_length) + 1, tok.eos_id,
                                             no_repeat_ngram=int(no_repeat_ngram))[0].tolist()
            generated = generated[: generated.index(tok.eos_id)] if tok.eos_id in generated else generated
            return [i for i in generated if i != tok.pad_id]

        with torch_threads(self.n_threads), torch.inference_mode():
            out = [rebuilt(row) for row in rows]
        return [" ".join(tok.id_to_token(i) for i in row) for row in out]


class TreeAutoEncoder(_TextCodeAutoEncoder):
    """An auto-encoder whose code is a binary tree over the words of a text (DIORA).

    Every span of the text gets an inside vector (composed bottom-up from its two halves, averaged
    over split points with learned compatibility weights) and an outside vector (composed
    top-down from its parent and sibling); each word is predicted from its outside vector, which
    sees every word but that one (Drozdov et al., 2019; :class:`oddkit.nn.tree.DIORA`). The tree
    of a text is the one CKY finds on the compatibility scores.

    Score: the mean cross-entropy per word of predicting each word from the rest of the text;
    higher = more anomalous. The chart costs O(n³) in the text's length ``n`` (time and memory):
    training uses the first ``max_length`` tokens of each text; :meth:`parse` and scoring chart a
    text whole up to ``max_chart_length`` tokens, and a longer text in windows (below), so the
    cost of a text grows only linearly past that length. ``fit`` scores the training texts as
    :meth:`decision_function` does, whole, so ``decision_scores_`` and the threshold set from them
    are on the scale of the scores the threshold is applied to (on 1,000 SMS messages, 31% of them
    longer than 20 tokens, scoring them whole took 40 s against 12 s for their first 20 tokens,
    where a one-epoch fit took 112 s in all; 1 thread, shared 2-core machine).

    Parameters
    ----------
    text_col : str or None, default=None
        As for :class:`TextSummaryAutoEncoder`.
    vocab_size : int, default=2000
        Largest vocabulary of the word tokenizer, special tokens included.
    min_frequency : int, default=1
        A word must occur this often in the training texts to enter the vocabulary.
    max_length : int, default=20
        Tokens of a training text the chart learns from (its beginning). Scoring reads whole texts,
        the training texts' scores (``decision_scores_``) included.
    max_chart_length : int, default=50
        Longest text, in tokens, that :meth:`parse` and scoring chart whole; at most 300. A text of
        ``n`` tokens beyond it is cut into ``ceil(n / max_chart_length)`` consecutive windows of
        near-equal length (the first ``n % windows`` one token longer), each charted on its own:
        its score is the mean of all its tokens' losses (each word predicted from the rest of its
        window), and its tree joins the windows' trees by halving (``((w1 w2) (w3 w4))``). A text
        within the limit is scored and parsed exactly as it is without one. On a shared 2-core
        machine, 1 thread, default sizes, scoring one text charted whole took 0.6 s and 30 MB at
        50 tokens, 2.7 s and 90 MB at 100, 43 s and 1.3 GB at 300; with the limit of 50, 300
        tokens took 1.9 s and 20,000 tokens 49 s. Only scoring and parsing read it; it may be
        changed after fitting.
    embed_dim, hidden_dim : int, default=64, 64
        Width of the word vectors and of the chart's vectors.
    epochs : int, default=10
    batch_size : int, default=32
        Texts per batch (each batch holds texts of one length).
    lr : float, default=2e-3
        Adam's learning rate.
    contamination, n_threads, random_state, verbose
        As for :class:`TextSummaryAutoEncoder`.

    Attributes
    ----------
    model_ : oddkit.nn.tree.DIORA
    preprocessor_ : oddkit.data.text.TextPreprocessor
        The word tokenizer (``preprocessor_.tokenizer_``) and the text column.
    history_ : dict
        ``train_loss``: mean loss per epoch.
    decision_scores_, threshold_, labels_, threshold_goal_, n_features_in_
        As for every detector.

    References
    ----------
    - Drozdov, A., Verga, P., Yadav, M., Iyyer, M. and McCallum, A. "Unsupervised latent tree
      induction with deep inside-outside recursive auto-encoders." NAACL, 2019.

    Examples
    --------
    >>> model = TreeAutoEncoder(epochs=2, random_state=0).fit(["the dog ran away", "a cat sat"])  # doctest: +SKIP
    >>> model.parse(["the dog ran away"])  # doctest: +SKIP
    ['((the dog) (ran away))']
    """

    _parameter_constraints: dict = {
        # at most 300: a saved model's parameters are data, and one chart of 300 tokens already
        # takes about 45 s and 1.3 GB
        "max_chart_length": [Interval(Integral, 2, 300, closed="both")],
    }
    _saved_param_defaults = {"max_chart_length": 50}
    """Values for parameters missing from a saved model's parameters (models saved before they
    existed), used by :func:`oddkit.persist.restore_detector` instead of the current defaults.
    Models saved before ``max_chart_length`` charted every text whole, however long (minutes and
    gigabytes for a few hundred tokens): they get the limit too, which leaves the scores and trees
    of texts within it as they were."""

    def __init__(self, text_col=None, vocab_size=2000, min_frequency=1, max_length=20, max_chart_length=50,
                 embed_dim=64, hidden_dim=64, epochs=10, batch_size=32, lr=2e-3, contamination=0.1, n_threads=None,
                 random_state=None, verbose=0):
        self.text_col = text_col
        self.vocab_size = vocab_size
        self.min_frequency = min_frequency
        self.max_length = max_length
        self.max_chart_length = max_chart_length
        self.embed_dim = embed_dim
        self.hidden_dim = hidden_dim
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.contamination = contamination
        self.n_threads = n_threads
        self.random_state = random_state
        self.verbose = verbose

    def _build(self):
        from oddkit.nn.tree import DIORA

        return DIORA(self.preprocessor_.tokenizer_.vocab_size_, int(self.embed_dim), int(self.hidden_dim))

    def _train(self, ids, generator, end_epoch):
        import torch

        model = self.model_
        opt = torch.optim.Adam(model.parameters(), lr=float(self.lr))
        lengths = [len(r) for r in ids]
        history = []
        model.train()
        for epoch in range(int(self.epochs)):
            total, count = 0.0, 0
            for batch in self._batches(len(ids), generator, lengths):
                tokens = torch.tensor([ids[i] for i in batch], dtype=torch.long)
                loss = model.token_losses(tokens).mean()
                opt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
                opt.step()
                total += float(loss.detach()) * tokens.numel()
                count += tokens.numel()
            history.append(total / count)
            end_epoch(history[-1])
        return {"train_loss": history}

    @staticmethod
    def _by_length(rows: list, compute) -> list:
        """``compute(group)`` on groups of ``rows`` of one length, at most ``_chart_batch(length)``
        at a time; its results, one per row, back in input order. No row is padded."""
        out = [None] * len(rows)
        lengths = np.array([len(r) for r in rows])
        for length in np.unique(lengths):
            members = np.flatnonzero(lengths == length)
            size = _chart_batch(int(length))
            for start in range(0, len(members), size):
                part = members[start:start + size]
                for i, result in zip(part, compute([rows[i] for i in part])):
                    out[i] = result
        return out

    def _windows(self, rows: list[list[int]]) -> tuple[list[list[int]], list[int]]:
        """Each row cut into ``ceil(n / max_chart_length)`` consecutive windows of near-equal length
        (the first ``n % count`` one token longer); the windows and the row each comes from. A row
        within the limit is one window: itself."""
        limit = int(self.max_chart_length)
        windows, owners = [], []
        for owner, row in enumerate(rows):
            count = -(-len(row) // limit)
            size, extra = divmod(len(row), count)
            start = 0
            for w in range(count):
                stop = start + size + (w < extra)
                windows.append(row[start:stop])
                owners.append(owner)
                start = stop
        return windows, owners

    def _losses(self, ids):
        import torch

        def compute(group):
            return self.model_.token_losses(torch.tensor(group, dtype=torch.long)).mean(1).tolist()

        windows, owners = self._windows(ids)
        with torch.inference_mode():
            means = self._by_length(windows, compute)
        counts = np.bincount(np.asarray(owners, dtype=np.int64), minlength=len(ids))
        scores = np.zeros(len(ids))
        for mean, window, owner in zip(means, windows, owners):
            # within the limit: the chart's mean, as always; longer: the mean of all its tokens' losses
            scores[owner] = mean if counts[owner] == 1 else scores[owner] + mean * len(window) / len(ids[owner])
        return scores

    def _scoring_ids(self, texts):
        """Token ids of ``texts`` as scoring charts them: whole (in windows past ``max_chart_length``),
        not cut to ``max_length`` as for training."""
        return self._encode(texts, cut=False)

    def decision_function(self, X) -> np.ndarray:
        check_is_fitted(self)
        self._validate_params()  # max_chart_length may have been set after fitting
        return super().decision_function(X)

    decision_function.__doc__ = _TextCodeAutoEncoder.decision_function.__doc__

    def parse(self, texts) -> list[str]:
        """The tree of each text as a bracketed string, e.g. ``"((the dog) (ran away))"``.

        Leaves are the text's tokens as written (original case), in order; a round bracket inside a
        token is written ``-LRB-`` / ``-RRB-`` (as in the Penn Treebank) so the brackets stay
        balanced. A one-token text is that token alone. A text longer than ``max_chart_length``
        tokens is parsed in windows whose trees are joined by halving (see the class's docstring).

        Parameters
        ----------
        texts : list of str, pandas.Series or one-column DataFrame

        Returns
        -------
        list of str
        """
        import torch

        from oddkit.train import torch_threads

        check_is_fitted(self)
        self._validate_params()  # max_chart_length may have been set after fitting
        texts = self._texts(texts)
        encoded = self.preprocessor_.tokenizer_.tokenizer_.encode_batch(texts, add_special_tokens=False)
        ids = [list(e.ids) for e in encoded]
        empty = [i for i, row in enumerate(ids) if not row]
        if empty:
            raise DataError(f"{len(empty)} text(s) hold no token (rows {empty[:5]}); every text needs a word")
        windows, owners = self._windows(ids)
        with torch_threads(self.n_threads), torch.inference_mode():
            parsed = self._by_length(windows, lambda group: self.model_.parse(torch.tensor(group, dtype=torch.long)))
        pieces = [[] for _ in ids]  # each text's window trees, their positions shifted to the text's
        offsets = [0] * len(ids)
        for tree, window, owner in zip(parsed, windows, owners):
            pieces[owner].append(_shifted(tree, offsets[owner]))
            offsets[owner] += len(window)
        out = []
        for text, e, tree in zip(texts, encoded, map(_joined, pieces)):
            words = [_escape(text[a:b]) for a, b in e.offsets]
            out.append(_bracketed(tree, words))
        return out


def _chart_batch(length: int) -> int:
    """Texts (or windows) of ``length`` tokens charted together: 256 up to 20 tokens, then fewer
    (a chart's memory and time grow about as ``length ** 3``), so a batch stays at a few hundred MB."""
    return max(1, min(256, 256 * 20 ** 3 // length ** 3))


def _shifted(tree, offset: int):
    """``tree`` (nested tuples of positions) with every position moved by ``offset``."""
    if isinstance(tree, tuple):
        return tuple(_shifted(child, offset) for child in tree)
    return tree + offset


def _joined(trees: list):
    """Consecutive windows' trees joined into one binary tree, halving: ``((w1 w2) (w3 w4))``,
    ``((w1 w2) w3)``; one tree is itself. Its depth grows with the log of the windows' number."""
    if len(trees) == 1:
        return trees[0]
    half = (len(trees) + 1) // 2
    return (_joined(trees[:half]), _joined(trees[half:]))


def _escape(word: str) -> str:
    for bracket, name in _BRACKETS.items():
        word = word.replace(bracket, name)
    return word


def _bracketed(tree, words: list[str]) -> str:
    if isinstance(tree, tuple):
        return "(" + " ".join(_bracketed(child, words) for child in tree) + ")"
    return words[tree]

