"""The exact types oddkit's skops loader will rebuild, and the check of a skops archive against them.

A skops file is a zip holding ``schema.json``: a tree of nodes, each naming the loader that rebuilds
it (``__loader__``) and the type it rebuilds (``__module__`` + ``__class__``). skops' own loader
calls whatever a node names once the caller says it trusts that name, so oddkit never hands it a
file it has not walked first: every node of the tree must use a loader in :data:`TRUSTED_SKOPS_NODES`
and name a type listed there for that loader, by its exact name (never a prefix). Loaders that
return or call functions (``FunctionNode``, ``MethodNode``, ``OperatorFuncNode``, ``PartialNode``,
``ConstructorFromReduceNode``) are not listed, so no function of any module can be reached.
Trusted types are not enough: scikit-learn's Cython and libsvm code reads by the indices and counts
a fitted estimator holds, so once skops has rebuilt it, :func:`check_fitted_estimator` refuses any
whose arrays do not fit together (and rebuilds a k-d tree rather than trusting the saved one).

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
import math
import numbers
import zipfile

import numpy as np

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
UNPACKED_PER_PACKED = 16
"""How many bytes loading may unpack per byte of the archive (beyond :data:`MAX_SCHEMA_BYTES`): skops
stores arrays uncompressed, so more is a zip bomb, or one array named by many nodes (each read anew)."""


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
    stack, visited, unpacked = [schema], 0, 0
    # skops reads a node's "file" afresh for every node naming it: count each read, not each file.
    budget = min(MAX_UNPACKED_BYTES, max(MAX_SCHEMA_BYTES, UNPACKED_PER_PACKED * len(payload)))
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
        if "file" in item:
            unpacked += sizes.get(item["file"], 0) if isinstance(item["file"], str) else 0
            if unpacked > budget:
                raise UntrustedSkopsContent(f"more than {budget} bytes of arrays to unpack from a {len(payload)}-byte "
                                            "archive (a zip bomb, or one array named by many nodes?)")
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


def _require(condition, message: str) -> None:
    if not condition:
        raise UntrustedSkopsContent(message)


def _is_int(value) -> bool:
    """A positive integer, not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_)) and value > 0


def _is_array(value, kinds: str, ndim: int) -> bool:
    return isinstance(value, np.ndarray) and value.dtype.kind in kinds and value.ndim == ndim


def _n_features(estimator) -> int:
    """The estimator's ``n_features_in_``: scikit-learn compares the rows it scores with it, and every
    check below compares the estimator's own arrays with it."""
    n = getattr(estimator, "n_features_in_", None)
    _require(_is_int(n), f"{type(estimator).__name__} without a positive n_features_in_")
    return int(n)


def _check_tree(tree) -> None:
    """Refuse decision trees whose node arrays point outside themselves: scikit-learn's Cython code
    follows those indices without bounds checks, so a crafted file could read arbitrary memory.
    Children must come after their parent (as scikit-learn builds them), so no path loops forever;
    scoring starts at node 0, so there must be one, and every node array property trusts the node
    count, so it is compared with the allocated nodes first."""
    count = tree.node_count
    _require(0 < count <= tree.capacity, "a decision tree without nodes, or counting more than it holds")
    left, right, feature = tree.children_left, tree.children_right, tree.feature
    inner = left != -1
    index = np.arange(count)[inner]
    _require(((right != -1) == inner).all() and all(
        ((children[inner] > index) & (children[inner] < count)).all() for children in (left, right)),
        "a decision tree whose child indices point outside the tree")
    _require(((feature[inner] >= 0) & (feature[inner] < tree.n_features)).all(),
             "a decision tree whose split features are out of range")
    _require(min(tree.value.shape) > 0 and np.isfinite(tree.value).all(),
             "a decision tree without finite values for its nodes")


