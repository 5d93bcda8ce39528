"""``splat train``: its options are generated from ``TrainConfig`` and the strategies' settings,
so every setting that shapes a run is one option and is declared once (in ``train.config``).

A top-level setting ``cap`` is ``--cap``; a learning rate ``--lr-means``; a strategy's own
setting ``--mcmc-noise-lr`` or ``--adc-grad-threshold``. An option not given keeps the
dataclass default; ``RUN/config.json`` shows every value the run used.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import sys
from pathlib import Path
from typing import Optional

import typer

from .errors import SplatError
from .numbers import parse_numbers
from .train.config import STRATEGY_CONFIGS, TrainConfig

_TYPES = {"int": int, "float": float, "str": str, "bool": bool, "float | None": float, "int | None": int}
_RGB = ("background", "eval_background")  # given as R,G,B (background also as 'random')


def _option(flag: str, kind, help: str) -> tuple:
    """(annotation, typer.Option) of one generated option; ``None`` means "not given"."""
    if kind is bool:
        return Optional[bool], typer.Option(None, f"{flag}/--no-{flag[2:]}", help=help, show_default=False)
    return Optional[kind], typer.Option(None, flag, help=help, show_default=False)


def _generated() -> dict[str, tuple]:
    """Parameter name -> (annotation, option, where): where is ("top", field), ("lr", key) or
    (strategy, field)."""
    out = {}
    for f in dataclasses.fields(TrainConfig):
        meta = f.metadata
        if meta.get("cli") is False or meta.get("nested"):
            continue
        if f.name == "lr":
            for key, value in f.default_factory().items():
                out[f"lr_{key}"] = (*_option(f"--lr-{key.replace('_', '-')}", float,
                                             f"{meta['help']} {key} (default {value:g})"), ("lr", key))
            continue
        kind = str if f.name in _RGB else _TYPES[str(f.type)]
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        shown = ",".join(f"{v:g}" for v in default) if isinstance(default, list) else default
        out[f.name] = (*_option(f"--{f.name.replace('_', '-')}", kind, f"{meta['help'].rstrip('.')} (default {shown})"),
                       ("top", f.name))
    for strategy, cls in STRATEGY_CONFIGS.items():
        for f in dataclasses.fields(cls):
            default = f.default
            help = f"{strategy}: {f.metadata['help'].rstrip('.')}" + (f" (default {default:g})" if isinstance(default, float)
                                                          else f" (default {default})" if default is not None else "")
            out[f"{strategy}_{f.name}"] = (*_option(f"--{strategy}-{f.name.replace('_', '-')}", _TYPES[str(f.type)],
                                                    help), (strategy, f.name))
    return out


GENERATED = _generated()


def settings_from_options(given: dict) -> dict:
    """The TrainConfig dict (``TrainConfig.from_dict``'s input) of the options given (not None)."""
    d: dict = {}
    for name, value in given.items():
        if value is None:
            continue
        where, key = GENERATED[name][2]
        if where == "top":
            if key in _RGB:
                value = value if key == "background" and value == "random" else \
                    list(parse_numbers(value, f"--{key.replace('_', '-')}", (3,)))
            d[key] = value
        elif where == "lr":
            d.setdefault("lr", dict(TrainConfig().lr))[key] = value
        else:
            d.setdefault(where, {})[key] = value
    return d


def train(data: Optional[Path], out: Optional[Path], resume: Optional[Path], view: bool, host: str, port: int,
          **options) -> None:
    """Train Gaussians on a dataset; writes checkpoints, metrics.jsonl, scene.ply and eval.json.
    Ctrl-C or SIGTERM checkpoints the step in flight before it exits; --resume continues."""
    from .train import Trainer
    from .train.progress import run_with_progress

    if view:  # before anything is created: a bad address must not leave a half-started run
        from .viewer.server import check_host, check_port

        check_host(host)
        check_port(port)
    given = {k: v for k, v in options.items() if v is not None}
    if resume is not None:
        if data is not None or out is not None:
            raise SplatError("--resume continues a run: give no DATA or --out with it")
        others = sorted(k for k in given if k != "steps")
        if others:
            flags = ", ".join(GENERATED[k][1].param_decls[0].split("/")[0] for k in others)
            raise SplatError(f"--resume keeps the run's settings; only --steps may change ({flags} given)")
        config = None
    else:
        if data is None or out is None:
            raise SplatError("train needs DATA and --out (or --resume RUN)")
        settings = settings_from_options(given)
        strategy = settings.get("strategy", "mcmc")
        foreign = [s for s in STRATEGY_CONFIGS if s != strategy and s in settings]
        if foreign:
            raise SplatError(f"--{foreign[0]}-... options set the {foreign[0]} strategy, but this run uses {strategy}"
                             f" (--strategy {foreign[0]} to use it)")
        config = TrainConfig.from_dict({**settings, "data": str(data.resolve())})
    from .train.distributed import group_size, in_worker, train_in_ranks
    from .train.run import Run

    if in_worker() and config is not None and "nproc" not in given:
        # under torchrun the group's size is the environment's (torchrun itself takes
        # --nproc as an abbreviation of its own --nproc-per-node, so it cannot be passed)
        config.nproc = group_size()
    if in_worker() or (config.nproc if config is not None else Run(resume).config().nproc) > 1:
        if view:
            raise SplatError("--view shows a run trained in one process: leave out --view or --nproc")
        summary = train_in_ranks(config, out, resume, given.get("steps"))
        if summary is not None:
            typer.echo(json.dumps(summary))
        return
    trainer = Trainer.resume(resume, given.get("steps")) if config is None else Trainer.start(config, out)
    live = None
    if view:
        from .viewer import Viewer
        from .viewer.live import LiveTraining

        viewer = Viewer(trainer.store(), [trainer.dataset.cameras[i] for i in trainer.dataset.train],
                        host=host, port=port, backend=trainer.config.backend)
        live = LiveTraining(viewer)
        print(f"viewer: {viewer.url}", file=sys.stderr, flush=True)
    try:
        summary = run_with_progress(trainer, on_step=live.after_step if live else None)
    finally:
        if live:
            live.viewer.close()
    typer.echo(json.dumps(summary))


def register(app: typer.Typer) -> None:
    """Add ``train`` to ``app`` with its hand-written and generated options."""
    own = [
        ("data", Optional[Path], typer.Argument(None, help="Dataset: a transforms.json (or its folder) or a COLMAP folder.")),
        ("out", Optional[Path], typer.Option(None, "--out", "-o", help="Run folder to create.")),
        ("resume", Optional[Path], typer.Option(None, help="Continue the run in this folder from its last checkpoint "
                                                "(a finished run only with a larger --steps).")),
        ("view", bool, typer.Option(False, "--view", help="Show the scene live in the web viewer while it trains.")),
        ("host", str, typer.Option("127.0.0.1", help="--view: address to listen on.")),
        ("port", int, typer.Option(8080, help="--view: port (the next free one if taken).")),
    ]
    params = [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=d, annotation=a) for n, a, d in own]
    params += [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=opt, annotation=ann)
               for n, (ann, opt, _) in GENERATED.items()]

    @functools.wraps(train)
    def command(**kw):
        return train(**kw)

    command.__signature__ = inspect.Signature(params)
    command.__annotations__ = {p.name: p.annotation for p in params}
    app.command("train")(command)
