"""examples/sharded_readout.py at a small size: 2 ranks agree with one process."""
import re
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "sharded_readout.py"


def test_sharded_readout_example_matches_the_single_process():
    run = subprocess.run([sys.executable, str(EXAMPLE), "--nodes", "30000", "--features", "3",
                          "--sets", "3", "--readout", "max,var,softmax"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    out = run.stdout
    assert "distributed == single process: yes" in out
    ranks = re.findall(r"^rank (\d)\s+([\d,]+)\s+\d+\s+[\d.]+\s+(\S+)\s+(\S+)$", out, re.M)
    assert [r[0] for r in ranks] == ["0", "1"]
    assert sum(int(r[1].replace(",", "")) for r in ranks) == 30000  # every point, once
    # max is exact; var and softmax within float32 rounding of the single process
    assert all(float(r[2]) <= 1e-4 and float(r[3]) <= 1e-4 for r in ranks), out