def _check_predictor(predictor) -> None:
    """A boosted tree (``TreePredictor``), read by Cython without bounds checks: children after their
    parent and inside the tree, and categorical splits naming a row of the (n, 8) uint32 bitsets."""
    from sklearn.ensemble._hist_gradient_boosting.common import PREDICTOR_RECORD_DTYPE

    nodes = predictor.nodes
    _require(isinstance(nodes, np.ndarray) and nodes.dtype == PREDICTOR_RECORD_DTYPE and nodes.ndim == 1
             and len(nodes) > 0 and np.isfinite(nodes["value"]).all(), "a boosted tree with malformed nodes")
    inner = nodes["is_leaf"] == 0
    index = np.arange(len(nodes))[inner]
    children = (nodes["left"][inner], nodes["right"][inner])
    _require(all(((child > index) & (child < len(nodes))).all() for child in children),
             "a boosted tree whose child indices point outside the tree")
    categorical = inner & (nodes["is_categorical"] != 0)
    for bitsets in (predictor.raw_left_cat_bitsets, predictor.binned_left_cat_bitsets):
        _require(_is_array(bitsets, "u", 2) and bitsets.dtype == np.uint32 and bitsets.shape[1] == 8
                 and bitsets.flags.c_contiguous and (nodes["bitset_idx"][categorical] < len(bitsets)).all(),
                 "a boosted tree whose categorical splits point outside its bitsets")


def _check_decision_tree(estimator) -> None:
    """A fitted tree reads column ``feature`` of rows checked against the estimator's n_features_in_
    (ensembles pass rows to their trees unchecked), so the tree must take exactly that many features."""
    from sklearn.tree._tree import Tree

    if "tree_" in vars(estimator):
        _require(isinstance(estimator.tree_, Tree) and estimator.tree_.n_features == _n_features(estimator),
                 f"{type(estimator).__name__} whose tree does not take its {_n_features(estimator)} features")


def _check_members(members, n_features: int, owner) -> None:
    """Each fitted tree of an ensemble takes the rows the ensemble hands it: ``n_features`` columns."""
    from sklearn.tree import BaseDecisionTree

    _require(len(members) > 0 and all(
        isinstance(member, BaseDecisionTree) and "tree_" in vars(member) and _n_features(member) == n_features
        for member in members), f"{type(owner).__name__} whose trees do not take {n_features} features")


def _check_forest(forest) -> None:
    _require(isinstance(forest.estimators_, list), "a forest without a list of trees")
    _check_members(forest.estimators_, _n_features(forest), forest)


def _check_gradient_boosting(boosting) -> None:
    """Cython adds tree ``k`` of each stage to column ``k`` of the initial raw predictions without
    bounds checks: the stages must have as many trees as those predictions have columns."""
    n = _n_features(boosting)
    stages = boosting.estimators_
    _require(_is_array(stages, "O", 2), "a gradient boosting model without a 2-D array of trees")
    _check_members(stages.ravel().tolist(), n, boosting)
    width = boosting._raw_predict_init(np.zeros((1, n), dtype=np.float32)).shape[1]
    _require(stages.shape[1] == width, "a gradient boosting model with more trees per stage than outputs")


def _check_isolation_forest(forest) -> None:
    """IsolationForest hands each tree the columns ``estimators_features_`` names (all of them when
    ``_max_features == n_features_in_``), then indexes that tree's depth arrays with its leaf ids."""
    n, width = _n_features(forest), forest._max_features
    trees, columns = forest.estimators_, forest.estimators_features_
    depths, averages = forest._decision_path_lengths, forest._average_path_length_per_tree
    _require(_is_int(width) and width <= n, f"an IsolationForest drawing {width!r} of its {n} features")
    _require(_is_int(forest.max_samples_) and _is_int(forest._max_samples), "an IsolationForest without a sample size")
    _require(isinstance(trees, list) and all(isinstance(x, (list, tuple)) and len(x) == len(trees)
                                             for x in (columns, depths, averages)),
             "an IsolationForest without one feature subset and depth arrays per tree")
    _check_members(trees, width, forest)
    for tree, subset, depth, average in zip(trees, columns, depths, averages):
        _require(_is_array(subset, "iu", 1) and len(subset) == width and ((subset >= 0) & (subset < n)).all(),
                 f"an IsolationForest tree reading features outside its {n}")
        _require(all(_is_array(a, "iuf", 1) and len(a) == tree.tree_.node_count for a in (depth, average)),
                 "an IsolationForest whose depth arrays do not match its trees")


