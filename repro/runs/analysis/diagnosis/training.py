"""training: held-out reward accuracy and loss; the curves against a released run when given."""

from __future__ import annotations

from repro.errors import ReproError
from repro.runs.analysis import curves
from repro.runs.analysis.diagnosis.base import Check, in_chain, unknown
from repro.runs.analysis.diagnosis.inputs import Inputs
from repro.runs.results.result import Training
from repro.train.outcome import TrainingOutcome

CHANCE = 0.5  # held-out reward accuracy of a model that has not learned the preference


def _held_out(inputs: Inputs) -> Training | None:
    training = inputs.result.training if inputs.result else None
    if training is not None and training.held_out_reward_accuracy is not None:
        return training
    if inputs.run_dir is None:
        return None
    root = next((d for d in (inputs.run_dir, *inputs.run_dir.parents) if (d / "train").is_dir()), None)
    if root is None:
        return None
    try:
        outcome = TrainingOutcome.read(root / "train")
    except ReproError:  # not a metrics file this repro reads: no held-out numbers from it
        return None
    if outcome is None:
        return None
    return Training(held_out_reward_accuracy=outcome.held_out_accuracy, held_out_loss=outcome.held_out_loss)


@in_chain("training", order=4)
def check(inputs: Inputs) -> Check:
    if inputs.run_dir is None:
        return unknown(
            "training",
            "no training to check: results made elsewhere hold only answers "
            "(evaluate the released checkpoint with `repro eval` to separate training from evaluation)",
        )
    if inputs.checkpoint:
        return unknown("training", "no training to check: a `repro eval` of a checkpoint trained elsewhere")
    held = _held_out(inputs)
    result = Check("training")
    if held is None:
        why = inputs.need("result.json") or "no held-out metrics (train/metrics.json not found)"
        return unknown("training", f"cannot check training: {why}")
    accuracy, loss = held.held_out_reward_accuracy, held.held_out_loss
    result.evidence = {
        "held_out_reward_accuracy": accuracy,
        "held_out_loss": loss,
        "steps": held.steps,
    }
    extent = (inputs.result.training if inputs.result else None) or Training()
    if accuracy is not None and accuracy <= CHANCE and not extent.full:
        return unknown(
            "training",
            f"training stopped at {extent.steps} of {extent.recipe_steps} steps "
            f"(--max-steps): too short to say whether it learns (held-out reward accuracy {accuracy:.3f})",
            **result.evidence,
        )
    if accuracy is not None and accuracy <= CHANCE:
        result.differs(
            f"training did not learn the preference: held-out reward accuracy {accuracy:.3f} "
            f"(chance {CHANCE})",
            50,
        )
    summary = (
        f"held-out reward accuracy {accuracy:.3f}, loss {loss:.4g}"
        if accuracy is not None
        else "no held-out accuracy"
    )
    if inputs.curves_path is not None:
        try:
            root = next(
                (d for d in (inputs.run_dir, *inputs.run_dir.parents) if (d / "train").is_dir()),
                inputs.run_dir,
            )
            report = curves.compare(curves.read_run(root), curves.read_published(inputs.curves_path))
        except ReproError as exc:
            result.evidence["curves"] = {"error": str(exc)}
            return _finish(result, summary + f"; curves not compared: {exc}")
        result.evidence["curves"] = report.as_dict()
        for m in report.outside():
            x = "step" if report.align == "step" else "epoch"
            result.differs(
                f"training curve {m.metric} leaves the released run's band at {x} {m.first_outside:g} "
                f"(max deviation {m.max_abs_deviation:.3g}, band {m.tolerance:.3g})",
                45,
            )
        inside = [m.metric for m in report.metrics if m.status == "within"]
        outside = len(report.outside())
        summary += f"; curves vs {inputs.curves_path.name}: {len(inside)} within the band, {outside} outside"
    else:
        summary += "; no released curves given (--curves)"
    return _finish(result, summary)


def _finish(result: Check, summary: str) -> Check:
    result.summary = summary if result.status == "ok" else "; ".join(c.summary for c in result.causes)
    return result
