"""The DICOM SEG that seg inference writes for the embedded XA cine passes dicom3tools' dciodvfy with no Error.

dciodvfy comes from the Debian package dicom3tools, which .ci/run installs; without it the test is skipped, except
in CI (CI=true), where it fails."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from conftest import DCA, SEG_BUNDLE, TINY_NET, XA_CINE, copy_bundle_alone, monai_bundle, network_weights


@pytest.fixture(scope="module")
def dciodvfy() -> str:
    path = shutil.which("dciodvfy")
    if path is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("dciodvfy not found: .ci/run installs dicom3tools (apt-get install -y dicom3tools)")
        pytest.skip("dciodvfy not installed (apt-get install dicom3tools)")
    return path


@pytest.fixture(scope="module")
def segs(tmp_path_factory) -> dict:
    """SEGs written by inference.json (tiny random network) for 3 frames of the cine and one single-frame image."""
    root = copy_bundle_alone(SEG_BUNDLE, tmp_path_factory.mktemp("bundle"))
    network_weights(root, TINY_NET)
    out = tmp_path_factory.mktemp("out")
    datalist = [{"image": str(XA_CINE), "frame": f} for f in (0, 7, 30)]
    datalist += [{"image": str(DCA / "images" / "1.dcm"), "frame": None}]
    monai_bundle(["run", "--config_file", "configs/inference.json", "--meta_file", "configs/metadata.json"], cwd=root,
                 overrides={**TINY_NET, "datalist": datalist, "output_dir": str(out)})
    return {"cine": out / f"{XA_CINE.stem}_vessels_seg.dcm", "single_frame": out / "1_vessels_seg.dcm"}


@pytest.mark.parametrize("which", ["cine", "single_frame"])
def test_seg_has_no_dciodvfy_error(dciodvfy, segs, which):
    proc = subprocess.run([dciodvfy, str(segs[which])], capture_output=True, text=True, timeout=120, check=False)
    report = proc.stdout + proc.stderr
    assert "Segmentation" in report, report  # the IOD dciodvfy recognised and checked
    errors = [line for line in report.splitlines() if line.startswith("Error")]
    assert not errors, report
