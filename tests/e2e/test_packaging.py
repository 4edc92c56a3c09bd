"""`pip install .` outside the tree installs every package the processes import.

The wheel is built from the checkout and installed into a fresh virtual environment in a temporary
folder; every module it holds is then imported there, with the checkout nowhere on the path, and
each must come from the installed wheel. The dependencies are the project's own environment's,
reached through a path file, so the check needs no download beyond the build's own backend.
"""

import shutil
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# What `python -m …` and the images start: each must import from the installed wheel.
ENTRY_POINTS = (
    "api.__main__",
    "worker",
    "codec_server.__main__",
    "simulators.cmms.__main__",
    "simulators.portabilling.__main__",
    "devstack.__main__",
    "core.register_search_attributes",
)
# Runs Alembic's migration on import; imported by Alembic only.
NOT_IMPORTABLE = ("migrations.env",)


def _checkout_packages() -> set[str]:
    """The top-level packages of the checkout (folders of Python with an `__init__.py`), tests aside."""
    return {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests"}


def test_the_wheel_holds_every_package_and_each_entry_point_imports_from_it(tmp_path: Path) -> None:
    # Built from a copy: setuptools builds in the tree, and a `build/` left there by an earlier build
    # would put back into the wheel a package the package list has since left out.
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".*", "build", "var", "*.egg-info", "__pycache__"))
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(wheels), str(source)],
        check=True,
        cwd=tmp_path,
    )
    (wheel,) = wheels.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        in_wheel = {name.split("/")[0] for name in archive.namelist() if name.endswith(".py")}
        data = {name for name in archive.namelist() if not name.endswith(".py")}
    assert _checkout_packages() - in_wheel == set(), "packages the wheel leaves out"
    # The PortaBilling simulator builds its answers from these public examples.
    examples = {
        f"simulators/portabilling/fixtures/{p.name}" for p in (ROOT / "simulators/portabilling/fixtures").iterdir()
    }
    assert examples - data == set(), "data files the wheel leaves out"

    fresh = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(fresh)], check=True)
    python = fresh / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    # The dependencies (not the project: its editable install's path file is not read from there).
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps", str(wheel)],
        check=True,
        cwd=tmp_path,
    )

    script = textwrap.dedent(
        f"""
        import importlib, pkgutil, sys
        site = {str(site)!r}
        assert {str(ROOT)!r} not in sys.path, sys.path
        names = {list(ENTRY_POINTS)!r}
        for package in {sorted(_checkout_packages())!r}:
            module = importlib.import_module(package)
            names += [m.name for m in pkgutil.walk_packages(module.__path__, package + ".")]
        for name in names:
            if name in {list(NOT_IMPORTABLE)!r}:
                continue
            module = importlib.import_module(name)
            assert module.__file__.startswith(site), (name, module.__file__)
        print(len(names))
        """
    )
    run = subprocess.run([str(python), "-c", script], cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert int(run.stdout) > 100  # every module of every package, not just the entry points
