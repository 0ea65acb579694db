"""The exact types oddkit's skops loader will rebuild, and the check of a skops archive against them.

A skops file is a zip holding ``schema.json``: a tree of nodes, each naming the loader that rebuilds
it (``__loader__``) and the type it rebuilds (``__module__`` + ``__class__``). skops' own loader
calls whatever a node names once the caller says it trusts that name, so oddkit never hands it a
file it has not walked first: every node of the tree must use a loader in :data:`TRUSTED_SKOPS_NODES`
and name a type listed there for that loader, by its exact name (never a prefix). Loaders that
return or call functions (``FunctionNode``, ``MethodNode``, ``OperatorFuncNode``, ``PartialNode``,
``ConstructorFromReduceNode``) are not listed, so no function of any module can be reached.

The scikit-learn estimators covered are those oddkit saves itself (:class:`~sklearn.svm.OneClassSVM`,
:class:`~sklearn.ensemble.IsolationForest`) and the classifiers documented for
:class:`~oddkit.ClassifierConfidenceDetector`'s scikit-learn backend: LogisticRegression,
RandomForestClassifier, ExtraTreesClassifier, DecisionTreeClassifier, GradientBoostingClassifier,
HistGradientBoostingClassifier, KNeighborsClassifier (Euclidean metric, k-d tree or brute force),
SVC, GaussianNB, MLPClassifier, and a Pipeline of StandardScaler and one of these.
"""

from __future__ import annotations

import io
import json
import zipfile

_BUILTIN_SCALARS = ("builtins.str", "builtins.int", "builtins.float", "builtins.bool", "builtins.NoneType")
_NUMPY_ARRAYS = (
    "numpy.ndarray", "numpy.float64", "numpy.float32", "numpy.float16", "numpy.int64", "numpy.int32",
    "numpy.int16", "numpy.int8", "numpy.uint64", "numpy.uint32", "numpy.uint16", "numpy.uint8", "numpy.bool",
    "numpy.bool_",
)
_SKLEARN_ESTIMATORS = (
    # saved by OneClassSVMDetector and IsolationForestDetector
    "sklearn.svm._classes.OneClassSVM",
    "sklearn.ensemble._iforest.IsolationForest",
    "sklearn.tree._classes.ExtraTreeRegressor",
    # ClassifierConfidenceDetector's scikit-learn backend, and what each one holds
    "sklearn.linear_model._logistic.LogisticRegression",
    "sklearn.ensemble._forest.RandomForestClassifier",
    "sklearn.ensemble._forest.ExtraTreesClassifier",
    "sklearn.tree._classes.DecisionTreeClassifier",
    "sklearn.tree._classes.ExtraTreeClassifier",
    "sklearn.tree._classes.DecisionTreeRegressor",
    "sklearn.ensemble._gb.GradientBoostingClassifier",
    "sklearn.dummy.DummyClassifier",
    "sklearn._loss.loss.HalfBinomialLoss",
    "sklearn._loss.loss.HalfMultinomialLoss",
    "sklearn._loss.link.LogitLink",
    "sklearn._loss.link.MultinomialLogit",
    "sklearn._loss.link.Interval",
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.preprocessing._label.LabelEncoder",
    "sklearn.neighbors._classification.KNeighborsClassifier",
    "sklearn.neighbors._kd_tree.KDTree",
    "sklearn.metrics._dist_metrics.EuclideanDistance64",
    "sklearn.svm._classes.SVC",
    "sklearn.naive_bayes.GaussianNB",
    "sklearn.neural_network._multilayer_perceptron.MLPClassifier",
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
    "sklearn.preprocessing._label.LabelBinarizer",
    "sklearn.pipeline.Pipeline",
    "sklearn.preprocessing._data.StandardScaler",
)

TRUSTED_SKOPS_NODES: dict[str, tuple[str, ...]] = {
    "DictNode": ("builtins.dict",),
    "ListNode": ("builtins.list",),
    "TupleNode": ("builtins.tuple",),
    "JsonNode": _BUILTIN_SCALARS + ("builtins.list", "builtins.dict"),
    "TypeNode": _BUILTIN_SCALARS,
    "NdArrayNode": _NUMPY_ARRAYS,
    "ObjectNode": _SKLEARN_ESTIMATORS,
    "TreeNode": ("sklearn.tree._tree.Tree",),
    "LossNode": ("sklearn._loss._loss.CyHalfBinomialLoss", "sklearn._loss._loss.CyHalfMultinomialLoss"),
    "RandomStateNode": ("numpy.random.mtrand.RandomState",),
    "RandomGeneratorNode": ("numpy.random._generator.Generator",),
}
"""For each skops loader oddkit accepts, the exact type names a node using it may name."""

