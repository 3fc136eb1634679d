"""The options of ``options.py``, as ``run_all.py``'s arguments and as a notebook's ``options`` dictionary.

Every option is a field of ``ProfileOverrides``, ``DataSources`` or ``RunOptions`` with its help text;
this module derives the rest from those fields, as transformers' ``HfArgumentParser`` does for
``TrainingArguments``: the command-line flags (``--max-train-examples`` for ``max_train_examples``),
the dictionary ``run_all.py`` injects into each notebook's ``parameters`` cell (only the options
given), and the values ``notebook_setup`` builds from it, checked by the dataclasses themselves.
A new field reaches the command line and every notebook by itself.
"""
from __future__ import annotations

import argparse
import dataclasses
import re
import typing
from dataclasses import dataclass
from typing import Any

from .. import options as declared
from ..config import ConfigError

GROUPS = {"ProfileOverrides": "overrides of the profile (for pilots of a big profile; any profile)",
          "DataSources": "where data and caches live",
          "RunOptions": "how the runs execute (docs/scale-out.md: many GPUs or machines)"}


@dataclass(frozen=True)
class Option:
    """One declared option: its field and the dataclass that owns it."""
    owner: type
    spec: dataclasses.Field

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def hint(self) -> Any:
        """The field's annotation, without None (``int | None`` -> ``int``)."""
        hint = typing.get_type_hints(self.owner)[self.name]
        parts = [a for a in typing.get_args(hint) if a is not type(None)] if typing.get_args(hint) else [hint]
        return parts[0] if len(parts) == 1 else hint


def option_fields() -> list[Option]:
    """Every option, in declaration order: the profile overrides, the data sources, the run options
    (``RunOptions.sources`` stands for the ``DataSources`` fields). Read at call time, so a field added
    to the classes (or a subclass put in their place) is found."""
    found = []
    for owner in (declared.ProfileOverrides, declared.DataSources, declared.RunOptions):
        found += [Option(owner, spec) for spec in dataclasses.fields(owner) if spec.name != "sources"]
    return found


def _argument(option: Option) -> dict:
    """``add_argument`` keywords for ``option``: from its metadata, else from its annotation."""
    meta, hint = option.spec.metadata, option.hint()
    kwargs: dict[str, Any] = {"help": meta.get("help", ""), "default": None}
    if hint is bool:  # "--force"; a default-True switch gets "--no-progress" too
        default = option.spec.default
        return {**kwargs, "action": argparse.BooleanOptionalAction if default is True else "store_true",
                "default": default}
    element = hint
    if meta.get("many") or typing.get_origin(hint) in (tuple, list):
        kwargs["nargs"] = "+"
        element = (typing.get_args(hint) or (str,))[0]
    kwargs["type"] = meta.get("type") or (element if element in (int, float) else None)
    for key in ("metavar", "choices"):
        if key in meta:
            kwargs[key] = meta[key]
    return {k: v for k, v in kwargs.items() if v is not None or k == "default"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per option, grouped by the dataclass that declares it."""
    groups: dict[str, argparse._ArgumentGroup] = {}
    for option in option_fields():
        title = GROUPS.get(option.owner.__name__, option.owner.__name__)
        group = groups.setdefault(title, parser.add_argument_group(title))
        group.add_argument(option.flag, dest=option.name, **_argument(option))


def given(args: argparse.Namespace | dict) -> dict:
    """The options given on the command line (neither None nor a switch at its default), by name:
    what ``run_all.py`` injects as a notebook's ``options``."""
    values = vars(args) if isinstance(args, argparse.Namespace) else args
    chosen = {}
    for option in option_fields():
        value = values.get(option.name)
        default = option.spec.default if option.hint() is bool else None
        if value is not None and value != default:
            chosen[option.name] = list(value) if isinstance(value, tuple) else value
    return chosen


def build(options: dict | None = None, default_workers: int | str = "auto"
          ) -> tuple[declared.ProfileOverrides, declared.RunOptions]:
    """The overrides and the run options from an ``options`` dictionary (a notebook's, or ``given``'s),
    checked by the dataclasses (ConfigError names the option). ``workers`` left out: ``default_workers``."""
    values = dict(options or {})
    known = {option.name: option for option in option_fields()}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(f"unknown option{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
                          f"the options are {', '.join(known)} (python run_all.py --help)")
    by_owner: dict[str, dict] = {"ProfileOverrides": {}, "DataSources": {}, "RunOptions": {}}
    for name, value in values.items():
        if value is not None:
            by_owner[known[name].owner.__name__][name] = value
    run = by_owner["RunOptions"]
    run.setdefault("workers", default_workers)
    return (declared.ProfileOverrides(**by_owner["ProfileOverrides"]),
            declared.RunOptions(sources=declared.DataSources(**by_owner["DataSources"]), **run))


def as_flags(message: str) -> str:
    """A ConfigError's message with each option's first mention written as its flag
    ("ray_address ... need backend ray" -> "--ray-address ... need --backend ray")."""
    for option in option_fields():
        message = re.sub(rf"(?<![-\w'\"]){option.name}(?![\w'\"])", option.flag, message, count=1)
    return message
