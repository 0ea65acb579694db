"""ONNX export: onnxruntime's scores equal oddkit's to rtol 1e-5 on held-out rows, per exported detector,
with the preprocessing (standardisation, one-hot of string inputs, imputation, the out-of-range floor) in
the graph; detectors that cannot be exported say so."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

onnx = pytest.importorskip("onnx")
onnxruntime = pytest.importorskip("onnxruntime")

from oddkit.export import ExportError, export_onnx, onnx_inputs  # noqa: E402

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _table(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(n, 4)) * [1.0, 10.0, 0.1, 1000.0] + [0, 50, 1, -3000],
                         columns=["a", "b", "c", "d"])
    frame["channel"] = rng.choice(["web", "shop", "phone"], n)
    frame["tier"] = rng.choice(["gold", "basic"], n)
    return frame


@pytest.fixture(scope="module")
def split():
    train, held_out = _table(300, 0), _table(120, 1)
    held_out.loc[0, "a"] = 1e9  # far beyond training: clipped, floored at out_of_range_score
    held_out.loc[1, "d"] = -1e300
    held_out.loc[2, "b"] = 400.0  # an ordinary anomaly
    held_out.loc[3, "c"] = 1e308  # over c's scale of 0.1: inf when standardised, clipped, floored
    held_out.loc[4, "a"] = 5e4  # past FAR_BOUND but not clipped: floored all the same
    return train, held_out


def _session(detector, tmp_path):
    path = export_onnx(detector, tmp_path / "model.onnx")
    onnx.checker.check_model(str(path))
    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"]), path


def _detectors():
    from oddkit import AutoEncoderDetector, GaussianDetector, PCADetector, VAEDetector

    neural = {"epochs": 3, "random_state": 0, "verbose": 0, "hidden_sizes": [16]}
    return {
        "gaussian": lambda: GaussianDetector(),
        "pca": lambda: PCADetector(n_components=2),
        "autoencoder": lambda: AutoEncoderDetector(**neural),
        "autoencoder-ensemble": lambda: AutoEncoderDetector(**neural, n_estimators=2),
        "autoencoder-columns": lambda: AutoEncoderDetector(**neural, normalize_errors="columns"),
        "autoencoder-denoising": lambda: AutoEncoderDetector(**neural, noise="mask"),
        "vae": lambda: VAEDetector(**neural, latent_dim=2),
    }


@pytest.mark.parametrize("name", list(_detectors()))
def test_onnxruntime_scores_equal_oddkits_on_held_out_rows(name, split, tmp_path):
    train, held_out = split
    detector = _detectors()[name]().fit(train)
    session, path = _session(detector, tmp_path)
    assert [i.name for i in session.get_inputs()] == ["numeric", "channel", "tier"]
    assert session.get_inputs()[1].type == "tensor(string)"
    assert [o.name for o in session.get_outputs()] == ["score", "label", "unseen_category"]
    score, label, unseen = session.run(None, onnx_inputs(detector, held_out))
    expected = detector.decision_function(held_out)
    assert not unseen.any()
    np.testing.assert_allclose(score, expected, rtol=1e-5)
    np.testing.assert_array_equal(label, detector.predict(held_out))
    far = [0, 1, 3, 4]
    assert (label[far] == 1).all() and (score[far] >= detector.out_of_range_score()).all()
    assert np.isfinite(score).all()
    metadata = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert json.loads(metadata["numeric_columns"]) == ["a", "b", "c", "d"]
    assert float(metadata["threshold"]) == detector.threshold_


def test_the_graph_is_not_a_copy_of_the_training_scores(split, tmp_path):
    """Two rows differing only in a category score differently in the graph as in oddkit (the one-hot is
    really in the graph)."""
    from oddkit import GaussianDetector

    train, held_out = split
    detector = GaussianDetector().fit(train)
    session, _ = _session(detector, tmp_path)
    rows = pd.concat([held_out.iloc[[5]]] * 2, ignore_index=True)
    rows.loc[1, "channel"] = "web" if rows.loc[0, "channel"] != "web" else "shop"
    score = session.run(["score"], onnx_inputs(detector, rows))[0]
    assert score[0] != score[1]
    np.testing.assert_allclose(score, detector.decision_function(rows), rtol=1e-5)


@pytest.mark.parametrize(("name", "unknown_categories"), [("gaussian", "error"), ("pca", "error"),
                                                          ("autoencoder", "error"), ("vae", "error"),
                                                          ("gaussian", "ignore")])
def test_an_unseen_category_scores_as_oddkit_scores_it(name, unknown_categories, split, tmp_path):
    """A category never seen in training (or a missing value where none was seen) raises the row's score in
    the graph exactly as oddkit.scoring.score_rows raises it, and the graph flags the row."""
    from oddkit.scoring import score_rows

    train, held_out = split
    detector = _detectors()[name]().set_params(unknown_categories=unknown_categories).fit(train)
    session, _ = _session(detector, tmp_path)
    rows = pd.concat([held_out.iloc[5:9]] * 2, ignore_index=True)  # rows 4..7 are rows 0..3 again
    rows.loc[4, "channel"] = "fax"
    rows.loc[5, "tier"] = "platinum"
    rows.loc[6, ["channel", "tier"]] = ["fax", "platinum"]
    rows.loc[7, "channel"] = None
    score, label, unseen = session.run(["score", "label", "unseen_category"], onnx_inputs(detector, rows))
    expected = score_rows(detector, rows)
    np.testing.assert_allclose(score, expected.scores, rtol=1e-5)
    np.testing.assert_array_equal(unseen, expected.unseen)
    np.testing.assert_array_equal(unseen, [False] * 4 + [True] * 4)
    assert unseen.dtype == bool and int(unseen.sum()) == 4
    # The same row with a seen category scores lower, and only the unseen rows are labelled anomalies.
    assert (score[4:] > score[:4]).all()
    assert (score[4:] >= detector.out_of_range_score()).all()
    np.testing.assert_array_equal(label[4:], 1)
    np.testing.assert_array_equal(label[:4], detector.predict(rows.iloc[:4]))


def test_median_imputation_is_in_the_graph(split, tmp_path):
    from oddkit import PCADetector

    train, held_out = split
    detector = PCADetector(impute="median").fit(train)
    rows = held_out.iloc[3:13].copy()
    rows.loc[rows.index[0], "a"] = np.nan
    rows.loc[rows.index[1], "c"] = np.inf
    session, _ = _session(detector, tmp_path)
    np.testing.assert_allclose(session.run(["score"], onnx_inputs(detector, rows))[0],
                               detector.decision_function(rows), rtol=1e-5)


@pytest.mark.parametrize("name", ["gaussian", "pca", "autoencoder", "vae"])
def test_non_finite_values_without_imputation_score_the_floor_never_nan(name, split, tmp_path):
    """oddkit refuses NaN/inf when the model does not impute; the graph cannot refuse, and never answers NaN: a
    NaN scores exactly out_of_range_score(), an infinite value is clipped like any far-out value (at least
    that); both are labelled anomalies. The other rows keep oddkit's scores."""
    from oddkit.exceptions import NonFiniteError

    train, held_out = split
    detector = _detectors()[name]().fit(train)
    rows = held_out.iloc[5:10].reset_index(drop=True)
    rows.loc[0, "a"] = np.nan
    rows.loc[1, "b"] = np.inf
    rows.loc[2, "d"] = -np.inf
    with pytest.raises(NonFiniteError):
        detector.decision_function(rows)
    session, _ = _session(detector, tmp_path)
    score, label, unseen = session.run(None, onnx_inputs(detector, rows))
    floor = detector.out_of_range_score()
    assert np.isfinite(score).all() and (score[:3] >= floor).all() and (label[:3] == 1).all() and not unseen.any()
    np.testing.assert_allclose(score[0], floor, rtol=1e-12)
    np.testing.assert_allclose(score[3:], detector.decision_function(rows.iloc[3:]), rtol=1e-5)


