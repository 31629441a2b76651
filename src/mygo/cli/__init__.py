"""The `mygo` command: the pipeline's stages, predictions, comparisons and new projects.

    mygo --help                      # every subcommand (fast: nothing heavy loads before parsing)
    mygo init DIR                    # a ready DVC pipeline project with the demo data
    mygo train KG TOKENS MODEL ...   # a stage, as dvc.yaml runs it (also `python stages/train.py`)
    mygo compare --percent           # experiments side by side (`dvc exp show --json`)

Each subcommand is a module of this package with `add_arguments(parser)` and `run(args)`; the
module imports only the standard library at its top, so `--help` answers at once, and `run`
imports torch and the rest. Commands that read a params file pin the CPU arithmetic
(`mygo.reproducible`, param `reproducible`) before torch loads.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from types import ModuleType

# subcommand -> module of this package, in the order `mygo --help` lists them
COMMANDS = {
    "init": "init",
    "validate-params": "check_params",
    "prepare": "prepare",
    "download-images": "download_images",
    "tokenize-images": "tokenize_images",
    "tokenize-text": "tokenize_text",
    "select-tokens": "select_tokens",
    "train": "train",
    "evaluate": "evaluate",
    "predict": "predict",
    "compare": "compare",
    "plots": "plots",
}


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions as written; every option's help ends with its default, where it has one."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "%(default)" in text or action.default in (None, False, argparse.SUPPRESS) or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)" if text else "(default: %(default)s)"


def _summary(module: ModuleType) -> str:
    """The module docstring's first paragraph, whole (after "command: "), for `mygo --help`."""
    paragraph = " ".join((module.__doc__ or "").strip().split("\n\n")[0].split())
    return paragraph.split(": ", 1)[-1]


def build_parser() -> argparse.ArgumentParser:
    from mygo import __version__
    parser = argparse.ArgumentParser(prog="mygo", description=__doc__,
                                     formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=f"mygo {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(f"mygo.cli.{module_name}")
        sub = commands.add_parser(name, help=_summary(module), description=module.__doc__,
                                  formatter_class=HelpFormatter)
        module.add_arguments(sub)
        sub.set_defaults(command=module, parser=sub)
    return parser


def execute(module: ModuleType, args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Run one command: check its arguments (a usage error exits 2), pin the CPU arithmetic as
    its params file says, then run it; errors at the boundary become one clear line and exit 1
    (`mygo.config.run_main`)."""
    from mygo.config import run_main

    problem = module.check(args) if hasattr(module, "check") else None
    if problem:
        parser.error(problem)

    def body() -> None:
        params = getattr(args, "params", None)
        if params is not None and getattr(module, "USES_TORCH", False):
            from mygo import reproducible
            reproducible.apply(reproducible.wanted(params))
            reproducible.check()
        module.run(args)

    run_main(body)


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "command"):
        parser.print_help()
        sys.exit(2)
    execute(args.command, args, args.parser)


def stage_main(module: ModuleType) -> None:
    """A stage script (`python stages/NAME.py ...`): the same command as `mygo NAME`."""
    parser = argparse.ArgumentParser(description=module.__doc__, formatter_class=HelpFormatter)
    module.add_arguments(parser)
    execute(module, parser.parse_args(), parser)
