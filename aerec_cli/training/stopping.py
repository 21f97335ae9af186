"""How a training stops before its end: the signals that ask it to (Ctrl-C, SIGTERM), and the
one line that says what happened and what was kept."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from aerec_cli.errors import AerecError
from aerec_cli.storage import atomic

if TYPE_CHECKING:
    from aerec_cli.training.session import TrainingStopped


@contextlib.contextmanager
def stop_on_signals() -> Iterator[Callable[[], bool]]:
    """Within the block, the first SIGINT or SIGTERM asks training to stop after the current
    epoch (its state is saved); a second one stops at once (KeyboardInterrupt)."""
    requested = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield requested.is_set  # signals reach the main thread only: nothing to install
        return

    def handle(signum, frame):
        if requested.is_set():
            raise KeyboardInterrupt
        requested.set()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield requested.is_set
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def stopped_error(
    stopped: TrainingStopped,
    run: str | None,
    *,
    unsaved: OSError | None = None,
    earlier: bool = False,
) -> AerecError:
    """What a stopped training says. ``run``: the run that keeps its state (None: nothing
    worth saving). ``unsaved``: why saving it failed; ``earlier``: the run then still holds
    its state from before this training (a resumed run)."""
    trainer = stopped.trainer
    if unsaved is not None:
        why, remedy = atomic.write_failure(unsaved)
        what = "interrupted" if stopped.reason == "interrupted" else "diverged"
        kept = (
            f"run {run} keeps its earlier state: {remedy}, then aerec train --resume {run}"
            if earlier
            else f"nothing was saved: {remedy} and train again"
        )
        return AerecError(
            f"training {what}, and run {run} could not be saved: {why}; {kept}",
            exit_code=130 if stopped.reason == "interrupted" else 2,
        )
    if stopped.reason == "interrupted":
        pretraining = trainer.pretraining
        when = (
            f"after epoch {trainer.epoch}"
            if pretraining.done
            else f"in pretraining, after epoch {pretraining.epoch} of layer {pretraining.layer + 1}"
        )
        if trainer.member is not None:
            when += f" of member {trainer.member + 1} of {trainer.members}"
        return AerecError(
            f"interrupted {when}; run {run} keeps it. Continue with: aerec train --resume {run}"
            if run
            else "interrupted; train again",
            exit_code=130,
        )
    kept = (
        f"; the best weights so far (epoch {trainer.best_epoch}, validation RMSE "
        f"{trainer.best_rmse:.4f}) are saved in run {run}"
        if run and trainer.best_state is not None
        else ""
    )
    return AerecError(
        f"training diverged at epoch {trainer.epoch} (the loss became NaN or infinite): the "
        f"learning rate is likely too high for this data; lower --lr (now {trainer.config.lr:g})"
        f" or raise --weight-decay{kept}"
    )
