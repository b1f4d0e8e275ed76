"""The ``orthanc-anonymizer`` command: the engine over files and folders, without Orthanc.

Subcommands:

``anonymize SRC DST``
    De-identify one file, or every file under a folder into a folder of the same layout. Files that are not DICOM
    or are damaged are named on stderr and skipped; every other file is still written. Entries that are not regular
    files (FIFOs, sockets, devices, dangling symlinks, symlink loops, symlinks to folders) are never opened: they are
    named on stderr as skipped. Exit status 0 when every file was anonymized (and, with ``--verify``, found clean),
    1 when some failed, 2 for bad usage (SRC itself not a regular file or a folder).
``profiles``
    List the profiles: ``basic`` and those of ``--profiles-dir``; without it, the shipped ones and those of the
    checkout's ``profiles/`` (which replace shipped ones of the same name).
``audit-verify PATH``
    Check an audit log's hash chain end to end (exit 0 when intact, 1 when broken).

Nothing this command prints carries patient data: files are named by path, attributes by tag, and pydicom's
warnings (which may quote values) are reduced to tag numbers by :func:`~orthanc_anonymizer.logs.route_warnings_to_logging`.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import logging
import os
import stat
import sys
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, TextIO

from orthanc_anonymizer import __version__, anonymizer
from orthanc_anonymizer.anonymizer import InvalidArgument, profiles_on_offer
from orthanc_anonymizer.defaults import SECRET_ENVIRONMENT_VARIABLE, chosen_secret
from orthanc_anonymizer.deid.profile_files import load_profiles
from orthanc_anonymizer.deid.profiles import Option, Profile
from orthanc_anonymizer.errors import ProfileError
from orthanc_anonymizer.logs import route_warnings_to_logging

if TYPE_CHECKING:
    from orthanc_anonymizer.deid.engine import AnonymizationSettings

# The engine (and so pydicom) is imported only once the profile is known: see _import_pydicom.

PROG = "orthanc-anonymizer"
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

logger = logging.getLogger("orthanc_anonymizer.cli")


class UsageError(Exception):
    """Bad usage: the message names the bad argument; ``main`` prints it and exits 2."""


# --- one file ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileTask:
    """One file to anonymize. Picklable: it travels to a worker process with the settings."""

    source: Path
    destination: Path
    display: str
    """How the file is named in messages: its path relative to SRC (or SRC itself)."""


@dataclass
class FileResult:
    """The outcome for one file: tags, paths and counts only, never values."""

    display: str
    ok: bool
    reason: str = ""
    leaks: list[dict[str, str]] = field(default_factory=list)
    checked_values: int | None = None
    """With ``--verify``: how many identifying values of the original were looked for in the output."""


def anonymize_one(task: FileTask, settings: AnonymizationSettings, verify: bool) -> FileResult:
    """Anonymize ``task.source`` into ``task.destination`` through the pipeline (:mod:`.pipeline`); with
    ``verify``, check the output for residual PHI.

    A file that fails (unreadable, not DICOM, damaged, or with residual PHI found) is not written (a stale output
    of an earlier run at the destination is removed). Never raises for a bad input file.
    """
    from orthanc_anonymizer.pipeline import Failure, InstanceTask, anonymize_instance

    try:
        original = read_regular_file(task.source)
    except NotARegularFile as error:
        return FileResult(task.display, False, f"skipped: {error}")
    except OSError as error:
        return FileResult(task.display, False, f"cannot read ({error.strerror or type(error).__name__})")
    outcome = anonymize_instance(original, InstanceTask(settings, check_residual=verify, orthanc_identity=False))
    if outcome.failure is not None or outcome.parts is None:
        _remove_stale(task.destination)
        if outcome.failure is Failure.RESIDUAL_PHI:
            # The output still carries patient data: keep it out of DST.
            return FileResult(
                task.display,
                False,
                f"residual PHI in {len(outcome.leaks)} place(s); output not written",
                leaks=[
                    {"Path": leak.path, "Tag": leak.tag, "Source": leak.source, "Kind": leak.kind}
                    for leak in outcome.leaks
                ],
                checked_values=outcome.checked_values,
            )
        if outcome.failure is Failure.CHECK_FAILED:
            return FileResult(task.display, False, f"residual-PHI check failed: {outcome.reason}")
        return FileResult(task.display, False, outcome.explanation)
    try:
        outcome.write_file(task.destination)
    except OSError as error:
        return FileResult(task.display, False, f"cannot write output ({error.strerror or type(error).__name__})")
    return FileResult(task.display, True, checked_values=outcome.checked_values)


class NotARegularFile(Exception):
    """An entry that is not a regular file (nor a symlink to one); the message says what it is."""


def entry_kind(path: Path) -> str | None:
    """``None`` for a regular file (or a symlink to one); otherwise what ``path`` is, in words, found without
    opening it (opening a FIFO blocks until a writer comes)."""
    try:
        mode = path.stat().st_mode
    except OSError as error:
        if path.is_symlink():
            return "a symlink loop" if error.errno == errno.ELOOP else "a dangling symlink"
        return f"unreadable ({error.strerror or type(error).__name__})"
    if stat.S_ISREG(mode):
        return None
    kinds = [
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISDIR, "a folder"),
    ]
    kind = next((name for test, name in kinds if test(mode)), "not a regular file")
    return f"a symlink to {kind}" if path.is_symlink() else kind


def read_regular_file(path: Path) -> bytes:
    """The bytes of ``path``, a regular file; :class:`NotARegularFile` for anything else (checked on the opened
    descriptor, so an entry that became a FIFO after it was listed is not waited on either)."""
    descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(descriptor, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise NotARegularFile(f"not a regular file ({entry_kind(path) or 'changed while read'})")
        return handle.read()


def _remove_stale(destination: Path) -> None:
    with contextlib.suppress(OSError):
        destination.unlink(missing_ok=True)


# Set once in each worker process: the settings (with the compiled action table) and --verify, so that each file
# sends only its paths (the settings pickled per file cost ~0.15 ms a file to unpickle).
_worker_settings: tuple[AnonymizationSettings, bool] | None = None


def _worker_init(verbose: bool, settings: AnonymizationSettings, verify: bool) -> None:
    global _worker_settings
    route_warnings_to_logging()
    _configure_logging(verbose)
    _worker_settings = (settings, verify)


def _run_in_worker(task: FileTask) -> FileResult:
    assert _worker_settings is not None, "the worker was started without its settings"
    settings, verify = _worker_settings
    return anonymize_one(task, settings, verify)


# --- planning: which files go where ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Skipped:
    """An entry under SRC that is not a regular file: named, never opened."""

    display: str
    kind: str


def plan_tasks(
    source: Path, destination: Path, destination_is_folder: bool = False
) -> tuple[list[FileTask], list[Skipped]]:
    """The files to anonymize: ``source`` itself, or every regular file under it (sorted, hidden ones included)
    mapped to the same relative path under ``destination``; and the entries skipped because they are not regular
    files (FIFOs, sockets, devices, dangling symlinks, loops, symlinks to folders, which are not followed). A single
    file goes into ``destination`` when that is a folder (or ``destination_is_folder``: DST was written with a
    trailing slash). Raises :class:`UsageError` for impossible combinations, and for a SRC that is neither a
    regular file nor a folder."""
    kind = entry_kind(source)
    if kind is not None and not source.is_dir():
        if not os.path.lexists(source):
            raise UsageError(f"SRC {source} does not exist")
        raise UsageError(f"SRC {source} is {kind}, neither a regular file nor a folder")
    if kind is None:
        into_folder = destination_is_folder or destination.is_dir()
        target = destination / source.name if into_folder else destination
        if target.exists() and target.resolve() == source.resolve():
            raise UsageError(f"DST {destination} is SRC itself; the original would be overwritten")
        return [FileTask(source, target, str(source))], []
    if destination.exists() and not destination.is_dir():
        raise UsageError(f"DST {destination} is a file, but SRC {source} is a folder")
    source_resolved = source.resolve()
    destination_resolved = destination.resolve()
    if destination_resolved == source_resolved:
        raise UsageError(f"DST {destination} is SRC itself; the originals would be overwritten")
    tasks: list[FileTask] = []
    skipped: list[Skipped] = []
    for folder, subfolders, files in os.walk(source):
        folder_path = Path(folder)
        # Symlinks to folders are not followed (os.walk's default: no loops, nothing outside SRC): named.
        linked = [name for name in subfolders if (folder_path / name).is_symlink()]
        # Never descend into DST when it lies inside SRC: its files are outputs, not inputs.
        subfolders[:] = sorted(
            d for d in subfolders if d not in linked and (folder_path / d).resolve() != destination_resolved
        )
        for name in sorted([*files, *linked]):
            path = folder_path / name
            if name.endswith(".part") and name.startswith("."):
                continue  # a partial output of an interrupted run
            relative = path.relative_to(source)
            kind = entry_kind(path)
            if kind is not None:
                skipped.append(Skipped(str(relative), kind))
                continue
            tasks.append(FileTask(path, destination / relative, str(relative)))
    return tasks, skipped


# --- settings from arguments ---------------------------------------------------------------------------------------


def _secret(args: argparse.Namespace, environ: dict[str, str] | os._Environ[str]) -> tuple[bytes, bool]:
    chosen = chosen_secret(args.secret, environ, allow_development=args.dev_secret)
    if chosen is not None:
        return chosen
    raise UsageError(
        f"no anonymization secret: set the environment variable {SECRET_ENVIRONMENT_VARIABLE} (preferred: it stays "
        "out of the process list) or give --secret; --dev-secret uses a fixed development key, only for test data"
    )


def _profiles_directory(args: argparse.Namespace) -> tuple[Path | None, bool]:
    """The profiles folder and whether the shipped profiles are offered beside it: ``--profiles-dir`` alone when
    given, else the checkout's ``profiles/`` (if any) and the shipped ones (:func:`.anonymizer.profiles_on_offer`)."""
    try:
        return profiles_on_offer(args.profiles_dir)
    except InvalidArgument as error:
        raise UsageError(f"--profiles-dir {error.problem}") from None


