"""The scoring service end to end: 'oddkit serve' started by uvicorn in a subprocess on a free port of
127.0.0.1, spoken to over HTTP (urllib): scores equal to the library's to the last bit, every error path
answered 4xx with oddkit's message, the API key, the signing key, and a short bounded load."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Service:
    """'oddkit serve MODEL' in a subprocess; ``request`` answers (status, parsed JSON or text)."""

    def __init__(self, model: Path, *args: str, env: dict | None = None):
        self.port = _free_port()
        environment = {k: v for k, v in os.environ.items() if k not in ("ODDKIT_API_KEY", "ODDKIT_MODEL_KEY")}
        environment.update(env or {})
        environment["PYTHONPATH"] = SRC + os.pathsep + environment.get("PYTHONPATH", "")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "oddkit.cli", "serve", str(model), "--port", str(self.port), *args],
            env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def wait(self, timeout: float = 60.0) -> Service:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the service exited {self.process.returncode}: {self.process.stderr.read()}")
            try:
                if self.request("GET", "/health")[0] == 200:
                    return self
            except OSError:
                time.sleep(0.2)
        raise AssertionError("the service did not answer /health in time")

    def request(self, method: str, path: str, body: bytes | None = None, content_type: str = "application/json",
                headers: dict | None = None):
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=body, method=method,
                                         headers={**({"Content-Type": content_type} if body is not None else {}),
                                                  **(headers or {})})
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:
                status, text = answer.status, answer.read().decode()
        except urllib.error.HTTPError as error:
            status, text = error.code, error.read().decode()
        try:
            return status, json.loads(text)
        except ValueError:
            return status, text

    def score(self, payload, path: str = "/score", **kwargs):
        return self.request("POST", path, json.dumps(payload).encode(), **kwargs)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for stream in (self.process.stdout, self.process.stderr):
            stream.close()


def _table(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"amount": rng.normal(100, 15, n), "hour": rng.integers(0, 24, n).astype(float),
                         "channel": rng.choice(["web", "shop", "phone"], n)})


@pytest.fixture(scope="module")
def gaussian_folder(tmp_path_factory):
    from oddkit import GaussianDetector

    folder = tmp_path_factory.mktemp("serve") / "gaussian"
    GaussianDetector().fit(_table(300, 0)).save(folder)
    return folder


@pytest.fixture(scope="module")
def service(gaussian_folder):
    running = Service(gaussian_folder, "--max-body-mb", "1").wait()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def rows():
    frame = _table(50, 1)
    frame.loc[3, "amount"] = 1e6  # far out: an anomaly
    return frame


def _library(folder, X, explain=False):
    import oddkit

    detector = oddkit.load(folder)
    scores = detector.decision_function(X)
    return detector, scores


def _check_answer(answer, detector, scores) -> None:
    got = [row["score"] for row in answer["rows"]]
    # repr-exact floats in the JSON: float64 to the last bit.
    assert np.array_equal(np.asarray(got, dtype=np.float64), scores)
    assert [row["label"] for row in answer["rows"]] == (scores >= detector.threshold_).astype(int).tolist()
    assert np.array_equal(np.asarray([row["probability"] for row in answer["rows"]]),
                          detector.proba_from_scores(scores)[:, 1])
    assert answer["threshold"] == detector.threshold_


def test_scores_equal_the_library_bit_for_bit_in_every_request_form(service, gaussian_folder, rows):
    detector, scores = _library(gaussian_folder, rows)
    assert scores[3] > detector.threshold_
    forms = [
        service.score({"rows": rows.to_dict(orient="records")}),
        service.score(rows.to_dict(orient="records")),
        service.score({"columns": rows.to_dict(orient="list")}),
        # columns sent in another order are matched by name
        service.score({"rows": rows[["channel", "hour", "amount"]].to_dict(orient="records")}),
        service.request("POST", "/score", rows.to_csv(index=False).encode(), "text/csv"),
    ]
    parquet = io.BytesIO()
    rows.to_parquet(parquet)
    forms.append(service.request("POST", "/score", parquet.getvalue(), "application/vnd.apache.parquet"))
    for filename, content in (("rows.csv", rows.to_csv(index=False).encode()), ("rows.parquet", parquet.getvalue())):
        boundary = "oddkitboundary"
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n"
                f"Content-Type: application/octet-stream\r\n\r\n").encode() + content
        body += f"\r\n--{boundary}--\r\n".encode()
        forms.append(service.request("POST", "/score", body, f"multipart/form-data; boundary={boundary}"))
    for status, answer in forms:
        assert status == 200, answer
        _check_answer(answer, detector, scores)


def test_explanations_on_request(service, gaussian_folder, rows):
    detector, _ = _library(gaussian_folder, rows)
    status, plain = service.score({"rows": rows.head(5).to_dict(orient="records")})
    assert status == 200 and "explanation" not in plain["rows"][0]
    status, answer = service.score({"rows": rows.head(5).to_dict(orient="records")}, path="/score?explain=true")
    assert status == 200
    expected = detector.explain(rows.head(5))
    got = pd.DataFrame([row["explanation"] for row in answer["rows"]])
    assert list(got.columns) == ["amount", "hour", "channel"]
    np.testing.assert_array_equal(got.to_numpy(), expected.to_numpy())


def test_health_model_and_openapi_name_the_columns(service, gaussian_folder):
    from oddkit.serve import model_info

    status, health = service.request("GET", "/health")
    assert status == 200 and (health["status"], health["detector"]) == ("ok", "GaussianDetector")
    status, info = service.request("GET", "/model")
    assert status == 200
    import oddkit

    assert info == json.loads(json.dumps(model_info(oddkit.load(gaussian_folder), gaussian_folder)))
    assert info["training_rows"] == 300 and info["versions"]["oddkit"]
    assert info["input"]["columns"] == [{"name": "amount", "kind": "numeric"}, {"name": "hour", "kind": "numeric"},
                                        {"name": "channel", "kind": "categorical",
                                         "categories": ["phone", "shop", "web"]}]
    status, schema = service.request("GET", "/openapi.json")
    assert status == 200
    row = schema["components"]["schemas"]["Row"]
    assert set(row["properties"]) == {"amount", "hour", "channel"} and row["additionalProperties"] is False
    # The schema takes what the service takes: a category never seen in training (scored as an anomaly) and
    # null in a categorical column; null in a numeric column only when the model imputes (this one does not).
    channel = row["properties"]["channel"]
    assert "enum" not in channel and channel["examples"] == ["phone", "shop", "web"]
    assert channel["anyOf"] == [{"type": "string"}, {"type": "number"}, {"type": "null"}]
    assert row["properties"]["amount"]["type"] == "number" and "anyOf" not in row["properties"]["amount"]
    assert "multipart/form-data" in schema["paths"]["/score"]["post"]["requestBody"]["content"]
    responses = schema["paths"]["/score"]["post"]["responses"]
    for status in ("401", "413", "422"):  # every error answers {"detail": "..."}
        assert responses[status]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ErrorResponse"}
    assert schema["components"]["schemas"]["ErrorResponse"]["properties"]["detail"]["type"] == "string"
    assert service.score({"rows": [{**GOOD, "channel": "fax"}]})[0] == 200  # outside the categories: accepted


GOOD = {"amount": 100.0, "hour": 3.0, "channel": "web"}


def _parquet_bytes(frame: pd.DataFrame) -> bytes:
    body = io.BytesIO()
    frame.to_parquet(body)
    return body.getvalue()

BAD_REQUESTS = [
    ("malformed JSON", b'{"rows": [', "application/json", 422, "not valid JSON"),
    ("empty body", b"", "application/json", 422, "empty"),
    ("missing column", json.dumps({"rows": [{"amount": 1.0, "hour": 2.0}]}).encode(), "application/json", 422,
     "missing ['channel']"),
    ("extra column", json.dumps({"rows": [{**GOOD, "zip": 1}]}).encode(), "application/json", 422, "extra ['zip']"),
    ("text in a numeric column", json.dumps({"rows": [{**GOOD, "amount": "ten"}]}).encode(), "application/json",
     422, "'amount'"),
    ("a boolean in a numeric column", json.dumps({"rows": [{**GOOD, "hour": True}]}).encode(), "application/json",
     422, "must hold a number"),
    ("a list in a categorical column", json.dumps({"rows": [{**GOOD, "channel": ["web"]}]}).encode(),
     "application/json", 422, "'channel'"),
    ("an integer beyond float64", b'{"rows": [{"amount": 1' + b"0" * 400 + b', "hour": 1, "channel": "web"}]}',
     "application/json", 422, "too large for float64"),
    ("an integer of 5,001 digits", b'{"rows": [{"amount": 1' + b"0" * 5000 + b', "hour": 1, "channel": "web"}]}',
     "application/json", 422, "not valid JSON"),
    ("a number as text", json.dumps({"rows": [{**GOOD, "amount": "100"}]}).encode(), "application/json", 422,
     "must hold a number"),
    ("a CSV cell of 400 digits", b"amount,hour,channel\n1" + b"0" * 400 + b",1,web\n", "text/csv", 422, "NaN/inf"),
    ("NaN", b'{"rows": [{"amount": NaN, "hour": 1, "channel": "web"}]}', "application/json", 422, "NaN"),
    ("null where the model does not impute", json.dumps({"rows": [{**GOOD, "amount": None}]}).encode(),
     "application/json", 422, "NaN/inf values (first rows: 0); send numbers for them (null or NaN only to a model "
                              "fitted with impute='median'"),
    ("JSON in UTF-16", json.dumps({"rows": [GOOD]}).encode("utf-16"), "application/json", 422,
     "not UTF-8 text (byte 0); send the JSON encoded as UTF-8"),
    ("no rows", b'{"rows": []}', "application/json", 422, "at least one row"),
    ("neither rows nor columns", b'{"data": 1}', "application/json", 422, "send rows as"),
    ("columns of different lengths", json.dumps({"columns": {"amount": [1.0], "hour": [1.0, 2.0],
                                                             "channel": ["web"]}}).encode(), "application/json",
     422, "different lengths"),
    ("a CSV missing a column", b"amount,hour\n1,2\n", "text/csv", 422, "missing ['channel']"),
    ("a CSV cell with a unit", b"amount,hour,channel\n12 EUR,1,web\n13,2,web\n14,3,web\n", "text/csv", 422,
     "at row(s) 0 ('12 EUR'); send numbers in that column (strip units, for example)"),
    ("a broken Parquet body", b"PAR1 not parquet", "application/vnd.apache.parquet", 422, "Parquet"),
    ("a key given twice", b'{"rows": [{"amount": 1, "amount": 1e9, "hour": 1, "channel": "web"}]}',
     "application/json", 422, "gives the key 'amount' twice"),
    ("a .npy body to a table model", b"\x93NUMPY", "application/x-npy", 422, "scores table rows, not images"),
    # true/false in a numeric column: refused as in JSON, not read as 1.0 and 0.0
    ("a CSV column of true/false", b"amount,hour,channel\n1,true,web\n2,false,shop\n", "text/csv", 422,
     "column 'hour' must hold a number (or null), but row 0 holds True (2 such rows); send 1 or 0 for true or false"),
    ("a CSV column of TRUE/FALSE with a gap", b"amount,hour,channel\n1,,web\n2,FALSE,shop\n3,TRUE,web\n",
     "text/csv", 422, "column 'hour' must hold a number (or null), but row 1 holds False (2 such rows)"),
    ("true among numbers in a CSV column", b"amount,hour,channel\n1,3,web\n2,true,shop\n", "text/csv", 422,
     "'hour'"),
    ("a Parquet boolean column", _parquet_bytes(pd.DataFrame({"amount": [1.0, 2.0], "hour": [False, True],
                                                              "channel": ["web", "shop"]})),
     "application/vnd.apache.parquet", 422, "column 'hour' must hold a number (or null), but row 0 holds False"),
]


@pytest.mark.parametrize("body, content_type, status, message", [case[1:] for case in BAD_REQUESTS],
                         ids=[case[0] for case in BAD_REQUESTS])
def test_bad_requests_get_4xx_with_oddkits_message(service, body, content_type, status, message):
    got, answer = service.request("POST", "/score", body, content_type)
    assert got == status, answer
    assert message in answer["detail"]
    assert service.request("POST", "/score", json.dumps([GOOD]).encode())[0] == 200  # still serving


def test_unseen_categories_are_scored_as_anomalies_flagged_and_counted(service, gaussian_folder, rows):
    """As 'oddkit score' does: an unseen category raises the row's score to the model's out-of-range score
    (label 1), the row is flagged and the answer counts them; ?strict_categories=true answers 422."""
    from oddkit.scoring import tolerant

    detector, scores = _library(gaussian_folder, rows)
    odd = rows.head(6).copy()
    odd.loc[[1, 4], "channel"] = ["fax", "telex"]
    status, answer = service.score({"rows": odd.to_dict(orient="records")}, path="/score?explain=true")
    assert status == 200, answer
    assert [row["unseen_category"] for row in answer["rows"]] == [False, True, False, False, True, False]
    assert (answer["unseen_category_rows"], answer["unseen_categories"]) == (2, {"channel": 2})
    got = np.asarray([row["score"] for row in answer["rows"]])
    seen = [0, 2, 3, 5]
    np.testing.assert_array_equal(got[seen], scores[seen])  # the other rows keep their scores exactly
    floor = detector.out_of_range_score()
    np.testing.assert_array_equal(got[[1, 4]], np.maximum(tolerant(detector).decision_function(odd)[[1, 4]], floor))
    assert floor > detector.threshold_ and [answer["rows"][i]["label"] for i in (1, 4)] == [1, 1]
    assert all(np.isfinite(list(row["explanation"].values())).all() for row in answer["rows"])
    from oddkit.scoring import explain_rows

    expected = explain_rows(detector, odd)  # raised rows: their shares on 'channel'
    assert [row["explanation"] for row in answer["rows"]] == [
        {str(k): float(v) for k, v in values.items()} for values in expected.to_dict(orient="records")]
    status, clean = service.score({"rows": rows.head(3).to_dict(orient="records")})
    assert status == 200 and clean["unseen_category_rows"] == 0 and clean["unseen_categories"] == {}

    # strict and tolerant requests at once: one does not leak its setting into the other
    body = json.dumps({"rows": odd.to_dict(orient="records")}).encode()
    paths = ["/score?strict_categories=true", "/score"] * 8
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda path: service.request("POST", path, body), paths))
    for path, (status, answer) in zip(paths, answers):
        if "strict" in path:
            assert status == 422 and "never seen in training" in answer["detail"], answer
            assert "strict_categories" in answer["detail"] and "'fax'" in answer["detail"]
        else:
            assert status == 200 and answer["unseen_category_rows"] == 2


def test_a_body_over_the_limit_gets_413_before_it_is_read(service):
    import http.client

    # Declared too large: answered from the headers alone, without reading the body.
    connection = http.client.HTTPConnection("127.0.0.1", service.port, timeout=30)
    connection.putrequest("POST", "/score")
    connection.putheader("Content-Type", "application/json")
    connection.putheader("Content-Length", str(2 * 1024 * 1024))
    connection.endheaders()
    answer = connection.getresponse()
    assert answer.status == 413 and "over the service's limit" in json.loads(answer.read())["detail"]
    connection.close()
    # Streamed without a length (chunked): cut off once the limit is passed.
    connection = http.client.HTTPConnection("127.0.0.1", service.port, timeout=30)
    chunks = (b"[" + b" " * 65536 for _ in range(24))  # 1.5 MiB, never a valid body
    try:
        connection.request("POST", "/score", body=chunks, headers={"Content-Type": "application/json"},
                           encode_chunked=True)
        answer = connection.getresponse()
        status = answer.status
    except (BrokenPipeError, ConnectionResetError):
        status = 413  # the server answered and closed while the client was still sending
    assert status == 413
    connection.close()
    assert service.score([GOOD])[0] == 200


def test_api_key_is_required_when_configured(gaussian_folder):
    service = Service(gaussian_folder, env={"ODDKIT_API_KEY": "s3cret"}).wait()
    try:
        assert service.request("GET", "/health")[0] == 200  # open, for load balancers
        for headers in ({}, {"X-API-Key": "wrong"}):
            status, answer = service.score([GOOD], headers=headers)
            assert status == 401 and "X-API-Key" in answer["detail"]
            assert service.request("GET", "/model", headers=headers)[0] == 401
        assert service.score([GOOD], headers={"X-API-Key": "s3cret"})[0] == 200
        assert service.request("GET", "/model", headers={"X-API-Key": "s3cret"})[0] == 200
        for path in ("/openapi.json", "/docs"):  # the schema and its docs are behind the key too
            for headers in ({}, {"X-API-Key": "wrong"}):
                assert service.request("GET", path, headers=headers)[0] == 401
        assert service.request("GET", "/redoc", headers={"X-API-Key": "s3cret"})[0] == 404
        status, schema = service.request("GET", "/openapi.json", headers={"X-API-Key": "s3cret"})
        assert status == 200
        assert schema["components"]["securitySchemes"]["APIKey"]["name"] == "X-API-Key"
        assert schema["paths"]["/score"]["post"]["security"] == [{"APIKey": []}]
        status, page = service.request("GET", "/docs", headers={"X-API-Key": "s3cret"})
        assert status == 200 and "SwaggerUIBundle" in page
        assert '"securitySchemes"' in page and "url: '/openapi.json'" not in page  # the schema is inline
    finally:
        service.stop()


def test_refuses_to_start_on_an_unsigned_folder_when_a_signing_key_is_set(gaussian_folder, tmp_path):
    import oddkit

    unsigned = Service(gaussian_folder, env={"ODDKIT_MODEL_KEY": "k3y"})
    try:
        assert unsigned.process.wait(60) == 2
        assert "not signed" in unsigned.process.stderr.read()
    finally:
        unsigned.stop()
    signed_folder = tmp_path / "signed"
    oddkit.load(gaussian_folder).save(signed_folder, key="k3y")
    signed = Service(signed_folder, env={"ODDKIT_MODEL_KEY": "k3y"}).wait()
    try:
        assert signed.score([GOOD])[0] == 200
    finally:
        signed.stop()


def test_autoencoder_scores_bit_for_bit(tmp_path, rows):
    from oddkit import AutoEncoderDetector

    folder = tmp_path / "ae"
    AutoEncoderDetector(epochs=2, hidden_sizes=[8], random_state=0, verbose=0).fit(_table(200, 2)).save(folder)
    detector, scores = _library(folder, rows)
    service = Service(folder, "--n-threads", "1").wait()
    try:
        assert service.request("GET", "/health")[1]["threads"] == {"torch": 1, "blas": 1}
        status, answer = service.score({"columns": rows.to_dict(orient="list")})
        assert status == 200, answer
        _check_answer(answer, detector, scores)
    finally:
        service.stop()


def test_bounded_load_from_16_concurrent_clients_gets_no_5xx(service, gaussian_folder, rows):
    _, scores = _library(gaussian_folder, rows)
    payloads = [json.dumps({"rows": rows.iloc[i % 40: i % 40 + 10].to_dict(orient="records")}).encode()
                for i in range(320)]

    def one(i):
        status, answer = service.request("POST", "/score", payloads[i])
        return i, status, answer

    start = time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(one, range(320)))
    assert time.monotonic() - start < 60
    assert [status for _, status, _ in results if status >= 500] == []
    assert all(status == 200 for _, status, _ in results)
    for i, _, answer in results[:40]:
        assert [row["score"] for row in answer["rows"]] == scores[i % 40: i % 40 + 10].tolist()


def test_image_model_scores_npy_bodies(tmp_path):
    sys.path.insert(0, str(Path(__file__).parent))
    from synthetic_images import bar_images

    from oddkit import AutoEncoderDetector

    folder = tmp_path / "images"
    AutoEncoderDetector(epochs=2, random_state=0, verbose=0).fit(bar_images(40, size=16)).save(folder)
    images = np.concatenate([bar_images(3, size=16, seed=1), bar_images(2, size=16, vertical=True, seed=2)])
    detector, scores = _library(folder, images)
    body = io.BytesIO()
    np.save(body, images)
    service = Service(folder).wait()
    try:
        status, answer = service.request("POST", "/score", body.getvalue(), "application/x-npy")
        assert status == 200, answer
        # Convolutions in float32 may differ in the last bit between the service's torch threads and
        # this process's (seen on a loaded 2-core machine), so images are compared to 1e-6, tables exactly.
        served = np.asarray([row["score"] for row in answer["rows"]], dtype=np.float64)
        np.testing.assert_allclose(served, scores, rtol=1e-6)
        assert [row["label"] for row in answer["rows"]] == detector.predict(images).tolist()
        status, answer = service.score({"rows": [GOOD]})
        assert status == 422 and "application/x-npy" in answer["detail"]
        status, answer = service.request("POST", "/score", b"not an array", "application/x-npy")
        assert status == 422 and ".npy" in answer["detail"]
        # ?explain=true: each image's heat map, (H, W) pixel shares as detector.explain gives them
        status, answer = service.request("POST", "/score?explain=true", body.getvalue(), "application/x-npy")
        assert status == 200, answer
        heat_maps = np.asarray([row["explanation"] for row in answer["rows"]])
        np.testing.assert_allclose(heat_maps, detector.explain(images), rtol=1e-5, atol=1e-7)
        assert heat_maps.shape == (5, 16, 16)
        scalar = io.BytesIO()
        np.save(scalar, np.array(3.0))  # a 0-d array: no images at all
        status, answer = service.request("POST", "/score", scalar.getvalue(), "application/x-npy")
        assert status == 422 and "single value, not images" in answer["detail"]
        assert service.request("GET", "/model")[1]["input"] == {"kind": "images", "shape": [1, 16, 16]}
        # the schema offers both ways the service takes images: the .npy body, and a .npy upload
        content = service.request("GET", "/openapi.json")[1]["paths"]["/score"]["post"]["requestBody"]["content"]
        assert set(content) == {"application/x-npy", "multipart/form-data"}
        upload = (b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"images.npy\"\r\n\r\n"
                  + body.getvalue() + b"\r\n--b--\r\n")
        status, answer = service.request("POST", "/score", upload, "multipart/form-data; boundary=b")
        assert status == 200 and len(answer["rows"]) == 5
    finally:
        service.stop()


def test_an_image_raised_for_its_brightness_carries_a_note_with_its_heat_map():
    """The image default (GradientKNNDetector) raises a negative of a normal image for its brightness, which its
    heat map of edges does not show: ?explain=true gives that image a 'note' saying which statistic is out of
    range; the others have none."""
    from synthetic_images import bar_images

    from oddkit import GradientKNNDetector
    from oddkit.serve import score_payload

    detector = GradientKNNDetector().fit(bar_images(40, size=16))
    images = bar_images(3, size=16, seed=1)
    images[2] = 255 - images[2]
    answer = json.loads(score_payload(detector, images, explain=True))
    assert [("note" in row) for row in answer["rows"]] == [False, False, True]
    assert answer["rows"][2]["note"].startswith("brightness (mean)") and answer["rows"][2]["label"] == 1
    assert "note" not in json.loads(score_payload(detector, images))["rows"][2]


def test_several_workers_serve_the_same_scores(gaussian_folder, rows, tmp_path):
    """Two worker processes, each capped at one thread by --n-threads: the same scores, and one drift window
    holding every row either scored. A Gaussian needs no network: torch is never imported (the auto-encoder's
    service below reports its cap)."""
    import tempfile

    from oddkit.drift import record_reference

    detector, scores = _library(gaussian_folder, rows)
    record_reference(detector, _table(100, 7))
    detector.save(tmp_path / "watched")

    def window_folders():
        return set(Path(tempfile.gettempdir()).glob("oddkit-serve-*"))

    before = window_folders()
    service = Service(tmp_path / "watched", "--workers", "2", "--n-threads", "1").wait()
    try:
        for _ in range(4):  # whichever worker answers
            assert service.request("GET", "/health")[1]["threads"] == {"torch": None, "blas": 1}
        payload = json.dumps({"rows": rows.to_dict(orient="records")}).encode()
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda _: service.request("POST", "/score", payload), range(8)))
        for status, answer in answers:
            assert status == 200
            assert [row["score"] for row in answer["rows"]] == scores.tolist()
        for _ in range(4):  # whichever worker answers: all 8 requests' rows
            status, report = service.request("GET", "/drift")
            assert status == 200 and report["window"] == {"size": 10_000, "rows": 8 * len(rows),
                                                          "rows_scored": 8 * len(rows)}
        assert len(window_folders() - before) == 1  # the window's private folder
    finally:
        service.stop()
    assert window_folders() <= before  # removed when the service stopped


def test_bad_command_lines_stop_with_a_message(gaussian_folder, tmp_path):
    for args, message in (((str(gaussian_folder), "--workers", "0"), "--workers"),
                          ((str(gaussian_folder), "--n-threads", "0"), "--n-threads"),
                          ((str(gaussian_folder), "--max-rows", "0"), "--max-rows")):
        done = subprocess.run([sys.executable, "-m", "oddkit.cli", "serve", *args], capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": SRC}, timeout=60)
        assert done.returncode == 2 and message in done.stderr


def test_query_parameters_and_unexpected_faults_answer_a_json_detail(gaussian_folder, monkeypatch):
    """A query parameter that is not a boolean gets 422 with one sentence in 'detail' (as every other error),
    not FastAPI's list of error objects; a fault of the service itself gets 500 with a JSON 'detail' that
    names the exception but not the traceback."""
    from fastapi.testclient import TestClient

    import oddkit.serve
    from oddkit.serve import create_app

    client = TestClient(create_app(gaussian_folder), raise_server_exceptions=False)
    answer = client.post("/score?explain=maybe", json=[GOOD])
    assert answer.status_code == 422
    assert answer.json() == {"detail": "query parameter 'explain' must be true or false, got 'maybe'; send "
                                       "?explain=true or ?strict_categories=true"}

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(oddkit.serve, "score_payload", broken)
    answer = client.post("/score", json=[GOOD])
    assert answer.status_code == 500 and answer.headers["content-type"] == "application/json"
    assert answer.json()["detail"].startswith("internal error (ZeroDivisionError)") and "a bug" not in answer.text


def test_a_model_that_imputes_documents_null_in_its_schema(tmp_path):
    from fastapi.testclient import TestClient

    from oddkit import GaussianDetector
    from oddkit.serve import create_app

    detector = GaussianDetector(impute="median").fit(_table(100, 0))
    client = TestClient(create_app(detector))
    amount = client.get("/openapi.json").json()["components"]["schemas"]["Row"]["properties"]["amount"]
    assert amount["anyOf"] == [{"type": "number"}, {"type": "null"}]
    assert client.post("/score", json=[{**GOOD, "amount": None}]).status_code == 200


def test_a_body_that_stops_arriving_gets_408_instead_of_holding_the_request(gaussian_folder):
    """A client that sends part of a body and then nothing would hold its request open for ever (uvicorn has
    no limit on the wait for the body): after body_timeout seconds without a byte it is answered 408."""
    import asyncio

    from oddkit.serve import create_app

    app = create_app(gaussian_folder, body_timeout=0.3)

    async def stalled(headers, first):
        events = [{"type": "http.request", "body": first, "more_body": True}]

        async def receive():
            if events:
                return events.pop()
            await asyncio.sleep(3600)  # the client never sends the rest

        sent = []

        async def send(event):
            sent.append(event)

        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
                 "scheme": "http", "path": "/score", "raw_path": b"/score", "query_string": b"", "root_path": "",
                 "headers": headers, "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}
        await asyncio.wait_for(app(scope, receive, send), 30)
        return sent[0]["status"], json.loads(sent[1]["body"])

    for headers, first in (([(b"content-type", b"application/json"), (b"content-length", b"100")], b'[{"amo'),
                           ([(b"content-type", b"multipart/form-data; boundary=b")], b"--b\r\n")):
        status, answer = asyncio.run(stalled(headers, first))
        assert status == 408 and "stopped arriving: nothing for 0.3 s" in answer["detail"]
    with pytest.raises(Exception, match="body_timeout must be a positive number"):
        create_app(gaussian_folder, body_timeout=0)


def test_health_and_model_answer_while_every_worker_thread_is_scoring(gaussian_folder, monkeypatch):
    """Scoring runs in a pool of 40 worker threads; with all of them busy (long requests), GET /health and
    GET /model still answer at once, so that a load balancer does not take a busy service for a dead one."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from fastapi.testclient import TestClient

    import oddkit.serve
    from oddkit.serve import create_app

    release, started = threading.Event(), threading.Semaphore(0)
    score = oddkit.serve.score_payload

    def held(*args, **kwargs):
        started.release()
        release.wait(30)
        return score(*args, **kwargs)

    monkeypatch.setattr(oddkit.serve, "score_payload", held)
    timer = threading.Timer(20, release.set)  # never leaves the test hanging
    timer.start()
    try:
        with TestClient(create_app(gaussian_folder)) as client, ThreadPoolExecutor(45) as pool:
            busy = [pool.submit(client.post, "/score", json=[GOOD]) for _ in range(45)]
            for _ in range(40):  # every thread of the pool is holding a request
                assert started.acquire(timeout=30)
            for path in ("/health", "/model"):
                start = time.monotonic()
                assert client.get(path).status_code == 200
                assert time.monotonic() - start < 5, f"{path} waited for a worker thread"
            release.set()
            assert [future.result().status_code for future in busy] == [200] * 45
    finally:
        release.set()
        timer.cancel()


