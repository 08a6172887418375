"""The layering holds (pyproject.toml's import-linter contracts), so `make test`, which CI runs,
checks it too: the API without torch or the workers, shared without either side, the client
without any server package, workers.data without the pipelines, and no import cycles in workers.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def lint_imports(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = [str(Path(sys.executable).parent / "lint-imports"), "--no-cache", *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_every_import_contract_is_kept() -> None:
    run = lint_imports()
    assert run.returncode == 0, run.stdout + run.stderr
    assert "0 broken" in run.stdout


def test_a_broken_contract_fails_the_check(tmp_path: Path) -> None:
    """The check is not vacuous: the same contracts fail on a package that breaks one."""
    package = tmp_path / "layered"
    (package / "low").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "low" / "__init__.py").write_text("from layered import high\n")
    (package / "high.py").write_text("")
    config = tmp_path / "contracts.toml"
    config.write_text('[tool.importlinter]\nroot_packages = ["layered"]\n\n'
                      '[[tool.importlinter.contracts]]\nname = "low never imports high"\ntype = "forbidden"\n'
                      'source_modules = ["layered.low"]\nforbidden_modules = ["layered.high"]\n')
    run = lint_imports(str(config), cwd=tmp_path, env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert run.returncode != 0 and "BROKEN" in run.stdout, run.stdout + run.stderr
