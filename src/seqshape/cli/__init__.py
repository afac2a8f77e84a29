"""The `seqshape` command line: a thin adapter over the library.

It parses, calls the library, and maps user errors (`SeqshapeError`) to one line on stderr and exit
code 2; programming errors keep their traceback. Each mode's commands live in their own module and
are registered here.
"""

from __future__ import annotations

import importlib
import inspect
import json
import sys
from pathlib import Path
from typing import Annotated, Literal

import typer

from ..errors import ConfigError, SeqshapeError
from ..kinds import KINDS
from .common import MaxBeam, MaxHorizon, MaxSamples, Threads

app = typer.Typer(
    name="seqshape",
    help="LSTM sequence models of every input/output shape: train, evaluate, predict, forecast, "
    "serve. Shapes use the legend B batch, T steps, F features, H hidden, N classes, K horizon.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
train_app = typer.Typer(
    help="Train a model of one shape mode and write a model directory.", no_args_is_help=True
)
app.add_typer(train_app, name="train")


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            v = version("seqshape")
        except PackageNotFoundError:  # pragma: no cover - run from a source tree
            v = "unknown"
        typer.echo(f"seqshape {v}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """LSTM sequence models of every input/output shape: train, evaluate, predict, forecast,
    serve. Shapes use the legend B batch, T steps, F features, H hidden, N classes, K horizon."""


# kind recorded in config.json -> the CLI module that evaluates/predicts with it (seqshape.kinds)
KIND_MODULES: dict[str, str] = {k.name: k.cli for k in KINDS.values() if k.evaluates}


def _kind_module(model_dir: Path):
    from ..artifacts import model_kind

    kind = model_kind(model_dir)
    name = KIND_MODULES.get(kind)
    if name is None:
        raise SeqshapeError(f"{model_dir}: model kind {kind!r} has no evaluate/predict support")
    return importlib.import_module(name)


@app.command()
def evaluate(
    model_dir: Annotated[
        Path, typer.Argument(help="A model directory written by `seqshape train`.")
    ],
    data: Annotated[Path, typer.Option("--data", help="Labelled data to evaluate on.")],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object on stdout.")
    ] = False,
    missing: Annotated[
        str, typer.Option("--missing", help="Missing values in the data: error|ffill|zero.")
    ] = "error",
    threads: Threads = None,
    beam: Annotated[
        int | None,
        typer.Option("--beam", help="Beam size for token decoders (seq2seq, generator)."),
    ] = None,
    horizons: Annotated[
        str | None,
        typer.Option("--horizons", help="Forecasters: horizons K to backtest, e.g. 24,48,168."),
    ] = None,
    samples: Annotated[
        int,
        typer.Option(
            "--samples",
            help="Autoregressive probabilistic forecasters: also score the 10-90% band of S "
            "sample paths per window (its coverage widens with K as per-step intervals do not).",
        ),
    ] = 0,
    data_format: Annotated[
        Literal["csv", "m4"],
        typer.Option(
            "--format",
            help="Forecasters: csv, or m4 (an M4 train file as --data and its test file as "
            "--test; prints the competition's sMAPE, MASE and OWA).",
        ),
    ] = "csv",
    test: Annotated[
        Path | None,
        typer.Option("--test", help="With --format m4: the test file (the values to forecast)."),
    ] = None,
    max_horizon: MaxHorizon = None,
    max_beam: MaxBeam = None,
    max_samples: MaxSamples = None,
) -> None:
    """Evaluate a trained model on labelled data (metrics as a table, or JSON with --json)."""
    from .. import limits
    from ..outfiles import check_input
    from ..progress import Reporter
    from .forecast import parse_horizons

    # every bound is checked before any work (loading the model, reading the data)
    limits.check("--beam", beam, "beam", max_beam)
    limits.check("--samples", samples, "samples", max_samples, low=0)
    for k in parse_horizons(horizons):
        limits.check("--horizons", k, "horizon", max_horizon)
    check_input(data, "--data")
    mod = _kind_module(model_dir)
    opts = {"beam": beam} if beam is not None else {}
    if data_format != "csv" or test is not None:
        if mod.__name__.rsplit(".", 1)[-1] != "forecast":
            raise ConfigError("--format/--test: only forecasters read M4 files")
        if test is not None:
            check_input(test, "--test")
        opts.update(data_format=data_format, test=test)
    if horizons is not None:
        opts["horizons"] = horizons
    if samples:
        if mod.__name__.rsplit(".", 1)[-1] != "forecast":
            raise ConfigError("--samples: only forecasters draw sample paths")
        opts["samples"] = samples
    with Reporter(f"evaluate {model_dir}"):
        result = mod.evaluate(model_dir, data, missing=missing, threads=threads, **opts)
    if as_json:
        typer.echo(json.dumps(result, allow_nan=False))
    else:
        mod.print_report(result)


@app.command()
def predict(
    model_dir: Annotated[
        Path, typer.Argument(help="A model directory written by `seqshape train`.")
    ],
    data: Annotated[Path, typer.Option("--data", help="Sequences to predict (labels not needed).")],
    output: Annotated[Path, typer.Option("--output", help="CSV file to write.")],
    missing: Annotated[
        str, typer.Option("--missing", help="Missing values in the data: error|ffill|zero.")
    ] = "error",
    threads: Threads = None,
    backend: Annotated[
        str,
        typer.Option(
            "--backend",
            help="torch | onnx (runs DIR/model.onnx, written by `seqshape export DIR`).",
        ),
    ] = "torch",
) -> None:
    """Predict one row per sequence and write a CSV (id, prediction, per-class probabilities)."""
    if backend not in ("torch", "onnx"):
        raise ConfigError(f"--backend: expected torch or onnx, got {backend!r}")
    from ..outfiles import check_input, check_output
    from ..progress import Reporter

    check_input(data, "--data")
    check_output(output, "--output")
    mod = _kind_module(model_dir)
    opts = {}
    if backend != "torch":
        if "backend" not in inspect.signature(mod.predict).parameters:
            raise ConfigError(
                f"--backend {backend}: not available for this model kind ({model_dir}); "
                "use --backend torch"
            )
        opts["backend"] = backend
    with Reporter(f"predict {model_dir}"):
        n = mod.predict(model_dir, data, output, missing=missing, threads=threads, **opts)
    typer.echo(f"wrote {n} predictions to {output}", err=True)


# the modules whose import registers commands; this order is the order of `seqshape --help`
COMMAND_MODULES = (
    "anomaly",  # `detect`, `nab run|score`
    "classify",  # `train classify` and `demo`
    "explain",  # `explain`
    "export",  # `export`
    "forecast",  # `train forecast`
    "forecast_cmd",  # `forecast`
    "seq2seq",  # `train seq2seq`, `translate`
    "tag",  # `train tag`
    "generate",  # `train generate`
    "serve",  # `serve`
)


def _register() -> None:
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{name}")


_register()


# typer >= 0.24 carries its own copy of click (typer._click); older ones use click itself. The
# classes come from typer's exception hierarchy, so this works with both and never imports click.
_ClickException = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")
_UsageError = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _usage_error(e) -> int:
    """A click usage error as one line on stderr (with the closest option, if any); exit 2."""
    ctx = getattr(e, "ctx", None)
    name = type(e).__name__
    if name == "NoArgsIsHelpError" and ctx is not None:
        typer.echo(ctx.get_help())  # bare `seqshape` or `seqshape train`: the help, exit 0
        return 0
    where = ctx.command_path if ctx is not None else "seqshape"
    message = _one_line(e.format_message())
    if name == "NoSuchOption" and getattr(e, "possibilities", None):
        close = " or ".join(sorted(e.possibilities))
        message = f"No such option: {e.option_name} (did you mean {close}?)"
    hint = f" (see '{where} --help')" if ctx is not None else ""
    typer.echo(f"{where}: error: {message}{hint}", err=True)
    return 2


# each train command's estimator: its constructor's defaults are what a flag left out means
TRAIN_ESTIMATORS = {k.mode: k.estimator for k in KINDS.values()}
# flag name -> the estimator's argument, where they differ
FLAG_ARGUMENTS = {"hidden": "hidden_size", "layers": "num_layers", "beam": "beam_size"}


def _show_estimator_defaults(root) -> None:
    """Show each train flag's real default in --help: the flags default to None ("the
    estimator's default"), so the value is read from the estimator's signature, not repeated."""
    train = root.commands.get("train")
    for name, cmd in getattr(train, "commands", {}).items():
        target = TRAIN_ESTIMATORS.get(name)
        if target is None:
            continue
        module, cls = target.split(":")
        params = inspect.signature(getattr(importlib.import_module(module), cls)).parameters
        for p in cmd.params:
            arg = params.get(FLAG_ARGUMENTS.get(p.name, p.name))
            if p.default is not None or arg is None or arg.default is inspect.Parameter.empty:
                continue
            d = arg.default
            if d is None:
                p.show_default = "from the data"
            elif isinstance(d, bool):
                p.show_default = "true" if d else "false"
            else:
                p.show_default = ",".join(map(str, d)) if isinstance(d, tuple) else str(d)


def main(argv: list[str] | None = None) -> int:
    """Entry point: user errors (bad options, bad files) -> one line on stderr, exit code 2."""
    try:
        from typer.main import get_command

        root = get_command(app)
        _show_estimator_defaults(root)
        # typer turns Ctrl-C (and an Exit raised in a command) into a returned exit code here
        code = root.main(args=argv, prog_name="seqshape", standalone_mode=False)
        if code == 130:
            typer.echo("interrupted", err=True)
    except SeqshapeError as e:
        typer.echo(f"error: {type(e).__name__}: {_one_line(e)}", err=True)
        return 2
    except _UsageError as e:
        return _usage_error(e)
    except _ClickException as e:  # e.g. a file option click could not open
        typer.echo(f"error: {_one_line(e.format_message())}", err=True)
        return e.exit_code
    except typer.Exit as e:
        return e.exit_code
    except typer.Abort:
        typer.echo("aborted", err=True)
        return 1
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        return 130
    except OSError as e:
        # a file the user named that cannot be opened, read or written (missing, a directory,
        # permission denied, disk full): one line naming it; other OS errors keep their traceback
        if e.filename is None or e.errno is None:
            raise
        target = e.filename if e.filename2 is None else f"{e.filename} -> {e.filename2}"
        typer.echo(f"error: {target}: {e.strerror or e}", err=True)
        return 2
    return code if isinstance(code, int) and not isinstance(code, bool) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
