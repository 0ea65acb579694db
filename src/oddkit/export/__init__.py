"""ONNX export: a fitted detector's whole scoring path as one ONNX graph (``oddkit export MODEL --format onnx``).

Exported detectors: :class:`~oddkit.AutoEncoderDetector` (tables and images), :class:`~oddkit.VAEDetector`,
:class:`~oddkit.GaussianDetector` and :class:`~oddkit.PCADetector`. The graph holds the preprocessing
(standardisation with the training mean and standard deviation, clipping at ``STANDARDIZED_BOUND``, median
imputation when the model imputes, one-hot encoding of categorical columns), the network or the
statistics, the error normalisation, and the guarantee that a far-out row (a value ``FAR_BOUND``
training standard deviations out or more) scores at least ``out_of_range_score()``. The score is computed
in float64 where oddkit computes it in float64.

Inputs (a table model):

- ``numeric``: float64, shape ``(rows, n_numeric)``, the numeric columns in training order (the metadata
  key ``numeric_columns`` lists them);
- one string tensor of shape ``(rows,)`` per categorical column, named as the column (``categorical_columns``
  in the metadata); a missing value is the string ``"<missing>"``.

An image model takes ``pixels``: float32 of shape ``(rows, C*H*W)``, the images scaled to [0, 1] and
flattened as ``detector.preprocessor_.transform`` does (:func:`onnx_inputs` does it).

Outputs: ``score`` (float64, higher = more anomalous), ``label`` (int64, 1 = anomaly, score >= threshold)
and ``unseen_category`` (bool, True where the row holds a category never seen in training). The metadata
also holds ``threshold``, ``detector`` and ``oddkit_version``.

A category never seen in training is treated as :func:`oddkit.scoring.score_rows` treats it (the default of
``oddkit score``, the service, Spark and Dask): its one-hot block is all zeros, the row's score is raised to
at least ``out_of_range_score()`` (so it is labelled an anomaly) and ``unseen_category`` flags it; summing
that output counts such rows. oddkit's ``strict_categories`` (refuse the row) has no counterpart in the
graph: a runtime that wants it refuses the rows ``unseen_category`` flags.

Agreement with oddkit: onnxruntime's ``score`` equals :func:`oddkit.scoring.score_rows`'s (``decision_function``'s
where no category is unseen) to a relative 1e-5 (about 1e-15 for the Gaussian and PCA, computed in float64
as oddkit computes them; a few 1e-7 for the networks, which run in float32 under another runtime's
kernels). So ``label`` equals ``predict``'s except for a row whose score ties with the threshold within that
tolerance (e.g. a row identical to the training row the threshold was taken from, frequent on tables of
categorical columns only), which either side may put on either side of it.

What the graph does not do (oddkit does it before scoring): refuse NaN or infinite values when the model does
not impute, check column names and types. It never answers NaN: a NaN in a numeric column of a model that does
not impute makes the row score ``out_of_range_score()`` (labelled 1), and an infinite value is clipped like any
far-out value (the row scores at least that); a model fitted with ``impute="median"`` imputes as oddkit does
(NaN, and the infinities a column held in training; another infinity is out of range). Models fitted on
recordings are refused (:class:`ExportError`): their audio features are computed by librosa before the table
preprocessing, outside anything the graph can hold.
"""

import json
from pathlib import Path

from oddkit.exceptions import MissingDependencyError, OddkitError

__all__ = ["EXPORTABLE", "OUTPUTS", "ExportError", "export_onnx", "onnx_inputs"]

EXPORTABLE = ("AutoEncoderDetector", "VAEDetector", "GaussianDetector", "PCADetector")
"""Detector classes :func:`export_onnx` writes (subclasses that change the score are refused)."""
OPSET = 17
OUTPUTS = ("score", "label", "unseen_category")
"""The graph's outputs, in order (see :mod:`oddkit.export`)."""


class ExportError(OddkitError):
    """A detector that cannot be written as an ONNX graph."""


def _check_exportable(detector) -> None:
    from sklearn.utils.validation import check_is_fitted

    name = type(detector).__name__
    if name not in EXPORTABLE:
        reason = {
            "KNNDetector": "its score searches the training rows for neighbours at scoring time",
            "LOFDetector": "its score searches the training rows for neighbours at scoring time",
            "IsolationForestDetector": "its trees are scikit-learn's, which this exporter does not translate",
            "OneClassSVMDetector": "its kernel machine is scikit-learn's, which this exporter does not translate",
            "EnsembleDetector": "it combines members some of which cannot be exported",
            "VQVAEDetector": "its codebook look-up is not translated",
        }.get(name, "no ONNX translation of its score is written")
        raise ExportError(f"{name} cannot be exported to ONNX ({reason}); export one of {', '.join(EXPORTABLE)}, or "
                          "serve this model with 'oddkit serve'")
    check_is_fitted(detector)
    if getattr(detector, "_fitted_on_audio", lambda: False)():
        raise ExportError(f"{name} was fitted on recordings and cannot be exported to ONNX (its audio features, "
                          "MFCCs or log-mel spectrograms, are computed by librosa, which the graph cannot hold); "
                          "serve this model with 'oddkit serve', or score it with 'oddkit score'")


