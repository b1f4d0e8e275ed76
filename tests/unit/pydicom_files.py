"""pydicom's own test files (its test and character-set files), and those a real Orthanc refuses to store.

``REFUSED_BY_ORTHANC_1_10_1`` was measured by uploading every file to Orthanc 1.10.1 (Debian bookworm); Orthanc
1.12.7 (trixie) and 1.13.0 (forky) refuse the same files. tests/integration/test_plugin_anonymizes_every_pydicom_file_orthanc_stores.py measures it
again on every run against those versions (and anonymizes whatever the running Orthanc stores, whichever its
version). Every other file is one that Orthanc
stores, so one the engine must anonymize (tests/unit/test_every_pydicom_file_orthanc_stores.py).
"""

from __future__ import annotations

from pathlib import Path

from pydicom.data import get_charset_files, get_testdata_files

# Not DICOM (text, JSON, an ICC profile, gzip), cut short, DICOMDIRs, or without the UIDs Orthanc files instances by.
REFUSED_BY_ORTHANC_1_10_1 = frozenset(
    {
        "charset_files/FileInfo.txt",
        "charset_files/chrSQEncoding.dcm",
        "charset_files/chrSQEncoding1.dcm",
        "test_files/JPEGLSNearLossless_08.dcm",
        "test_files/JPEGLSNearLossless_16.dcm",
        "test_files/MR_truncated.dcm",
        "test_files/README.txt",
        "test_files/SC_rgb_jls_lossy_line.dcm",
        "test_files/SC_rgb_jls_lossy_sample.dcm",
        "test_files/SC_rgb_jpeg.dcm",
        "test_files/UN_sequence.dcm",
        "test_files/crayons.icc",
        "test_files/dicomdirtests/DICOMDIR",
        "test_files/dicomdirtests/DICOMDIR-bigEnd",
        "test_files/dicomdirtests/DICOMDIR-empty.dcm",
        "test_files/dicomdirtests/DICOMDIR-implicit",
        "test_files/dicomdirtests/DICOMDIR-nooffset",
        "test_files/dicomdirtests/DICOMDIR-nopatient",
        "test_files/dicomdirtests/DICOMDIR-reordered",
        "test_files/dicomdirtests/README.txt",
        "test_files/dicomdirtests/TINY_ALPHA/DICOMDIR",
        "test_files/dicomdirtests/TINY_ALPHA/README",
        "test_files/empty_charset_LEI.dcm",
        "test_files/meta_missing_tsyntax.dcm",
        "test_files/nested_priv_SQ.dcm",
        "test_files/no_meta.dcm",
        "test_files/no_meta_group_length.dcm",
        "test_files/priv_SQ.dcm",
        "test_files/rtplan.dump",
        "test_files/rtplan_truncated.dcm",
        "test_files/rtstruct.dump",
        "test_files/test1.json",
        "test_files/test_PN.json",
        "test_files/zipMR.gz",
    }
)


def pydicom_files() -> dict[str, Path]:
    """Every file of pydicom's test and character-set data, by its path under pydicom's data folder."""
    files: dict[str, Path] = {}
    for name in [*get_testdata_files(), *get_charset_files()]:
        path = Path(name)
        if path.is_file():
            files[path.as_posix().split("/pydicom/data/")[-1]] = path
    return dict(sorted(files.items()))


def stored_by_orthanc() -> dict[str, Path]:
    """The files Orthanc 1.10.1 stores."""
    return {name: path for name, path in pydicom_files().items() if name not in REFUSED_BY_ORTHANC_1_10_1}
