"""Header text and file names are data: nothing evaluates them as Python or as a MONAI config expression."""

from __future__ import annotations

import shutil
from pathlib import Path

import pydicom
from monai.bundle import ConfigParser

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "sample_data" / "dca" / "images" / "1.dcm"


def _payload(sentinel: str) -> str:
    return f"$__import__('pathlib').Path({sentinel!r}).touch()"


def test_config_pipeline_keeps_hostile_names_and_header_text_as_data(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sentinel_name, sentinel_header = "from_name", "from_header"
    data = tmp_path / "data"
    data.mkdir()
    hostile = data / "$__import__('os').getcwd() @dataset#x %train.dcm"
    shutil.copy(SAMPLE, hostile)
    ds = pydicom.dcmread(SAMPLE)
    ds.SeriesDescription = _payload(sentinel_header)[:64]
    ds.PatientName = "@datalist"
    ds.Modality = "$1"
    ds.save_as(data / "header.dcm")
    (data / (_payload(sentinel_name) + ".dcm")).write_bytes(SAMPLE.read_bytes())

    parser = ConfigParser({
        "datalist": {"_target_": "transforms.build_datalist", "root": str(data)},
        "dataset": {
            "_target_": "Dataset",
            "data": "@datalist",
            "transform": {"_target_": "transforms.LoadAngiogramd", "keys": "image"},
        },
    })
    dataset = parser.get_parsed_content("dataset")
    items = [dataset[i] for i in range(len(dataset))]

    loaded = sorted(Path(d["image"].meta["filename_or_obj"]).name for d in items)
    assert loaded == sorted(p.name for p in data.iterdir())
    assert any(d["image"].meta["modality"] == "$1" for d in items)
    assert not (tmp_path / sentinel_name).exists() and not (tmp_path / sentinel_header).exists()