def _answer_all_at_once(detector, X, explain=False) -> dict:
    """POST /score's answer built as it was before chunking: every row scored, explained and written at once
    (the oracle the chunked answer must equal exactly)."""
    from oddkit.scoring import explain_rows, score_rows

    scores, unseen, columns = score_rows(detector, X)
    probabilities = detector.proba_from_scores(scores)[:, 1]
    rows = [{"score": s, "label": int(s >= detector.threshold_), "probability": p, "unseen_category": u}
            for s, p, u in zip(scores.tolist(), probabilities.tolist(), unseen.tolist())]
    if explain:
        for row, values in zip(rows, explain_rows(detector, X).to_dict(orient="records")):
            row["explanation"] = {str(k): float(v) for k, v in values.items()}
    return {"rows": rows, "threshold": float(detector.threshold_), "detector": type(detector).__name__,
            "unseen_category_rows": int(unseen.sum()), "unseen_categories": columns}


def test_a_batch_larger_than_one_chunk_answers_as_if_scored_at_once(service, gaussian_folder, tmp_path):
    """Rows are scored, explained and written a chunk at a time (memory bounded per chunk); the answer is the
    same, byte for byte, as scoring every row at once: scores, labels, explanations, the unseen categories
    counted over the whole request (a value in two chunks counts once), and an error naming the whole
    request's rows."""
    import oddkit
    from oddkit import AutoEncoderDetector
    from oddkit.exceptions import OddkitError
    from oddkit.serve import _CHUNK_ROWS, score_payload

    n = 2 * _CHUNK_ROWS + 100  # three chunks, the last one short
    X = _table(n, 7)
    X.loc[[5, _CHUNK_ROWS + 9], "channel"] = "fax"  # one unseen value in two chunks
    X.loc[2 * _CHUNK_ROWS + 50, "channel"] = "telex"
    X.loc[_CHUNK_ROWS + 20, "amount"] = 1e9  # far out
    folder = tmp_path / "ae"
    AutoEncoderDetector(epochs=2, hidden_sizes=[8], random_state=0, verbose=0).fit(_table(300, 2)).save(folder)
    for detector in (oddkit.load(gaussian_folder), oddkit.load(folder)):
        for explain in (False, True):
            expected = json.dumps(_answer_all_at_once(detector, X, explain), allow_nan=False).encode()
            assert score_payload(detector, X, explain=explain) == expected
        assert json.loads(expected)["unseen_categories"] == {"channel": 2}
        # an error in a later chunk is the one scoring every row at once raises (rows of the whole request)
        with pytest.raises(OddkitError) as chunked:
            score_payload(detector, X, strict_categories=True)
        from oddkit.scoring import score_rows

        with pytest.raises(OddkitError) as at_once:
            score_rows(detector, X, strict_categories=True, hint=oddkit.serve._STRICT_HINT)
        assert str(chunked.value) == str(at_once.value) and str(_CHUNK_ROWS + 9) in str(chunked.value)
        bad = X.copy()
        bad.loc[_CHUNK_ROWS + 3, "hour"] = np.nan
        with pytest.raises(OddkitError, match=str(_CHUNK_ROWS + 3)):
            score_payload(detector, bad)

    # and through the service, as a CSV body
    detector = oddkit.load(gaussian_folder)
    status, answer = service.request("POST", "/score?explain=true", X.to_csv(index=False).encode(), "text/csv")
    assert status == 200 and answer == json.loads(json.dumps(_answer_all_at_once(detector, X, explain=True)))


