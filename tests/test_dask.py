"""oddkit.dask on a LocalCluster: scores equal single-process scores exactly; the folder is verified on
the workers; signed models; errors. Skips without dask.distributed."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

dd = pytest.importorskip("dask.dataframe", reason="dask is not installed (pip install 'oddkit[dask]')")
distributed = pytest.importorskip("dask.distributed", reason="dask.distributed is not installed")

from conftest import scoring_frame  # noqa: E402
from oddkit.exceptions import ColumnMismatchError, DataError, ModelFileError  # noqa: E402


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster:
        with distributed.Client(cluster) as c:
            yield c


@pytest.mark.parametrize("name", ["gaussian", "autoencoder"])
def test_scores_equal_single_process(client, scoring_models, name):
    from oddkit.dask import score

    detector, folder, columns = scoring_models[name]
    frame = scoring_frame(columns)
    scored = score(dd.from_pandas(frame, npartitions=4), folder)
    assert list(scored.columns) == [*frame.columns, "score", "label", "unseen_category"]
    got = scored.compute().sort_values("id")
    assert got["score"].dtype == np.float64 and got["label"].dtype == np.int32 and got["unseen_category"].dtype == bool
    np.testing.assert_array_equal(got["score"].to_numpy(), detector.decision_function(frame[columns]))
    np.testing.assert_array_equal(got["label"].to_numpy(), detector.predict(frame[columns]))
    assert 0 < got["label"].sum() < len(got) and not got["unseen_category"].any()


def test_unseen_categories_scored_as_anomalies_flagged_and_counted(client, scoring_models):
    """As 'oddkit score' does: scored as oddkit.scoring.score_rows scores them (at least the out-of-range
    score), flagged in unseen_category (its sum counts them); strict_categories=True fails instead."""
    from oddkit.dask import score
    from oddkit.exceptions import UnseenCategoryError
    from oddkit.scoring import score_rows

    detector, folder, columns = scoring_models["autoencoder"]
    frame = scoring_frame(columns, unseen_every=7)
    scored = score(dd.from_pandas(frame, npartitions=3), folder)
    got = scored.compute().sort_values("id")
    expected = score_rows(detector, frame[columns])
    assert int(scored["unseen_category"].sum().compute()) == (frame["kind"] == "c").sum() == expected.unseen.sum()
    np.testing.assert_array_equal(got["unseen_category"].to_numpy(), expected.unseen)
    np.testing.assert_array_equal(got["score"].to_numpy(), expected.scores)
    assert (got["score"][expected.unseen] >= detector.out_of_range_score()).all()
    assert (got["label"][expected.unseen] == 1).all()
    seen = ~expected.unseen
    np.testing.assert_array_equal(got["score"].to_numpy()[seen], detector.decision_function(frame[columns][seen]))
    with pytest.raises(UnseenCategoryError, match="never seen in training.*strict_categories"):
        score(dd.from_pandas(frame, npartitions=3), folder, strict_categories=True).compute()


def test_integrity_checked_on_the_worker(client, scoring_models, tmp_path):
    from oddkit.dask import score

    _, folder, columns = scoring_models["gaussian"]
    copy = shutil.copytree(folder, tmp_path / "model")
    lazy = score(dd.from_pandas(scoring_frame(columns), npartitions=2), copy)
    weights = copy / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelFileError):
        lazy.compute()


def test_signed_model_and_errors(client, scoring_models, tmp_path, monkeypatch):
    from oddkit.dask import score

    detector, folder, columns = scoring_models["gaussian"]
    detector.save(tmp_path / "signed", key="s3cret")
    ddf = dd.from_pandas(scoring_frame(columns), npartitions=2)
    monkeypatch.setenv("ODDKIT_MODEL_KEY", "s3cret")
    got = score(ddf, tmp_path / "signed").compute().sort_values("id")
    np.testing.assert_array_equal(got["score"].to_numpy(), detector.decision_function(scoring_frame(columns)[columns]))
    with pytest.raises(ModelFileError):
        score(ddf, folder)  # unsigned, with a key configured
    monkeypatch.delenv("ODDKIT_MODEL_KEY")
    with pytest.raises(ColumnMismatchError, match="x0"):
        score(ddf.drop(columns="x0"), folder)
    with pytest.raises(DataError, match="label"):
        score(ddf.assign(label=1), folder)


def test_columns_besides_the_features_are_carried_and_a_nameless_model_counts_them(client, scoring_models, tmp_path):
    """As oddkit.spark.score: columns the model was not fitted on are carried to the result, not scored; a model
    fitted without names scores every column, so another number of columns is refused before any task runs."""
    from oddkit import GaussianDetector
    from oddkit.dask import score

    detector, folder, columns = scoring_models["gaussian"]
    frame = scoring_frame(columns).assign(note="carried")
    got = score(dd.from_pandas(frame, npartitions=2), folder).compute().sort_values("id")
    assert list(got.columns) == [*frame.columns, "score", "label", "unseen_category"]
    assert (got["note"] == "carried").all()
    np.testing.assert_array_equal(got["score"].to_numpy(), detector.decision_function(frame[columns]))
    nameless = GaussianDetector().fit(frame[columns].to_numpy())
    nameless.save(tmp_path / "nameless")
    with pytest.raises(ColumnMismatchError, match=r"without column names, on 6 columns, and the DataFrame has 9"):
        score(dd.from_pandas(frame, npartitions=2), tmp_path / "nameless")
    scored = score(dd.from_pandas(frame, npartitions=2), tmp_path / "nameless", features=columns).compute()
    np.testing.assert_array_equal(scored.sort_values("id")["score"].to_numpy(),
                                  nameless.decision_function(frame[columns].to_numpy()))


def test_a_text_model_scores_its_column_of_texts(client, scoring_text_model, tmp_path):
    from oddkit import GradientKNNDetector
    from oddkit.dask import score

    detector, folder, texts = scoring_text_model
    frame = pd.DataFrame({"id": np.arange(len(texts)), "message": texts})
    got = score(dd.from_pandas(frame, npartitions=3), folder).compute().sort_values("id")
    np.testing.assert_allclose(got["score"].to_numpy(), detector.decision_function(texts), rtol=1e-6, atol=0)
    renamed = dd.from_pandas(frame.rename(columns={"message": "sms"}), npartitions=2)
    np.testing.assert_allclose(score(renamed, folder, features=["sms"]).compute().sort_values("id")["score"],
                               detector.decision_function(texts), rtol=1e-6, atol=0)
    with pytest.raises(ColumnMismatchError, match="column of texts 'message'"):
        score(renamed, folder)
    # A missing or blank text is refused by name, never scored.
    for bad in (None, "   "):
        broken = dd.from_pandas(pd.DataFrame({"message": [texts[0], bad]}), npartitions=1)
        with pytest.raises(DataError, match="not non-empty strings"):
            score(broken, folder).compute()
    images = np.random.default_rng(0).random((10, 1, 8, 8)).astype(np.float32)
    GradientKNNDetector().fit(images).save(tmp_path / "images")
    with pytest.raises(DataError, match="trained on images; oddkit.dask scores tables and texts"):
        score(dd.from_pandas(frame, npartitions=1), tmp_path / "images")
