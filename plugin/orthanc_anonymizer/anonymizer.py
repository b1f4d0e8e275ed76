"""The Python API: the engine for scripts and notebooks, the same pipeline as the CLI and the plugin.

::

    from orthanc_anonymizer import Anonymizer

    anonymizer = Anonymizer(profile="basic", options=["RetainLongFullDates"], project="study-42")
    outcome = anonymizer.anonymize_file("original.dcm", "anonymized.dcm")
    assert outcome.failure is None, outcome.reason

An :class:`Anonymizer` checks its arguments when it is made (a bad one raises :class:`InvalidArgument` naming it)
and follows the CLI's rules: the secret comes from ``secret=`` or the environment variable ``ANONYMIZER_SECRET``;
without either it refuses to run, unless ``development_secret=True`` asks for the fixed development key (test data
only: anyone can recompute its mapping; a warning is logged). Each call returns the pipeline's
:class:`~orthanc_anonymizer.pipeline.InstanceOutcome`: the copy, the counts, the Clean Pixel Data boxes and the
residual-PHI verdict, with :attr:`~orthanc_anonymizer.pipeline.InstanceOutcome.failure` set (a
:class:`~orthanc_anonymizer.pipeline.Failure` member) when there is no clean copy.

This module is light to import: pydicom and the engine load at the first anonymization, as in the CLI.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING

from orthanc_anonymizer.defaults import SECRET_ENVIRONMENT_VARIABLE, chosen_secret
from orthanc_anonymizer.deid.identity import ValueRejected, check_patient_id, check_patient_name
from orthanc_anonymizer.deid.profile_files import CHECKOUT_PROFILES_DIRECTORY, parse_rules, resolve_profile
from orthanc_anonymizer.deid.profiles import Option, Profile, Rule
from orthanc_anonymizer.errors import AnonymizerError, ProfileError

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

    from orthanc_anonymizer.deid.engine import AnonymizationSettings
    from orthanc_anonymizer.deid.verify import ResidualPhiReport
    from orthanc_anonymizer.pipeline import InstanceOutcome

logger = logging.getLogger("orthanc_anonymizer.anonymizer")

RULE_FORMATS = ("csv", "json", "xml")


class InvalidArgument(AnonymizerError, ValueError):
    """An argument of :class:`Anonymizer` is wrong; :attr:`argument` names it, the message says why."""

    def __init__(self, argument: str, problem: str) -> None:
        super().__init__(f"{argument}: {problem}")
        self.argument = argument
        self.problem = problem


def site_profiles_directory() -> Path | None:
    """The site's own profiles folder when none is named: the checkout's ``profiles/``, if there is one (an
    installed package has none; its shipped profiles are package data, see :mod:`.deid.profile_files`)."""
    return CHECKOUT_PROFILES_DIRECTORY if CHECKOUT_PROFILES_DIRECTORY.is_dir() else None


def profiles_on_offer(profiles_dir: str | os.PathLike[str] | None) -> tuple[Path | None, bool]:
    """The folder a profile name is looked up in and whether the shipped profiles are offered beside it: a named
    folder alone (the whole offer, as ``ProfilesDirectory`` is for the plugin), else the site's folder, if any, and
    the shipped profiles. :class:`InvalidArgument` when the named folder is not one."""
    if profiles_dir is None:
        return site_profiles_directory(), True
    directory = Path(profiles_dir)
    if not directory.is_dir():
        raise InvalidArgument("profiles_dir", f"{directory} is not a folder")
    return directory, False


def build_profile(
    profile: str | os.PathLike[str] | Profile,
    options: Iterable[str | Option] = (),
    rules: Iterable[str | os.PathLike[str] | Rule] = (),
    profiles_dir: str | os.PathLike[str] | None = None,
) -> Profile:
    """The profile named (``basic``, a profile of ``profiles_dir`` or a profile file), with ``options`` and then the
    rules of each rule file (CSV ``TagPattern;Action`` lines, JSON or XML) on top; what the CLI's ``--profile``,
    ``--option``, ``--rules`` and ``--profiles-dir`` build. :class:`InvalidArgument` names the bad part."""
    directory, shipped = profiles_on_offer(profiles_dir)
    if isinstance(profile, Profile):
        chosen = profile
    else:
        try:
            chosen = resolve_profile(os.fspath(profile), directory, shipped=shipped, allow_paths=True)
        except ProfileError as error:
            raise InvalidArgument("profile", str(error)) from None
    try:
        chosen = chosen.with_options([option.value if isinstance(option, Option) else option for option in options])
    except ProfileError as error:
        raise InvalidArgument("options", str(error)) from None
    for item in rules:
        if isinstance(item, Rule):
            chosen = chosen.with_rules([item])
            continue
        path = Path(item)
        try:
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as error:
            reason = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
            raise InvalidArgument("rules", f"cannot read {path} ({reason})") from None
        suffix = path.suffix.lower().lstrip(".")
        try:
            chosen = chosen.with_rules(parse_rules(text, suffix if suffix in RULE_FORMATS else "", str(path)))
        except ProfileError as error:
            raise InvalidArgument("rules", str(error)) from None
    return chosen


def check_identity(patient_name: str | None, patient_id: str | None, names: tuple[str, str]) -> None:
    """The chosen PatientName and PatientID, checked as the plugin checks them; ``names`` name them in the error."""
    for value, name, check in ((patient_name, names[0], check_patient_name), (patient_id, names[1], check_patient_id)):
        if value is None:
            continue
        try:
            check(value, name)
        except ValueRejected as error:
            raise InvalidArgument(name, str(error)) from None


def checked_project(project: str) -> str:
    """``project`` checked (:func:`.deid.uids.check_project`), or :class:`InvalidArgument`."""
    from orthanc_anonymizer.deid.uids import check_project

    try:
        return check_project(project)
    except ValueError as error:
        raise InvalidArgument("project", str(error)) from None


class Anonymizer:
    """De-identification per DICOM PS3.15 with one set of settings, for files, bytes and pydicom data sets.

    :param profile: ``"basic"`` (the Basic Application Level Confidentiality Profile), the name of a profile in
        ``profiles_dir`` (default: the shipped ``profiles/``), a profile file, or a
        :class:`~orthanc_anonymizer.deid.profiles.Profile`.
    :param options: PS3.15 options (``"RetainLongFullDates"``, ``"CleanPixelData"``, ...) added to the profile's.
    :param rules: rule files (CSV ``TagPattern;Action`` lines, JSON or XML) or rules, applied on top of the profile.
    :param secret: the key of the UID and pseudonym mapping (the same secret gives the same output); default: the
        environment variable ``ANONYMIZER_SECRET``.
    :param development_secret: without a secret, use the fixed development key (test data only).
    :param project: the project the copies are for: copies for different projects share no UID nor pseudonym.
    :param patient_name: PatientName of the copies (default: a keyed pseudonym of the original patient).
    :param patient_id: PatientID of the copies (default: a keyed pseudonym of the original patient).
    :param check_residual: search every copy for identifying values of its original; a copy with any is a failure
        (:attr:`~orthanc_anonymizer.pipeline.Failure.RESIDUAL_PHI`) and :meth:`anonymize_file` does not write it.
    :raises InvalidArgument: naming the bad argument.
    """

    def __init__(
        self,
        profile: str | os.PathLike[str] | Profile = "basic",
        *,
        options: Iterable[str | Option] = (),
        rules: Iterable[str | os.PathLike[str] | Rule] = (),
        secret: str | bytes | None = None,
        development_secret: bool = False,
        project: str = "",
        patient_name: str | None = None,
        patient_id: str | None = None,
        profiles_dir: str | os.PathLike[str] | None = None,
        check_residual: bool = True,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        if isinstance(options, str):
            raise InvalidArgument("options", "a list of option names, not one string")
        if isinstance(rules, (str, os.PathLike)):
            raise InvalidArgument("rules", "a list of rule files, not one path")
        check_identity(patient_name, patient_id, ("patient_name", "patient_id"))
        chosen = chosen_secret(secret, os.environ if environ is None else environ, development_secret)
        if chosen is None:
            raise InvalidArgument(
                "secret",
                f"no anonymization secret: give secret= or set the environment variable {SECRET_ENVIRONMENT_VARIABLE}; "
                "development_secret=True uses a fixed development key, only for test data",
            )
        key, self.development_secret = chosen
        if self.development_secret:
            logger.warning("Anonymizer: using the fixed development key; not for real patient data")
        self.profile = build_profile(profile, options, rules, profiles_dir)
        self.project = checked_project(project)
        self.check_residual = check_residual
        from orthanc_anonymizer.deid.engine import AnonymizationSettings
        from orthanc_anonymizer.deid.uids import KeyedHasher

        self.settings: AnonymizationSettings = AnonymizationSettings(
            profile=self.profile,
            hasher=KeyedHasher(key),
            patient_name=patient_name,
            patient_id=patient_id,
            project=self.project,
        )

    def anonymize_bytes(self, data: bytes) -> InstanceOutcome:
        """Anonymize one DICOM file given as bytes; the copy is :attr:`~.pipeline.InstanceOutcome.data`."""
        from orthanc_anonymizer.pipeline import InstanceTask, anonymize_instance

        task = InstanceTask(self.settings, check_residual=self.check_residual, orthanc_identity=False)
        return anonymize_instance(data, task)

    def anonymize(self, dataset: Dataset) -> InstanceOutcome:
        """Anonymize a pydicom data set (left unchanged); the copy is the outcome's
        :meth:`~.pipeline.InstanceOutcome.dataset` (``None`` on a failure)."""
        from pydicom.dataset import Dataset

        if not isinstance(dataset, Dataset):
            raise InvalidArgument("dataset", f"a pydicom Dataset, not {type(dataset).__name__}")
        return self.anonymize_bytes(_dataset_bytes(dataset))

    def anonymize_file(self, src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> InstanceOutcome:
        """Anonymize the file ``src`` into ``dst`` (its folder is created). On a failure ``dst`` is not written
        (an older file there is removed, as the CLI does). ``dst`` must not be ``src``."""
        source, destination = Path(src), Path(dst)
        if destination.exists() and destination.resolve() == source.resolve():
            raise InvalidArgument("dst", f"{destination} is src itself; the original would be overwritten")
        try:
            data = source.read_bytes()
        except OSError as error:
            raise InvalidArgument("src", f"cannot read {source} ({error.strerror or type(error).__name__})") from None
        outcome = self.anonymize_bytes(data)
        if outcome.failure is not None or outcome.parts is None:
            destination.unlink(missing_ok=True)
            return outcome
        outcome.write_file(destination)
        return outcome

    def verify(
        self, original: Dataset | bytes | str | os.PathLike[str], anonymized: Dataset | bytes | str | os.PathLike[str]
    ) -> ResidualPhiReport:
        """Every identifying value of ``original`` (as this anonymizer's profile defines them) still found in
        ``anonymized``: tags and paths, never values. Files and bytes are also searched outside the data set."""
        from pydicom.dataset import Dataset

        from orthanc_anonymizer.deid.verify import find_residual_phi, verify_bytes

        if isinstance(original, Dataset) and isinstance(anonymized, Dataset):
            return find_residual_phi(original, anonymized, self.profile)
        return verify_bytes(_as_bytes(original, "original"), _as_bytes(anonymized, "anonymized"), self.profile)


def _as_bytes(value: Dataset | bytes | str | os.PathLike[str], argument: str) -> bytes:
    from pydicom.dataset import Dataset

    if isinstance(value, bytes):
        return value
    if isinstance(value, Dataset):
        return _dataset_bytes(value)
    if isinstance(value, (str, os.PathLike)):
        try:
            return Path(value).read_bytes()
        except OSError as error:
            raise InvalidArgument(argument, f"cannot read {value} ({error.strerror or type(error).__name__})") from None
    raise InvalidArgument(argument, f"a Dataset, bytes or a path, not {type(value).__name__}")


def _dataset_bytes(dataset: Dataset) -> bytes:
    """A data set as the bytes of a file (a DICOM file with a preamble when it has file meta, else a bare data
    set), as the pipeline reads them."""
    from pydicom import dcmwrite

    buffer = BytesIO()
    dcmwrite(buffer, dataset, enforce_file_format=bool(getattr(dataset, "file_meta", None)))
    return buffer.getvalue()
