"""The plugin's configuration: the ``"Anonymizer"`` section of Orthanc's configuration, checked at start-up.

Every wrong setting raises :class:`ConfigurationError` naming it (``Anonymizer.Workers: ...``); the glue lets the
error escape so Orthanc refuses to start, as it does for its own bad settings. Nothing here imports ``orthanc``:
the glue passes the parsed configuration in.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from orthanc_anonymizer.defaults import CHECKOUT as CHECKOUT  # re-exported: launch and the tests find them here
from orthanc_anonymizer.defaults import DEVELOPMENT_SECRET as DEVELOPMENT_SECRET
from orthanc_anonymizer.defaults import SECRET_ENVIRONMENT_VARIABLE as SECRET_ENVIRONMENT_VARIABLE
from orthanc_anonymizer.deid.profile_files import CHECKOUT_PROFILES_DIRECTORY
from orthanc_anonymizer.deid.profiles import Option, Profile
from orthanc_anonymizer.errors import AnonymizerError, ProfileError

SECTION = "Anonymizer"

_KNOWN_KEYS = {
    "DefaultProfile",
    "DefaultOptions",
    "ProfilesDirectory",
    "Secret",
    "AllowDevelopmentSecret",
    "Workers",
    "ConcurrentJobs",
    "WorkerPython",
    "AutoAnonymize",
    "Authorization",
    "SharedState",
    "NodeName",
    "MaximumRequestBytes",
    "MaximumRules",
    "MaximumBatchResources",
}

SHARED_STATE_MODES = ("Auto", "Local", "PostgreSQL")
"""``Anonymizer.SharedState``: where links, ingest position and audit trail live (see :mod:`.cluster`)."""

RESTRICTABLE_ROUTES = {
    "profiles": "GET /anonymizer/profiles",
    "anonymize": "POST /anonymizer/{level}/{id} (storing copies)",
    "dry-run": "POST /anonymizer/{level}/{id} with DryRun",
    "dry-run-values": "DryRun with IncludeValues (original values in the answer), and the pixel preview (original pixels)",
    "batch": "POST /anonymizer/batch",
    "jobs": "GET /anonymizer/jobs/{id}",
    "links": "GET /anonymizer/{level}/{id}/links (copy back to its original)",
    "audit": "GET /anonymizer/audit and /anonymizer/audit/verify",
    "weaken": "a request whose rules or options keep or clean what its named profile removes",
}
"""The names ``Anonymizer.Authorization.RestrictedRoutes`` may list, and what each covers."""
DEFAULT_RESTRICTED_ROUTES = ("links", "audit", "dry-run-values", "weaken")
"""What ``Authorization`` restricts when it names ``AdminUsers`` and lists no ``RestrictedRoutes``."""


class ConfigurationError(AnonymizerError):
    """A setting of the ``"Anonymizer"`` section (or an Orthanc setting the plugin relies on) is wrong."""


@dataclass(frozen=True)
class AccessRules:
    """``Anonymizer.Authorization``: routes only administrators may use. Empty: every authenticated user may."""

    admin_users: frozenset[str] = frozenset()
    restricted_routes: frozenset[str] = frozenset()

    def allows(self, user: str, route: str) -> bool:
        """May ``user`` (the HTTP user Orthanc authenticated) use ``route`` (a :data:`RESTRICTABLE_ROUTES` name)?"""
        return route not in self.restricted_routes or user in self.admin_users


@dataclass(frozen=True)
class RequestLimits:
    """How much one REST request may ask for: a request over a limit is refused (413 or 400 naming the setting)
    before any work starts, so no caller can make a route or the audit trail arbitrarily slow or large."""

    body_bytes: int = 1024 * 1024
    """``Anonymizer.MaximumRequestBytes``: the largest request body (413 above it)."""
    rules: int = 1000
    """``Anonymizer.MaximumRules``: the most custom rules one request may give."""
    batch_resources: int = 10000
    """``Anonymizer.MaximumBatchResources``: the most resources one batch may list."""


@dataclass(frozen=True)
class SharedDatabase:
    """The PostgreSQL database of Orthanc's index, where several Orthanc servers share the plugin's state.

    ``parameters`` are libpq connection keywords (``host``, ``port``, ``dbname``, ``user``, ``password``,
    ``sslmode``), or only ``conninfo`` for ``PostgreSQL.ConnectionUri``; the password is never logged.
    """

    parameters: Mapping[str, str] = field(repr=False)
    description: str = ""
    """Where, for the log: ``host:port/database``, without user or password."""
    node: str = ""
    """This Orthanc's name in the cluster (``Anonymizer.NodeName``, default the host name): its job records'
    folder, and the ``Node`` of its audit records. Two running nodes may not share it."""
    setting: str = "Auto"
    """``Anonymizer.SharedState`` as given (``Auto`` or ``PostgreSQL``): the log names it if it cannot be honoured."""


@dataclass(frozen=True)
class AnonymizerConfig:
    """The checked settings the plugin runs with. ``secret`` is never logged nor written anywhere."""

    default_profile: str = "basic"
    default_options: tuple[Option, ...] = ()
    profiles_directory: Path | None = None
    """The folder of named profiles: ``ProfilesDirectory`` when set, else the checkout's ``profiles/`` (if any)."""
    shipped_profiles: bool = False
    """Whether the shipped profiles are offered beside the folder's: only when ``ProfilesDirectory`` is not set (a
    configured folder is the administrator's whole choice)."""
    secret: bytes = field(default=b"", repr=False)
    development_secret: bool = False
    """True when no secret was configured and the development key is in use (start-up logs a warning)."""
    workers: int = 2
    concurrent_jobs: int = 2
    worker_python: str = ""
    storage_directory: Path = Path("OrthancStorage")
    state_directory: Path = Path("OrthancStorage/anonymizer")
    """Where the plugin keeps audit trail, job records and the links index."""
    http_port: int = 8042
    http_threads: int = 50
    auto_anonymize: Mapping[str, object] = field(default_factory=dict)
    access: AccessRules = AccessRules()
    limits: RequestLimits = RequestLimits()
    shared_database: SharedDatabase | None = None
    """Set when links, ingest position and audit trail are shared through PostgreSQL (a cluster of Orthancs)."""