def test_a_request_over_the_row_limit_gets_413_asking_to_split_it(gaussian_folder):
    from fastapi.testclient import TestClient

    from oddkit.exceptions import OddkitError
    from oddkit.serve import DEFAULT_MAX_ROWS, create_app

    assert DEFAULT_MAX_ROWS == 100_000
    client = TestClient(create_app(gaussian_folder, max_rows=5))
    for count, status in ((5, 200), (6, 413)):
        frame = _table(count, 3)
        for answer in (client.post("/score", json={"rows": frame.to_dict(orient="records")}),
                       client.post("/score", json=frame.to_dict(orient="records")),
                       client.post("/score", json={"columns": frame.to_dict(orient="list")}),
                       client.post("/score", content=frame.to_csv(index=False), headers={"Content-Type": "text/csv"}),
                       client.post("/score", files={"file": ("rows.csv", frame.to_csv(index=False))})):
            assert answer.status_code == status, answer.text
            if status == 413:
                assert answer.json() == {"detail": "the request holds 6 rows, over the service's limit of 5 rows per "
                                                   "request; split the batch into requests of at most 5 rows (or "
                                                   "start the service with a larger --max-rows)"}
    for bad in (0, -1, 2.5, True):
        with pytest.raises(OddkitError, match="max_rows"):
            create_app(gaussian_folder, max_rows=bad)
    # 'oddkit serve --max-rows' sets it in every worker
    service = Service(gaussian_folder, "--max-rows", "2").wait()
    try:
        assert service.score([GOOD, GOOD])[0] == 200
        status, answer = service.score([GOOD] * 3)
        assert status == 413 and "split the batch" in answer["detail"]
    finally:
        service.stop()


