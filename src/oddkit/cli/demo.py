"""'oddkit demo': cancer detection on the breast-cancer data, every detector side by side."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from oddkit.cli._common import Force, NThreads, app, console, threads_limited
from oddkit.exceptions import OddkitError


@app.command()
@threads_limited
def demo(
    out_dir: Annotated[Path, typer.Option(help="Where the model, table and plots go.")] = Path("oddkit-demo"),
    goal: Annotated[str, typer.Option(help="Threshold goal on the dev split.")] = "recall:0.95",
    random_state: Annotated[int, typer.Option(help="Seed of the split and the detectors.")] = 0,
    force: Annotated[bool, typer.Option("--force", "-f", help="Write into --out-dir even if it holds files "
                                                                "(the demo's own are replaced).")] = False,
    n_threads: NThreads = None,
):
    """Cancer detection on scikit-learn's breast-cancer data, every detector side by side.

    Detectors train on benign cases only, a threshold is chosen on a dev split, test metrics follow.
    An --out-dir that holds anything is left alone unless --force.
    """
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        if not out_dir.is_dir():
            raise OddkitError(f"{out_dir} is a file; choose another --out-dir")
        if not force:
            raise OddkitError(f"{out_dir} already holds files; pass --force to replace the demo's files in it, "
                              "or choose another --out-dir")
        import shutil

        if (out_dir / "autoencoder-model" / "config.json").is_file():  # no file of the old model left behind
            shutil.rmtree(out_dir / "autoencoder-model")
    from rich.table import Table as RichTable

    from oddkit.demo import run_demo

    started = time.perf_counter()
    console.print("Wisconsin diagnostic breast cancer: detectors learn from benign cases only; "
                  f"threshold chosen on a dev split for {goal}; metrics on the test split.")
    table, paths = run_demo(out_dir, goal=goal, random_state=random_state)
    rich_table = RichTable(title="test split (threshold chosen on dev)")
    rich_table.add_column("detector")
    for column in table.columns:
        rich_table.add_column(column, justify="right")
    for name, row in table.iterrows():
        rich_table.add_row(name, *(f"{v:.3f}" for v in row))
    console.print(rich_table)
    for name, path in paths.items():
        console.print(f"{name}: {path}")
    console.print(f"done in {time.perf_counter() - started:.1f} s")
