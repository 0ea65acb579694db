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
                f"Content-Type: application/octet-stream\r\n\r\n").encode() + content + f"\r\n--{boundary}--\r\n".encode()
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
    assert row["properties"]["channel"]["enum"] == ["phone", "shop", "web"]
    assert {"type": "number"} in row["properties"]["amount"]["anyOf"]
    assert "multipart/form-data" in schema["paths"]["/score"]["post"]["requestBody"]["content"]


GOOD = {"amount": 100.0, "hour": 3.0, "channel": "web"}
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
    ("a broken Parquet body", b"PAR1 not parquet", "application/vnd.apache.parquet", 422, "Parquet"),
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
    service = Service(folder).wait()
    try:
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
        assert service.request("GET", "/model")[1]["input"] == {"kind": "images", "shape": [1, 16, 16]}
    finally:
        service.stop()


def test_several_workers_serve_the_same_scores(gaussian_folder, rows):
    """Two worker processes, each capped at one thread by --n-threads: the same scores."""
    _, scores = _library(gaussian_folder, rows)
    service = Service(gaussian_folder, "--workers", "2", "--n-threads", "1").wait()
    try:
        for _ in range(4):  # whichever worker answers
            assert service.request("GET", "/health")[1]["threads"] == {"torch": 1, "blas": 1}
        payload = json.dumps({"rows": rows.to_dict(orient="records")}).encode()
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda _: service.request("POST", "/score", payload), range(8)))
        for status, answer in answers:
            assert status == 200
            assert [row["score"] for row in answer["rows"]] == scores.tolist()
    finally:
        service.stop()


def test_bad_command_lines_stop_with_a_message(gaussian_folder, tmp_path):
    for args, message in (((str(gaussian_folder), "--workers", "0"), "--workers"),
                          ((str(gaussian_folder), "--n-threads", "0"), "--n-threads")):
        done = subprocess.run([sys.executable, "-m", "oddkit.cli", "serve", *args], capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": SRC}, timeout=60)
        assert done.returncode == 2 and message in done.stderr
