"""Shared fixtures. napari tests render under Xvfb (pytest-xvfb) with the xcb Qt platform."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "xcb")
os.environ.setdefault("OMP_NUM_THREADS", "2")

import nibabel as nib
import numpy as np
import pytest


@pytest.fixture(autouse=True)
def _isolated_user_dirs(tmp_path_factory, monkeypatch):
    """Models registered, annotations saved or settings remembered by a test never touch the real user folders."""
    monkeypatch.setenv("DEEPMIR_MODELS_DIR", str(tmp_path_factory.mktemp("user-models")))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("user-data")))  # platformdirs' user data
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("user-config")))  # platformdirs' user config


def oblique_affine(spacing=(0.8, 0.8, 2.0), degrees=10.0, origin=(-60.0, -70.0, -40.0)) -> np.ndarray:
    """A voxel -> RAS affine rotated about the x axis (an oblique axial acquisition)."""
    t = np.deg2rad(degrees)
    rotation = np.array([[1, 0, 0], [0, np.cos(t), -np.sin(t)], [0, np.sin(t), np.cos(t)]])
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag(spacing)
    affine[:3, 3] = origin
    return affine


def sphere_world(shape, affine, centre_mm, radius_mm) -> np.ndarray:
    """Boolean mask of the voxels whose centres lie within ``radius_mm`` of a world point."""
    grid = np.indices(shape).reshape(3, -1)
    world = affine[:3, :3] @ grid + affine[:3, 3:4]
    inside = np.linalg.norm(world - np.asarray(centre_mm, float)[:, None], axis=0) <= radius_mm
    return inside.reshape(shape)


def write_nifti(path, data, affine) -> str:
    nib.save(nib.Nifti1Image(np.asarray(data), affine), str(path))
    return str(path)
