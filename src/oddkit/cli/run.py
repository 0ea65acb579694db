"""'oddkit run CONFIG.toml': fit, threshold, evaluate and report (and score, explain, drift) in one go.

The config's keys are the commands' own long option names, without the dashes. Each step's table is
turned into the argument list of the command it names and that same command is invoked, so a key can
never mean anything its flag does not::

    model = "out/model"          # shared: fit's --out, then the MODEL of every later step
    force = true                 # shared keys go to every step whose command has that option
    n-threads = 2

    [fit]
    data = "train.csv"           # the command's positional argument
    detector = "gaussian"
    param = ["reg_covar=1e-4"]   # a list: the option repeated

    [threshold]
    data = "dev.csv"
    goal = "recall:0.95"

    [evaluate]
    data = "test.csv"
    out = "out/metrics.json"

    [report]
    data = "test.csv"
    out = "out/report.html"
"""

from __future__ import annotations

import difflib
import os
import shlex
from pathlib import Path
from typing import Annotated

import typer

from oddkit.cli._common import _state, app, console, errors
from oddkit.exceptions import OddkitError

STEPS = ("fit", "threshold", "evaluate", "report", "score", "explain", "drift")
"""The tables a config may hold, in the order they run (whatever their order in the file)."""

SHARED_ONLY = {"model"}
"""Top-level keys that are not an option name: ``model`` is fit's --out and every later step's MODEL."""

STEP_ONLY = {"data", "out"}
"""Keys that differ from step to step, so a top-level value for them would be a mistake."""


def _load_toml(path: Path) -> dict:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise OddkitError(f"cannot read the config {path}: {exc.strerror or exc}") from None
    try:
        return tomllib.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise OddkitError(f"{path} is not valid TOML: {exc}") from None


def _commands():
    """The click commands behind the typer app, by name."""
    return typer.main.get_command(app).commands


def _options(command) -> dict:
    """A command's options by config key (the long option name without its dashes)."""
    options = {}
    for param in command.params:
        if param.param_type_name != "option":
            continue
        long = [opt for opt in param.opts if opt.startswith("--")]
        if long and long[0] != "--help":
            options[long[0][2:]] = param
    return options


def _arguments(command) -> list:
    return [param for param in command.params if param.param_type_name == "argument"]


def _is_path(param) -> bool:
    """Whether a command's parameter is a path (typer >= 0.26 keeps its annotation, older click a type)."""
    descriptor = getattr(param, "type_descriptor", None)
    if descriptor is not None:
        return getattr(descriptor, "annotation", None) is Path
    return getattr(getattr(param, "type", None), "name", "") == "path"


def _suggest(key: str, valid) -> str:
    close = difflib.get_close_matches(key, list(valid), n=1)
    return f"did you mean {close[0]!r}? " if close else ""


def _unknown(config: Path, key: str, where: str, valid) -> OddkitError:
    return OddkitError(f"{config}: unknown key {key!r} in {where}; {_suggest(key, valid)}"
                       f"its keys are: {', '.join(sorted(valid))}")


def _resolve(value: str, folder: Path) -> str:
    """A path from the config, relative to the config file's folder ('-' is standard output)."""
    if value == "-" or Path(value).is_absolute():
        return value
    return os.path.normpath(folder / value)


def _text(value, key: str, where: str, config: Path) -> str:
    if isinstance(value, bool) or isinstance(value, (dict, list)) or not isinstance(value, (str, int, float)):
        raise OddkitError(f"{config}: {key} = {value!r} in {where}: expected a string or a number")
    return repr(value) if isinstance(value, float) else str(value)


def _option_args(param, key: str, value, where: str, config: Path, folder: Path) -> list[str]:
    """One config key as command-line arguments: a flag for true, a repeated option for a list."""
    flag = param.opts[0] if param.opts[0].startswith("--") else next(o for o in param.opts if o.startswith("--"))
    if param.is_flag:
        if not isinstance(value, bool):
            raise OddkitError(f"{config}: {key} = {value!r} in {where}: expected true or false (it is the flag {flag})")
        if value:
            return [flag]
        return [next(o for o in param.secondary_opts if o.startswith("--"))] if param.secondary_opts else []
    if isinstance(value, bool):
        raise OddkitError(f"{config}: {key} = {str(value).lower()} in {where}: {flag} takes a value, not true or false")
    values = value if isinstance(value, list) else [value]
    texts = [_text(v, key, where, config) for v in values]
    if _is_path(param):
        texts = [_resolve(t, folder) for t in texts]
    if param.multiple:
        return [part for text in texts for part in (flag, text)]
    if isinstance(value, list):  # an option that takes a comma list, e.g. hidden-sizes = [64, 32]
        return [flag, ",".join(texts)]
    return [flag, texts[0]]


