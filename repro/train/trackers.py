"""Experiment trackers (W&B, TensorBoard) for training runs: the original trainer logged to W&B.

`report_to` comes from the recipe (a list; alignment-handbook configs' `report_to`) or from
`--report-to wandb,tensorboard,none` (default: none). Only rank 0 reports (the worker gives
the other ranks an empty list). Where the trackers write, inside the run directory:
- TensorBoard: RUN/tensorboard (TENSORBOARD_LOGGING_DIR), tags as the Trainer names them
  (train/rewards/margins, ...);
- W&B: RUN/wandb (WANDB_DIR, unless the user set it), project $WANDB_PROJECT or "repro";
  WANDB_MODE=offline keeps the run local (`wandb sync` uploads it later).
The tracker's run name, URL (None offline) and directory go into metrics.json and the run
manifest. Keys stay in the environment: nothing here writes one.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from repro.errors import ReproError

# The names (TRACKERS) and the check of a report_to value (parse_report_to) live with the
# recipes that name them, in repro.config.settings; this module runs them.
PACKAGES = {"wandb": "wandb", "tensorboard": "tensorboard"}


def check_installed(report_to: list[str]) -> None:
    for name in report_to:
        if importlib.util.find_spec(PACKAGES[name]) is None:
            raise ReproError(
                f"report_to {name} needs the {PACKAGES[name]} package (pip install {PACKAGES[name]}), "
                "or pass --report-to none"
            )


def environment(report_to: list[str], run_dir: Path, current: dict[str, str]) -> dict[str, str]:
    """Environment variables the training processes need for these trackers."""
    env: dict[str, str] = {}
    if "tensorboard" in report_to:
        env["TENSORBOARD_LOGGING_DIR"] = str(run_dir / "tensorboard")
    if "wandb" in report_to:
        env["WANDB_DIR"] = current.get("WANDB_DIR") or str(run_dir)
        env["WANDB_PROJECT"] = current.get("WANDB_PROJECT") or "repro"
    return env


def run_name(config) -> str:
    """The tracker's run name for a RunConfig: setting, method and run id."""
    return f"{config.setting}-{config.method}-{config.run_id}"


def finish(trainer) -> dict[str, Any]:
    """Close the trackers of a finished Trainer (rank 0) and say where their runs are.

    The worker leaves through os._exit, so buffered event files and the W&B run must be
    closed here, not by atexit hooks."""
    # deferred: transformers takes about 1 s to import
    from transformers.integrations import TensorBoardCallback, WandbCallback

    args = trainer.args
    info: dict[str, Any] = {"report_to": list(args.report_to or []), "run_name": args.run_name}
    for callback in trainer.callback_handler.callbacks:
        if isinstance(callback, TensorBoardCallback):
            if callback.tb_writer is not None:
                callback.tb_writer.close()
                callback.tb_writer = None
            info["tensorboard"] = {"dir": callback.logging_dir}
        elif isinstance(callback, WandbCallback) and callback._wandb is not None:
            run = callback._wandb.run
            if run is not None:
                info["wandb"] = {
                    "name": run.name,
                    "id": run.id,
                    "project": run.project,
                    "url": None if run.offline else _url(run),
                    "dir": str(Path(run.dir).parent),
                    "mode": "offline" if run.offline else "online",
                }
            callback._wandb.finish()
    return info


def _url(run) -> str | None:
    try:
        return run.url
    except Exception:  # noqa: BLE001 - offline runs have no URL (some versions raise)
        return None