@pytest.mark.parametrize("name", ["gaussian", "autoencoder"])
def test_imputing_models_treat_infinities_as_oddkit_does(name, split, tmp_path):
    """With impute='median' the graph imputes NaN and the infinities a column held in training, and
    scores another infinity as out of range, as oddkit does: the same scores and labels."""
    train, held_out = split
    train = train.copy()
    train.loc[[4, 9], "b"] = np.inf  # b takes +inf in training
    detector = _detectors()[name]()
    detector.set_params(impute="median")
    detector.fit(train)
    rows = held_out.iloc[5:10].reset_index(drop=True)
    rows.loc[0, "a"] = np.inf   # never seen: out of range
    rows.loc[1, "b"] = np.inf   # seen: the median
    rows.loc[2, "b"] = -np.inf  # never seen: out of range
    rows.loc[3, "a"] = np.nan   # missing: the median
    expected = detector.decision_function(rows)
    assert (expected[[0, 2]] >= detector.out_of_range_score()).all()
    session, _ = _session(detector, tmp_path)
    score, label, _ = session.run(None, onnx_inputs(detector, rows))
    np.testing.assert_allclose(score, expected, rtol=1e-5)
    np.testing.assert_array_equal(label, detector.predict(rows))


def test_inputs_are_read_as_oddkit_reads_them(split, tmp_path):
    """A nullable column's missing value, and a cell that is not a number in a column declared numeric, are NaN
    to oddkit (imputed here); onnx_inputs reads them so, and the graph's scores equal oddkit's. A missing
    column is oddkit's ColumnMismatchError."""
    from oddkit import GaussianDetector
    from oddkit.exceptions import ColumnMismatchError

    train, held_out = split
    train = train.assign(n=np.arange(len(train)) % 7)
    rows = held_out.iloc[5:15].assign(n=pd.array([1, None, 3, 4, 5, 6, 0, 1, 2, 3], dtype="Int64"))
    rows = rows.astype({"a": object})
    rows.loc[rows.index[2], "a"] = "n/a"
    detector = GaussianDetector(impute="median", column_types={"a": "numeric"}).fit(train)
    feeds = onnx_inputs(detector, rows)
    assert feeds["numeric"].dtype == np.float64 and np.isnan(feeds["numeric"][[1, 2], [4, 0]]).all()
    session, _ = _session(detector, tmp_path)
    np.testing.assert_allclose(session.run(["score"], feeds)[0], detector.decision_function(rows), rtol=1e-5)
    with pytest.raises(ColumnMismatchError, match="'b'"):
        onnx_inputs(detector, rows.drop(columns="b"))


