"""The wheel built from the checkout carries what a user needs (the three shipped models, the sample, the
napari manifest) and, installed with its dependencies in a fresh venv, runs `deepmir demo` (the README's first
command)."""

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_MODELS = ("default", "swi", "swi-qsm")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """``python -m build --wheel`` on a copy of the checkout (the build writes into its source tree)."""
    pytest.importorskip("build")
    source = tmp_path_factory.mktemp("checkout")
    for name in ("pyproject.toml", "README.md", "LICENSE", "src"):
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        elif (ROOT / name).exists():
            shutil.copy(ROOT / name, source / name)
    out = tmp_path_factory.mktemp("dist")
    command = [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(source)]
    subprocess.run(command, check=True, capture_output=True, timeout=600)
    (built,) = out.glob("napari_deepmir-*.whl")
    return built


def test_the_wheel_holds_the_models_the_sample_and_the_manifest(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for model in SHIPPED_MODELS:
        assert {f"napari_deepmir/models/{model}/model.{ext}" for ext in ("json", "safetensors")} <= names
    sample = "napari_deepmir/sample/sub-sample/sub-sample_{}.nii.gz"
    assert {sample.format(suffix) for suffix in ("swi", "Chimap", "T2w", "dseg")} <= names
    assert "napari_deepmir/napari.yaml" in names
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(wheel).read(metadata).decode()
    assert "Classifier: Development Status ::" in text and "](docs/images/" not in text  # images work on PyPI
    url_lines = [line.removeprefix("Project-URL: ") for line in text.splitlines() if line.startswith("Project-URL:")]
    urls = dict(line.split(", ", 1) for line in url_lines)
    repository = urls["Homepage"]  # the hub's homepage and source links, and the README's images: one repository
    assert re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", repository) and urls["Source Code"] == repository
    owner_name = repository.removeprefix("https://github.com/")
    assert f"](https://raw.githubusercontent.com/{owner_name}/main/docs/images/" in text


def _pip_find_links() -> list[str]:
    """The local wheel folders pip is configured with (``find-links``: where this machine keeps torch's CPU build)."""
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    values = [line.split("=", 1)[1].strip("'\"") for line in listed.splitlines() if ".find-links=" in line]
    return sorted({folder for value in values for folder in value.split()})


@pytest.mark.slow
def test_the_wheel_installs_in_a_fresh_venv_with_its_dependencies_and_runs_the_demo(wheel, tmp_path):
    """A venv that sees nothing of this environment gets the wheel and its dependencies (uv: seconds where pip takes
    minutes; torch pinned by a constraint of this install only, never in the metadata), then opens the shipped sample
    and runs `deepmir demo` to its lesion table, without napari and without the checkout on the path."""
    from uv import find_uv_bin

    venv = tmp_path / "fresh"
    subprocess.run([find_uv_bin(), "venv", "-q", "--python", sys.executable, str(venv)], check=True, timeout=120)
    assert "include-system-site-packages = false" in (venv / "pyvenv.cfg").read_text()
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("torch==2.13.0\n")  # the CPU build in pip's local wheel folder (scripts/dev.sh TORCH_SPEC)
    find_links = [argument for folder in _pip_find_links() for argument in ("--find-links", folder)]
    install = [find_uv_bin(), "pip", "install", "-q", "--python", str(venv / "bin" / "python"), *find_links]
    subprocess.run([*install, "-c", str(constraints), str(wheel)], check=True, timeout=900)

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")} | {"OMP_NUM_THREADS": "2"}

    def run(*command):  # the return code is asserted, with stderr
        return subprocess.run(command, check=False, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1200)

    sample = run(
        str(venv / "bin" / "python"),
        "-c",
        "import napari_deepmir as m; from napari_deepmir._reader import read_subject_folder; "
        "from napari_deepmir._sample_data import SAMPLE_FOLDER; print(m.__file__); "
        "print(sorted(kwargs['name'] for _, kwargs, _ in read_subject_folder(SAMPLE_FOLDER)))",
    )
    assert sample.returncode == 0, sample.stderr[-2000:]
    assert sample.stdout.splitlines()[0].startswith(str(venv))  # the installed copy, not the checkout
    assert "sub-sample SWI" in sample.stdout.splitlines()[1]
    assert run(str(venv / "bin" / "python"), "-c", "import napari").returncode != 0  # the core alone
    demo = run(str(venv / "bin" / "deepmir"), "demo", "--device", "cpu", "--out", str(tmp_path / "demo"))
    assert demo.returncode == 0, demo.stderr[-2000:]
    assert "lesion_id" in demo.stdout and any((tmp_path / "demo" / "prediction").rglob("*_lesions.tsv"))
