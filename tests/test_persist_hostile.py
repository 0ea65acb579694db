"""Hostile model folders: each is refused with ModelFileError and no payload ever runs.

Every payload that names a callable is first shown to be live (skops itself, told to trust
everything, runs it and writes its marker file); then oddkit is shown to refuse the same bytes,
with the folder's checksums recomputed so that only the type check can stop it, and the marker is
asserted absent.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import shutil
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io
from sklearn.ensemble import (
    ExtraTreesClassifier,
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier

import oddkit
from conftest import fast_autoencoder
from conftest import run_cli as run
from oddkit import (
    ClassifierConfidenceDetector,
    EnsembleDetector,
    GaussianDetector,
    IsolationForestDetector,
    KNNDetector,
    LOFDetector,
    OneClassSVMDetector,
    VAEDetector,
    VQVAEDetector,
)
from oddkit._trusted import TRUSTED_SKOPS_TYPES
from oddkit.exceptions import ModelFileError, OddkitError
from oddkit.persist import seal

RNG = np.random.default_rng(0)
X = RNG.normal(size=(80, 3))
CLASSES = np.repeat(["left", "right"], 40)


# -- building payloads --------------------------------------------------------------------------

def _json(value) -> dict:
    return {"__class__": "str", "__module__": "builtins", "__loader__": "JsonNode",
            "content": json.dumps(value), "is_json": True}


def _call(module: str, name: str, *args) -> dict:
    """A skops node that calls ``module.name(*args)`` when loaded (``ConstructorFromReduceNode``)."""
    return {"__class__": name, "__module__": module, "__loader__": "ConstructorFromReduceNode",
            "content": {"__class__": "tuple", "__module__": "builtins", "__loader__": "TupleNode",
                        "content": [_json(a) for a in args]}}


def _inject(payload: bytes, node: dict) -> bytes:
    """A genuine skops archive with ``node`` added as one more attribute of its top object."""
    source = zipfile.ZipFile(io.BytesIO(payload))
    schema = json.loads(source.read("schema.json"))
    attrs = schema["content"]
    attrs["content"]["planted_"] = node
    attrs["key_types"]["content"].append({"__class__": "str", "__module__": "builtins", "__loader__": "TypeNode"})
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for name in source.namelist():
            target.writestr(name, json.dumps(schema) if name == "schema.json" else source.read(name))
    return out.getvalue()


class _WritesMarker:
    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def _payloads(marker: Path, scratch: Path) -> dict[str, dict]:
    """Nodes that each write ``marker`` when skops builds them."""
    pickled = scratch / "payload.npy"
    pickled.write_bytes(pickle.dumps(_WritesMarker(marker)))
    return {
        "check_output": _call("sklearn.utils._testing", "check_output", ["touch", str(marker)]),
        "run_python_script": _call("sklearn.utils._testing", "assert_run_python_script_without_output",
                                   f"open({str(marker)!r}, 'w').close()"),
        "eval": _call("builtins", "eval", f"open({str(marker)!r}, 'w').close()"),
        "os.system": _call("os", "system", f"touch {marker}"),
        "numpy.load": _call("numpy", "load", str(pickled), None, True),
    }


PAYLOADS = ["check_output", "run_python_script", "eval", "os.system", "numpy.load"]


# -- saved folders --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """One saved folder per kind, copied by each test before it is spoiled."""
    root = tmp_path_factory.mktemp("saved")
    models = {
        "ocsvm": OneClassSVMDetector().fit(X),
        "iforest": IsolationForestDetector(n_estimators=5, random_state=0).fit(X),
        "sklearn-classifier": ClassifierConfidenceDetector(classifier=LogisticRegression(), verbose=0).fit(X, CLASSES),
        "ensemble": EnsembleDetector(members=("iforest", "knn"), random_state=0).fit(X),
        "gaussian": GaussianDetector().fit(X),
        "knn": KNNDetector().fit(X),
        "lof": LOFDetector().fit(X),
        "autoencoder": fast_autoencoder(epochs=2).fit(X),
        "vae": VAEDetector(epochs=2, random_state=0, verbose=0).fit(X),
        "vqvae": VQVAEDetector(epochs=2, random_state=0, verbose=0).fit(X),
        "classifier": ClassifierConfidenceDetector(epochs=2, score="knn", random_state=0, verbose=0).fit(X, CLASSES),
    }
    for name, model in models.items():
        model.save(root / name)
    return root


@pytest.fixture
def copy(saved, tmp_path):
    def make(name: str) -> Path:
        target = tmp_path / "model"
        shutil.copytree(saved / name, target)
        return target
    return make


SKOPS_FILES = {"ocsvm": "estimator.skops", "iforest": "estimator.skops",
               "sklearn-classifier": "estimator.skops", "ensemble": "member0.estimator.skops"}


@pytest.mark.parametrize("payload", PAYLOADS)
def test_payload_is_live_when_skops_trusts_everything(payload, saved, tmp_path):
    marker = tmp_path / "ran"
    node = _payloads(marker, tmp_path)[payload]
    planted = _inject((saved / "ocsvm" / "estimator.skops").read_bytes(), node)
    try:
        skops.io.loads(planted, trusted=skops.io.get_untrusted_types(data=planted))
    except Exception:  # noqa: BLE001 - the payload's own return value may upset skops afterwards
        pass
    assert marker.exists(), "the payload must be able to run code, or the tests below prove nothing"


@pytest.mark.parametrize("kind", list(SKOPS_FILES))
@pytest.mark.parametrize("payload", PAYLOADS)
def test_code_in_a_skops_file_is_refused_with_checksums_updated(kind, payload, copy, tmp_path):
    folder = copy(kind)
    marker = tmp_path / "ran"
    skops_file = folder / SKOPS_FILES[kind]
    skops_file.write_bytes(_inject(skops_file.read_bytes(), _payloads(marker, tmp_path)[payload]))
    seal(folder)  # only the type check may stop it
    with pytest.raises(ModelFileError, match="oddkit never loads|not in oddkit's trusted list"):
        oddkit.load(folder)
    assert not marker.exists()


@pytest.mark.parametrize("node", [
    # a function a prefix-trusting list would let through, returned rather than called
    {"__class__": "check_output", "__module__": "sklearn.utils._testing", "__loader__": "FunctionNode"},
    {"__class__": "methodcaller", "__module__": "operator", "__loader__": "OperatorFuncNode",
     "attrs": {"__class__": "tuple", "__module__": "builtins", "__loader__": "TupleNode",
               "content": [_json("system"), _json("touch x")]}},
    # an object of a scikit-learn type outside the list (found in sklearn.*, as a prefix would allow)
    {"__class__": "FunctionTransformer", "__module__": "sklearn.preprocessing._function_transformer",
     "__loader__": "ObjectNode"},
    # a listed name under the wrong loader: a type node that would hand back the class
    {"__class__": "OneClassSVM", "__module__": "sklearn.svm._classes", "__loader__": "TypeNode"},
    # an array whose "type" is a function: NdArrayNode calls the named class on its content
    {"__class__": "system", "__module__": "os", "__loader__": "NdArrayNode", "type": "numpy", "file": "x.npy"},
    # an object array holding a call, rebuilt item by item
    {"__class__": "ndarray", "__module__": "numpy", "__loader__": "NdArrayNode", "type": "json",
     "content": [_call("os", "system", "touch x")],
     "shape": {"__class__": "tuple", "__module__": "builtins", "__loader__": "TupleNode", "content": [_json(1)]}},
    # a dictionary whose own class is a function: DictNode calls it
    {"__class__": "system", "__module__": "os", "__loader__": "DictNode", "content": {},
     "key_types": {"__class__": "list", "__module__": "builtins", "__loader__": "ListNode", "content": []}},
], ids=["function", "methodcaller", "unlisted-sklearn-class", "type-node", "array-as-call", "object-array",
        "dict-as-call"])
def test_untrusted_nodes_are_refused(node, copy):
    folder = copy("iforest")
    skops_file = folder / "estimator.skops"
    skops_file.write_bytes(_inject(skops_file.read_bytes(), node))
    seal(folder)
    with pytest.raises(ModelFileError, match="refused without loading it"):
        oddkit.load(folder)


def test_trusted_list_is_exact_names_without_functions():
    assert all(name.count(".") >= 1 and not name.endswith(".") and "*" not in name for name in TRUSTED_SKOPS_TYPES)
    assert "sklearn.utils._testing.check_output" not in TRUSTED_SKOPS_TYPES
    assert not any(name.startswith(("builtins.eval", "os.", "operator.", "subprocess.")) for name in TRUSTED_SKOPS_TYPES)


# -- files that are not what the format allows ---------------------------------------------------

class _Exploit:
    def __reduce__(self):
        return (print, ("code ran",))


def test_pickle_in_place_of_a_skops_file_is_refused(copy):
    folder = copy("iforest")
    (folder / "estimator.skops").write_bytes(pickle.dumps(_Exploit()))
    seal(folder)
    with pytest.raises(ModelFileError, match="pickle"):
        oddkit.load(folder)


def test_torch_save_file_in_place_of_the_weights_is_refused(copy):
    import torch

    folder = copy("autoencoder")
    torch.save({"weights": torch.zeros(3)}, folder / "weights.safetensors")
    seal(folder)
    with pytest.raises(ModelFileError, match="torch.save|zip"):
        oddkit.load(folder)


def test_pickle_in_place_of_the_weights_is_refused(copy):
    folder = copy("gaussian")
    (folder / "weights.safetensors").write_bytes(pickle.dumps(_Exploit(), protocol=4))
    seal(folder)
    with pytest.raises(ModelFileError, match="safetensors"):
        oddkit.load(folder)


def test_unknown_file_is_refused_sealed_or_not(copy):
    folder = copy("gaussian")
    (folder / "extra.pkl").write_bytes(pickle.dumps(_Exploit()))
    with pytest.raises(ModelFileError, match="extra.pkl"):
        oddkit.load(folder)
    seal(folder)
    with pytest.raises(ModelFileError, match="extra.pkl"):
        oddkit.load(folder)


def test_symlinked_weights_are_refused_even_when_identical(copy, tmp_path):
    folder = copy("gaussian")
    outside = tmp_path / "outside.safetensors"
    shutil.move(folder / "weights.safetensors", outside)
    (folder / "weights.safetensors").symlink_to(outside)  # same bytes, so the checksum matches
    with pytest.raises(ModelFileError, match="symbolic link"):
        oddkit.load(folder)


def test_subfolder_and_fifo_are_refused(copy):
    folder = copy("gaussian")
    (folder / "estimator.skops").mkdir()
    with pytest.raises(ModelFileError, match="not a regular file"):
        oddkit.load(folder)
    (folder / "estimator.skops").rmdir()
    if hasattr(os, "mkfifo"):
        os.mkfifo(folder / "estimator.skops")  # opening it to read would block forever
        with pytest.raises(ModelFileError, match="not a regular file"):
            oddkit.load(folder)


def test_oversized_file_is_refused(copy, monkeypatch):
    import oddkit.persist

    folder = copy("knn")
    monkeypatch.setattr(oddkit.persist, "MAX_FILE_BYTES", 100)
    with pytest.raises(ModelFileError, match="more than the 100 a model file may hold"):
        oddkit.load(folder)


def test_skops_zip_bomb_is_refused_before_unpacking(copy):
    folder = copy("iforest")
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("schema.json", b" " * (65 * 1024**2))  # 65 MiB from about 65 KB
    (folder / "estimator.skops").write_bytes(out.getvalue())
    seal(folder)
    with pytest.raises(ModelFileError, match="zip bomb"):
        oddkit.load(folder)


def test_malformed_integrity_file_is_refused(copy):
    folder = copy("gaussian")
    document = json.loads((folder / "integrity.json").read_text())
    document["sha256"]["config.json"] = "\u00e9" * 64  # compare_digest would raise on non-ASCII text
    (folder / "integrity.json").write_text(json.dumps(document))
    with pytest.raises(ModelFileError, match="64 hexadecimal digits"):
        oddkit.load(folder)
    (folder / "integrity.json").write_text('{"sha256": ' + "[" * 100_000)  # deep enough to overflow a parser
    with pytest.raises(ModelFileError, match="malformed"):
        oddkit.load(folder)


def test_nan_in_an_array_is_refused_with_checksums_updated(copy):
    from safetensors.numpy import load, save

    folder = copy("gaussian")
    arrays = load((folder / "weights.safetensors").read_bytes())
    arrays["model.location"] = arrays["model.location"].copy()
    arrays["model.location"][0] = np.nan
    (folder / "weights.safetensors").write_bytes(save(arrays))
    seal(folder)
    with pytest.raises(ModelFileError, match="NaN or infinite values in model.location"):
        oddkit.load(folder)


@pytest.mark.parametrize("name, spoil, message", [
    ("densities", lambda v: np.zeros_like(v), "densities are not what"),  # a division by zero when scoring
    ("densities", lambda v: v * 1e300, "densities are not what"),
    ("k_distances", lambda v: -v, "k_distances are negative"),
    ("training_rows", lambda v: np.ascontiguousarray(v[:, :2]), "training rows are malformed"),
], ids=["densities-zero", "densities-huge", "k-distances-negative", "rows-narrow"])
def test_lof_state_out_of_range_is_refused_with_checksums_updated(name, spoil, message, copy):
    from safetensors.numpy import load, save

    folder = copy("lof")
    arrays = load((folder / "weights.safetensors").read_bytes())
    arrays[f"model.{name}"] = spoil(arrays[f"model.{name}"].copy())
    (folder / "weights.safetensors").write_bytes(save(arrays))
    seal(folder)
    with pytest.raises(ModelFileError, match=message):
        oddkit.load(folder)


# -- config.json edits: caught by the checksum, and by the value checks once it is recomputed ------

CONFIG_EDITS = {
    "nan-threshold": ("gaussian", lambda c: c["detector"].update(threshold=float("nan")), "JSON|threshold"),
    # 1.25e-321 is written as a float and turned into the literal 1e400 (which JSON reads as inf)
    "huge-threshold": ("gaussian", lambda c: c["detector"].update(threshold=1.25e-321), "threshold=inf"),
    "contamination-5": ("gaussian", lambda c: c["params"].update(contamination=5), "contamination"),
    "nan-statistic": ("gaussian", lambda c: c["detector"].update(score_statistics=[0, 0, 1, 2]), "spread"),
    "calibration-inf": ("gaussian", lambda c: c["detector"].update(calibration=[1.25e-321, 0]), "calibration=inf"),
    "temperature-0": ("classifier", lambda c: c["model"].update(temperature=0), "temperature"),
    "temperature-negative": ("sklearn-classifier", lambda c: c["model"].update(temperature=-1.5), "temperature"),
    "activation-cap-negative": ("classifier", lambda c: c["model"].update(
        activation_caps=[-1.0] * len(c["model"]["activation_caps"] or [0])), "activation_caps"),
    "classifier-n-neighbors": ("classifier", lambda c: c["model"].update(n_neighbors=10**6), "n_neighbors"),
    "knn-n-neighbors": ("knn", lambda c: c["params"].update(n_neighbors=0), "n_neighbors"),
    "lof-n-neighbors": ("lof", lambda c: c["params"].update(n_neighbors=0), "n_neighbors"),
    "lof-algorithm": ("lof", lambda c: c["params"].update(algorithm="annoy"), "algorithm"),
    "beta-negative": ("vae", lambda c: c["params"].update(beta=-1.0), "beta"),
    "rarity-weight-negative": ("vqvae", lambda c: c["params"].update(rarity_weight=-3.0), "rarity_weight"),
    "latent-dim-zero": ("autoencoder", lambda c: c["model"].update(latent_dim=0), "latent_dim"),
    "residual-shape": ("autoencoder", lambda c: c["model"].update(n_inputs=4), "inputs"),
    # integers beyond float64, statistics no training scores have, resources no machine has
    "threshold-400-digits": ("gaussian", lambda c: c["detector"].update(threshold=10**400), "finite number"),
    "shrinkage-400-digits": ("gaussian", lambda c: c["model"].update(shrinkage=10**400), "OverflowError|shrinkage"),
    "statistics-overflow": ("gaussian", lambda c: c["detector"].update(score_statistics=[0, 1, -1e308, 1.7e308]),
                            "spread"),
    "statistics-no-spread": ("gaussian", lambda c: c["detector"].update(score_statistics=[0.5, 5e-324, 0, 1]),
                             "spread"),
    "n-threads-million": ("autoencoder", lambda c: c["params"].update(n_threads=10**6), "n_threads"),
    "n-jobs-400000": ("knn", lambda c: c["params"].update(n_jobs=400_000), "n_jobs"),
    "n-features-in": ("gaussian", lambda c: c["detector"].update(n_features_in=2), "n_features_in"),
    "feature-names-in": ("gaussian", lambda c: c["detector"].update(feature_names_in=["p", "q", "r"]),
                         "feature_names_in"),
    "classes-dtype-10-gb": ("classifier", lambda c: c["model"].update(classes_dtype="(20000,13000)f8"),
                            "classes_dtype"),
}


@pytest.mark.parametrize("edit", list(CONFIG_EDITS))
def test_edited_config_is_refused_sealed_or_not(edit, copy):
    kind, change, message = CONFIG_EDITS[edit]
    folder = copy(kind)
    config = json.loads((folder / "config.json").read_text())
    change(config)
    (folder / "config.json").write_text(json.dumps(config).replace("1.25e-321", "1e400"))
    with pytest.raises(ModelFileError, match="config.json does not match its checksum"):
        oddkit.load(folder)
    seal(folder)
    with pytest.raises(ModelFileError, match=message):
        oddkit.load(folder)


def test_reference_features_of_another_width_are_refused(copy):
    from safetensors.numpy import load, save

    folder = copy("classifier")
    arrays = load((folder / "weights.safetensors").read_bytes())
    arrays["model.reference_features"] = np.ascontiguousarray(arrays["model.reference_features"][:, :, :3])
    (folder / "weights.safetensors").write_bytes(save(arrays))
    seal(folder)
    with pytest.raises(ModelFileError, match="reference features"):
        oddkit.load(folder)


def test_a_tokenizer_pipeline_oddkit_never_writes_is_refused(tmp_path):
    from oddkit.data.text import synthetic_corpus

    texts, _ = synthetic_corpus(40, 0, random_state=0)
    folder = tmp_path / "text"
    oddkit.TextAutoEncoderDetector(epochs=1, vocab_size=60, embedding_dim=8, hidden_size=8, code_size=4,
                                   random_state=0, verbose=0).fit(texts).save(folder)
    assert oddkit.load(folder).decision_function(texts[:2]).shape == (2,)
    document = json.loads((folder / "tokenizer.json").read_text())
    # a backtracking regular expression: the Rust library panics on it while scoring ordinary text
    document["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": "(.+)+\\d$"}, "behavior": "Isolated", "invert": False},
        document["pre_tokenizer"]]}
    (folder / "tokenizer.json").write_text(json.dumps(document))
    seal(folder)
    with pytest.raises(ModelFileError, match="pre_tokenizer"):
        oddkit.load(folder)


def test_huge_architecture_is_refused_before_allocating(copy, monkeypatch):
    import resource

    import torch

    from oddkit import AutoEncoderDetector

    devices = []
    build = AutoEncoderDetector._build_module

    def recording_build(self, n_inputs):
        devices.append(torch.get_default_device().type)
        return build(self, n_inputs)

    monkeypatch.setattr(AutoEncoderDetector, "_build_module", recording_build)
    folder = copy("autoencoder")
    config = json.loads((folder / "config.json").read_text())
    config["model"]["hidden_sizes"] = [16000, 16000]  # 2.4 GB of float32 weights from a 2 KB file
    (folder / "config.json").write_text(json.dumps(config))
    seal(folder)
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ModelFileError, match="do not fit its architecture"):
        oddkit.load(folder)
    grown_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before
    assert grown_kb < 500_000, f"loading grew the peak memory by {grown_kb} KB"
    assert devices == ["meta"], "the network must only be built on the meta device before the check"


def _plant_array_nodes(payload: bytes, array: np.ndarray, n_nodes: int, compression=zipfile.ZIP_STORED) -> bytes:
    """A genuine skops archive with one more member, ``big.npy``, named by ``n_nodes`` array nodes
    (skops reads a node's file anew for every node naming it)."""
    source = zipfile.ZipFile(io.BytesIO(payload))
    schema = json.loads(source.read("schema.json"))
    node = {"__class__": "ndarray", "__module__": "numpy", "__loader__": "NdArrayNode", "type": "numpy",
            "file": "big.npy"}
    attrs = schema["content"]
    attrs["content"]["planted_"] = {"__class__": "list", "__module__": "builtins", "__loader__": "ListNode",
                                    "content": [node] * n_nodes}
    attrs["key_types"]["content"].append({"__class__": "str", "__module__": "builtins", "__loader__": "TypeNode"})
    buffer = io.BytesIO()
    np.save(buffer, array)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for name in source.namelist():
            target.writestr(name, json.dumps(schema) if name == "schema.json" else source.read(name))
        target.writestr("big.npy", buffer.getvalue(), compress_type=compression)
    return out.getvalue()


@pytest.mark.parametrize("n_nodes, megabytes, compression", [
    (100, 1, zipfile.ZIP_STORED),  # a 1 MiB file unpacked 100 times (2,000 times: 2 GB, and so on)
    (1, 100, zipfile.ZIP_DEFLATED),  # 100 MiB of zeros deflated to 100 KB (within the 4 GiB the zip declares)
], ids=["one-array-many-nodes", "deflated-array"])
def test_skops_arrays_unpacking_far_more_than_the_file_are_refused(n_nodes, megabytes, compression, copy):
    folder = copy("iforest")
    skops_file = folder / "estimator.skops"
    array = np.zeros(megabytes * 1024**2 // 8)
    skops_file.write_bytes(_plant_array_nodes(skops_file.read_bytes(), array, n_nodes, compression))
    seal(folder)
    with pytest.raises(ModelFileError, match="bytes of arrays to unpack"):
        oddkit.load(folder)


def test_architecture_asking_for_a_billion_members_is_refused_at_once(copy):
    import signal

    folder = copy("classifier")
    config = json.loads((folder / "config.json").read_text())
    config["model"]["architecture"]["n_estimators"] = 10**9  # built on the meta device: a hang, then terabytes
    (folder / "config.json").write_text(json.dumps(config))
    seal(folder)

    def too_slow(*_):
        raise TimeoutError("loading still builds the networks after 30 s")

    previous = signal.signal(signal.SIGALRM, too_slow)
    signal.alarm(30)  # it is refused in well under a second
    try:
        with pytest.raises(ModelFileError, match="more layers than its weights.safetensors holds"):
            oddkit.load(folder)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def test_folder_larger_than_the_limit_is_refused_before_reading(copy, monkeypatch):
    import oddkit.persist

    folder = copy("ensemble")
    size = sum(p.stat().st_size for p in folder.iterdir())
    monkeypatch.setattr(oddkit.persist, "MAX_FOLDER_BYTES", size - 1)
    monkeypatch.setattr(oddkit.persist, "_read_regular_file", lambda *_: pytest.fail("a file was read"))
    with pytest.raises(ModelFileError, match=f"holds {size} bytes, more than the {size - 1}"):
        oddkit.load(folder)


def test_setting_asking_for_petabytes_is_refused_not_a_memory_error(tmp_path):
    from oddkit import GradientKNNDetector

    images = np.random.default_rng(0).random(size=(20, 1, 8, 8)).astype("float32")
    folder = tmp_path / "m"
    GradientKNNDetector().fit(images).save(folder)
    config = json.loads((folder / "config.json").read_text())
    config["params"]["n_bins"] = 10**15  # fit's check has no upper bound; loading computes one histogram
    (folder / "config.json").write_text(json.dumps(config))
    seal(folder)
    with pytest.raises(ModelFileError, match="training histograms have shape"):
        oddkit.load(folder)


def _refused_within(seconds: int, folder: Path, match: str) -> None:
    """``oddkit.load(folder)`` raises ModelFileError matching ``match`` before ``seconds`` pass."""
    import signal

    def too_slow(*_):
        raise TimeoutError(f"loading still runs after {seconds} s")

    previous = signal.signal(signal.SIGALRM, too_slow)
    signal.alarm(seconds)
    try:
        with pytest.raises(ModelFileError, match=match):
            oddkit.load(folder)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("name, value, match", [
    ("n_bins", 10**6, "training histograms have shape"),  # took over 300 s to be refused (10**5: 47 s)
    ("n_bins", 7, "training histograms have shape"),  # a plausible value, still not what the arrays hold
    ("sigma", 1e6, "sigma"),  # loaded after 23 s, a blur 4 million pixels wide, scored on as if trained so
    ("sigma", 1e300, "sigma"),
    ("n_bins", 8.0, "n_bins"),
    ("cell_size", "4", "cell_size"),
    ("spatial_binning", "yes", "spatial_binning"),
], ids=["n-bins-million", "n-bins-7", "sigma-million", "sigma-1e300", "n-bins-float", "cell-size-text",
        "spatial-binning-text"])
def test_gradient_knn_settings_are_checked_before_any_histogram_is_computed(name, value, match, tmp_path,
                                                                           monkeypatch):
    from synthetic_images import bar_images

    from oddkit import GradientKNNDetector
    from oddkit.detectors import gradients

    folder = tmp_path / "m"
    GradientKNNDetector().fit(bar_images(30)).save(folder)
    config = json.loads((folder / "config.json").read_text())
    config["params"][name] = value
    (folder / "config.json").write_text(json.dumps(config))
    seal(folder)
    monkeypatch.setattr(gradients, "gradient_histograms", lambda *_: pytest.fail("a histogram was computed"))
    _refused_within(10, folder, match)


def test_gradient_knn_histograms_longer_than_unit_length_are_refused(tmp_path):
    from safetensors.numpy import load, save

    from oddkit import GradientKNNDetector

    images = np.random.default_rng(0).random(size=(20, 1, 8, 8)).astype("float32")
    folder = tmp_path / "m"
    GradientKNNDetector().fit(images).save(folder)
    arrays = load((folder / "weights.safetensors").read_bytes())
    arrays["model.training_rows"] = arrays["model.training_rows"] * 1e30  # finite, non-negative, right shape
    (folder / "weights.safetensors").write_bytes(save(arrays))
    seal(folder)
    with pytest.raises(ModelFileError, match="longer than unit length"):
        oddkit.load(folder)


def test_gradient_knn_fit_refuses_a_blur_wider_than_the_images():
    from oddkit import GradientKNNDetector
    from oddkit.exceptions import ParameterError

    images = np.random.default_rng(0).random(size=(20, 1, 8, 8)).astype("float32")
    with pytest.raises(ParameterError, match="sigma"):
        GradientKNNDetector(sigma=9.0).fit(images)
    GradientKNNDetector(sigma=8.0).fit(images)  # as wide as the images: still accepted, saved and loaded


def test_classifier_reference_features_longer_than_unit_length_are_refused(copy):
    from safetensors.numpy import load, save

    folder = copy("classifier")
    arrays = load((folder / "weights.safetensors").read_bytes())
    arrays["model.reference_features"] = arrays["model.reference_features"] * np.float32(1e30)
    (folder / "weights.safetensors").write_bytes(save(arrays))
    seal(folder)
    with pytest.raises(ModelFileError, match="longer than unit length"):
        oddkit.load(folder)


def _overflow_first_layer(folder: Path, member: int = 0) -> None:
    from safetensors.numpy import load, save

    arrays = load((folder / "weights.safetensors").read_bytes())
    name = f"model.members.{member}.0.bias"
    arrays[name] = np.full_like(arrays[name], 3e38)  # finite in float32, so the loader's checks pass
    (folder / "weights.safetensors").write_bytes(save(arrays))
    seal(folder)


@pytest.mark.parametrize("score", ["knn", "energy"])
def test_classifier_whose_outputs_overflow_is_refused_at_load(score, tmp_path):
    folder = tmp_path / "m"
    ClassifierConfidenceDetector(epochs=2, score=score, clip_percentile=None, random_state=0,
                                 verbose=0).fit(X, CLASSES).save(folder)
    _overflow_first_layer(folder)
    # Loaded, score="knn" failed in decision_function with scikit-learn's "Found array with 0 sample(s)".
    with pytest.raises(ModelFileError, match="NaN or infinite outputs"):
        oddkit.load(folder)


def test_classifier_features_that_overflow_while_scoring_give_the_out_of_range_score():
    import torch

    from oddkit.exceptions import NonFiniteScoreWarning

    detector = ClassifierConfidenceDetector(epochs=2, score="knn", random_state=0, verbose=0).fit(X, CLASSES)
    first = [m for m in detector.model_.modules() if isinstance(m, torch.nn.Linear)][0]
    with torch.no_grad():
        first.bias.fill_(3e38)  # what the load-time check stops, met only once scoring
    with pytest.warns(NonFiniteScoreWarning):
        scores = detector.decision_function(X[:3])
    assert np.isfinite(scores).all() and (scores >= detector.out_of_range_score()).all()


@pytest.fixture(scope="module")
def audio_model(tmp_path_factory):
    from oddkit.data.audio import synthetic_speech

    data = synthetic_speech(n_speakers=2, n_words=2, n_takes=3, seconds=0.3, random_state=0)
    folder = tmp_path_factory.mktemp("audio") / "m"
    GaussianDetector().fit(data).save(folder)
    return folder, data


@pytest.mark.parametrize("settings, match", [
    ({"floor": 1e300}, "floor"),  # loaded; scoring then blamed the user's columns for NaN/inf
    ({"floor": 1e-300}, "floor"),  # float32 rounds it to 0: digital silence scores -inf
    ({"hop_length": 1}, "hop_length"),  # 256 windows over every sample: gigabytes for seconds of audio
    ({"representation": "patch", "n_frames": 4096, "n_fft": 4096, "hop_length": 1024, "n_mels": 2049},
     "8392704 columns"),  # built 8 million column names (4.6 s) before the columns were compared
], ids=["floor-1e300", "floor-1e-300", "hop-length-1", "patch-8-million-columns"])
def test_audio_settings_that_make_no_usable_features_are_refused(settings, match, audio_model, tmp_path):
    source, data = audio_model
    folder = tmp_path / "m"
    shutil.copytree(source, folder)
    config = json.loads((folder / "config.json").read_text())
    features = config["preprocessor"]["features"]
    for key, value in settings.items():
        (features["log_mel"] if key in features["log_mel"] else features)[key] = value
    (folder / "config.json").write_text(json.dumps(config))
    seal(folder)
    _refused_within(10, folder, match)
    assert np.isfinite(oddkit.load(source).decision_function(data)).all()


def test_audio_fit_refuses_the_settings_loading_refuses(audio_model):
    from oddkit.data.audio_features import AudioFeatures
    from oddkit.exceptions import ParameterError

    _, data = audio_model
    for settings in ({"floor": 1e300}, {"floor": 1e-300}, {"floor": 2.0}, {"hop_length": 1}):
        with pytest.raises(ParameterError, match="floor|hop_length"):
            AudioFeatures(**settings).fit(data)
    AudioFeatures(floor=1.0, hop_length=4).fit(data)  # the limits themselves are accepted


def test_token_ids_outside_the_vocabulary_are_refused(tmp_path):
    from oddkit.data.text import synthetic_corpus

    texts, _ = synthetic_corpus(40, 0, random_state=0)
    folder = tmp_path / "text"
    oddkit.TextAutoEncoderDetector(epochs=1, vocab_size=60, embedding_dim=8, hidden_size=8, code_size=4,
                                   random_state=0, verbose=0).fit(texts).save(folder)
    document = json.loads((folder / "tokenizer.json").read_text())
    vocabulary = document["model"]["vocab"]
    for token, index in list(vocabulary.items()):
        if index > 3:  # the same number of tokens, the same special tokens, ids past the embedding
            vocabulary[token] = index + 10**6
    (folder / "tokenizer.json").write_text(json.dumps(document))
    seal(folder)
    with pytest.raises(ModelFileError, match="tokenizer.json numbers its"):
        oddkit.load(folder)  # loaded, it scored with IndexError: index out of range in self


@pytest.mark.parametrize("versions", [
    [1, 2], "1.0", {"oddkit": "[/bold]"}, {"oddkit": "\x1b]8;;https://example.com\x07see\x1b]8;;\x07\x1b[2J"},
    {"[red]x": "1.0"},
], ids=["list", "string", "markup", "terminal-escapes", "markup-name"])
def test_versions_that_are_not_names_and_numbers_are_refused(versions, copy):
    folder = copy("gaussian")
    config = json.loads((folder / "config.json").read_text())
    config["versions"] = versions  # oddkit info printed these as they were, or failed with a traceback
    (folder / "config.json").write_text(json.dumps(config))
    seal(folder)
    with pytest.raises(ModelFileError, match="versions that are not library names"):
        oddkit.load(folder)


def test_threshold_goal_with_control_characters_is_refused(copy):
    folder = copy("gaussian")
    config = json.loads((folder / "config.json").read_text())
    config["detector"]["threshold_goal"] = "best-f1\x1b[2J\x1b[1;1Hthreshold goal: audited"
    (folder / "config.json").write_text(json.dumps(config))
    seal(folder)
    with pytest.raises(ModelFileError, match="threshold_goal"):
        oddkit.load(folder)


# -- signing ----------------------------------------------------------------------------------------

def test_signed_folder_loads_with_its_key_only(tmp_path):
    detector = GaussianDetector().fit(X)
    detector.save(tmp_path / "m", key="deployment secret")
    integrity = json.loads((tmp_path / "m" / "integrity.json").read_text())
    assert integrity["signature"]["algorithm"] == "hmac-sha256"
    for key in ("deployment secret", b"deployment secret", None):
        loaded = oddkit.load(tmp_path / "m", key=key)
        np.testing.assert_array_equal(loaded.decision_function(X), detector.decision_function(X))
    with pytest.raises(ModelFileError, match="another key"):
        oddkit.load(tmp_path / "m", key="guess")


def test_unsigned_folder_is_refused_when_a_key_is_required(copy):
    folder = copy("gaussian")
    with pytest.raises(ModelFileError, match="not signed"):
        oddkit.load(folder, key=b"k")


def test_signed_then_edited_and_resealed_is_refused(tmp_path):
    GaussianDetector().fit(X).save(tmp_path / "m", key=b"k")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    config["detector"]["threshold"] = 1e9  # a valid value: only the signature can catch it
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    seal(tmp_path / "m")  # the attacker recomputes the checksums but has no key
    oddkit.load(tmp_path / "m")  # without a key this loads: what a checksum cannot stop
    with pytest.raises(ModelFileError, match="not signed"):
        oddkit.load(tmp_path / "m", key=b"k")
    seal(tmp_path / "m", key=b"another")
    with pytest.raises(ModelFileError, match="another key"):
        oddkit.load(tmp_path / "m", key=b"k")


def test_saving_into_a_folder_with_other_files_is_refused_before_writing(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "notes.txt").write_text("mine")
    with pytest.raises(OddkitError, match="notes.txt"):
        GaussianDetector().fit(X).save(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["notes.txt"]


def test_saving_over_an_earlier_model_of_another_kind_loads(tmp_path):
    IsolationForestDetector(n_estimators=5, random_state=0).fit(X).save(tmp_path / "m")
    GaussianDetector().fit(X).save(tmp_path / "m")  # the old estimator.skops must go
    assert not (tmp_path / "m" / "estimator.skops").exists()
    assert isinstance(oddkit.load(tmp_path / "m"), GaussianDetector)


def test_symlinked_model_folder_itself_loads(tmp_path):
    GaussianDetector().fit(X).save(tmp_path / "v1")
    (tmp_path / "current").symlink_to(tmp_path / "v1", target_is_directory=True)
    assert isinstance(oddkit.load(tmp_path / "current"), GaussianDetector)


def test_empty_key_is_an_error(tmp_path):
    with pytest.raises(OddkitError, match="key"):
        GaussianDetector().fit(X).save(tmp_path / "m", key="")


# -- saving only what can be loaded; every listed classifier round-trips ----------------------------

def test_saving_an_untrusted_estimator_fails_at_save_time(tmp_path):
    from sklearn.discriminant_analysis import QuadraticDiscriminantAnalysis

    detector = ClassifierConfidenceDetector(classifier=QuadraticDiscriminantAnalysis(), verbose=0).fit(X, CLASSES)
    with pytest.raises(OddkitError, match="QuadraticDiscriminantAnalysis.*trusted"):
        detector.save(tmp_path / "m")
    assert not (tmp_path / "m" / "config.json").exists()


@pytest.mark.parametrize("classifier", [
    LogisticRegression(), RandomForestClassifier(n_estimators=5, random_state=0),
    ExtraTreesClassifier(n_estimators=5, random_state=0), DecisionTreeClassifier(random_state=0),
    GradientBoostingClassifier(n_estimators=5, random_state=0), HistGradientBoostingClassifier(max_iter=5),
    KNeighborsClassifier(), SVC(probability=True, random_state=0), GaussianNB(),
    MLPClassifier(hidden_layer_sizes=(8,), max_iter=50, random_state=0),
    make_pipeline(StandardScaler(), LogisticRegression()),
], ids=lambda c: type(c).__name__)
def test_every_listed_classifier_saves_and_loads_identically(classifier, tmp_path):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        detector = ClassifierConfidenceDetector(classifier=classifier, verbose=0).fit(X, CLASSES)
    detector.save(tmp_path / "m", key=b"k")
    loaded = oddkit.load(tmp_path / "m", key=b"k")
    np.testing.assert_array_equal(loaded.decision_function(X), detector.decision_function(X))


def test_tree_with_out_of_range_children_is_refused(copy):
    folder = copy("iforest")
    estimator = skops.io.loads((folder / "estimator.skops").read_bytes(), trusted=["sklearn.tree._tree.Tree"])
    tree = estimator.estimators_[0].tree_
    state = tree.__getstate__()
    nodes = state["nodes"].copy()
    inner = np.flatnonzero(nodes["left_child"] != -1)[0]
    nodes["left_child"][inner] = 10**6  # scikit-learn would follow it without a bounds check
    state["nodes"] = nodes
    tree.__setstate__(state)
    (folder / "estimator.skops").write_bytes(skops.io.dumps(estimator))
    seal(folder)
    with pytest.raises(ModelFileError, match="child indices"):
        oddkit.load(folder)


# -- the command line --------------------------------------------------------------------------------

def test_cli_score_on_a_hostile_folder_fails_in_one_line(copy, tmp_path, monkeypatch, capsys):
    folder = copy("sklearn-classifier")
    marker = tmp_path / "ran"
    skops_file = folder / "estimator.skops"
    skops_file.write_bytes(_inject(skops_file.read_bytes(), _payloads(marker, tmp_path)["check_output"]))
    seal(folder)
    data = tmp_path / "rows.csv"
    pd.DataFrame(X, columns=["x0", "x1", "x2"]).to_csv(data, index=False)
    code, out, err = run(monkeypatch, capsys, "score", folder, data, "--out", tmp_path / "scores.csv")
    assert code == 2 and err.startswith("error: ") and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and "estimator.skops" in err
    assert not marker.exists() and not (tmp_path / "scores.csv").exists()


def test_cli_signs_and_verifies_with_the_environment_key(tmp_path, monkeypatch, capsys):
    data = tmp_path / "rows.csv"
    pd.DataFrame(X, columns=["x0", "x1", "x2"]).to_csv(data, index=False)
    monkeypatch.setenv("ODDKIT_MODEL_KEY", "production key")
    code, _, err = run(monkeypatch, capsys, "fit", data, "--detector", "gaussian", "--out", tmp_path / "m")
    assert code == 0, err
    assert "signature" in json.loads((tmp_path / "m" / "integrity.json").read_text())
    code, _, err = run(monkeypatch, capsys, "score", tmp_path / "m", data, "--out", tmp_path / "s.csv")
    assert code == 0, err
    GaussianDetector().fit(X).save(tmp_path / "unsigned")
    code, _, err = run(monkeypatch, capsys, "score", tmp_path / "unsigned", data, "--out", tmp_path / "s2.csv")
    assert code == 2 and "not signed" in err and not (tmp_path / "s2.csv").exists()
    monkeypatch.setenv("ODDKIT_MODEL_KEY", "another key")
    code, _, err = run(monkeypatch, capsys, "score", tmp_path / "m", data, "--out", tmp_path / "s3.csv")
    assert code == 2 and "another key" in err


if sys.platform == "win32":  # symlinks and FIFOs need privileges or do not exist there
    pytestmark = pytest.mark.skip("POSIX file types")