def test_a_model_fitted_on_recordings_is_refused(tmp_path):
    """Its audio features are computed by librosa before the table preprocessing: not in a graph."""
    pytest.importorskip("librosa")
    from oddkit import GaussianDetector
    from oddkit.data.audio import synthetic_speech

    detector = GaussianDetector().fit(synthetic_speech(2, 2, 3, seconds=0.3))
    with pytest.raises(ExportError, match="GaussianDetector was fitted on recordings and cannot be exported"):
        export_onnx(detector, tmp_path / "model.onnx")
    assert not (tmp_path / "model.onnx").exists()


def test_image_autoencoder_and_vae_export(tmp_path):
    sys.path.insert(0, str(Path(__file__).parent))
    from synthetic_images import bar_images

    from oddkit import AutoEncoderDetector, VAEDetector

    train, held_out = bar_images(60), np.concatenate([bar_images(8), bar_images(4, vertical=True)])
    for cls in (AutoEncoderDetector, VAEDetector):
        detector = cls(epochs=2, random_state=0, verbose=0).fit(train)
        session, _ = _session(detector, tmp_path)
        assert [i.name for i in session.get_inputs()] == ["pixels"]
        score = session.run(["score"], onnx_inputs(detector, held_out))[0]
        np.testing.assert_allclose(score, detector.decision_function(held_out), rtol=1e-5)


@pytest.mark.parametrize("name", ["KNNDetector", "LOFDetector", "IsolationForestDetector"])
def test_models_that_cannot_be_exported_say_so(name, split, tmp_path):
    from oddkit.detectors import DETECTORS

    detector = DETECTORS[name]().fit(split[0].drop(columns=["channel", "tier"]))
    with pytest.raises(ExportError, match=f"{name} cannot be exported to ONNX.*export one of AutoEncoderDetector"):
        export_onnx(detector, tmp_path / "model.onnx")
    assert not (tmp_path / "model.onnx").exists()


def test_cli_export(split, tmp_path):
    from oddkit import GaussianDetector

    train, held_out = split
    GaussianDetector().fit(train).save(tmp_path / "model")
    command = [sys.executable, "-m", "oddkit.cli", "export", str(tmp_path / "model"), "--format", "onnx",
               "--out", str(tmp_path / "model.onnx")]
    env = {"PYTHONPATH": SRC, "PATH": "/usr/bin:/bin"}
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert "unseen_category" in done.stdout
    import oddkit

    detector = oddkit.load(tmp_path / "model")
    session = onnxruntime.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(["score"], onnx_inputs(detector, held_out))[0],
                               detector.decision_function(held_out), rtol=1e-5)
    again = subprocess.run(command, capture_output=True, text=True, env=env)
    assert again.returncode == 2 and "--force" in again.stderr
    wrong = subprocess.run([*command[:-4], "--format", "pmml", "--out", str(tmp_path / "m.pmml")],
                           capture_output=True, text=True, env=env)
    assert wrong.returncode == 2 and "--format onnx" in wrong.stderr