_FLAGS = {
    "profile": "--profile",
    "options": "--option",
    "rules": "--rules",
    "project": "--project",
    "profiles_dir": "--profiles-dir",
}
"""The Python API's argument names (:class:`.anonymizer.InvalidArgument`) as the command's options."""


def build_profile(args: argparse.Namespace) -> Profile:
    """The profile the arguments ask for: ``--profile`` (a name or a file), ``--option``s, then ``--rules`` files
    (:func:`.anonymizer.build_profile`, as the Python API builds it)."""
    try:
        return anonymizer.build_profile(args.profile, args.option, args.rules, args.profiles_dir)
    except InvalidArgument as error:
        raise UsageError(f"{_FLAGS[error.argument]}: {error.problem}") from None


# --- anonymize -----------------------------------------------------------------------------------------------------


class _Progress:
    """A tqdm bar when ``stream`` is a terminal; otherwise nothing. Messages go above the bar."""

    def __init__(self, total: int, stream: TextIO) -> None:
        self.stream = stream
        self.bar = None
        if stream.isatty() and total > 1:
            from tqdm import tqdm  # type: ignore[import-untyped]

            self.bar = tqdm(total=total, unit="file", file=stream, dynamic_ncols=True, leave=False)

    def message(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    def advance(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _results(
    tasks: list[FileTask], settings: AnonymizationSettings, verify: bool, jobs: int, verbose: bool
) -> Iterator[FileResult]:
    if jobs <= 1 or len(tasks) <= 1:
        yield from (anonymize_one(task, settings, verify) for task in tasks)
        return
    # Small chunks: the processes finish within a few files of each other (chunks of 18 CT files left one
    # process working alone for up to ~0.15 s at the end).
    chunksize = max(1, min(4, len(tasks) // (jobs * 8)))
    with ProcessPoolExecutor(max_workers=jobs, initializer=_worker_init, initargs=(verbose, settings, verify)) as pool:
        yield from pool.map(_run_in_worker, tasks, chunksize=chunksize)


# Imported by pydicom at start-up when installed, used by it only to decode pixel data (numpy, Pillow, pylibjpeg and
# its codec plugins openjpeg, libjpeg and rle, pyjpegls, GDCM) and to download its own test files (requests, tqdm):
# 0.2 s of the CLI's 0.4 s start-up. The codec plugins fail to import without numpy, but only after loading their
# version through importlib.metadata (7.8 million instructions of a one-file run's 780).
_PYDICOM_OPTIONAL = ("numpy", "PIL", "requests", "tqdm", "pylibjpeg", "openjpeg", "libjpeg", "rle", "jpeg_ls", "gdcm")


def _import_pydicom(pixels: bool) -> None:
    """Import pydicom, without its optional dependencies when ``pixels`` is false: a run whose profile leaves the
    pixels alone never decodes pixel data (the engine splices it through, see ``engine.read_instance``). Once
    pydicom is loaded, the modules are importable again as usual (the progress bar imports tqdm)."""
    if pixels or "pydicom" in sys.modules:
        return
    hidden = [name for name in _PYDICOM_OPTIONAL if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # makes "import name" raise ImportError
    try:
        import pydicom  # noqa: F401  (its pixel modules import numpy, Pillow and, through pydicom.data, requests)
    finally:
        for name in hidden:
            if sys.modules.get(name, 0) is None:
                del sys.modules[name]


def _project(text: str) -> str:
    try:
        return anonymizer.checked_project(text)
    except InvalidArgument as error:
        raise UsageError(f"--project: {error.problem}") from None


def command_anonymize(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    """``anonymize SRC DST``: see the module docstring."""
    if args.jobs < 1:
        raise UsageError(f"--jobs must be 1 or more, not {args.jobs}")
    try:
        anonymizer.check_identity(args.patient_name, args.patient_id, ("--patient-name", "--patient-id"))
    except InvalidArgument as error:
        raise UsageError(error.problem) from None
    secret, development = _secret(args, os.environ)
    profile = build_profile(args)
    _import_pydicom(pixels=Option.CleanPixelData in profile.options)
    project = _project(args.project)
    tasks, skipped = plan_tasks(Path(args.src), Path(args.dst), args.dst.endswith(os.sep))
    for entry in skipped:
        print(f"{PROG}: {entry.display}: skipped: not a regular file ({entry.kind})", file=stderr)
    if development:
        print(f"{PROG}: warning: --dev-secret: using the fixed development key; not for real patient data", file=stderr)
    from orthanc_anonymizer.deid.engine import AnonymizationSettings
    from orthanc_anonymizer.deid.uids import KeyedHasher

    settings = AnonymizationSettings(
        profile=profile,
        hasher=KeyedHasher(secret),
        patient_name=args.patient_name,
        patient_id=args.patient_id,
        project=project,
    )
    # Compile the profile's action table once, here: it travels with each chunk of files to the worker processes
    # instead of being compiled again for every chunk (4-11 ms each).
    _ = settings.profile.action_table
    started = time.monotonic()
    failures: list[dict[str, object]] = []
    anonymized = 0
    verified_clean = 0
    progress = _Progress(len(tasks), stderr)

    def record(result: FileResult) -> None:
        nonlocal anonymized, verified_clean
        progress.advance()
        if result.ok:
            anonymized += 1
            verified_clean += args.verify
            return
        failure: dict[str, object] = {"Path": result.display, "Reason": result.reason}
        if result.leaks:
            failure["Leaks"] = result.leaks
        failures.append(failure)
        progress.message(f"{PROG}: {result.display}: {result.reason}")
        for leak in result.leaks:
            progress.message(
                f"{PROG}: {result.display}: residual PHI at {leak['Path']} (from {leak['Source']}, {leak['Kind']})"
            )

    done = 0
    try:
        for result in _results(tasks, settings, args.verify, args.jobs, args.verbose):
            record(result)
            done += 1
    except BrokenProcessPool:
        # A worker died (killed, out of memory): the files it had not finished are failures, named like the others.
        for task in tasks[done:]:
            record(
                FileResult(task.display, False, "a worker process died; this file's outcome is unknown, run it again")
            )
    finally:
        progress.close()
    seconds = time.monotonic() - started
    summary: dict[str, object] = {
        "Source": str(args.src),
        "Destination": str(args.dst),
        "Profile": profile.describe(),
        "Files": len(tasks),
        "Skipped": [{"Path": entry.display, "Kind": entry.kind} for entry in skipped],
        "Anonymized": anonymized,
        "Failed": len(failures),
        "Failures": failures,
        "Verify": (
            {"Clean": verified_clean, "ResidualPHI": sum(1 for failure in failures if "Leaks" in failure)}
            if args.verify
            else None
        ),
        "DevelopmentSecret": development,
        "Seconds": round(seconds, 3),
    }
    if args.json:
        json.dump(summary, stdout, indent=2)
        stdout.write("\n")
    else:
        print(
            f"{PROG}: anonymized {anonymized} of {len(tasks)} file(s) into {args.dst}"
            + (f"; {len(failures)} failed" if failures else "")
            + (f"; {len(skipped)} skipped (not regular files)" if skipped else "")
            + f" ({seconds:.1f} s)",
            file=stderr,
        )
    return EXIT_FAILED if failures else EXIT_OK


# --- profiles, audit-verify ----------------------------------------------------------------------------------------


def command_profiles(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    """``profiles``: name, description and options of each profile."""
    try:
        directory, shipped = _profiles_directory(args)
        profiles = load_profiles(directory, shipped=shipped)
    except ProfileError as error:
        raise UsageError(f"profiles: {error}") from None
    described = [
        {"Name": name, "Description": profile.description, "Options": [o.value for o in profile.sorted_options]}
        for name, profile in profiles.items()
    ]
    if args.json:
        json.dump(described, stdout, indent=2)
        stdout.write("\n")
        return EXIT_OK
    width = max(len(str(entry["Name"])) for entry in described)
    for entry in described:
        options = entry["Options"]
        assert isinstance(options, list)
        print(f"{entry['Name']:<{width}}  {entry['Description']}", file=stdout)
        if options:
            print(f"{'':<{width}}  options: {', '.join(options)}", file=stdout)
    return EXIT_OK


def command_audit_verify(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    """``audit-verify PATH``: ``{"Valid", "Records", "BrokenAt"}`` on stdout; exit 1 when the chain is broken."""
    from orthanc_anonymizer.audit import AuditLog

    path = Path(args.path)
    if not path.is_file():
        raise UsageError(f"audit log {path} does not exist or is not a file")
    result = AuditLog(path).verify()
    json.dump(result, stdout)
    stdout.write("\n")
    if not result.get("Valid"):
        print(f"{PROG}: {path}: hash chain broken at record {result.get('BrokenAt')}", file=stderr)
        return EXIT_FAILED
    return EXIT_OK


# --- arguments -----------------------------------------------------------------------------------------------------

_OPTIONS_HELP = ", ".join(option.value for option in Option)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``orthanc-anonymizer`` command."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="DICOM PS3.15 de-identification of files and folders (the engine of the Orthanc plugin).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    anonymize = commands.add_parser(
        "anonymize",
        help="de-identify a DICOM file or a folder of them",
        description=(
            "De-identify SRC into DST. SRC and DST are files, or folders: every file under SRC is written to the "
            "same relative path under DST. Files that are not DICOM or are damaged are named on stderr and "
            "skipped. Exit status: 0 every file anonymized, 1 some failed (the others are written), 2 bad usage."
        ),
        epilog=(
            f"The secret keys the UID and pseudonym mapping: the same secret gives the same output. Set it in "
            f"{SECRET_ENVIRONMENT_VARIABLE} rather than with --secret, which other users can see in the process list."
        ),
    )
    anonymize.add_argument("src", metavar="SRC", help="a DICOM file or a folder")
    anonymize.add_argument("dst", metavar="DST", help="the output file or folder (created)")
    anonymize.add_argument(
        "--profile",
        default="basic",
        metavar="NAME|FILE",
        help="a profile by name (basic, a file in --profiles-dir, else a shipped one or one in profiles/) or a "
        "profile/rules file (default: basic)",
    )
    anonymize.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="OPTION",
        help=f"a PS3.15 option, repeatable: {_OPTIONS_HELP}",
    )
    anonymize.add_argument(
        "--rules",
        action="append",
        default=[],
        metavar="FILE",
        help="custom rules (CSV TagPattern;Action lines, JSON or XML) applied on top of the profile; repeatable",
    )
    anonymize.add_argument("--patient-name", metavar="X", help="PatientName of the output (default: keyed pseudonym)")
    anonymize.add_argument("--patient-id", metavar="Y", help="PatientID of the output (default: keyed pseudonym)")
    anonymize.add_argument(
        "--project",
        default="",
        metavar="P",
        help="the project the copies are for: copies for different projects share no UID nor pseudonym "
        "(default: none, the mapping of earlier versions)",
    )
    anonymize.add_argument(
        "--secret", metavar="S", help=f"the anonymization secret (default: ${SECRET_ENVIRONMENT_VARIABLE})"
    )
    anonymize.add_argument(
        "--dev-secret",
        action="store_true",
        help="without a secret, use the fixed development key (test data only: anyone can recompute the mapping)",
    )
    anonymize.add_argument("--jobs", type=int, default=1, metavar="N", help="worker processes (default: 1)")
    anonymize.add_argument(
        "--verify",
        action="store_true",
        help="check every output for identifying values of its original; a file with any is a failure, not written",
    )
    anonymize.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    anonymize.add_argument(
        "--profiles-dir",
        metavar="DIR",
        help="a folder of profiles, the only ones offered (default: the shipped ones and profiles/)",
    )
    anonymize.add_argument(
        "--verbose", action="store_true", help="also show pydicom's warnings about odd input (tag numbers only)"
    )
    anonymize.set_defaults(handler=command_anonymize)

    profiles = commands.add_parser("profiles", help="list the profiles", description="List the profiles.")
    profiles.add_argument(
        "--profiles-dir",
        metavar="DIR",
        help="a folder of profiles, the only ones offered (default: the shipped ones and profiles/)",
    )
    profiles.add_argument("--json", action="store_true", help="print them as JSON")
    profiles.set_defaults(handler=command_profiles)

    audit = commands.add_parser(
        "audit-verify",
        help="check an audit log's hash chain",
        description="Check an audit log's hash chain end to end: exit 0 when intact, 1 when broken.",
    )
    audit.add_argument("path", metavar="PATH", help="the audit log file")
    audit.set_defaults(handler=command_audit_verify)
    return parser


def _configure_logging(verbose: bool) -> None:
    # The level goes on the handler: pydicom's logger has its own level and would pass its warnings through.
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.INFO if verbose else logging.ERROR)
    handler.setFormatter(logging.Formatter(f"{PROG}: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit status (0 ok, 1 some files failed, 2 bad usage)."""
    route_warnings_to_logging()
    _configure_logging(verbose=False)
    parser = build_parser()
    args = parser.parse_args(argv)  # exits 2 with argparse's message for unknown options
    _configure_logging(verbose=getattr(args, "verbose", False))
    try:
        status: int = args.handler(args, sys.stdout, sys.stderr)
    except UsageError as error:
        parser.exit(EXIT_USAGE, f"{PROG}: error: {error}\n")
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    return status


def run() -> NoReturn:
    """The ``orthanc-anonymizer`` command: :func:`main`, then an exit without the interpreter's teardown.

    Freeing every module's objects at exit (pydicom's data dictionaries, the profile tables) cost 30-80 ms of wall
    time, about a tenth of a ``--jobs 2`` run over the bench's 300 CT images (``bench/RESULTS.md``). Nothing here
    needs it: every output file is written and closed before :func:`main` returns, and logging and both streams are
    flushed here. A usage error or an uncaught exception leaves through :class:`SystemExit` or a traceback as
    usual.
    """
    status = main()
    logging.shutdown()
    try:
        sys.stdout.flush()
    except (OSError, ValueError):  # stdout closed early (a pipe to head): Python's own exit says 120
        status = status or 120
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.flush()
    os._exit(status)


if __name__ == "__main__":
    run()