def _setting(name: str) -> str:
    return f"{SECTION}.{name}"


def _expect_bool(section: Mapping[str, object], key: str, default: bool) -> bool:
    value = section.get(key, default)
    if not isinstance(value, bool):
        raise ConfigurationError(f"{_setting(key)}: expected true or false, got {type(value).__name__}")
    return value


def _expect_int(section: Mapping[str, object], key: str, default: int, minimum: int, maximum: int) -> int:
    value = section.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigurationError(f"{_setting(key)}: expected a whole number, got {type(value).__name__}")
    if not minimum <= value <= maximum:
        raise ConfigurationError(f"{_setting(key)}: {value} is out of range {minimum}..{maximum}")
    return value


def _expect_str(section: Mapping[str, object], key: str, default: str) -> str:
    value = section.get(key, default)
    if not isinstance(value, str):
        raise ConfigurationError(f"{_setting(key)}: expected a string, got {type(value).__name__}")
    return value


def _default_worker_python() -> str:
    venv_python = CHECKOUT / ".venv" / "bin" / "python"
    if venv_python.exists():
        return str(venv_python)
    return "/usr/bin/python3"


def _orthanc_int(orthanc_config: Mapping[str, object], key: str, default: int) -> int:
    value = orthanc_config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigurationError(f"{key}: expected a whole number, got {type(value).__name__}")
    return value


def _access_rules(section: Mapping[str, object], orthanc_config: Mapping[str, object]) -> AccessRules:
    """``Anonymizer.Authorization``, checked against Orthanc's own authentication settings."""
    name = _setting("Authorization")
    value = section.get("Authorization")
    if value is None:
        return AccessRules()
    if not isinstance(value, Mapping):
        raise ConfigurationError(f"{name}: expected an object, got {type(value).__name__}")
    unknown = sorted(set(value) - {"AdminUsers", "RestrictedRoutes"})
    if unknown:
        raise ConfigurationError(f"{name}.{unknown[0]}: unknown setting; known settings: AdminUsers, RestrictedRoutes")
    admins = value.get("AdminUsers", [])
    if not isinstance(admins, list) or not all(isinstance(user, str) and user for user in admins):
        raise ConfigurationError(f"{name}.AdminUsers: expected a list of user names")
    # Named administrators and no list: what shows a link or original values, and weakening the site's profile.
    routes = value.get("RestrictedRoutes", list(DEFAULT_RESTRICTED_ROUTES) if "AdminUsers" in value else [])
    if not isinstance(routes, list) or not all(isinstance(route, str) for route in routes):
        raise ConfigurationError(f"{name}.RestrictedRoutes: expected a list of route names")
    for route in routes:
        if route not in RESTRICTABLE_ROUTES:
            raise ConfigurationError(
                f"{name}.RestrictedRoutes: unknown route {route!r}; known: {', '.join(sorted(RESTRICTABLE_ROUTES))}"
            )
    if routes:
        # The user name comes from the Basic authorization header, which only Orthanc's authentication checks:
        # without it any caller could name itself an administrator.
        if orthanc_config.get("AuthenticationEnabled") is not True:
            raise ConfigurationError(f'{name}: restricted routes need "AuthenticationEnabled": true')
        registered = orthanc_config.get("RegisteredUsers") or {}
        for user in admins:
            if not isinstance(registered, Mapping) or user not in registered:
                raise ConfigurationError(f"{name}.AdminUsers: {user!r} is not one of RegisteredUsers")
    return AccessRules(admin_users=frozenset(admins), restricted_routes=frozenset(routes))


