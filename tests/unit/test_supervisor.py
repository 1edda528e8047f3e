"""scripts/supervise.sh, the restart-with-back-off loop `make run` puts around every process."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def supervise(tmp_path: Path, command: str) -> subprocess.Popen[str]:
    script = f'source "{ROOT}/scripts/supervise.sh"; supervise demo sh -c {command!r}'
    return subprocess.Popen(
        ["bash", "-c", script], cwd=tmp_path, stderr=subprocess.PIPE, text=True, env={"PATH": "/usr/bin:/bin"}
    )


def test_a_process_that_dies_is_restarted_with_a_growing_back_off(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    supervisor = supervise(tmp_path, f"date +%s.%N >> {runs}; exit 3")
    time.sleep(3.6)  # starts at 0, 1, 1+2 = 3 s
    supervisor.send_signal(signal.SIGTERM)
    _, errors = supervisor.communicate(timeout=5)
    starts = [float(line) for line in runs.read_text().split()]
    assert len(starts) == 3, starts
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    assert 0.9 < gaps[0] < 1.5 and 1.9 < gaps[1] < 2.5, gaps
    assert "demo exited with code 3; restarting in 1s" in errors and "restarting in 2s" in errors
    assert supervisor.returncode == 0


def test_terminating_the_supervisor_stops_its_process(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    supervisor = supervise(tmp_path, f"echo $$ > {pid_file}; exec sleep 300")
    for _ in range(50):
        if pid_file.exists() and pid_file.read_text().strip():
            break
        time.sleep(0.1)
    child = int(pid_file.read_text())
    supervisor.send_signal(signal.SIGTERM)
    supervisor.wait(timeout=5)
    time.sleep(0.2)
    assert subprocess.run(["kill", "-0", str(child)], capture_output=True).returncode != 0  # gone, not restarted


def test_make_run_refuses_several_rasa_replicas_without_shared_locks() -> None:
    result = subprocess.run(
        ["bash", str(ROOT / "scripts/run-stack.sh")],
        env={"PATH": "/usr/bin:/bin", "RASA_REPLICAS": "2", "REDIS_URL": ""},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2 and "RASA_REPLICAS=2 needs REDIS_URL" in result.stderr
    bad = subprocess.run(
        ["bash", str(ROOT / "scripts/run-stack.sh")],
        env={"PATH": "/usr/bin:/bin", "RASA_REPLICAS": "two"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert bad.returncode == 2 and "whole numbers" in bad.stderr