def _modules():
    try:
        import torch
        from torch import nn
    except ImportError as exc:  # pragma: no cover - torch is a dependency
        raise MissingDependencyError(f"ONNX export needs torch ({exc})") from None
    return torch, nn


def _scoring_module(detector):
    """One torch module: preprocessing inputs -> (score float64, label int64, unseen_category bool)."""
    torch, nn = _modules()
    from oddkit.data.preprocess import FAR_BOUND, STANDARDIZED_BOUND, TablePreprocessor

    name = type(detector).__name__
    preprocessor = detector.preprocessor_
    table = isinstance(preprocessor, TablePreprocessor)

    def buffer(value, dtype=torch.float64):
        return torch.as_tensor(__import__("numpy").asarray(value), dtype=dtype).clone()

    class Score(nn.Module):
        def __init__(self):
            super().__init__()
            self.table = table
            self.register_buffer("threshold", buffer(float(detector.threshold_)))
            self.register_buffer("floor", buffer(float(detector.out_of_range_score())))
            if table:
                import numpy as np

                self.n_numeric = len(preprocessor.numeric_columns_)
                self.register_buffer("center", buffer(preprocessor.center_))
                self.register_buffer("scale", buffer(preprocessor.scale_))
                self.impute = preprocessor.medians_ is not None
                if self.impute:
                    self.register_buffer("medians", buffer(preprocessor.medians_))
                    seen = preprocessor.infinities_seen_.astype(np.int64)  # as TablePreprocessor._imputed
                    self.register_buffer("posinf_seen", torch.as_tensor((seen & 1).astype(bool)))
                    self.register_buffer("neginf_seen", torch.as_tensor((seen & 2).astype(bool)))
                self.sizes = [len(preprocessor.categories_[c]) for c in preprocessor.categorical_columns_]
                # Outputs are numeric columns then each categorical column's one-hot block; this order
                # puts them back in the preprocessor's output order.
                numeric_outputs = list(preprocessor._numeric_outputs)
                categorical_outputs = [int(i) for name_, idx in preprocessor.output_groups_
                                       if name_ in set(preprocessor.categorical_columns_) for i in idx]
                source = np.empty(preprocessor.n_outputs_, dtype=np.int64)
                source[np.asarray(numeric_outputs + categorical_outputs, dtype=np.int64)] = np.arange(
                    preprocessor.n_outputs_)
                self.register_buffer("order", torch.as_tensor(source))
            if name == "GaussianDetector":
                import numpy as np

                self.register_buffer("location", buffer(detector.location_))
                self.register_buffer("inverse_cholesky", buffer(np.linalg.inv(detector._cholesky)))
                self.register_buffer("log_normaliser", buffer(float(detector._log_normaliser)))
            elif name == "PCADetector":
                self.register_buffer("mean", buffer(detector.mean_))
                self.register_buffer("components", buffer(detector.components_))
            else:
                self.model = detector.model_
                self.beta = float(getattr(detector, "beta", 1.0))
                self.whitened = getattr(detector, "residual_whitener_", None) is not None
                if name == "AutoEncoderDetector":
                    if self.whitened:
                        self.register_buffer("residual_mean", buffer(detector.residual_mean_).unsqueeze(1))
                        self.register_buffer("whitener", buffer(detector.residual_whitener_))
                    else:
                        self.register_buffer("error_scale", buffer(detector.column_error_scale_).unsqueeze(1))

        def preprocess(self, numeric, codes):
            x = numeric.to(torch.float64)
            if self.impute:  # NaN, and the infinities a column held in training; others clip as out of range
                infinite = torch.isinf(x)
                imputed = (torch.isnan(x) | (infinite & (x > 0) & self.posinf_seen)
                           | (infinite & (x < 0) & self.neginf_seen))
                x = torch.where(imputed, self.medians, x)
            x = torch.clamp((x - self.center) / self.scale, -STANDARDIZED_BOUND, STANDARDIZED_BOUND)
            far = (torch.abs(x) >= FAR_BOUND).any(dim=1) if self.n_numeric else None
            parts = [x.to(torch.float32)]
            for size, code in zip(self.sizes, codes):
                parts.append((code.unsqueeze(1) == torch.arange(size).unsqueeze(0)).to(torch.float32))
            z = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
            if len(parts) > 1:
                z = torch.index_select(z, 1, self.order)
            # The string inputs' LabelEncoders give -1 to a category never seen in training (its one-hot
            # block above is all zeros, as unknown_categories="ignore" encodes it); such a row is flagged.
            unseen = torch.stack([code < 0 for code in codes], dim=1).any(dim=1) if codes else None
            return z, far, unseen

        def raw_score(self, z):
            if name == "GaussianDetector":
                centred = z.to(torch.float64) - self.location
                whitened = centred @ self.inverse_cholesky.T
                return 0.5 * (whitened * whitened).sum(dim=1) + self.log_normaliser
            if name == "PCADetector":
                centred = z.to(torch.float64) - self.mean
                residual = centred - (centred @ self.components.T) @ self.components
                return (residual * residual).mean(dim=1)
            if name == "VAEDetector":
                return self.model.negative_elbo(z, beta=self.beta).mean(dim=0).to(torch.float64)
            if self.whitened:
                residuals = (z - self.model(z)).to(torch.float64) - self.residual_mean
                whitened = torch.matmul(residuals, self.whitener.transpose(1, 2))
                return (whitened * whitened).mean(dim=(0, 2))
            errors = (self.model(z).to(torch.float64) - z.to(torch.float64)) ** 2
            return (errors / self.error_scale).mean(dim=0).mean(dim=1)

        def forward(self, first, *codes):
            if self.table:
                z, far, unseen = self.preprocess(first, codes)
            else:
                z, far, unseen = first.to(torch.float32), None, None
            score = self.raw_score(z)
            score = torch.where(torch.isfinite(score), score, self.floor)
            if far is not None:
                score = torch.where(far, torch.maximum(score, self.floor), score)
            if unseen is not None:
                # oddkit.scoring.score_rows: an unseen category is a sign of an anomaly, so the row scores
                # at least out_of_range_score() (above the threshold) and is flagged.
                score = torch.where(unseen, torch.maximum(score, self.floor), score)
            else:
                unseen = torch.zeros_like(score, dtype=torch.bool)
            return score, (score >= self.threshold).to(torch.int64), unseen

    return Score().eval()