_NODE_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"


def _postgresql_text(section: Mapping[str, object], key: str, default: str, environ: Mapping[str, str]) -> str:
    value = section.get(key, default)
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ConfigurationError(f"PostgreSQL.{key}: expected a string, got {type(value).__name__}")
    text = str(value)
    # Orthanc substitutes ${VARIABLE} when it reads the file; an Orthanc that did not leaves it to us.
    if text.startswith("${") and text.endswith("}"):
        text = environ.get(text[2:-1], "")
    return text


def _shared_database(
    section: Mapping[str, object], orthanc_config: Mapping[str, object], environ: Mapping[str, str]
) -> SharedDatabase | None:
    """``Anonymizer.SharedState`` against Orthanc's ``"PostgreSQL"`` section: the database to share, or ``None``."""
    mode = section.get("SharedState", "Auto")
    if mode not in SHARED_STATE_MODES:
        raise ConfigurationError(
            f"{_setting('SharedState')}: expected one of {', '.join(SHARED_STATE_MODES)}, got {mode!r}"
        )
    named = _expect_str(section, "NodeName", "")
    if named and not re.fullmatch(_NODE_NAME, named):
        raise ConfigurationError(
            f"{_setting('NodeName')}: {named!r} is not a node name (letters, digits, '.', '_', '-'; at most 64)"
        )
    postgresql = orthanc_config.get("PostgreSQL")
    indexed = isinstance(postgresql, Mapping) and postgresql.get("EnableIndex") is True
    if mode == "Local" or (mode == "Auto" and not indexed):
        return None
    if not indexed or not isinstance(postgresql, Mapping):
        raise ConfigurationError(
            f'{_setting("SharedState")}: "PostgreSQL" needs Orthanc\'s index in PostgreSQL '
            '("PostgreSQL": {"EnableIndex": true, ...}); several Orthancs share nothing else'
        )
    node = named or socket.gethostname()
    if not re.fullmatch(_NODE_NAME, node):
        raise ConfigurationError(f"{_setting('NodeName')}: the host name {node!r} is not a node name; set one")
    uri = _postgresql_text(postgresql, "ConnectionUri", "", environ)
    if uri:
        return SharedDatabase(
            parameters={"conninfo": uri}, description="PostgreSQL.ConnectionUri", node=node, setting=str(mode)
        )
    host = _postgresql_text(postgresql, "Host", "localhost", environ)
    port = _postgresql_text(postgresql, "Port", "5432", environ)
    database = _postgresql_text(postgresql, "Database", "orthanc", environ)
    parameters = {
        "host": host,
        "port": port,
        "dbname": database,
        "user": _postgresql_text(postgresql, "Username", "orthanc", environ),
        "password": _postgresql_text(postgresql, "Password", "", environ),
        "sslmode": "require" if postgresql.get("EnableSsl") is True else "prefer",
    }
    return SharedDatabase(parameters=parameters, description=f"{host}:{port}/{database}", node=node, setting=str(mode))


