"""A hunt with the same seed and settings finds the same thing, however it is started.

Two fresh processes with different string-hash seeds, one through the command line and
one through the Python API, and this pytest process itself (with every test module
loaded), hunt the same configuration and must save byte-identical histories: nothing
outside the seed (wall-clock limits, hash order, which modules are loaded, process state)
may steer the search or the minimisation.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SETTINGS = ["acks=1", "kafkacheck.partitions=1"]


def _run(code: list[str], hash_seed: str) -> None:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(REPO)}
    done = subprocess.run(code, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode in (0, 1), done.stderr


def test_the_same_hunt_saves_the_same_file_from_the_cli_and_from_python(tmp_path: Path) -> None:
    cli_out, api_out = tmp_path / "cli", tmp_path / "api"
    cli = [sys.executable, "-m", "kafkacheck.cli", "hunt", "--examples", "60", "--steps", "30",
           "--seed", "3",
           "--target", "lost-write", "--out", str(cli_out)]
    for setting in SETTINGS:
        cli += ["--set", setting]
    _run(cli, "1")
    api = ("from pathlib import Path\n"
           "from kafkacheck.hunt import hunt\n"
           "from kafkacheck.matrix import hunt_config\n"
           "from model.config import parse_assignments\n"
           f"config = hunt_config(parse_assignments({SETTINGS!r}))\n"
           "hunt(config, examples=60, steps=30, seed=3, target=frozenset({'lost-write'}),\n"
           f"     out_dir=Path({str(api_out)!r}))\n")
    _run([sys.executable, "-c", api], "987654")
    from kafkacheck.hunt import hunt
    from kafkacheck.matrix import hunt_config
    from model.config import parse_assignments

    here_out = tmp_path / "here"
    hunt(hunt_config(parse_assignments(SETTINGS)), examples=60, steps=30, seed=3,
         target=frozenset({"lost-write"}), out_dir=here_out)
    cli_files = sorted(cli_out.glob("*.json"))
    assert len(cli_files) == 1, "the hunt should find lost-write with acks=1"
    for other in (api_out, here_out):
        files = sorted(other.glob("*.json"))
        assert [p.name for p in files] == [p.name for p in cli_files]
        assert files[0].read_bytes() == cli_files[0].read_bytes()
