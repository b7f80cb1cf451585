"""Finding slide files in folders: extensions, recursion, MIRAX folders, DICOM series."""

from __future__ import annotations

import shutil

from wsi_engine.slide import find_slides


def touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_folder_is_searched_by_extension_and_sorted(tmp_path):
    b = touch(tmp_path / "b.SVS")
    a = touch(tmp_path / "a.ndpi")
    touch(tmp_path / "notes.txt")
    touch(tmp_path / ".hidden.svs")
    touch(tmp_path / "._a.ndpi")  # macOS resource fork
    nested = touch(tmp_path / "sub" / "c.tiff")
    assert find_slides([tmp_path]) == [a, b]
    assert find_slides([tmp_path], recursive=True) == [a, b, nested]
    assert find_slides([tmp_path], extensions=(".tiff",), recursive=True) == [nested]


def test_named_files_are_kept_as_given(tmp_path):
    odd = touch(tmp_path / "slide.jpeg")
    missing = tmp_path / "gone.svs"
    found = find_slides([missing, odd, odd])
    assert found == sorted([missing, odd])


def test_mirax_companion_folder_is_not_searched(tmp_path):
    slide = touch(tmp_path / "case1.mrxs")
    touch(tmp_path / "case1" / "Slidedat.ini")
    touch(tmp_path / "case1" / "Data0000.dat")
    touch(tmp_path / "case1" / "stray.tif")
    other = touch(tmp_path / "case2" / "x.tif")  # an ordinary folder
    assert find_slides([tmp_path], recursive=True) == [slide, other]


def test_dicom_series_gives_one_file_per_series(shared_slides, tmp_path):
    source = shared_slides / "openslide-python-fixtures"
    series = tmp_path / "series"
    series.mkdir()
    for name in ("boxes_0.dcm", "boxes_1.dcm"):  # one series: a level and its thumbnail
        shutil.copy(source / name, series / name)
    broken = touch(series / "zz_broken.dcm")  # unreadable header: kept alone
    other = tmp_path / "other" / "copy.dcm"
    other.parent.mkdir()
    shutil.copy(source / "boxes_1.dcm", other)  # same series UID, another folder: another slide
    assert find_slides([tmp_path], recursive=True) == [other, series / "boxes_0.dcm", broken]