def _check_hist_gradient_boosting(boosting) -> None:
    """The Cython predictor reads column ``feature_idx`` of each row, and for a categorical split the
    row ``f_idx_map[feature_idx]`` of the known-category bitsets built from the bin mapper's
    categorical features: every split must name one of the n_features_in_ features, and a categorical
    split a feature the bin mapper calls categorical."""
    from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor

    n, per_iteration = _n_features(boosting), boosting.n_trees_per_iteration_
    categorical = np.asarray(boosting._bin_mapper.is_categorical_)
    _require(boosting._preprocessor is None and categorical.shape == (n,) and _is_int(per_iteration),
             "a histogram boosting model whose bin mapper does not match its features")
    baseline = boosting._baseline_prediction
    _require(_is_array(baseline, "f", 2) and baseline.shape == (1, per_iteration),
             "a histogram boosting model whose baseline does not match its trees")
    iterations = boosting._predictors
    _require(isinstance(iterations, list) and all(
        isinstance(trees, list) and len(trees) == per_iteration and all(isinstance(t, TreePredictor) for t in trees)
        for trees in iterations), "a histogram boosting model without its trees per iteration")
    for predictor in (tree for trees in iterations for tree in trees):
        _check_predictor(predictor)
        nodes = predictor.nodes[predictor.nodes["is_leaf"] == 0]
        split = nodes["feature_idx"]
        _require(((split >= 0) & (split < n)).all() and categorical[split[nodes["is_categorical"] != 0]].all(),
                 f"a boosted tree splitting on features outside its {n} (or on numeric ones as categories)")


def _check_neighbors(knn, rebuild: bool) -> None:
    """The k-d tree's node and index arrays are followed without bounds checks, so the saved tree is
    never used: it is rebuilt from the training rows (as ``fit`` builds it) once those are checked.
    Neighbour labels index the class counts unchecked too, and asking for more neighbours than rows
    leaves index -1 in the result: labels must be class indices, one per row, k at most the rows."""
    from sklearn.neighbors import KDTree

    n, rows, labels = _n_features(knn), knn._fit_X, knn._y
    _require(_is_array(rows, "f", 2) and rows.shape[1] == n and len(rows) > 0 and knn.n_samples_fit_ == len(rows)
             and np.isfinite(rows).all(),
             f"a KNeighborsClassifier whose training rows are not finite floats in {n} columns")
    _require(_is_array(labels, "iu", 1) and len(labels) == len(rows) and not knn.outputs_2d_
             and ((labels >= 0) & (labels < len(knn.classes_))).all(),
             "a KNeighborsClassifier whose labels are not class indices, one per row")
    _require(_is_int(knn.n_neighbors) and knn.n_neighbors <= len(rows),
             f"a KNeighborsClassifier asking for {knn.n_neighbors!r} neighbours of {len(rows)} rows")
    _require(knn._fit_method in ("kd_tree", "brute") and knn.effective_metric_ == "euclidean"
             and knn.effective_metric_params_ == {} and knn.metric_params is None
             and (knn.metric == "euclidean" or (knn.metric == "minkowski" and knn.p == 2)),
             "a KNeighborsClassifier other than Euclidean with a k-d tree or brute force")
    if rebuild:
        knn._fit_X = np.ascontiguousarray(rows)
        knn._tree = KDTree(knn._fit_X, knn.leaf_size, metric="euclidean") if knn._fit_method == "kd_tree" else None