def parse_configuration(
    orthanc_config: Mapping[str, object],
    environ: Mapping[str, str] | None = None,
    working_directory: Path | None = None,
) -> AnonymizerConfig:
    """Check and resolve the ``"Anonymizer"`` section of ``orthanc_config`` (Orthanc's whole configuration).

    ``environ`` supplies ``ANONYMIZER_SECRET`` (default: :data:`os.environ`); relative paths resolve against
    ``working_directory`` (default: the current directory, which is Orthanc's).
    """
    environ = os.environ if environ is None else environ
    cwd = working_directory or Path.cwd()
    section = orthanc_config.get(SECTION, {})
    if not isinstance(section, Mapping):
        raise ConfigurationError(f"{SECTION}: expected an object, got {type(section).__name__}")
    unknown = sorted(set(section) - _KNOWN_KEYS)
    if unknown:
        raise ConfigurationError(
            f"{_setting(unknown[0])}: unknown setting; known settings: {', '.join(sorted(_KNOWN_KEYS))}"
        )

    default_profile = _expect_str(section, "DefaultProfile", "basic").strip() or "basic"
    raw_options = section.get("DefaultOptions", [])
    if not isinstance(raw_options, list) or not all(isinstance(item, str) for item in raw_options):
        raise ConfigurationError(f"{_setting('DefaultOptions')}: expected a list of option names")
    try:
        default_options = tuple(Option.parse(item) for item in raw_options)
        Profile(options=frozenset(default_options))  # options that exclude each other fail here
    except ProfileError as error:
        raise ConfigurationError(f"{_setting('DefaultOptions')}: {error}") from None

    profiles_text = _expect_str(section, "ProfilesDirectory", "")
    profiles_directory: Path | None
    if profiles_text:
        profiles_directory = Path(profiles_text)
        if not profiles_directory.is_absolute():
            profiles_directory = cwd / profiles_directory
        if not profiles_directory.is_dir():
            raise ConfigurationError(f"{_setting('ProfilesDirectory')}: {profiles_directory} is not a folder")
    else:
        # The default site folder, with the shipped profiles (package data) after it (deid/profile_files.py).
        site = CHECKOUT_PROFILES_DIRECTORY
        profiles_directory = site if site.is_dir() else None
    shipped_profiles = not profiles_text

    secret_text = environ.get(SECRET_ENVIRONMENT_VARIABLE, "") or _expect_str(section, "Secret", "")
    allow_development = _expect_bool(section, "AllowDevelopmentSecret", False)
    if secret_text:
        secret, development = secret_text.encode("utf-8"), False
    elif allow_development:
        secret, development = DEVELOPMENT_SECRET, True
    else:
        raise ConfigurationError(
            f"{_setting('Secret')}: no anonymization secret; set {_setting('Secret')} or the environment variable "
            f"{SECRET_ENVIRONMENT_VARIABLE} (or {_setting('AllowDevelopmentSecret')} for a development setup)"
        )

    # The cores this Orthanc may run on (taskset, a container's cpuset), not all the machine's.
    workers = _expect_int(section, "Workers", max(1, len(os.sched_getaffinity(0))), 1, 256)
    concurrent_jobs = _expect_int(section, "ConcurrentJobs", 2, 1, 64)
    worker_python = _expect_str(section, "WorkerPython", "") or _default_worker_python()
    if not os.access(worker_python, os.X_OK):
        raise ConfigurationError(f"{_setting('WorkerPython')}: {worker_python} is not an executable")

    auto = section.get("AutoAnonymize", {})
    if not isinstance(auto, Mapping):
        raise ConfigurationError(f"{_setting('AutoAnonymize')}: expected an object, got {type(auto).__name__}")

    storage_text = orthanc_config.get("StorageDirectory", "OrthancStorage")
    if not isinstance(storage_text, str) or not storage_text:
        raise ConfigurationError("StorageDirectory: expected a folder name")
    storage = Path(storage_text)
    if not storage.is_absolute():
        storage = cwd / storage

    http_port = _orthanc_int(orthanc_config, "HttpPort", 8042)
    http_threads = _orthanc_int(orthanc_config, "HttpThreadsCount", 50)
    # The plugin's own loopback calls need free HTTP threads (see glue._Gate).
    needed = 3 * concurrent_jobs + 10
    if http_threads < needed:
        raise ConfigurationError(
            f"HttpThreadsCount: {http_threads} leaves too few HTTP threads for {_setting('ConcurrentJobs')} = "
            f"{concurrent_jobs} (needs at least {needed})"
        )

    return AnonymizerConfig(
        default_profile=default_profile,
        default_options=default_options,
        profiles_directory=profiles_directory,
        shipped_profiles=shipped_profiles,
        secret=secret,
        development_secret=development,
        workers=workers,
        concurrent_jobs=concurrent_jobs,
        worker_python=worker_python,
        storage_directory=storage,
        state_directory=storage / "anonymizer",
        http_port=http_port,
        http_threads=http_threads,
        auto_anonymize=dict(auto),
        access=_access_rules(section, orthanc_config),
        limits=RequestLimits(
            body_bytes=_expect_int(section, "MaximumRequestBytes", RequestLimits.body_bytes, 1024, 1 << 30),
            rules=_expect_int(section, "MaximumRules", RequestLimits.rules, 0, 1_000_000),
            batch_resources=_expect_int(section, "MaximumBatchResources", RequestLimits.batch_resources, 1, 10_000_000),
        ),
        shared_database=_shared_database(section, orthanc_config, environ),
    )