def _refused_in_one_line(answer, status: int, message: str) -> None:
    assert answer.status_code == status, answer.text
    detail = answer.json()["detail"]
    assert message in detail and "\n" not in detail and len(detail) < 600, detail


def test_a_table_file_with_thousands_of_columns_is_refused_in_one_short_line(gaussian_folder, monkeypatch):
    """A CSV header of 100,000 columns took 2 s to read into a table, and the answer listed every one of them
    (1 MB of detail): refused from its first line, and a list of names in a detail is cut short. A CSV of more
    rows than --max-rows is refused once they are counted, before it is read into a table."""
    from fastapi.testclient import TestClient

    import oddkit.data
    from oddkit.serve import create_app

    def read(*args, **kwargs):
        raise AssertionError("the file was read")

    client = TestClient(create_app(gaussian_folder, max_rows=40), raise_server_exceptions=False)
    extra = {"amount": 1.0, "hour": 2.0, "channel": "web", **{f"c{i}": 0 for i in range(5000)}}
    _refused_in_one_line(client.post("/score", json={"rows": [extra]}), 422,
                         "extra ['c0', 'c1', 'c2', 'c3', 'c4', 'c5', 'c6', 'c7', 'c8', 'c9', 'c10', 'c11', 'c12', "
                         "'c13', 'c14', 'c15', 'c16', 'c17', 'c18', 'c19'] and 4,980 more")
    monkeypatch.setattr(oddkit.data, "read_table", read)
    wide = b"amount,hour,channel," + b",".join(b"c%d" % i for i in range(100_000)) + b"\n1,2,web\n"
    _refused_in_one_line(client.post("/score", content=wide, headers={"Content-Type": "text/csv"}), 422,
                         "the CSV body has more than 1,000 columns; send exactly the model's columns ['amount', "
                         "'hour', 'channel']")
    rows = b"amount,hour,channel\n" + b"1,2,web\n" * 100
    _refused_in_one_line(client.post("/score", content=rows, headers={"Content-Type": "text/csv"}), 413,
                         "the request holds 100 rows, over the service's limit of 40 rows")
    _refused_in_one_line(client.post("/score", files={"file": ("rows.csv", rows * 10)}), 413,
                         "the request holds more than 400 rows, over the service's limit of 40 rows")
