"""What the comparison measures of the machine: the throughput a family lost to other processes,
the warning above 25%, and the budget's clock."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from trilemma.compare import contention
from trilemma.compare.contention import MachineMonitor, Window, warnings
from trilemma.compare.machine_section import render, render_warnings


def test_a_window_charges_what_others_took_against_our_fair_share():
    window = Window()
    # 3 of our processes on 2 cores for 10 s: they could have had 20 CPU-s; they got 15, a hog 5.
    window.add(ours=15.0, others=5.0, wall=10.0, cores=2, our_processes=3)
    # Then one process alone for 10 s on an idle machine: all 10 CPU-s it could use.
    window.add(ours=10.0, others=0.0, wall=10.0, cores=2, our_processes=1)
    report = window.to_json()
    assert report["throughput_loss"] == pytest.approx(1 - 25 / 30)
    assert report["others_cpu_fraction"] == pytest.approx(5 / 40)


def test_the_monitor_reads_the_machine_between_ticks(monkeypatch):
    readings = iter([(100.0, 0.0), (120.0, 0.0), (140.0, 0.0)])  # busy CPU-s since boot
    monkeypatch.setattr(contention, "machine_busy_seconds", lambda: next(readings))
    clock = iter([0.0, 10.0, 20.0])
    monkeypatch.setattr(contention, "time", SimpleNamespace(perf_counter=lambda: next(clock)))
    monitor = MachineMonitor(cores=2)
    monitor.tick(0.0, ["vae-0"], 2)
    monitor.tick(20.0, ["vae-0", "gan-0"], 2)  # ours took all 20: nobody else
    monitor.tick(30.0, ["vae-0"], 2)  # ours 10 of the 20 busy: a hog took 10
    vae, gan = monitor.report("vae-0"), monitor.report("gan-0")
    assert gan["throughput_loss"] == pytest.approx(0.0) and gan["others_cpu_fraction"] == 0.0
    assert vae["throughput_loss"] == pytest.approx(1 - 30 / 40)
    assert vae["others_cpu_fraction"] == pytest.approx(10 / 40)
    assert monitor.report("diffusion-0")["throughput_loss"] is None


def _record(family, loss, others=0.3):
    return {"family": family, "seed": 0, "training": {"steps": 1234},
            "contention": {"throughput_loss": loss, "others_cpu_fraction": others,
                           "matmul_gflops_before": 40.0, "matmul_gflops_after": 45.0, "load_average_after": 3.2}}


def test_a_family_that_lost_more_than_a_quarter_is_named_with_its_figures():
    lines = warnings([_record("vae", 0.20), _record("diffusion", 0.40)], calibration=90.0)
    assert len(lines) == 1
    assert lines[0].startswith("diffusion (seed 0) trained on a busy machine: its processes got 60%")
    assert "1234 steps" in lines[0] and "40 GFLOP/s before" in lines[0] and "against 90" in lines[0]
    assert "what an idle machine gives" in lines[0]


def test_a_calibration_measured_under_the_same_load_is_not_called_what_an_idle_machine_gives():
    busy = _record("gan", 0.40)
    busy["training"]["budget"] = {"steps": 1234, "calibration": {"cached": False, "others_cpu_fraction": 0.45}}
    calm = _record("vae", 0.40)
    calm["training"]["budget"] = {"steps": 1234, "calibration": {"cached": True, "others_cpu_fraction": 0.01}}
    busy_line, calm_line = warnings([busy, calm], calibration=90.0)
    assert "calibration was measured on this busy machine too (other processes took 45%)" in busy_line
    assert "what an idle machine gives" not in busy_line and "what an idle machine gives" in calm_line


def test_the_report_opens_with_the_warning_and_shows_the_machine():
    records = [_record("vae", 0.40)]
    results = {"warnings": warnings(records, 90.0), "matmul_peak_gflops": 90.0,
               "settings": {"seconds": 300.0, "steps": None},
               "families": {"vae": {"seeds": [{"seed": 0, "train_seconds": 300.0}],
                                    "training_provenance": {"clock": "cpu"},
                                    "contention": [{"seed": 0, **records[0]["contention"],
                                                    "train_wall_seconds": 700.0}]}}}
    assert 'id="machine-warning"' in render_warnings(results) and "vae (seed 0)" in render_warnings(results)
    table = render(results)
    assert "CPU-seconds" in table and ">40<" in table and ">700<" in table
    results["warnings"] = []
    results["families"]["vae"]["contention"][0]["throughput_loss"] = 0.02
    assert render_warnings(results) == ""  # a quiet machine: nothing above the title


def test_training_runs_on_one_thread_and_records_cpu_and_wall_time(tmp_path):
    import torch

    from trilemma.data import load_data
    from trilemma.training import Budget, train

    threads = torch.get_num_threads()
    result = train("vae", load_data("ring8"), tmp_path / "run", budget=Budget(steps=30), progress=False,
                   device="cpu", overrides={"mlp_width": 16})
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["budget"]["clock"] == "cpu" and config["threads"] == 1
    assert result.clock == "cpu" and result.seconds > 0 and result.wall_seconds > 0
    assert torch.get_num_threads() == threads  # the caller's setting is put back