def _check_libsvm(svm) -> None:
    """libsvm's predict takes the class count from ``_n_support``, the support vector count from
    ``support_``, and reads every other array by those counts, without bounds checks: all of them
    must match the shapes a fitted SVC / OneClassSVM has."""
    n, support, counts = _n_features(svm), svm.support_, svm._n_support
    _require(vars(svm).get("_impl", type(svm)._impl) == type(svm)._impl and svm._sparse is False
             and svm.kernel in ("linear", "poly", "rbf", "sigmoid"), "an SVM of another type or kernel")
    _require(_is_array(support, "i", 1) and support.dtype == np.int32 and _is_array(counts, "i", 1)
             and counts.dtype == np.int32, "an SVM without int32 support indices and counts")
    n_sv, n_class = len(support), len(counts)
    fit_shape = svm.shape_fit_
    _require(isinstance(fit_shape, tuple) and len(fit_shape) == 2 and _is_int(fit_shape[0]) and fit_shape[1] == n
             and ((support >= 0) & (support < fit_shape[0])).all(),
             "an SVM whose support indices do not point into its training rows")
    if type(svm)._impl == "one_class":
        _require(n_class == 2 and counts[0] == n_sv, "a one-class SVM whose support counts do not match")
        _require(_is_array(svm.offset_, "f", 1) and svm.offset_.shape == (1,), "a one-class SVM without one offset")
    else:
        _require(n_class == len(svm.classes_) >= 2 and (counts >= 0).all() and counts.sum() == n_sv,
                 "an SVC whose support counts do not match its classes and support vectors")
    pairs = n_class * (n_class - 1) // 2
    for name, shape in (("support_vectors_", (n_sv, n)), ("_dual_coef_", (n_class - 1, n_sv)),
                        ("dual_coef_", (n_class - 1, n_sv)), ("_intercept_", (pairs,)), ("intercept_", (pairs,))):
        value = getattr(svm, name)
        _require(_is_array(value, "f", len(shape)) and value.dtype == np.float64 and value.shape == shape
                 and value.flags.c_contiguous, f"an SVM whose {name} is not a float64 array of shape {shape}")
    _require(all(_is_array(p, "f", 1) and p.dtype == np.float64 and p.shape == svm._probA.shape
                 for p in (svm._probA, svm._probB)) and len(svm._probA) in (0, pairs),
             "an SVM whose probability calibration does not match its classes")
    _require(all(isinstance(v, numbers.Real) and math.isfinite(v) for v in (svm._gamma, svm.coef0))
             and svm._gamma >= 0, "an SVM with a gamma or coef0 that is not a finite number")


