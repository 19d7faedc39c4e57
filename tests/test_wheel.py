"""The wheel built from the checkout carries what a user needs (the three shipped models, the sample, the
napari manifest) and, installed on its own, runs `deepmir demo` (the README's first command)."""

import os
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
    assert "Classifier: Development Status ::" in text and "Project-URL: Homepage, https://" in text
    assert "](https://raw.githubusercontent.com/" in text and "](docs/images/" not in text  # images work on PyPI


@pytest.mark.slow
def test_the_installed_wheel_runs_the_demo(wheel, tmp_path):
    """Installed without the checkout on the path (the dependencies from this environment), `deepmir demo` runs."""
    target = tmp_path / "installed"
    pip = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--target", str(target), str(wheel)]
    subprocess.run(pip, check=True, capture_output=True, timeout=300)
    env = {**os.environ, "PYTHONPATH": str(target), "OMP_NUM_THREADS": "2"}
    code = "import sys, napari_deepmir as m; print(m.__file__); from napari_deepmir.cli import main; sys.exit(main())"
    result = subprocess.run(  # noqa: PLW1510 (the return code is asserted, with stderr)
        [sys.executable, "-c", code, "demo", "--device", "cpu", "--out", str(tmp_path / "demo")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.splitlines()[0].startswith(str(target))  # the installed copy ran, not the checkout
    assert any((tmp_path / "demo" / "prediction").rglob("*.tsv"))
