"""'oddkit serve': a model behind an HTTP scoring service (FastAPI on uvicorn; see :mod:`oddkit.serve`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from oddkit.cli._common import NThreads, _load_model, app, console
from oddkit.exceptions import OddkitError


@app.command()
def serve(
    model: Annotated[Path, typer.Argument(help="A model folder written by 'oddkit fit'.")],
    host: Annotated[str, typer.Option("--host", help="Address to listen on; 0.0.0.0 listens on every "
                                                     "interface (put an API key in ODDKIT_API_KEY first).")
                    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option("--workers", help="Worker processes, each holding the model.")] = 1,
    max_body_mb: Annotated[float, typer.Option("--max-body-mb", help="Largest request body in MiB; a larger one "
                                                                     "is answered 413.")] = 64.0,
    max_rows: Annotated[int, typer.Option("--max-rows", help="Most rows (images, texts, recordings) in one "
                                                             "request; more are answered 413, asking to split the "
                                                             "batch.")] = 100_000,
    max_text_chars: Annotated[int, typer.Option("--max-text-chars", help="Models trained on texts: most characters "
                                                                         "in one text; a longer one is answered "
                                                                         "413.")] = 100_000,
    max_recording_seconds: Annotated[float, typer.Option(
        "--max-recording-seconds", help="Models trained on recordings: longest recording in seconds, by what its file "
                                        "declares, checked before decoding; a longer one is answered 413.")] = 600.0,
    max_samples: Annotated[int, typer.Option(
        "--max-samples", help="Models trained on recordings: most audio samples in one request, by what the files "
                              "declare, checked before decoding (a small FLAC file can hold hours); more are "
                              "answered 413.")] = 2 ** 25,
    drift_window: Annotated[int, typer.Option(
        "--drift-window", help="Rows GET /drift compares with the model's drift reference: the last this many "
                               "scored, by all workers together (0: none).")] = 10_000,
    n_threads: NThreads = None,
):
    """Serve MODEL over HTTP: POST /score (JSON rows or columns, or a CSV/Parquet file; texts; WAV/FLAC
    recordings), GET /drift, GET /model, GET /health.

    With ODDKIT_API_KEY set, every request but /health must send that key in the X-API-Key header. With
    ODDKIT_MODEL_KEY set, MODEL must be signed with it or the service does not start. The OpenAPI schema and
    its docs are at /openapi.json and /docs (behind the API key when one is set). --n-threads caps the threads
    each worker's torch and BLAS use (a worker answers several requests at once, each in its own thread).
    GET /drift compares the last --drift-window rows the service scored (all workers together) with the model's
    drift reference (which 'oddkit threshold' records), as 'oddkit drift' compares a file.
    """
    import contextlib
    import math
    import os

    if workers < 1:
        raise OddkitError(f"--workers must be at least 1, got {workers}")
    if not 0 < port < 65536:
        raise OddkitError(f"--port must be between 1 and 65535, got {port}")
    if not (max_body_mb > 0 and math.isfinite(max_body_mb) and max_body_mb * 1024 * 1024 >= 1):
        raise OddkitError(f"--max-body-mb must be a finite number of MiB of at least one byte (1e-6), got "
                          f"{max_body_mb}")
    if max_rows < 1:
        raise OddkitError(f"--max-rows must be at least 1, got {max_rows}")
    if max_text_chars < 1:
        raise OddkitError(f"--max-text-chars must be at least 1, got {max_text_chars}")
    if not (max_recording_seconds > 0 and math.isfinite(max_recording_seconds) and max_recording_seconds < 1e9):
        raise OddkitError(f"--max-recording-seconds must be a positive, finite number of seconds, got "
                          f"{max_recording_seconds}")
    if max_samples < 1:
        raise OddkitError(f"--max-samples must be at least 1, got {max_samples}")
    if drift_window < 0 or drift_window == 1:
        raise OddkitError(f"--drift-window must be 0 (off) or at least 2 rows, got {drift_window}")
    if n_threads is not None and n_threads < 1:
        raise OddkitError(f"--n-threads must be at least 1, got {n_threads}")
    try:
        import uvicorn

        import oddkit.serve  # noqa: F401 - checks FastAPI is there before the model is loaded
        import fastapi  # noqa: F401
    except ImportError as exc:
        from oddkit.exceptions import MissingDependencyError

        raise MissingDependencyError(f"'oddkit serve' needs FastAPI and uvicorn ({exc}); "
                                     "pip install 'oddkit[serve]'") from None
    # Load once here, so a damaged or unsigned folder stops the command with oddkit's message before
    # any worker starts; each worker then loads (and checks) it again.
    detector = _load_model(model)
    from oddkit.serve import check_servable

    check_servable(detector)  # a model the service cannot score stops here, saying why
    os.environ["ODDKIT_SERVE_MODEL"] = str(model.resolve())
    os.environ["ODDKIT_SERVE_MAX_BODY_BYTES"] = str(int(max_body_mb * 1024 * 1024))
    os.environ["ODDKIT_SERVE_MAX_ROWS"] = str(max_rows)
    os.environ["ODDKIT_SERVE_MAX_TEXT_CHARS"] = str(max_text_chars)
    os.environ["ODDKIT_SERVE_MAX_RECORDING_SECONDS"] = repr(float(max_recording_seconds))
    os.environ["ODDKIT_SERVE_MAX_SAMPLES"] = str(max_samples)
    os.environ["ODDKIT_SERVE_DRIFT_WINDOW"] = str(drift_window)
    if n_threads is not None:
        os.environ["ODDKIT_SERVE_THREADS"] = str(n_threads)
    else:
        os.environ.pop("ODDKIT_SERVE_THREADS", None)
    threads = f", {n_threads} thread(s) each" if n_threads else ""
    key = "required" if os.environ.get("ODDKIT_API_KEY") else "off"
    console.print(f"serving {type(detector).__name__} from {model} on http://{host}:{port} ({workers} worker"
                  f"{'s' if workers != 1 else ''}{threads}; API key {key})", markup=False, highlight=False)
    # Several workers watch one drift window: a file in a folder only this user can open, removed on exit.
    shared = workers > 1 and drift_window > 0 and os.name == "posix" \
        and getattr(detector, "drift_reference_", None) is not None
    del detector
    with contextlib.ExitStack() as stack:
        if shared:
            import tempfile

            folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="oddkit-serve-"))
            os.environ["ODDKIT_SERVE_DRIFT_FILE"] = os.path.join(folder, "drift-window")
        else:
            os.environ.pop("ODDKIT_SERVE_DRIFT_FILE", None)
        uvicorn.run("oddkit.serve:_app_from_environment", factory=True, host=host, port=port, workers=workers,
                    log_level="warning")
