"""What a training method is: a TRL Config and Trainer pair, its own options, and how its stage's data is read or built.

A method is one module in this package and one line in ``tunegate.training.methods.METHODS``. It
declares its options once (``Options``, a frozen dataclass: a stage's ``options:`` in the YAML, checked
when the config is read and carried to every training process of a launch), builds its trainer's
keyword arguments from them (``trainer_kwargs``: a method that needs more than model, args and data,
as GRPO needs ``reward_funcs``, adds them there), and reads or builds the stage's rows (``dataset``)::

    method = get_method("dpo")
    method.config_class()          # trl.DPOConfig (TRL is imported only here, when asked)
    options = method.parse_options({}, "demo.yaml: stages[1].options")   # NoOptions()
    rows, source = method.dataset({"builder": "identity", ...}, {}, context)
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping

from tunegate.core import progress
from tunegate.core.typed_config import from_mapping
from tunegate.evals.spec import EvalSpec


@dataclass(frozen=True)
class NoOptions:
    """A method without options of its own (its TRL Config's fields are the stage's ``args:``)."""


@dataclass(frozen=True)
class DataContext:
    """What a method's data step may use: the stage's input model, its directory, the evaluation's backend."""

    model_dir: str = field(metadata={"help": "the stage's input checkpoint (a builder may generate with it)"})
    stage_dir: Path = field(metadata={"help": "the stage's directory; builders write what they built here"})
    where: str = field(metadata={"help": "config file and stage, for error messages"})
    seed: int = field(default=0, metadata={"help": "seed of the data order"})
    eval: EvalSpec = field(default_factory=EvalSpec, metadata={
        "help": "the stage's EvalSpec: the backend, and its options, a builder generates with"})
    args: Mapping[str, Any] = field(default_factory=dict,
                                    metadata={"help": "the stage's TRL Config fields (the data's shape may depend on them)"})
    log: Callable[[str], None] = field(default=progress.log, metadata={"help": "where progress lines go"})
    options: Any = field(default=None, metadata={"help": "the method's own options (its Options), as parsed"})


Rows = list[dict[str, Any]]
#: TRL Config fields every stage's manifest keeps, given or defaulted (a method adds its own: ``recorded``).
RECORDED = ("learning_rate", "num_train_epochs", "max_steps", "per_device_train_batch_size",
            "gradient_accumulation_steps", "max_length", "seed")


class Method(ABC):
    """One training method over TRL."""

    name: ClassVar[str]
    #: The method's own options (a frozen dataclass with a default for every field and help metadata).
    Options: ClassVar[type] = NoOptions
    #: The Config fields the stage's manifest keeps whether the stage set them or the defaults ran.
    recorded: ClassVar[tuple[str, ...]] = RECORDED

    @abstractmethod
    def config_class(self) -> type:
        """The TRL Config dataclass whose fields a stage's ``args:`` may set."""

    @abstractmethod
    def trainer_class(self) -> type:
        """The TRL Trainer that trains the stage."""

    def parse_options(self, data: Mapping[str, Any], where: str) -> Any:
        """The stage's ``options:`` as this method's ``Options``; an unknown or mistyped one names ``where``."""
        return from_mapping(self.Options, data, where)

    def check_config(self, options: Any, data: Any, where: str) -> None:
        """What the stage's options ask of its data, checked when the config is read (nothing is loaded here:
        GRPO's rewards must score the suites its prompts come from); the default checks nothing."""

    def trainer_kwargs(self, options: Any, **common: Any) -> dict[str, Any]:
        """The trainer's keyword arguments: ``common`` (model, args, train_dataset, processing_class,
        peft_config) plus what the method's options add; the default adds nothing."""
        return common

    @abstractmethod
    def dataset(self, data: Any, data_options: Mapping[str, Any], ctx: DataContext) -> tuple[Rows, Any]:
        """The stage's training rows (TRL's format for this method) and a description of their source."""

    def check_data(self, data: Any, data_options: Mapping[str, Any], seed: int, where: str) -> None:
        """Fail fast on the stage's data before anything trains (no model runs here): read it and check its
        fields, so a bad file is found in seconds, not after the evaluation before the stage."""


def options_dict(options: Any) -> dict[str, Any]:
    """A method's options as JSON (the manifest keeps them; a launch carries them to every process)."""
    return dataclasses.asdict(options)
