"""Sweep results in `repro compare`: the grid as a table and heat maps, the best point per
benchmark against the published number. Oracle: the best points and differences below are
worked out by hand from the scores written into the runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from repro import io
from repro.runs.analysis import grid

# llama3-instruct-v0.2 x simpo is published as AE2 LC 53.7, AE2 WR 47.5, Arena-Hard 36.5
POINTS = [  # (lr, beta, seed, ae2_lc, ah)
    (5e-7, 2.5, 1, 50.0, 30.0),
    (5e-7, 2.5, 2, 52.0, 32.0),  # two seeds of one point: averaged (51.0, 31.0)
    (5e-7, 10.0, 1, 49.0, 38.0),  # best Arena-Hard: 38.0 vs 36.5 -> +1.5
    (1e-6, 2.5, 1, 54.5, 35.0),  # best AE2 LC: 54.5 vs 53.7 -> +0.8
    (1e-6, 10.0, 1, 47.0, 33.0),
]


def make_runs(results: Path) -> None:
    for i, (lr, beta, seed, lc, ah) in enumerate(POINTS):
        run = results / "llama3-instruct-v0.2" / "simpo" / f"{i:010x}-seed{seed}"
        run.mkdir(parents=True)
        io.write_json(
            run / "result.json",
            {"setting": "llama3-instruct-v0.2", "method": "simpo", "run_id": run.name, "seed": seed,
             "scores": {"ae2_lc": lc, "ah": ah}, "complete": True},
        )  # fmt: skip
        config = {"learning_rate": lr, "hyperparameters": {"beta": beta, "gamma_beta_ratio": 0.3}}
        io.write_json(run / "manifest.json", {"config": config})


def test_grid_best_points_against_published(tmp_path):
    results = tmp_path / "results"
    make_runs(results)
    (sweep,) = grid.sweeps(results)
    assert sweep.axes == ["learning_rate", "beta"]  # gamma/beta is the same everywhere
    assert len(sweep.points) == 4
    best = {item["metric"]: item for item in sweep.summary()}
    assert best["ae2_lc"]["best"] == {"learning_rate": 1e-6, "beta": 2.5, "gamma_beta_ratio": 0.3}
    assert best["ae2_lc"]["published"] == 53.7 and abs(best["ae2_lc"]["delta"] - 0.8) < 1e-9
    assert best["ah"]["best"]["beta"] == 10.0 and abs(best["ah"]["delta"] - 1.5) < 1e-9
    assert sweep.points[0].score("ae2_lc") == 51.0  # the two seeds averaged


@pytest.mark.e2e
def test_compare_shows_the_grid_and_writes_heat_maps(cli, tmp_path):
    results = tmp_path / "results"
    make_runs(results)
    proc = cli("compare", str(results), "--plot", str(tmp_path / "cmp.png"), check=True)
    out = " ".join(proc.stdout.split())
    assert out.index("Reproduced vs published") < out.index("sweep llama3-instruct-v0.2 x simpo: 4 points")
    assert "54.50 *" in out and "38.00 *" in out
    assert "best AE2 LC: 54.50 at lr=1e-06 beta=2.5 vs published 53.70 (+0.80)" in out
    for metric in ("ae2_lc", "ah"):
        image = tmp_path / f"cmp-grid-llama3-instruct-v0.2-simpo-{metric}.png"
        assert image.read_bytes()[:4] == b"\x89PNG"
    data = json.loads(cli("compare", str(results), "--format", "json", check=True).stdout)
    assert data["sweeps"][0]["best"][0]["metric"] == "ae2_lc" and len(data["sweeps"][0]["points"]) == 4


def test_one_point_is_not_a_sweep(tmp_path):
    make_runs(tmp_path / "r")
    for run in list((tmp_path / "r" / "llama3-instruct-v0.2" / "simpo").iterdir())[1:]:
        (run / "result.json").unlink()
    assert grid.sweeps(tmp_path / "r") == []


def test_the_grid_groups_replicates_as_compare_does(tmp_path):
    """Issue 32, 1.2: the grid grouped by hyperparameters only. Two seeds and a --max-steps run
    of the recipe were one cell (the mean of all three), and a `beta=5 --max-steps 2` run was
    drawn as the beta=5 cell. Now a point is one replicate group; what differs in anything but
    the swept values is left off the grid, and said."""
    from tests.test_trust import ENDPOINT, RULE, published_cell, write_run

    write_run(tmp_path, "seed42", delta=0.4)
    write_run(tmp_path, "seed43", overrides=("seed=43",), delta=-0.2)
    write_run(tmp_path, "two-steps", max_steps=2, steps=2, delta=-30.0)
    write_run(tmp_path, "beta5", overrides=("beta=5",), delta=-8.0)
    write_run(tmp_path, "beta5-two-steps", overrides=("beta=5",), max_steps=2, steps=2, delta=-40.0)
    write_run(tmp_path, "rule-judged", judge=RULE, delta=40.0)
    (sweep,) = grid.sweeps(tmp_path)
    assert sweep.axes == ["beta"]
    by_beta = {p.values["beta"]: p for p in sweep.points}
    assert sorted(by_beta) == [5.0, 10.0] and ENDPOINT.kind == "endpoint"
    recipe, beta5 = by_beta[10.0], by_beta[5.0]
    assert recipe.score("ae2_lc") == pytest.approx(published_cell("ae2_lc") + 0.1)  # the two seeds
    assert beta5.score("ae2_lc") == pytest.approx(published_cell("ae2_lc") - 8.0)
    assert recipe.runs == 2 and beta5.runs == 1
    left = {Path(run).name: why for run, why in sweep.left_out}
    assert left == {
        "two-steps": "truncated: 2 of 468 steps",
        "beta5-two-steps": "truncated: 2 of 468 steps",
        "rule-judged": "judge.kind rule",
    }
    assert sweep.as_dict()["left_out"][0]["differs"].startswith("truncated")


def test_one_pipelines_points_are_one_grid_whatever_they_share_against_the_recipe(tmp_path):
    """`repro sweep --launcher slurm --gpus 1 --bench ...`: every point differs from the recipe in
    its layout and benchmarks, so compare's rule left all of them off and the judging job wrote no
    grid. The pipeline's own points (`only`) are one sweep; a truncated one still is not a point."""
    from tests.test_trust import write_run

    shared = ("warmup_ratio=0.2",)  # what every point of this pipeline has and the recipe has not
    runs = [
        write_run(tmp_path, "beta10", overrides=shared),
        write_run(tmp_path, "beta5", overrides=(*shared, "beta=5"), delta=-8.0),
        write_run(tmp_path, "beta2-two-steps", overrides=(*shared, "beta=2"), max_steps=2, steps=2),
    ]
    assert grid.sweeps(tmp_path) == []  # against the recipe, all three are off the grid
    (sweep,) = grid.sweeps(tmp_path, only={r.resolve() for r in runs})
    assert sorted(p.values["beta"] for p in sweep.points) == [5.0, 10.0]
    assert [Path(run).name for run, _ in sweep.left_out] == ["beta2-two-steps"]