def plan(config: Path) -> list[list[str]]:
    """The commands a config runs, as argument lists for ``oddkit`` (the step's name first).

    Every key is checked before anything runs: an unknown step or key, or a value of the wrong kind,
    raises :class:`~oddkit.exceptions.OddkitError` naming the key, its step and the valid keys.
    """
    document = _load_toml(config)
    folder = config.parent
    commands = _commands()
    steps = {name: table for name, table in document.items() if isinstance(table, dict)}
    shared = {key: value for key, value in document.items() if not isinstance(value, dict)}
    for name in steps:
        if name not in STEPS:
            raise OddkitError(f"{config}: unknown step [{name}]; {_suggest(name, STEPS)}"
                              f"the steps are: {', '.join(f'[{s}]' for s in STEPS)}")
    if not steps:
        raise OddkitError(f"{config} names no step; add one or more of {', '.join(f'[{s}]' for s in STEPS)}")
    present = [name for name in STEPS if name in steps]
    shared_valid = SHARED_ONLY | {key for name in present for key in _options(commands[name]) if key not in STEP_ONLY}
    for key in shared:
        if key not in shared_valid:
            raise _unknown(config, key, f"the top level (shared by {', '.join(f'[{s}]' for s in present)})",
                           shared_valid)

    model = shared.get("model")
    if model is not None:
        model = _resolve(_text(model, "model", "the top level", config), folder)
    argvs = []
    for name in present:
        command, table, where = commands[name], steps[name], f"[{name}]"
        options, arguments = _options(command), _arguments(command)
        takes_model = any(arg.name == "model" for arg in arguments)
        data_args = [arg for arg in arguments if arg.name != "model"]
        valid = set(options) | {"data"} | ({"model"} if takes_model else set()) | {arg.name for arg in data_args}
        for key in table:
            if key not in valid:
                raise _unknown(config, key, where, valid)
        argv = [name]
        if takes_model:
            step_model = table.get("model", model)
            if step_model is None:
                raise OddkitError(f"{config}: {where} needs a model: set model = \"FOLDER\" at the top level "
                                  "(or in the step), or run [fit] first")
            argv.append(_resolve(_text(step_model, "model", where, config), folder) if "model" in table
                        else step_model)
        for arg in data_args:  # 'data' names the positional argument whatever the command calls it (dev)
            value = table.get(arg.name, table.get("data"))
            if value is None:
                raise OddkitError(f"{config}: {where} needs data = \"FILE\" (the {arg.name.upper()} of "
                                  f"'oddkit {name}')")
            argv.append(_resolve(_text(value, "data", where, config), folder))
        merged = {key: value for key, value in shared.items() if key in options}
        merged.update({key: value for key, value in table.items() if key in options})
        for key, value in merged.items():
            argv += _option_args(options[key], key, value, where, config, folder)
        if name == "fit" and "out" not in merged:
            if model is None:
                raise OddkitError(f"{config}: [fit] needs out = \"FOLDER\", or model = \"FOLDER\" at the top level")
            argv += ["--out", model]
        if name == "fit" or (name == "threshold" and "out" in merged):
            # later steps use the model this step wrote
            model = argv[argv.index("--out") + 1]
        _check_parses(command, argv, config, where)
        argvs.append(argv)
    return argvs


def _check_parses(command, argv: list[str], config: Path, where: str) -> None:
    """Parse ARGV as the command would (types, choices, required values) without running it."""
    try:
        command.make_context(argv[0], list(argv[1:]))
    except Exception as exc:  # click's usage errors (typer >= 0.26 bundles its own click, older ones use click)
        if not (hasattr(exc, "format_message") and hasattr(exc, "exit_code")):
            raise
        raise OddkitError(f"{config}: {where} {exc.format_message()}") from None


def command_line(argv: list[str]) -> str:
    """An argument list as the shell command a user would type."""
    return " ".join(["oddkit", *(shlex.quote(part) for part in argv)])


@app.command()
def run(
    config: Annotated[Path, typer.Argument(help="A TOML file: shared keys at the top, then a table per step "
                                                "(fit, threshold, evaluate, report, score, explain, drift) "
                                                "whose keys are that command's long options without the dashes, "
                                                "plus 'data' for its data file.")],
    print_only: Annotated[bool, typer.Option(
        "--print", "--dry-run", help="Print the equivalent 'oddkit ...' command lines instead of running them.",
    )] = False,
):
    """Run the steps a config file names, in the order fit, threshold, evaluate, report, score, explain, drift.

    Top-level keys go to every step whose command has that option ('model' is fit's --out and the MODEL
    of the later steps; a threshold table with 'out' hands its model on). Paths are relative to the config's
    folder; true is a flag, a list repeats the option. Every key is checked before the first step runs.
    """
    argvs = plan(config)
    if print_only:
        for argv in argvs:
            console.print(command_line(argv), markup=False, highlight=False, soft_wrap=True)
        return
    group = typer.main.get_command(app)
    debug = ["--debug"] if _state["debug"] else []
    for argv in argvs:
        # on stderr, like the shell's 'set -x': standard output stays the steps' own (a score --out - table)
        errors.print(f"$ {command_line(argv)}", markup=False, highlight=False, soft_wrap=True)
        group.main(args=[*debug, *argv], prog_name="oddkit", standalone_mode=False)
