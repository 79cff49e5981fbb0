"""What a training method is: a TRL Config and Trainer pair, plus how its stage's data is read or built.

A method is one module in this package and one line in ``tunegate.training.methods.METHODS``. The
pipeline asks the method for the stage's rows (``dataset``), the stage runner for its TRL classes::

    method = get_method("dpo")
    method.config_class()          # trl.DPOConfig (TRL is imported only here, when asked)
    rows, source = method.dataset({"builder": "identity", ...}, {}, context)
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping

from tunegate.core import progress


@dataclass(frozen=True)
class DataContext:
    """What a method's data step may use: the stage's input model, its directory, the eval settings."""

    model_dir: str = field(metadata={"help": "the stage's input checkpoint (a builder may generate with it)"})
    stage_dir: Path = field(metadata={"help": "the stage's directory; builders write what they built here"})
    where: str = field(metadata={"help": "config file and stage, for error messages"})
    seed: int = field(default=0, metadata={"help": "seed of the data order"})
    backend_options: Mapping[str, Any] = field(default_factory=dict,
                                               metadata={"help": "options of the backend a builder loads"})
    args: Mapping[str, Any] = field(default_factory=dict,
                                    metadata={"help": "the stage's TRL Config fields (the data's shape may depend on them)"})
    log: Callable[[str], None] = field(default=progress.log, metadata={"help": "where progress lines go"})


Rows = list[dict[str, Any]]


class Method(ABC):
    """One training method over TRL."""

    name: ClassVar[str]

    @abstractmethod
    def config_class(self) -> type:
        """The TRL Config dataclass whose fields a stage's ``args:`` may set."""

    @abstractmethod
    def trainer_class(self) -> type:
        """The TRL Trainer that trains the stage."""

    @abstractmethod
    def dataset(self, data: Any, options: Mapping[str, Any], ctx: DataContext) -> tuple[Rows, Any]:
        """The stage's training rows (TRL's format for this method) and a description of their source."""

    def check_data(self, data: Any, options: Mapping[str, Any], seed: int, where: str) -> None:
        """Fail fast on the stage's data before anything trains (no model runs here); default: nothing."""
