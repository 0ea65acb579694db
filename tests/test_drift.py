"""oddkit.drift: a reference of held-out normal rows, and the check of new rows against it.

Undrifted data must not be reported (the family-wise error holds over many columns), planted drift
must be found and named (the shifted column, a new category, missing values, more alerts), the
reference must survive saving exactly, and a folder whose reference was edited must be refused.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.stats import chi2_contingency, ks_2samp

import oddkit
from conftest import run_cli
from oddkit.drift import (
    MAX_REFERENCE_SCORES,
    ColumnReference,
    DriftReference,
    _holm,
    _psi,
    check_drift,
    record_reference,
)
from oddkit.exceptions import DataError, ModelFileError, OddkitError
from oddkit.persist import CONFIG_FILE, seal


def normal_rows(n: int, seed: int, n_columns: int = 8) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    cov = 0.5 * np.eye(n_columns) + 0.5
    return pd.DataFrame(rng.multivariate_normal(np.zeros(n_columns), cov, size=n),
                        columns=[f"c{j}" for j in range(n_columns)])


@pytest.fixture(scope="module")
def gaussian():
    return oddkit.GaussianDetector().fit(normal_rows(2000, seed=0))


@pytest.fixture(scope="module")
def mixed():
    """A detector on a table with a categorical column (and median imputation), and rows like its own."""
    def rows(n, seed, weights=(0.6, 0.3, 0.1)):
        rng = np.random.default_rng(seed)
        frame = normal_rows(n, seed, n_columns=4)
        frame["shop"] = rng.choice(["web", "store", "phone"], size=n, p=weights)
        return frame

    return oddkit.GaussianDetector(impute="median").fit(rows(1500, 0)), rows


def test_undrifted_batches_are_not_reported(gaussian):
    """40 reference/batch pairs drawn like the training data: at alpha 0.01 over 10 checks each, a
    correct family-wise error expects 0.4 false reports; 3 or more has probability below 0.01."""
    reports = []
    for seed in range(1, 41):
        rows = normal_rows(1000, seed=seed)
        record_reference(gaussian, rows.iloc[:500])
        reports.append(check_drift(gaussian, rows.iloc[500:]))
    assert sum(r.drifted for r in reports) <= 2
    assert all(len(r.columns) == 8 for r in reports)
    # the p-values are those of the tests named: the scores' KS test, recomputed
    last_rows = normal_rows(1000, seed=40)
    expected = ks_2samp(gaussian.decision_function(last_rows.iloc[:500]),
                        gaussian.decision_function(last_rows.iloc[500:]))
    assert reports[-1].score_ks == pytest.approx(expected.statistic)
    assert reports[-1].score_p_value == pytest.approx(expected.pvalue)


def test_a_shifted_column_is_found_and_named_first(gaussian):
    rows = normal_rows(1500, seed=7)
    record_reference(gaussian, rows.iloc[:1000], data_name="dev normals")
    batch = rows.iloc[1000:].copy()
    batch["c3"] += 1.0
    report = check_drift(gaussian, batch)
    assert report.drifted
    assert report.drifted_columns[0] == "c3"
    assert report.columns[0].name == "c3" and report.columns[0].psi > 0.25
    assert len(report.drifted_columns) <= 2  # the others did not move
    text = str(report)
    assert "DRIFT" in text and "dev normals" in text and "c3" in text.split("column")[-1].splitlines()[1]
    frame = report.to_frame()
    assert list(frame["name"])[0] == "c3" and len(frame) == 8
    assert json.loads(json.dumps(report.to_dict()))["drifted_columns"][0] == "c3"


def test_more_alerts_is_reported_with_the_ratio(gaussian):
    rows = normal_rows(1500, seed=8)
    record_reference(gaussian, rows.iloc[:1000])
    batch = rows.iloc[1000:].copy()
    batch.iloc[:100] *= 4  # 20% of the batch far out: alerts, not a column's shift alone
    report = check_drift(gaussian, batch)
    assert report.alerts_changed and report.alert_ratio > 1.25
    assert report.alert_rate == pytest.approx(np.mean(gaussian.decision_function(batch) >= gaussian.threshold_))
    ref_scores = gaussian.decision_function(rows.iloc[:1000])
    assert report.reference_alert_rate == pytest.approx(np.mean(ref_scores >= gaussian.threshold_))


def test_a_new_category_a_changed_mix_and_missing_values_are_found(mixed):
    detector, rows = mixed
    record_reference(detector, rows(1000, seed=1))
    assert check_drift(detector, rows(800, seed=2)).drifted is False
    shifted = rows(800, seed=3, weights=(0.2, 0.3, 0.5))
    report = check_drift(detector, shifted)
    assert report.drifted_columns == ["shop"]
    assert report.columns[0].bin in ("web", "phone")
    unseen = rows(800, seed=4)
    unseen.loc[:300, "shop"] = "kiosk"
    column = {c.name: c for c in check_drift(detector, unseen).columns}["shop"]
    assert column.drifted and column.bin == "other" and column.reference_share == 0
    broken = rows(800, seed=5)
    broken.loc[:200, "c1"] = np.nan  # an upstream join that starts writing missing values
    column = {c.name: c for c in check_drift(detector, broken).columns}["c1"]
    assert column.drifted and column.bin == "missing"


def test_bins_and_statistics_against_oracles():
    values = np.array([np.nan, -np.inf, 0.0, 0.0, 1.0, 2.0, 3.0, np.inf])
    column = ColumnReference.from_values("x", values)
    assert column.kind == "numeric" and list(column.edges) == sorted(set(column.edges))
    counts = column.bin_counts(values)
    assert counts.sum() == 8 and counts[-1] == 1 and counts[0] >= 3  # NaN missing; -inf and the zeros lowest
    assert column.bin_labels()[-1] == "missing" and len(column.bin_labels()) == column.n_bins
    # a value's bin is the number of cut points below it (a value on a cut point stays below it), infinities
    # in the end bins
    wide = ColumnReference.from_values("w", np.random.default_rng(0).normal(size=500))
    sample = np.concatenate([np.random.default_rng(1).normal(size=200), wide.edges, [np.inf, -np.inf]])
    assert len(wide.edges) == 9
    assert wide.bin_index(sample).tolist() == np.searchsorted(wide.edges, sample, side="left").tolist()
    # a 0/1 column keeps its two values apart
    flags = ColumnReference.from_values("f", np.array([0.0] * 90 + [1.0] * 10))
    assert [c for c in flags.counts[:-1] if c > 0] == [90, 10]
    reference, batch = np.array([50, 30, 20, 0]), np.array([20, 30, 40, 10])
    p = (reference + 0.5) / (100 + 2)
    q = (batch + 0.5) / (100 + 2)
    assert _psi(reference, batch) == pytest.approx(np.sum((q - p) * np.log(q / p)))
    assert _psi(reference, reference) == 0
    # Holm's step-down, by hand: sorted 0.01, 0.02, 0.04 times 3, 2, 1, kept increasing
    assert _holm([0.04, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])
    assert _holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    from scipy.stats import fisher_exact

    from oddkit.drift import _homogeneity_p_value, _merged, _two_sample_p_value

    table = np.array([[50, 30, 20], [20, 30, 50]])
    assert _two_sample_p_value(table[0], table[1]) == pytest.approx(chi2_contingency(table, correction=False).pvalue)
    # bins expecting fewer than 5 rows of the smaller sample merge with their neighbours (empty ones drop out)
    merged = _merged(np.array([1000, 0, 30, 20, 500, 450]), np.array([40, 0, 1, 2, 30, 27]))
    assert merged.tolist() == [[1000, 550, 450], [40, 33, 27]]
    assert _merged(np.array([1000, 900, 100]), np.array([50, 47, 3])).tolist() == [[1000, 1000], [50, 50]]
    two = _merged(np.array([1900, 100]), np.array([95, 5]))  # two bins: Fisher's exact test
    assert _two_sample_p_value(np.array([1900, 100]), np.array([95, 5])) == pytest.approx(fisher_exact(two).pvalue)
    # missing values are tested apart (Fisher), the column's p-value twice the smaller
    reference, batch = np.array([500, 500, 0]), np.array([50, 47, 3])
    missing = fisher_exact([[0, 1000], [3, 97]]).pvalue
    assert _homogeneity_p_value(reference, batch) == pytest.approx(2 * missing)
    assert _homogeneity_p_value(np.array([500, 500, 0]), np.array([50, 50, 0])) == 1.0


def test_every_entry_point_has_the_same_default_settings():
    """check_drift's defaults are 'oddkit drift''s (whose module does not import oddkit.drift, to start fast)."""
    import inspect

    from oddkit.cli.drift import drift as command
    from oddkit.drift import ALPHA, MIN_ALERT_RATIO, MIN_PSI, DriftWindow, check_drift, check_drift_batches

    expected = {"alpha": ALPHA, "min_psi": MIN_PSI, "min_alert_ratio": MIN_ALERT_RATIO}
    for function in (check_drift, check_drift_batches, DriftWindow.report, command):
        parameters = inspect.signature(function).parameters
        assert {name: parameters[name].default for name in expected} == expected, function


def test_a_large_reference_keeps_its_quantiles(gaussian):
    scores = np.random.default_rng(0).normal(size=MAX_REFERENCE_SCORES + 5000)
    reference = DriftReference.from_data(gaussian, None, scores=scores)
    assert reference.n_rows == MAX_REFERENCE_SCORES + 5000 and reference.scores.size == MAX_REFERENCE_SCORES
    assert np.all(np.diff(reference.scores) >= 0) and reference.columns == ()
    assert np.median(reference.scores) == pytest.approx(np.median(scores), abs=1e-3)
    at = (np.arange(MAX_REFERENCE_SCORES) + 0.5) / MAX_REFERENCE_SCORES
    assert np.allclose(reference.scores[::997], np.quantile(scores, at[::997]), rtol=0, atol=1e-12)


def test_misuse_is_a_clear_error(gaussian):
    train = normal_rows(2000, seed=0)
    with pytest.raises(DataError, match="did not train on"):
        record_reference(gaussian, train)
    with pytest.raises(DataError, match="at least 20 rows"):
        record_reference(gaussian, normal_rows(10, seed=1))
    fresh = oddkit.GaussianDetector().fit(normal_rows(300, seed=2))
    with pytest.raises(DataError, match="no drift reference"):
        check_drift(fresh, normal_rows(100, seed=3))
    record_reference(fresh, normal_rows(100, seed=4))
    for setting in ({"alpha": 0}, {"alpha": 1.5}, {"min_psi": -1}, {"min_alert_ratio": 0.5}, {"alpha": True}):
        with pytest.raises(DataError):
            check_drift(fresh, normal_rows(100, seed=5), **setting)
    with pytest.raises(DataError, match="at least 2 rows"):
        check_drift(fresh, normal_rows(1, seed=5))
    small = check_drift(fresh, normal_rows(50, seed=5))
    assert any("only 50 rows" in note for note in small.notes)
    fresh.fit(normal_rows(300, seed=6))  # fitted again: the recorded scores are another model's
    with pytest.raises(DataError, match="fitted again"):
        check_drift(fresh, normal_rows(100, seed=7))
    with pytest.raises(OddkitError, match="fitted again"):
        fresh.save("unused-folder-never-written")


def test_the_reference_is_saved_with_the_model(gaussian, mixed, tmp_path):
    detector, rows = mixed
    record_reference(detector, rows(600, seed=11), data_name="dev.csv")
    detector.save(tmp_path / "m")
    loaded = oddkit.load(tmp_path / "m")
    saved, restored = detector.drift_reference_, loaded.drift_reference_
    assert restored.to_dict() == saved.to_dict()
    assert np.array_equal(restored.scores, saved.scores)
    batch = rows(700, seed=12, weights=(0.3, 0.3, 0.4))
    assert check_drift(loaded, batch).to_dict() == check_drift(detector, batch).to_dict()
    # a model saved without one loads without one
    plain = oddkit.GaussianDetector().fit(normal_rows(200, seed=1))
    plain.save(tmp_path / "plain")
    assert oddkit.load(tmp_path / "plain").drift_reference_ is None
    # the report's model card says what the reference is
    from oddkit.report import write_report

    page = write_report(loaded, batch, out=tmp_path / "report.html").read_text(encoding="utf-8")
    assert "<th>drift reference</th><td>600 rows of dev.csv</td>" in page
    # and its drift section compares the data (its normal rows, with labels) with the reference
    section = page.split('<section id="drift">')[1].split("</section>")[0]
    assert "Drift found" in section and "all 700 rows (no labels)" in section
    assert '<tr><td>shop</td>' in section.split('id="drift-columns"')[1].split("</tr>")[1]  # listed first
    labels = np.r_[np.zeros(700, dtype=int), np.ones(20, dtype=int)]
    far = pd.concat([rows(700, seed=13), rows(20, seed=14).assign(c0=9.0)], ignore_index=True)
    page = write_report(loaded, far, labels, out=tmp_path / "labelled.html").read_text(encoding="utf-8")
    section = page.split('<section id="drift">')[1].split("</section>")[0]
    assert "No drift found" in section and "the 700 normal rows (label 0)" in section
    page = write_report(plain, normal_rows(100, seed=2), out=tmp_path / "plain.html").read_text(encoding="utf-8")
    assert "holds no drift reference" in page.split('<section id="drift">')[1]


def _edited(folder, edit):
    config = json.loads((folder / CONFIG_FILE).read_text())
    edit(config["detector"]["drift_reference"])
    (folder / CONFIG_FILE).write_text(json.dumps(config))
    seal(folder)  # checksums recomputed: only the reference's own checks can refuse it


@pytest.mark.parametrize("edit", [
    lambda r: r["columns"][0]["counts"].__setitem__(0, r["columns"][0]["counts"][0] + 1),  # counts do not add up
    lambda r: r["columns"][0]["edges"].reverse(),  # cut points not increasing
    lambda r: r["columns"][0].__setitem__("edges", ["1.5"]),  # not a number
    lambda r: r["columns"][4].__setitem__("categories", [f"c{i}" for i in range(25)]),  # too many categories
    lambda r: r["columns"][4]["categories"].append(r["columns"][4]["categories"][0]),  # a repeated category
    lambda r: r["columns"].reverse(),  # not the model's columns in order
    lambda r: r["columns"][0].__setitem__("kind", "categorical"),  # not the column's kind
    lambda r: r.__setitem__("model_fingerprint", "0" * 64),  # another model's scores
    lambda r: r.__setitem__("n_rows", 10**30),  # not one score per row
    lambda r: r.__setitem__("columns", "everything"),
    lambda r: r.__setitem__("extra", 1),
], ids=["counts", "edges-order", "edges-text", "categories-many", "categories-repeated", "column-order",
        "column-kind", "fingerprint", "n-rows", "columns-type", "extra-key"])
def test_an_edited_reference_is_refused(mixed, tmp_path, edit):
    detector, rows = mixed
    record_reference(detector, rows(300, seed=21))
    detector.save(tmp_path / "m")
    _edited(tmp_path / "m", edit)
    with pytest.raises(ModelFileError, match="drift reference|malformed"):
        oddkit.load(tmp_path / "m")


def test_images_are_checked_on_their_scores():
    from synthetic_images import bar_images

    detector = oddkit.AutoEncoderDetector(epochs=5, lr=3e-3, random_state=0, verbose=0, n_threads=1)
    detector.fit(bar_images(120, seed=0))
    record_reference(detector, bar_images(100, seed=1))
    assert check_drift(detector, bar_images(150, seed=2)).drifted is False
    report = check_drift(detector, bar_images(150, vertical=True, seed=3))
    assert report.drifted and report.scores_shifted and report.columns == ()
    assert any("does not read a table" in note for note in report.notes)


def test_command_line(monkeypatch, capsys, tmp_path):
    rng = np.random.default_rng(0)
    train, dev, new = (normal_rows(n, seed=s) for n, s in ((800, 0), (400, 1), (400, 2)))
    dev["y"] = 0
    dev.loc[:19, ["c0", "c1"]] += 6
    dev.loc[:19, "y"] = 1
    moved = new.assign(c5=new["c5"] + rng.normal(1.5, 0.1, size=len(new)))
    for name, frame in (("train", train), ("dev", dev), ("new", new), ("moved", moved)):
        frame.to_csv(tmp_path / f"{name}.csv", index=False)
    code, _, err = run_cli(monkeypatch, capsys, "fit", tmp_path / "train.csv", "--detector", "gaussian",
                           "--out", tmp_path / "m")
    assert code == 0, err
    code, _, err = run_cli(monkeypatch, capsys, "drift", tmp_path / "m", tmp_path / "new.csv")
    assert code == 2 and "no drift reference" in err and "--reference" in err
    code, out, err = run_cli(monkeypatch, capsys, "threshold", tmp_path / "m", tmp_path / "dev.csv", "--goal",
                             "fpr:0.05", "--out", tmp_path / "m2")
    assert code == 0, err
    assert "380 normal rows of dev.csv recorded as the drift reference" in " ".join(err.split())
    code, out, _ = run_cli(monkeypatch, capsys, "info", tmp_path / "m2")
    assert "380 rows of dev.csv (normal rows), 8 columns" in out
    code, out, err = run_cli(monkeypatch, capsys, "drift", tmp_path / "m2", tmp_path / "new.csv", "--fail-on-drift")
    assert code == 0 and "no drift found" in out, err
    code, out, _ = run_cli(monkeypatch, capsys, "drift", tmp_path / "m2", tmp_path / "moved.csv", "--fail-on-drift")
    assert code == 1 and "DRIFT" in out and out.split("largest change of share")[1].split()[0] == "c5"
    code, out, _ = run_cli(monkeypatch, capsys, "drift", tmp_path / "m2", tmp_path / "moved.csv", "--json", "-")
    report = json.loads(out)
    assert code == 0 and report["drifted_columns"][0] == "c5" and report["n_reference"] == 380
    # --reference: another reference instead of the recorded one (its normal rows only), and the JSON file
    code, out, err = run_cli(monkeypatch, capsys, "drift", tmp_path / "m", tmp_path / "moved.csv", "--reference",
                             tmp_path / "dev.csv", "--json", tmp_path / "drift.json")
    assert code == 0 and "380 rows of dev.csv" in out
    assert json.loads((tmp_path / "drift.json").read_text())["drifted"] is True
    code, _, err = run_cli(monkeypatch, capsys, "drift", tmp_path / "m2", tmp_path / "new.csv", "--alpha", "2")
    assert code == 2 and "alpha" in err
    # read in batches (a file, a folder of Parquet files): the same report as all rows at once
    (tmp_path / "parts").mkdir()
    moved.iloc[:150].to_parquet(tmp_path / "parts" / "a.parquet")
    moved.iloc[150:].to_parquet(tmp_path / "parts" / "b.parquet")
    for data, extra in ((tmp_path / "moved.csv", ["--batch-rows", "64"]), (tmp_path / "parts", [])):
        code, out, err = run_cli(monkeypatch, capsys, "drift", tmp_path / "m2", data, "--json", "-", *extra)
        assert code == 0 and json.loads(out) == report, err


def test_a_config_file_runs_drift_after_the_threshold(monkeypatch, capsys, tmp_path):
    dev = normal_rows(300, seed=1).assign(y=0)
    normal_rows(500, seed=0).to_csv(tmp_path / "train.csv", index=False)
    dev.to_csv(tmp_path / "dev.csv", index=False)
    normal_rows(300, seed=2).assign(c2=lambda f: f["c2"] * 3).to_csv(tmp_path / "new.csv", index=False)
    (tmp_path / "run.toml").write_text(
        'model = "out/model"\n[fit]\ndata = "train.csv"\ndetector = "gaussian"\n'
        '[threshold]\ndata = "dev.csv"\ngoal = "fpr:0.05"\nout = "out/model-t"\n'
        '[drift]\ndata = "new.csv"\njson = "out/drift.json"\nfail-on-drift = true\n')
    code, out, err = run_cli(monkeypatch, capsys, "run", tmp_path / "run.toml")
    assert code == 1, err  # the run stops at the drift it found, as a scheduler wants
    report = json.loads((tmp_path / "out" / "drift.json").read_text())
    assert report["drifted_columns"] == ["c2"] and "drift check of 300 rows" in out


def test_the_service_watches_the_rows_it_scores(gaussian, monkeypatch, tmp_path):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from oddkit.serve import create_app

    def post(client, frame, **headers):
        return client.post("/score", json={"rows": frame.to_dict(orient="records")}, headers=headers)

    record_reference(gaussian, normal_rows(1000, seed=31), data_name="dev normals")
    client = TestClient(create_app(gaussian, drift_window=300))
    assert client.get("/model").json()["drift_reference"] == {"rows": 1000, "data_name": "dev normals", "columns": 8}
    answer = client.get("/drift")
    assert answer.status_code == 409 and "0 rows scored" in answer.json()["detail"]
    assert post(client, normal_rows(200, seed=32)).status_code == 200
    report = client.get("/drift").json()
    assert report["drifted"] is False and report["window"] == {"size": 300, "rows": 200, "rows_scored": 200}
    assert post(client, normal_rows(50, seed=33).drop(columns="c0")).status_code == 422  # refused: not watched
    shifted = normal_rows(300, seed=34).assign(c3=lambda f: f["c3"] + 1)
    assert post(client, shifted).status_code == 200
    report = client.get("/drift").json()
    assert report["window"] == {"size": 300, "rows": 300, "rows_scored": 500}
    assert report["drifted"] and report["drifted_columns"][0] == "c3"
    expected = json.loads(json.dumps(check_drift(gaussian, shifted).to_dict()))
    assert {k: v for k, v in report.items() if k != "window"} == expected  # the window holds the last 300 rows
    assert client.get("/drift", params={"alpha": 0.5, "min_psi": 0}).json()["alpha"] == 0.5
    answer = client.get("/drift", params={"alpha": 2})
    assert answer.status_code == 422 and "alpha must be a number between 0 and 1" in answer.json()["detail"]
    answer = client.get("/drift", params={"alpha": "often"})
    assert answer.status_code == 422 and answer.json()["detail"].startswith("query parameter 'alpha' must be a number")

    assert TestClient(create_app(gaussian, drift_window=0)).get("/drift").json()["detail"].endswith(
        "--drift-window 0")
    plain = oddkit.GaussianDetector().fit(normal_rows(300, seed=35))
    answer = TestClient(create_app(plain)).get("/drift")
    assert answer.status_code == 409 and "holds no drift reference" in answer.json()["detail"]
    guarded = TestClient(create_app(gaussian, api_key="s3cret"))
    assert guarded.get("/drift").status_code == 401
    assert guarded.get("/drift", headers={"X-API-Key": "s3cret"}).status_code == 409  # allowed; nothing scored yet
    with pytest.raises(OddkitError, match="drift_window"):
        create_app(gaussian, drift_window=1)
    # 'oddkit serve --drift-window N' reaches every worker through the environment
    gaussian.save(tmp_path / "m")
    monkeypatch.setenv("ODDKIT_SERVE_MODEL", str(tmp_path / "m"))
    monkeypatch.setenv("ODDKIT_SERVE_DRIFT_WINDOW", "123")
    from oddkit.serve import _app_from_environment

    assert _app_from_environment().state.drift_window.size == 123


def test_windows_on_one_file_are_one_window(gaussian, tmp_path):
    """Windows opened on one file, as the workers of 'oddkit serve --workers N' open theirs, hold the same rows:
    what either adds both report, as check_drift reports those rows, and the ring wraps for both. A file of
    another window, or not a window at all, is refused."""
    from oddkit.drift import DriftWindow, check_drift_batches

    record_reference(gaussian, normal_rows(1000, seed=41))
    path = tmp_path / "window"
    first, second = DriftWindow(gaussian, 300, path=path), DriftWindow(gaussian, 300, path=path)
    batches = [normal_rows(100, seed=42 + i) for i in range(4)]
    batches[2]["c3"] += 1  # a shifted column, to report
    for window, batch in zip((first, second, first, second), batches):
        window.add(batch, gaussian.decision_function(batch))
    assert (first.n_rows, second.n_rows, first.n_seen, second.n_seen) == (300, 300, 400, 400)
    expected = check_drift_batches(gaussian, batches[1:]).to_dict()  # the last 300 rows
    assert expected["drifted_columns"] == ["c3"]
    assert first.report().to_dict() == expected == second.report().to_dict()
    # a third worker, started later, sees the rows already held
    assert DriftWindow(gaussian, 300, path=path).report().to_dict() == expected
    with pytest.raises(DataError, match="not a drift window of 200 rows of 8 columns"):
        DriftWindow(gaussian, 200, path=path)
    (tmp_path / "other").write_bytes(b"not a window")
    with pytest.raises(DataError, match="not a drift window"):
        DriftWindow(gaussian, 300, path=tmp_path / "other")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other", "window"]  # no draft left behind
    # a bin no column has (the file changed by something else) is refused, not counted
    with open(path, "r+b") as handle:
        handle.seek(path.stat().st_size - 2)
        handle.write(np.int16(99).tobytes())
    with pytest.raises(DataError, match="bins its columns do not have"):
        first.report()
    # and a score that is not finite (a NaN would make every test's p-value NaN): refused too
    handle_path = tmp_path / "scores"
    window = DriftWindow(gaussian, 300, path=handle_path)
    window.add(batches[0], gaussian.decision_function(batches[0]))
    with open(handle_path, "r+b") as handle:
        handle.seek(8 + 5 * 8 + 8 * 7)  # the header, then the 8th row's score
        handle.write(np.float64(np.nan).tobytes())
    with pytest.raises(DataError, match="scores that are not finite"):
        window.report()
    # a damaged header (rows held beyond the size, a negative position) reads within the ring, never past it
    with open(handle_path, "r+b") as handle:
        handle.seek(8 + 2 * 8)
        handle.write(np.array([-5, 10**9], dtype=np.int64).tobytes())
    assert window.n_rows == 300
    with pytest.raises(DataError, match="scores that are not finite"):  # all 300 rows read, the NaN among them
        window.report()


def test_commands_on_a_model_without_a_network_never_import_torch(tmp_path):
    """--n-threads caps torch only once it is loaded: fitting, choosing a threshold, checking drift and scoring a
    Gaussian with --n-threads 1 leave torch unimported (it costs every command over a second to import)."""
    import subprocess
    import sys

    normal_rows(300, seed=0).to_csv(tmp_path / "train.csv", index=False)
    normal_rows(200, seed=1).assign(y=0).to_csv(tmp_path / "dev.csv", index=False)
    commands = [["fit", "train.csv", "--detector", "gaussian", "--out", "m"],
                ["threshold", "m", "dev.csv", "--goal", "fpr:0.05", "--out", "m2"],
                ["drift", "m2", "train.csv"], ["score", "m2", "train.csv", "--out", "s.csv"]]
    code = ("import sys\nfrom oddkit.cli import main\n"
            f"for args in {commands!r}:\n"
            "    sys.argv = ['oddkit', *args, '--n-threads', '1']\n"
            "    try:\n        main()\n    except SystemExit as exc:\n        assert not exc.code, (args, exc.code)\n"
            "print('TORCH', 'torch' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-2:] == ["TORCH", "False"], result.stdout


def test_the_command_shows_control_characters_in_categories_escaped(monkeypatch, capsys, tmp_path):
    rng = np.random.default_rng(0)
    frame = lambda n, shops: pd.DataFrame({"amount": rng.normal(size=n), "shop": rng.choice(shops, size=n)})
    frame(300, ["web", "store"]).to_csv(tmp_path / "train.csv", index=False)
    frame(200, ["web", "store"]).assign(y=0).to_csv(tmp_path / "dev.csv", index=False)
    frame(200, ["web\x1b[2J"]).to_csv(tmp_path / "new.csv", index=False)
    assert run_cli(monkeypatch, capsys, "fit", tmp_path / "train.csv", "--detector", "gaussian", "--out",
                   tmp_path / "m")[0] == 0
    code, out, err = run_cli(monkeypatch, capsys, "drift", tmp_path / "m", tmp_path / "dev.csv",
                             "--reference", tmp_path / "new.csv")
    assert code == 0, err
    assert "\x1b" not in out and "web\\x1b[2J" in out  # the reference's category, escaped