def _register_symbolics() -> None:
    """ONNX translations of the operators oddkit's networks use that torch's exporter lacks at OPSET:
    ``xlogy(x, y)`` (the Bernoulli likelihood of image VAEs) as ``where(x == 0, 0, x * log(y))``."""
    from torch.onnx import register_custom_op_symbolic

    def xlogy(g, x, y):
        zero = g.op("Constant", value_t=__import__("torch").tensor(0.0))
        zero = g.op("CastLike", zero, x)
        product = g.op("Mul", x, g.op("Log", y))
        return g.op("Where", g.op("Equal", x, zero), zero, product)

    for name in ("aten::xlogy", "aten::special_xlogy"):
        register_custom_op_symbolic(name, xlogy, OPSET)


def onnx_inputs(detector, X) -> dict:
    """The inputs of :func:`export_onnx`'s graph for rows ``X``.

    Parameters
    ----------
    detector : BaseDetector
        The fitted detector the graph was exported from.
    X : pandas.DataFrame or array-like
        Rows as ``decision_function`` takes them (images as an array). Numeric cells are read as oddkit
        reads them (a nullable column's missing value, or a cell that is not a number in a column
        ``column_types`` declares numeric, is NaN, which the graph imputes when the model does).

    Returns
    -------
    dict
        ``{"numeric": float64 of shape (rows, n_numeric), column: strings of shape (rows,), ...}`` for a
        table model, ``{"pixels": float32 of shape (rows, C*H*W)}`` for an image model.

    Raises
    ------
    ColumnMismatchError
        ``X`` lacks one of the training columns, or an array has the wrong width.
    DataError
        A numeric column holds text that oddkit would refuse too.
    """
    import numpy as np
    import pandas as pd

    from oddkit.data.preprocess import MISSING_CATEGORY, TablePreprocessor, _factorize

    preprocessor = detector.preprocessor_
    if not isinstance(preprocessor, TablePreprocessor):
        return {"pixels": np.ascontiguousarray(preprocessor.transform(X), dtype=np.float32)}
    if not isinstance(X, pd.DataFrame):
        X = pd.DataFrame(np.asarray(X), columns=preprocessor.feature_names_in_)
    # The preprocessor's own reading of the numeric columns (nullable types, declared-numeric text as NaN).
    X = preprocessor._aligned(X)
    numeric = preprocessor._numeric_block(X, preprocessor.numeric_columns_)
    feeds = {"numeric": np.ascontiguousarray(numeric.reshape(len(X), -1), dtype=np.float64)}
    for name in preprocessor.categorical_columns_:
        # Each distinct value turned into its category string once (the last entry is the missing code -1's).
        codes, strings = _factorize(X[name])
        feeds[name] = np.asarray(strings + [MISSING_CATEGORY], dtype=object)[codes]
    return feeds