def _check_widths(estimator) -> None:
    """Arrays that scoring multiplies with the rows must have n_features_in_ columns (else scoring
    fails with numpy's error instead of loading refusing the file)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.naive_bayes import GaussianNB
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    n = _n_features(estimator)
    if isinstance(estimator, Pipeline):  # StandardScaler keeps the width: every step takes the same
        _require(all(step in (None, "passthrough") or _n_features(step) == n for _, step in estimator.steps),
                 f"a Pipeline whose steps do not all take {n} features")
        return
    names = {LogisticRegression: ("coef_",), GaussianNB: ("theta_", "var_"),
             StandardScaler: ("mean_", "scale_", "var_")}.get(type(estimator), ())
    arrays = [getattr(estimator, name) for name in names]
    if isinstance(estimator, MLPClassifier):
        arrays = [estimator.coefs_[0].T]
    _require(all(a is None or (isinstance(a, np.ndarray) and a.ndim in (1, 2) and a.shape[-1] == n) for a in arrays),
             f"{type(estimator).__name__} whose weights do not take its {n} features")
    if isinstance(estimator, LogisticRegression):
        _require(estimator.intercept_.shape == estimator.coef_.shape[:1],
                 "a LogisticRegression whose intercepts do not match its coefficients")


def _estimator_checks(rebuild: bool):
    """(type, check) pairs: each check runs on every object of that type found in the estimator."""
    from sklearn.ensemble import HistGradientBoostingClassifier, IsolationForest
    from sklearn.ensemble._forest import BaseForest
    from sklearn.ensemble._gb import BaseGradientBoosting
    from sklearn.linear_model import LogisticRegression
    from sklearn.naive_bayes import GaussianNB
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm._base import BaseLibSVM
    from sklearn.tree import BaseDecisionTree

    return (
        (BaseDecisionTree, _check_decision_tree), (BaseForest, _check_forest),
        (BaseGradientBoosting, _check_gradient_boosting), (IsolationForest, _check_isolation_forest),
        (HistGradientBoostingClassifier, _check_hist_gradient_boosting), (BaseLibSVM, _check_libsvm),
        (KNeighborsClassifier, lambda knn: _check_neighbors(knn, rebuild)),
        ((LogisticRegression, GaussianNB, MLPClassifier, Pipeline, StandardScaler), _check_widths),
    )


def _is_fitted(obj) -> bool:
    """Whether ``obj`` holds fitted state (unfitted templates such as a forest's ``estimator_`` hold
    only parameters); private attributes count too, as scikit-learn tests some (``_fit_method``)."""
    return any((name.endswith("_") or name.startswith("_")) and not name.startswith("__") for name in vars(obj))


def check_fitted_estimator(estimator, rebuild: bool = True) -> None:
    """Refuse an estimator whose internal arrays do not fit together, before anything scores with it.

    scikit-learn's Cython and libsvm code trusts the arrays a fitted estimator holds (tree nodes,
    feature indices, support vector counts, k-d tree indices) and reads by them without bounds
    checks, so a crafted file passing :func:`check_skops_archive` could still make scoring read or
    write outside them. Every object skops rebuilt is walked: decision trees and boosted trees must
    stay inside themselves; each fitted estimator's arrays must match its ``n_features_in_``, its
    classes and each other (as a freshly fitted one's do); its parameters must pass scikit-learn's
    own validation; every float array must be finite. With ``rebuild``, a nearest-neighbours
    classifier's k-d tree is rebuilt from its training rows instead of being trusted.

    Raises
    ------
    UntrustedSkopsContent
        At the first inconsistency.
    """
    from sklearn.base import BaseEstimator
    from sklearn.tree._tree import Tree

    checks = _estimator_checks(rebuild)
    _n_features(estimator)
    seen, stack = set(), [estimator]
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, Tree):
            _check_tree(obj)
            continue
        if isinstance(obj, np.ndarray) and obj.dtype.kind in "fc" and not np.isfinite(obj).all():
            raise UntrustedSkopsContent("an array holding NaN or infinite values")
        if isinstance(obj, BaseEstimator):
            try:
                if hasattr(type(obj), "_parameter_constraints"):
                    obj._validate_params()
            except ValueError as exc:
                raise UntrustedSkopsContent(f"{type(obj).__name__} with invalid parameters ({exc})") from None
            if _is_fitted(obj):
                for kind, check in checks:
                    if isinstance(obj, kind):
                        check(obj)
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
    will not load or hold arrays :func:`check_fitted_estimator` refuses (so no folder is written
    that cannot be loaded).

    Raises
    ------
    OddkitError
        When the estimator holds a type outside :data:`TRUSTED_SKOPS_TYPES`, or arrays that
        :func:`check_fitted_estimator` refuses.
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
    try:
        check_fitted_estimator(estimator, rebuild=False)
    except Exception as exc:  # noqa: BLE001 - an attribute missing from a hand-made estimator, too
        raise OddkitError(f"cannot save {what} ({type(estimator).__name__}): loading would refuse it "
                          f"({type(exc).__name__}: {exc})") from None
    return payload


def load_trusted_skops(payload: bytes, file_name: str):
    """Rebuild an estimator from a skops archive after :func:`check_skops_archive` has passed it.

    Raises
    ------
    ModelFileError
        When the archive names anything untrusted, is malformed, or holds an estimator whose arrays
        :func:`check_fitted_estimator` refuses.
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
        check_fitted_estimator(estimator)
    except UntrustedSkopsContent as exc:
        raise ModelFileError(f"{file_name} holds {exc}; refused without loading it") from None
    except Exception as exc:  # noqa: BLE001 - skops raises several types for malformed content
        raise ModelFileError(f"{file_name} cannot be loaded safely: {type(exc).__name__}: {exc}") from None
    return estimator
