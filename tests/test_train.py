"""The training loop's services: progress bar, device choice, threads, seeding, early stopping."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import fast_autoencoder
from oddkit.exceptions import OddkitError
from oddkit.train import resolve_device, seeded, torch_threads

X = np.random.default_rng(0).normal(size=(200, 5))


def test_progress_bar_only_when_verbose(capsys):
    fast_autoencoder(epochs=3, verbose=0).fit(X)
    assert capsys.readouterr().out == ""
    fast_autoencoder(epochs=3, verbose=2).fit(X)
    captured = capsys.readouterr()
    assert "AutoEncoderDetector" in captured.err and "3/3" in captured.err
    assert captured.out == ""  # on stderr: standard output stays free for the data a command writes to '-'


def test_device_choice():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(OddkitError, match="CUDA is not available"):
            resolve_device("cuda")
    with pytest.raises(OddkitError, match="unknown device"):
        resolve_device("abacus")


def test_threads_are_set_for_the_body_and_restored():
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(OddkitError, match="n_threads"):
        with torch_threads(0):
            pass
    fast_autoencoder(epochs=1, n_threads=1).fit(X)
    assert torch.get_num_threads() == before


def test_seeding_leaves_the_callers_random_state_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    with seeded(7):
        torch.rand(10)
    np.testing.assert_array_equal(torch.rand(3), expected)


def test_without_enough_rows_for_validation_it_trains_every_epoch():
    detector = fast_autoencoder(epochs=7).fit(X[:30])
    assert len(detector.history_["train_loss"]) == 7 and detector.history_["val_loss"] == []


class _Location(torch.nn.Module):
    """A one-parameter model: its loss is the squared distance of each row to a learned point."""

    def __init__(self):
        super().__init__()
        self.location = torch.nn.Parameter(torch.zeros(1))

    @staticmethod
    def row_loss(module, batch, generator):
        return (batch[:, 0] - module.location).pow(2)


def _fit_location(trim_fraction: float) -> float:
    from oddkit.train import fit_module

    # 90 rows around 0 and 10 far-away rows at 50: the mean is pulled to about 5, the mean
    # trimmed by 10% is not.
    rows = np.concatenate([np.random.default_rng(0).normal(size=90), np.full(10, 50.0)])
    module = _Location()
    with seeded(0) as generator:
        fit_module(module, _Location.row_loss, torch.tensor(rows, dtype=torch.float32)[:, None], epochs=300,
                   batch_size=100, lr=0.5, validation_fraction=0.0, trim_fraction=trim_fraction,
                   generator=generator)
    return float(module.location.detach())


def _fit_location_streamed(trim_fraction: float) -> float:
    from oddkit.train import fit_module_stream

    # 95 rows around 0 and 5 far-away rows at 50 (the mean is pulled to 2.5), in shuffled
    # mini-batches of 20: a batch rarely holds more than the 2 rows trimming drops from it.
    rows = torch.tensor(np.concatenate([np.random.default_rng(0).normal(size=95), np.full(5, 50.0)]),
                        dtype=torch.float32)[:, None]
    module = _Location()
    with seeded(0) as generator:
        def batches(epoch):
            order = torch.randperm(rows.shape[0], generator=generator)
            return (rows[order[start:start + 20]] for start in range(0, rows.shape[0], 20))

        fit_module_stream(module, _Location.row_loss, batches, lambda: None, epochs=300, lr=0.05,
                          trim_fraction=trim_fraction, generator=generator)
    return float(module.location.detach())


def test_trimming_leaves_the_worst_rows_out_of_training():
    assert _fit_location(0.0) == pytest.approx(5.0, abs=0.5)
    assert abs(_fit_location(0.1)) < 0.5


def test_streamed_trimming_leaves_the_worst_rows_of_each_batch_out():
    assert _fit_location_streamed(0.0) == pytest.approx(2.5, abs=0.7)
    assert abs(_fit_location_streamed(0.1)) < 0.5


def test_trim_fraction_must_be_a_share():
    with pytest.raises(OddkitError, match="trim_fraction"):
        _fit_location(1.0)
    with pytest.raises(OddkitError, match="trim_fraction"):
        _fit_location_streamed(1.0)


def _fit_location_fenced(rows: np.ndarray, trim_fraction: float, trim_fence: float, streamed: bool = False):
    from oddkit.train import fit_module, fit_module_stream

    X = torch.tensor(rows, dtype=torch.float32)[:, None]
    module = _Location()
    with seeded(0) as generator:
        if streamed:
            def batches(epoch):
                order = torch.randperm(X.shape[0], generator=generator)
                return (X[order[start:start + 50]] for start in range(0, X.shape[0], 50))

            history = fit_module_stream(module, _Location.row_loss, batches, lambda: None, epochs=200, lr=0.05,
                                        trim_fraction=trim_fraction, trim_fence=trim_fence, generator=generator)
        else:
            history = fit_module(module, _Location.row_loss, X, epochs=300, batch_size=100, lr=0.5,
                                 validation_fraction=0.0, trim_fraction=trim_fraction, trim_fence=trim_fence,
                                 generator=generator)
    return float(module.location.detach()), history


@pytest.mark.parametrize("streamed", [False, True])
def test_fenced_trimming_leaves_out_only_the_rows_that_stand_apart(streamed):
    rng = np.random.default_rng(0)
    # 95 rows around 0 and 5 at 50: only the five stand apart, and only they are left out.
    location, history = _fit_location_fenced(np.r_[rng.normal(size=95), np.full(5, 50.0)], 0.1, 1.5, streamed)
    assert abs(location) < 0.5
    assert history.trimmed_rows[-1] == 5
    # Plain normal rows: a squared distance to the centre hardly ever lies above the log fence.
    location, history = _fit_location_fenced(rng.normal(size=100), 0.1, 1.5, streamed)
    assert abs(location) < 0.5
    assert np.mean(history.trimmed_rows[10:]) <= 1


def test_fenced_trimming_is_capped_and_checked():
    from oddkit.train import fence_cut

    # A fifth of the rows far away: all above the fence, but only 10% may be left out.
    rows = np.r_[np.random.default_rng(0).normal(size=80), np.full(20, 50.0)]
    _, history = _fit_location_fenced(rows, 0.1, 1.5)
    assert max(history.trimmed_rows) == history.trimmed_rows[-1] == 10
    assert fence_cut(np.exp([0.0, 1.0, 2.0, 3.0, 4.0]), 1.5) == pytest.approx(np.exp(3.0 + 1.5 * 2.0))
    for bad in (-1.0, float("nan"), True, "1.5"):
        with pytest.raises(OddkitError, match="trim_fence"):
            _fit_location_fenced(rows, 0.1, bad)