def _add_string_inputs(model, preprocessor):
    """Replace each int64 code input by a string input and an ai.onnx.ml LabelEncoder (unseen -> -1)."""
    from onnx import TensorProto, helper

    graph = model.graph
    nodes = []
    for i, name in enumerate(preprocessor.categorical_columns_):
        code_input = f"code_{i}"
        old = next(inp for inp in graph.input if inp.name == code_input)
        graph.input.remove(old)
        graph.input.append(helper.make_tensor_value_info(name, TensorProto.STRING, ["rows"]))
        nodes.append(helper.make_node("LabelEncoder", [name], [code_input], name=f"encode_{i}", domain="ai.onnx.ml",
                                      keys_strings=list(preprocessor.categories_[name]),
                                      values_int64s=list(range(len(preprocessor.categories_[name]))),
                                      default_int64=-1))
    existing = list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes + existing)
    if nodes and not any(o.domain == "ai.onnx.ml" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("ai.onnx.ml", 2))
    return model


def export_onnx(detector, out) -> Path:
    """Write ``detector``'s scoring path, preprocessing included, as an ONNX graph.

    Parameters
    ----------
    detector : BaseDetector
        A fitted :class:`~oddkit.AutoEncoderDetector` (tables or images), :class:`~oddkit.VAEDetector`,
        :class:`~oddkit.GaussianDetector` or :class:`~oddkit.PCADetector`.
    out : str or Path
        The ``.onnx`` file to write.

    Returns
    -------
    Path
        ``out``. Inputs, outputs and metadata: see :mod:`oddkit.export`. onnxruntime's scores equal
        :func:`oddkit.scoring.score_rows`'s (``decision_function``'s where no category is unseen) to a
        relative 1e-5, and are never NaN; labels differ only for a score that ties with the threshold
        within that tolerance (see :mod:`oddkit.export`).

    Raises
    ------
    ExportError
        The detector cannot be exported (its class is not one of :data:`EXPORTABLE`, or it was fitted on
        recordings).
    MissingDependencyError
        ``onnx`` is not installed (``pip install 'oddkit[onnx]'``).
    """
    import io
    import warnings

    import numpy as np

    from oddkit import __version__
    from oddkit.data.preprocess import TablePreprocessor

    _check_exportable(detector)
    try:
        import onnx
    except ImportError as exc:
        raise MissingDependencyError(f"ONNX export needs the onnx package ({exc}); pip install 'oddkit[onnx]'") from None
    torch, _ = _modules()
    module = _scoring_module(detector)
    preprocessor = detector.preprocessor_
    table = isinstance(preprocessor, TablePreprocessor)
    if table:
        n_categorical = len(preprocessor.categorical_columns_)
        example = (torch.zeros(2, len(preprocessor.numeric_columns_), dtype=torch.float64),
                   *[torch.zeros(2, dtype=torch.int64) for _ in range(n_categorical)])
        names = ["numeric", *[f"code_{i}" for i in range(n_categorical)]]
    else:
        example = (torch.zeros(2, int(preprocessor.n_outputs_), dtype=torch.float32),)
        names = ["pixels"]
    _register_symbolics()
    buffer = io.BytesIO()
    model_device = None
    if hasattr(detector, "model_"):
        model_device = next(detector.model_.parameters()).device
        detector.model_.cpu()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, example, buffer, dynamo=False, input_names=names,
                              output_names=list(OUTPUTS), opset_version=OPSET,
                              dynamic_axes={n: {0: "rows"} for n in (*names, *OUTPUTS)})
    except Exception as exc:  # noqa: BLE001 - the exporter's own errors are many; say which model failed
        raise ExportError(f"torch.onnx could not export {type(detector).__name__} ({type(exc).__name__}: {exc})") from None
    finally:
        if model_device is not None:
            detector.model_.to(model_device)
    model = onnx.load_from_string(buffer.getvalue())
    if table:
        model = _add_string_inputs(model, preprocessor)
        metadata = {"numeric_columns": preprocessor.numeric_columns_,
                    "categorical_columns": preprocessor.categorical_columns_,
                    "categories": preprocessor.categories_}
    else:
        metadata = {"image_shape": [int(v) for v in detector.image_shape_]}
    metadata.update(detector=type(detector).__name__, threshold=float(detector.threshold_),
                    threshold_goal=detector.threshold_goal_, oddkit_version=__version__)
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value if isinstance(value, str) else json.dumps(value)
    model.doc_string = (f"oddkit {type(detector).__name__}: inputs and outputs are described in the oddkit.export "
                        "module's documentation")
    onnx.checker.check_model(model)
    out = Path(out)
    out.write_bytes(model.SerializeToString())
    del np
    return out
