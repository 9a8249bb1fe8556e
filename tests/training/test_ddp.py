"""Two CPU processes with the gloo backend, started by torchrun, train on tiny data."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from .conftest import tiny_config


@pytest.mark.slow
def test_torchrun_two_processes_gloo(tiles, tmp_path):
    cfg = tiny_config(tiles, epochs=1, batch_size=2, max_steps_per_epoch=2)
    cfg_path = tmp_path / "tiny.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    run = tmp_path / "run"
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "training.cli",
            "fit",
            "--config",
            str(cfg_path),
            "--run-dir",
            str(run),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=240,
        env={**__import__("os").environ, "OMP_NUM_THREADS": "1"},
    )
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["world_size"] == 2
    # DDP averages gradients: both processes must end with the same parameters
    sums = [float((run / f"checksum_rank{r}.txt").read_text()) for r in (0, 1)]
    assert sums[0] == sums[1]
    assert (run / "best.pt").is_file()
