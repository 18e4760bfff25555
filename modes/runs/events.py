"""What a training reports, as types: a step, a held-out measurement, a generated sample, and its result.

Each training's compute yields these (pre-training and fine-tuning alike); run_job adds the queue's
own (Queued, Left, Replaying); one loop, `follow.fold`, folds every kind into the learner's run.
"""

from __future__ import annotations

from dataclasses import dataclass

from modes.codec import recordable


@recordable
@dataclass
class Step:
    """One optimizer step done."""

    step: int
    steps: int  # of the run
    loss: float  # this step's training loss
    elapsed: float  # seconds since training began
    eta: float  # seconds left, estimated
    rate: float  # tokens/s (pre-training) or pairs/s (fine-tuning)


@recordable
@dataclass
class Eval:
    """A held-out loss, measured after `step` updates (0: before training)."""

    step: int
    loss: float


@recordable
@dataclass
class Sample:
    """Text the model generated after `step` updates."""

    step: int
    text: str


class Done:
    """Base of a training's result (PretrainResult, FtResult): the last event a compute yields."""

    stopped: bool = False


@dataclass
class Queued:
    """Waiting for the training slot: place in the queue (1 = next) and the estimated wait."""

    position: int
    wait: float


@dataclass
class Left:
    """The learner left the queue before the run started."""


@dataclass
class Replaying:
    """An identical recorded run is streamed back instead of computed (its Recording)."""

    recording: object