TRUSTED_SKOPS_TYPES: tuple[str, ...] = tuple(sorted({name for names in TRUSTED_SKOPS_NODES.values() for name in names}))
"""Every type name oddkit's skops loader trusts (exact names, no prefixes, no functions)."""

_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")
MAX_SCHEMA_NODES = 1_000_000
MAX_SCHEMA_BYTES = 64 * 1024**2
MAX_UNPACKED_BYTES = 4 * 1024**3


class UntrustedSkopsContent(ValueError):
    """A skops archive names a loader or type outside :data:`TRUSTED_SKOPS_NODES` (or is malformed)."""


def _node_type(node: dict) -> str:
    module, name = node.get("__module__"), node.get("__class__")
    if not isinstance(module, str) or not isinstance(name, str):
        raise UntrustedSkopsContent("a node without a module and class name")
    return f"{module}.{name}"


def check_skops_archive(payload: bytes) -> list[str]:
    """Walk a skops archive's ``schema.json`` and refuse anything oddkit does not trust.

    Every dictionary in the schema that carries ``__loader__`` is a node skops would rebuild; each
    one (wherever it sits, so nothing can hide in a key skops reads and this walk skips) must use a
    loader of :data:`TRUSTED_SKOPS_NODES` and name one of that loader's types exactly. Arrays are
    stored in NumPy's own format (read without pickle) or, for object arrays such as a boosting
    model's trees, as a list of nodes checked like every other; a random generator must name one of
    NumPy's bit generators.

    Returns
    -------
    list of str
        The type names found, to pass to ``skops.io.loads(trusted=...)``.

    Raises
    ------
    UntrustedSkopsContent
        When the archive is not a zip with a JSON schema, or names anything not trusted.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(payload)) as archive:
            sizes = {info.filename: info.file_size for info in archive.infolist()}
            if sizes.get("schema.json", 0) > MAX_SCHEMA_BYTES or sum(sizes.values()) > MAX_UNPACKED_BYTES:
                raise UntrustedSkopsContent("more data unpacked than a model file may hold (a zip bomb?)")
            schema = json.loads(archive.read("schema.json"))
    except (zipfile.BadZipFile, KeyError, UnicodeDecodeError, ValueError, OSError, RecursionError) as exc:
        raise UntrustedSkopsContent(f"not a skops archive ({exc})") from None
    found: set[str] = set()
    stack, visited = [schema], 0
    while stack:
        item = stack.pop()
        visited += 1
        if visited > MAX_SCHEMA_NODES:
            raise UntrustedSkopsContent("the schema is too large")
        if isinstance(item, list):
            stack.extend(item)
            continue
        if not isinstance(item, dict):
            continue
        stack.extend(item.values())
        if "__loader__" not in item:
            continue
        loader = item["__loader__"]
        type_name = _node_type(item)
        allowed = TRUSTED_SKOPS_NODES.get(loader) if isinstance(loader, str) else None
        if allowed is None:
            raise UntrustedSkopsContent(f"a {loader!r} node (naming {type_name}), which oddkit never loads")
        if type_name not in allowed:
            raise UntrustedSkopsContent(f"a {loader} node of type {type_name}, which is not in oddkit's trusted list")
        # An object array ("json") is rebuilt from its items, each a node checked like any other;
        # it is built as a plain ndarray, so its own class must be exactly that.
        if loader == "NdArrayNode" and not (item.get("type") == "numpy" or (
                item.get("type") == "json" and type_name == "numpy.ndarray")):
            raise UntrustedSkopsContent(f"an array of type {item.get('type')!r} / {type_name}, which oddkit never loads")
        if loader == "RandomGeneratorNode":
            try:
                bit_generator = json.loads(item["content"]["bit_generator"]["content"]["bit_generator"]["content"])
            except (KeyError, TypeError, ValueError):
                raise UntrustedSkopsContent("a random generator without a bit generator name") from None
            if bit_generator not in _BIT_GENERATORS:
                raise UntrustedSkopsContent(f"a random generator naming {bit_generator!r}")
            found.add(f"numpy.random.{bit_generator}")
        found.add(type_name)
    return sorted(found)


def _check_trees(estimator) -> None:
    """Refuse decision trees whose node arrays point outside themselves: scikit-learn's Cython code
    follows those indices without bounds checks, so a crafted file could read arbitrary memory."""
    import numpy as np
    from sklearn.tree._tree import Tree

    seen, stack = set(), [estimator]
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, Tree):
            nodes = count = obj.node_count
            left, right, feature = obj.children_left, obj.children_right, obj.feature
            for children in (left, right):
                if children.shape != (nodes,) or ((children != -1) & ((children <= 0) | (children >= count))).any():
                    raise UntrustedSkopsContent("a decision tree whose child indices point outside the tree")
            leaves = left == -1
            if (leaves != (right == -1)).any() or (feature[~leaves] < 0).any() or (feature >= obj.n_features).any():
                raise UntrustedSkopsContent("a decision tree whose split features are out of range")
            if obj.value.shape[0] != nodes:
                raise UntrustedSkopsContent("a decision tree whose values do not match its nodes")
            continue
        if type(obj).__name__ == "TreePredictor":
            nodes = obj.nodes
            inner = nodes["is_leaf"] == 0
            for side in ("left", "right"):
                if ((nodes[side][inner] <= 0) | (nodes[side][inner] >= len(nodes))).any():
                    raise UntrustedSkopsContent("a boosted tree whose child indices point outside the tree")
        if isinstance(obj, np.ndarray) and obj.dtype == object:
            stack.extend(obj.ravel().tolist())
        elif isinstance(obj, (list, tuple)):
            stack.extend(obj)
        elif isinstance(obj, dict):
            stack.extend(obj.values())
        elif hasattr(obj, "__dict__") and type(obj).__module__.startswith("sklearn."):
            stack.extend(vars(obj).values())


def dump_trusted_skops(estimator, what: str) -> bytes:
    """``skops.io.dumps(estimator)``, refused at save time when the file would name a type oddkit
    will not load (so no folder is written that cannot be loaded).

    Raises
    ------
    OddkitError
        When the estimator holds a type outside :data:`TRUSTED_SKOPS_TYPES`.
    """
    import skops.io

    from oddkit.exceptions import OddkitError

    try:
        payload = skops.io.dumps(estimator)
        check_skops_archive(payload)
    except UntrustedSkopsContent as exc:
        raise OddkitError(
            f"cannot save {what} ({type(estimator).__name__}): it holds {exc}; oddkit saves only the "
            "scikit-learn estimators listed in oddkit._trusted.TRUSTED_SKOPS_TYPES") from None
    except Exception as exc:  # noqa: BLE001 - skops raises several types for objects it cannot save
        raise OddkitError(f"cannot save {what} ({type(estimator).__name__}) with skops: {exc}") from None
    return payload


def load_trusted_skops(payload: bytes, file_name: str):
    """Rebuild an estimator from a skops archive after :func:`check_skops_archive` has passed it.

    Raises
    ------
    ModelFileError
        When the archive names anything untrusted, is malformed, or holds inconsistent trees.
    """
    import skops.io

    from oddkit.exceptions import ModelFileError

    try:
        found = check_skops_archive(payload)
        # skops' own audit must agree: whatever it would call untrusted has to be in our list too.
        untrusted = skops.io.get_untrusted_types(data=payload)
        foreign = [name for name in untrusted if name not in found and name not in TRUSTED_SKOPS_TYPES]
        if foreign:
            raise UntrustedSkopsContent(f"types {foreign}, which are not in oddkit's trusted list")
        estimator = skops.io.loads(payload, trusted=list(untrusted))
        _check_trees(estimator)
    except UntrustedSkopsContent as exc:
        raise ModelFileError(f"{file_name} holds {exc}; refused without loading it") from None
    except Exception as exc:  # noqa: BLE001 - skops raises several types for malformed content
        raise ModelFileError(f"{file_name} cannot be loaded safely: {type(exc).__name__}: {exc}") from None
    return estimator
