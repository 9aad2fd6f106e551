"""environment: the run's manifest against the paper's evaluation stack, the paper's pins and the lock."""

from __future__ import annotations

from typing import Any

from repro import hashing
from repro.runs.analysis.diagnosis.base import Check, in_chain, rules, unknown
from repro.runs.analysis.diagnosis.inputs import Inputs
from repro.stack import environment, lockfile


def _version(packages: dict[str, str], names: list[str]) -> tuple[str | None, str | None]:
    for name in names:
        if name in packages:
            return name, packages[name]
    return None, None


@in_chain("environment", order=2)
def check(inputs: Inputs) -> Check:
    env = inputs.manifest.environment if inputs.manifest else None
    if not isinstance(env, dict) or not isinstance(env.get("packages"), dict):
        why = inputs.need("manifest.json") or "no environment manifest (results made outside repro)"
        return unknown("environment", f"cannot compare the environment: {why}")

    packages: dict[str, str] = env["packages"]
    wanted = rules()["evaluation_packages"]
    result = Check("environment")
    evidence: dict[str, Any] = {"lock": env.get("lock"), "lockfile_sha256": env.get("lockfile_sha256")}
    # alpaca-eval: the one version the published numbers hold under
    ae = wanted["alpaca-eval"]
    have = packages.get("alpaca-eval")
    evidence["alpaca-eval"] = {"run": have, "published": ae["version"]}
    if have is None:
        evidence["alpaca-eval"]["note"] = "not installed: AlpacaEval 2 was not run through alpaca-eval"
    elif environment.public_version(have) != ae["version"]:
        result.differs(
            f"alpaca-eval {have} in the manifest, not {ae['version']}: {' '.join(ae['why'].split())}", 85
        )
    name, vllm = _version(packages, wanted["vllm"]["names"])
    evidence["vllm"] = {
        "run": f"{name} {vllm}" if vllm else None,
        "note": " ".join(wanted["vllm"]["why"].split()),
    }
    # the stack against the lock the run was made with, and against the paper's environment.yml
    try:
        locked = lockfile.read(env.get("lock")).versions() if env.get("lock") else {}
    except Exception:  # noqa: BLE001 - a lock name this checkout does not have
        locked = {}
    paper = {lockfile.normalize(k): str(v) for k, v in environment.paper_pins().get("pins", {}).items()}
    evidence["stack"] = {
        pkg: {"run": packages.get(pkg), "lock": locked.get(pkg), "paper": paper.get(pkg)}
        for pkg in rules()["stack"]
        if packages.get(pkg) or locked.get(pkg) or paper.get(pkg)
    }
    drift = [d for d in env.get("lock_drift") or [] if d.get("status") in ("differs", "missing", "modified")]
    evidence["lock_drift"] = drift
    if drift:
        named = ", ".join(
            f"{d['package']} {d.get('installed')} (lock {d.get('expected')}, {d['status']})"
            for d in drift[:8]
        )
        more = f" and {len(drift) - 8} more" if len(drift) > 8 else ""
        result.differs(
            f"the environment drifted from the {env.get('lock')} lock: {named}{more}",
            30 + min(len(drift), 10),
        )
    current = hashing.file_sha256_or_none(lockfile.resolve(env["lock"])) if env.get("lock") else None
    if current and env.get("lockfile_sha256") and current != env["lockfile_sha256"]:
        evidence["lock_changed_since_run"] = True
    result.evidence = evidence
    if result.status == "ok":
        result.summary = (
            f"alpaca-eval {have or 'not installed'}, {evidence['vllm']['run'] or 'no vLLM'}; "
            f"no drift from the {env.get('lock')} lock"
        )
    else:
        result.summary = "; ".join(c.summary.split(":")[0] for c in result.causes)
    return result
