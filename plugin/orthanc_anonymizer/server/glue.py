"""The only module that imports ``orthanc``: configuration, REST routes, logging, start and stop.

Rules that keep orthanc-python 4.0 from deadlocking (it holds the GIL during every SDK call):

- no ``orthanc.RestApi*`` call anywhere: the plugin reaches Orthanc's REST API through loopback HTTP
  (:mod:`.orthanc_client`), authenticated with ``orthanc.GenerateRestApiAuthorizationToken()``;
- routes do no anonymizing: they check the request, hand a job to :mod:`.jobs` (its own threads, the engine in
  worker processes) and, when synchronous, wait on an event, which releases the GIL;
- a route that needs Orthanc (existence, links) or waits for a job holds one HTTP thread while its loopback calls
  need another: :class:`_Gate` bounds how many do so at once, so Orthanc always keeps threads to serve them.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import dataclasses
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orthanc

from orthanc_anonymizer import __version__
from orthanc_anonymizer.audit import AuditLog
from orthanc_anonymizer.deid.pixels import PixelSettings, redaction_preview
from orthanc_anonymizer.deid.profile_files import load_profiles, resolve_profile
from orthanc_anonymizer.deid.uids import KeyedHasher
from orthanc_anonymizer.deid.weakening import named
from orthanc_anonymizer.errors import AnonymizationError, AnonymizerError, LinkStoreError, ProfileError
from orthanc_anonymizer.logs import exception_summary, route_warnings_to_logging
from orthanc_anonymizer.server.api import (
    AnonymizeRequest,
    BadRequest,
    RequestTooLarge,
    optional_int,
    parse_anonymize,
    parse_batch,
    parse_preview,
    profiles_answer,
)
from orthanc_anonymizer.server.auto_anonymize import AutoAnonymizer, AutoAnonymizeSetup, resolve_auto_anonymize
from orthanc_anonymizer.server.cluster import Cluster
from orthanc_anonymizer.server.config import (
    RESTRICTABLE_ROUTES,
    AnonymizerConfig,
    ConfigurationError,
    parse_configuration,
)
from orthanc_anonymizer.server.explorer import explorer_javascript, ui_file
from orthanc_anonymizer.server.gateway import KEEP, MODIFY
from orthanc_anonymizer.server.job_records import Job, JobSettings, JobStore
from orthanc_anonymizer.server.jobs import JobManager, hold_at_files
from orthanc_anonymizer.server.links import FROM_RESOURCE, PROFILE_METADATA, LinkIndex, LinkStore
from orthanc_anonymizer.server.orthanc_client import LEVELS, OrthancClient, ResourceNotFound
from orthanc_anonymizer.server.workers import WorkerPool

logger = logging.getLogger("orthanc_anonymizer")
LEVEL_PATTERN = "(patients|studies|series|instances)"
TEST_HOLD_VARIABLE = "ANONYMIZER_TEST_HOLD_DIRECTORY"


class _OrthancLogHandler(logging.Handler):
    """Python logging -> Orthanc's log. Messages carry IDs, counts and tag numbers only (never values)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = "anonymizer: " + self.format(record)
            if record.levelno >= logging.ERROR:
                orthanc.LogError(message)
            elif record.levelno >= logging.WARNING:
                orthanc.LogWarning(message)
            else:
                orthanc.LogInfo(message)
        except Exception:
            self.handleError(record)


class _Busy(Exception):
    """Too many requests hold HTTP threads already (HTTP 503)."""


class _Forbidden(Exception):
    """The route is restricted to administrators by ``Anonymizer.Authorization`` (HTTP 403)."""

    def __init__(self, message: str, user: str, route: str, rules: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.user, self.route, self.rules = user, route, rules


class _Gate:
    """Keeps Orthanc's HTTP threads from all waiting on each other.

    A route that waits for a job holds an HTTP thread while the job's loopback calls need others; a route that asks
    Orthanc something (does this study exist?) holds one thread and needs a second. So at most ``waiting`` routes
    may hold a thread at a time (the rest are refused at once with 503, never queued: a queued request would hold
    its thread too), and at most ``CHECKS`` of them make a loopback call at a time. What stays free serves the job
    runners' calls, the checks and quick requests.
    """

    CHECKS = 4

    def __init__(self, http_threads: int, concurrent_jobs: int, workers: int = 0) -> None:
        # The job threads' connections, and each worker process's (it downloads the originals itself).
        job_connections = concurrent_jobs * (1 + JobManager.STORERS) + workers
        self.waiting = max(1, http_threads - job_connections - self.CHECKS - 4)
        self._waiting = threading.BoundedSemaphore(self.waiting)
        self._checks = threading.BoundedSemaphore(self.CHECKS)

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """Hold a place among the routes that may wait; :class:`_Busy` when there is none."""
        if not self._waiting.acquire(blocking=False):
            raise _Busy(f'busy: {self.waiting} requests are waiting already; retry, or ask with "Asynchronous": true')
        try:
            yield
        finally:
            self._waiting.release()

    @contextlib.contextmanager
    def loopback(self) -> Iterator[None]:
        """Within :meth:`hold`: one of the few places for a loopback call (waits for one)."""
        with self._checks:
            yield


class _Plugin:
    """Everything the routes use, made once at start-up."""

    def __init__(
        self, config: AnonymizerConfig, orthanc_config: dict[str, Any], auto: AutoAnonymizeSetup | None = None
    ) -> None:
        self.config = config
        self.client = _loopback_client(config, orthanc_config)
        # Routes' own calls close their connection: an idle keep-alive connection holds one of Orthanc's threads.
        self.route_client = _loopback_client(config, orthanc_config, timeout=30, keep_alive=False)
        config.state_directory.mkdir(parents=True, exist_ok=True)
        # Several Orthancs on one PostgreSQL index share links, ingest position and audit trail there (cluster.py).
        self.cluster = Cluster.open(config.shared_database) if config.shared_database else None
        self.store = (
            self.cluster.job_store(config.state_directory)
            if self.cluster
            else JobStore(config.state_directory / "jobs")
        )
        interrupted = self.store.mark_interrupted()
        if interrupted:
            logger.warning("%d jobs were interrupted by the last stop of Orthanc; marked as failed", interrupted)
        self.links: LinkStore = (
            self.cluster.links if self.cluster else LinkIndex(config.state_directory / "links.sqlite")
        )
        self.audit = self.cluster.audit if self.cluster else AuditLog(config.state_directory / "audit.jsonl")
        self.pool = WorkerPool(config.workers, config.worker_python)
        # Start the worker processes now, off Orthanc's start-up path: the first request is faster, and a worker
        # that cannot start (wrong WorkerPython) is in the log before anyone anonymizes anything.
        threading.Thread(target=self._warm_up, name="anonymizer-warm-up", daemon=True).start()
        stopping = threading.Event()
        held = os.environ.get(TEST_HOLD_VARIABLE)
        if held:  # test instrumentation only: pauses jobs at points a test names (jobs.hold_at_files)
            logger.warning(
                "%s is set: jobs pause where the tests ask (never set this in production)", TEST_HOLD_VARIABLE
            )
        self.manager = JobManager(
            client=self.client,
            pool=self.pool,
            links=self.links,
            audit=self.audit,
            store=self.store,
            hasher=KeyedHasher(config.secret),
            concurrent_jobs=config.concurrent_jobs,
            window=2 * config.workers,
            hold=hold_at_files(Path(held), stopping) if held else None,
            # Gateway mode knows the copies the routes store by their bytes (JobManager.is_storing).
            register_stores=auto is not None and auto.auto.mode == "Gateway",
            workers_store=True,  # with links in this Orthanc's file and Gateway mode off (JobManager decides)
            stopping=stopping,
        )
        self.gate = _Gate(config.http_threads, config.concurrent_jobs, config.workers)
        leadership = self.cluster.leadership() if self.cluster else None
        self.auto = (
            AutoAnonymizer(auto, config, self.client, self.manager, self.pool, self.store, leadership) if auto else None
        )

    def _warm_up(self) -> None:
        try:
            self.pool.warm_up()
        except Exception as error:
            logger.error("worker processes do not start (%s): %s", self.config.worker_python, exception_summary(error))

    def stop(self) -> None:
        if self.auto is not None:
            self.auto.stop()
        self.manager.shutdown()
        self.pool.shutdown()
        self.links.close()
        if self.cluster is not None:
            self.cluster.close()  # this node's name is free again at once


def _loopback_client(config: AnonymizerConfig, orthanc_config: dict[str, Any], **options: Any) -> OrthancClient:
    """A client of this very Orthanc over loopback: with SslEnabled its certificate names the public host, not
    127.0.0.1, so it is not checked there."""
    tls = bool(orthanc_config.get("SslEnabled", False))
    base_url = f"{'https' if tls else 'http'}://127.0.0.1:{config.http_port}"
    return OrthancClient(base_url, _loopback_headers(orthanc_config), verify_tls=not tls, **options)


def _loopback_headers(orthanc_config: dict[str, Any]) -> dict[str, str]:
    """How the plugin authenticates to its own Orthanc: a plugin token, else the first registered user."""
    generate = getattr(orthanc, "GenerateRestApiAuthorizationToken", None)
    if generate is not None:
        return {"Authorization": generate()}
    users = orthanc_config.get("RegisteredUsers") or {}
    if users:
        user, password = next(iter(users.items()))
        token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        return {"Authorization": f"Basic {token}"}
    return {}


def _caller(headers: dict[str, str]) -> str:
    """Who asks: the HTTP user of Basic authentication, ``plugin`` for a plugin token, else ``anonymous``."""
    authorization = headers.get("authorization", "")
    if authorization.startswith("Basic "):
        try:
            return base64.b64decode(authorization[6:]).decode("utf-8").split(":", 1)[0] or "anonymous"
        except (ValueError, UnicodeDecodeError):
            return "anonymous"
    if authorization.startswith("Bearer "):
        return "token"
    return "anonymous"


def _require(headers: dict[str, str] | None, *routes: str) -> None:
    """:class:`_Forbidden` naming the first of ``routes`` (``RESTRICTABLE_ROUTES`` names) the caller may not use."""
    access = _state().config.access
    user = _caller(headers or {})
    for route in routes:
        if not access.allows(user, route):
            raise _Forbidden(
                f"{route}: {RESTRICTABLE_ROUTES[route]} is restricted to the users of "
                "Anonymizer.Authorization.AdminUsers",
                user,
                route,
            )


def _require_weakening(headers: dict[str, str] | None, parsed: AnonymizeRequest) -> None:
    """:class:`_Forbidden` naming the first rule or option of the request that weakens the site's profile, when
    the caller may not ``weaken`` (:func:`.weakening.weakenings`)."""
    if not parsed.weakenings:
        return
    user = _caller(headers or {})
    if _state().config.access.allows(user, "weaken"):
        return
    names = tuple(named(parsed.weakenings))
    raise _Forbidden(
        f"weaken: {names[0]} keeps or cleans what profile {parsed.settings.profile.name!r} removes; weakening a "
        "profile is restricted to the users of Anonymizer.Authorization.AdminUsers",
        user,
        "weaken",
        names,
    )


def _settings_routes(settings: JobSettings) -> tuple[str, ...]:
    """The restrictable routes a request with these settings uses."""
    if not settings.dry_run:
        return ("anonymize",)
    return ("dry-run", "dry-run-values") if settings.include_values else ("dry-run",)


def _answer(output: orthanc.RestOutput, value: object, status: int = 200) -> None:
    body = json.dumps(value, indent=1)
    if status == 200:
        output.AnswerBuffer(body, "application/json")
    else:
        _send_status(output, status, body)


def _error(output: orthanc.RestOutput, status: int, message: str) -> None:
    _send_status(output, status, json.dumps({"HttpStatus": status, "Message": message}, indent=1))


def _send_status(output: orthanc.RestOutput, status: int, body: str) -> None:
    """An error status with a body: orthanc-python 5.0 takes (status, body); 4.0 needs the length too."""
    try:
        output.SendHttpStatus(status, body)
    except TypeError:
        output.SendHttpStatus(status, body, len(body.encode("utf-8")))


def _audit_denial(denial: _Forbidden, method: object, uri: str) -> None:
    """Who tried a restricted route goes to the audit trail (IDs and route names only, as every record)."""
    record: dict[str, object] = {
        "Event": "denied",
        "User": denial.user,
        "Route": denial.route,
        "Request": f"{method} {uri}",
    }
    if denial.rules:  # the weakening rules and options, as tag numbers and option names
        record["Rules"] = list(denial.rules)
    try:
        _state().audit.append(record)
    except Exception as error:  # the answer is 403 all the same
        logger.error("denied request not audited: %s", exception_summary(error))


def _route(methods: tuple[str, ...]) -> Callable[[orthanc.RestCallback], orthanc.RestCallback]:
    """Wrap a route: method check, and exceptions turned into HTTP answers (400, 403, 404, 413, 503, 500)."""

    def decorate(function: orthanc.RestCallback) -> orthanc.RestCallback:
        def handler(output: orthanc.RestOutput, uri: str, **request: Any) -> None:
            if request.get("method") not in methods:
                output.SendMethodNotAllowed(",".join(methods))
                return
            try:
                function(output, uri, **request)
            except (BadRequest, ProfileError) as error:
                _error(output, 400, str(error))
            except RequestTooLarge as error:
                _error(output, 413, str(error))
            except ResourceNotFound as error:
                _error(output, 404, f"unknown resource ({error})")
            except _Forbidden as error:
                _audit_denial(error, request.get("method"), uri)
                _error(output, 403, str(error))
            except _Busy as error:
                _error(output, 503, str(error))
            except LinkStoreError as error:  # its disk or database is away for now: try again later
                logger.error("%s %s: %s", request.get("method"), uri, error)
                _error(output, 503, str(error))
            except Exception as error:
                summary = exception_summary(error)
                logger.error("%s %s failed: %s", request.get("method"), uri, summary)
                _error(output, 500, summary)

        return handler

    return decorate


_plugin: _Plugin | None = None
_ready = threading.Event()
"""Set once :data:`_plugin` is made, or once it is known it will not be (:data:`_not_started` says why)."""
_not_started = "the anonymizer is starting"
READY_WAIT = 60.0
"""How long a request that came before the plugin was ready waits for it (Orthanc answers before the plugin's
shared state is chosen, see :func:`_start_once_orthanc_answers`)."""


def _state() -> _Plugin:
    _ready.wait(READY_WAIT)
    if _plugin is None:
        raise _Busy(f"{_not_started}; retry later")
    return _plugin


@_route(("GET",))
def _profiles(output: orthanc.RestOutput, uri: str, **request: Any) -> None:
    _require(request.get("headers"), "profiles")
    _answer(output, profiles_answer(_state().config))


def _submit(level: str, resources: list[str], settings: JobSettings, headers: dict[str, str]) -> Job:
    job = Job(level=level, resources=resources, settings=settings, user=_caller(headers))
    return _state().manager.submit(job)


def _job_reference(job: Job) -> dict[str, str]:
    return {"Job": job.id, "Path": f"/anonymizer/jobs/{job.id}"}


@_route(("POST",))
def _anonymize(output: orthanc.RestOutput, uri: str, **request: Any) -> None:
    plugin = _state()
    level, resource = request["groups"]
    parsed = parse_anonymize(request.get("body") or b"", plugin.config)
    _require(request.get("headers"), *_settings_routes(parsed.settings))
    _require_weakening(request.get("headers"), parsed)
    with plugin.gate.hold():
        with plugin.gate.loopback():
            if not plugin.route_client.exists(level, resource):
                raise ResourceNotFound("GET", f"/{level}/{resource}", 404)
        job = _submit(level, [resource], parsed.settings, request.get("headers") or {})
        if parsed.asynchronous:
            _answer(output, _job_reference(job))
            return
        while not job.done.wait(1.0):
            pass
    result = job.results[0] if job.results else None
    if result is None:
        _error(output, 500, "; ".join(job.errors) or "the job ended without a result")
    elif resource in job.not_found:  # deleted between the check above and the job's listing
        _error(output, 404, f"unknown resource: {level}/{resource}")
    elif result.error is not None:
        _error(output, 500, result.error)
    else:
        _answer(output, result.as_json())


@_route(("POST",))
def _batch(output: orthanc.RestOutput, uri: str, **request: Any) -> None:
    plugin = _state()
    parsed = parse_batch(request.get("body") or b"", plugin.config)
    _require(request.get("headers"), "batch", *_settings_routes(parsed.settings)[1:])
    _require_weakening(request.get("headers"), parsed)
    job = _submit(parsed.level, list(parsed.resources), parsed.settings, request.get("headers") or {})
    _answer(output, _job_reference(job))


def _holds_values(record: dict[str, Any]) -> bool:
    """A dry run's record with original values in it (``IncludeValues``)."""
    return any(
        "Original" in change for result in record.get("Results", []) for change in result.get("Changes", []) or []
    )


@_route(("GET",))
def _job(output: orthanc.RestOutput, uri: str, **request: Any) -> None:
    (job_id,) = request["groups"]
    headers = request.get("headers") or {}
    _require(headers, "jobs")
    record = _state().manager.record(job_id)
    if record is None:
        _error(output, 404, f"unknown job {job_id}")
        return
    # A job's Results pair each original with its copy, as the links route does: a user who may not follow links
    # reads only the jobs they started (whose originals they named themselves).
    user = _caller(headers)
    if record.get("User") != user and not _state().config.access.allows(user, "links"):
        raise _Forbidden(
            f"links: job {job_id} was started by another user; its record pairs originals with their copies, which "
            "only the users of Anonymizer.Authorization.AdminUsers may see",
            user,
            "links",
        )
    if _holds_values(record):
        _require(headers, "dry-run-values")
    _answer(output, record)


@_route(("GET",))
def _links(output: orthanc.RestOutput, uri: str, **request: Any) -> None:
    plugin = _state()
    level, resource = request["groups"]
    _require(request.get("headers"), "links")
    with plugin.gate.hold(), plugin.gate.loopback():
        if not plugin.route_client.exists(level, resource):
            raise ResourceNotFound("GET", f"/{level}/{resource}", 404)
        source = plugin.route_client.get_metadata(level, resource, FROM_RESOURCE) or plugin.links.source(
            LEVELS[level], resource
        )
        copies = [
            copy for copy in plugin.links.copies(LEVELS[level], resource) if plugin.route_client.exists(level, copy)
        ]
    _answer(output, {"Source": source, "Copies": copies})


@_route(("GET",))
def _pixel_preview(output: orthanc.RestOutput, uri: str, **request: Any) -> None:
    """One frame before and after Clean Pixel Data, as a PNG rendered here (by a worker process). It shows the
    original pixels, so it is kept to the users who may see a dry run's values (``dry-run-values``)."""
    plugin = _state()
    (resource,) = request["groups"]
    _require(request.get("headers"), "dry-run", "dry-run-values")
    settings, frame = parse_preview(request.get("get") or {}, plugin.config)
    with plugin.gate.hold():
        with plugin.gate.loopback():
            if not plugin.route_client.exists("instances", resource):
                raise ResourceNotFound("GET", f"/instances/{resource}", 404)
            data = plugin.route_client.instance_file(resource)
        try:
            png = plugin.pool.call(redaction_preview, data, settings.profile, PixelSettings(), frame).result()
        except AnonymizationError as error:
            raise BadRequest(str(error)) from None
    output.AnswerBuffer(png, "image/png")


@_route(("GET",))
def _ui(output: orthanc.RestOutput, uri: str, **request: Any) -> None:
    """The page Orthanc Explorer 2's buttons open (explorer.py): static files, no resource data in them."""
    (name,) = request["groups"]
    found = ui_file(name)
    if found is None:
        _error(output, 404, f"no page {name} under /anonymizer/ui/; the page is anonymize.html")
        return
    content, content_type = found
    output.AnswerBuffer(content, content_type)


@_route(("GET",))
def _audit(output: orthanc.RestOutput, uri: str, **request: Any) -> None:
    # Each anonymization's record pairs its Source with its Result: reading them is following links.
    _require(request.get("headers"), "audit", "links")
    query = request.get("get") or {}
    records = _state().audit.read(since=optional_int(query, "since"), limit=optional_int(query, "limit"))
    _answer(output, records)


@_route(("GET",))
def _audit_verify(output: orthanc.RestOutput, uri: str, **request: Any) -> None:
    _require(request.get("headers"), "audit")
    _answer(output, _state().audit.verify())


def _check_orthanc_settings(orthanc_config: dict[str, Any], config: AnonymizerConfig) -> None:
    declared = orthanc_config.get("UserMetadata") or {}
    for name in (FROM_RESOURCE, PROFILE_METADATA):
        if name not in declared:
            raise ConfigurationError(f"UserMetadata: {name} is not declared (see orthanc-config/orthanc.json)")
    try:
        load_profiles(config.profiles_directory, shipped=config.shipped_profiles)
    except ProfileError as error:
        raise ConfigurationError(f"Anonymizer.ProfilesDirectory: {error}") from None
    try:
        resolve_profile(config.default_profile, config.profiles_directory, shipped=config.shipped_profiles)
    except ProfileError as error:
        raise ConfigurationError(f"Anonymizer.DefaultProfile: {error}") from None


_ORIGINS = {"DICOM_PROTOCOL": "DicomProtocol", "REST_API": "RestApi", "PLUGIN": "Plugins", "LUA": "Lua"}
"""orthanc.InstanceOrigin members -> the names Orthanc's ``Origin`` metadata uses (what Filter.Origin matches)."""


def _received_instance(
    received: bytes, origin: orthanc.InstanceOrigin
) -> tuple[orthanc.ReceivedInstanceAction, bytes | None]:
    """Gateway mode: Orthanc stores what this returns instead of what it received (:mod:`.gateway`). Runs on
    Orthanc's storage thread; the engine runs in a worker, and waiting for it releases the GIL."""
    actions = orthanc.ReceivedInstanceAction
    try:
        name = next(
            (value for key, value in _ORIGINS.items() if origin == getattr(orthanc.InstanceOrigin, key, None)),
            "Unknown",
        )
        gateway = _state().auto
        assert gateway is not None and gateway.gateway is not None
        action, data = gateway.gateway.decide(bytes(received), name)
    except Exception as error:  # fail closed: a gateway stores nothing it has not anonymized
        logger.error("gateway: a received instance was discarded: %s", exception_summary(error))
        return actions.DISCARD, None
    if action == MODIFY:
        return actions.MODIFY, data
    if action == KEEP:
        return actions.KEEP_AS_IS, None
    return actions.DISCARD, None


def start() -> None:
    """Read the configuration, start the plugin and register its routes. Raises on a wrong setting, which makes
    Orthanc stop at start-up with the message in its log."""
    handler = _OrthancLogHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    route_warnings_to_logging()

    orthanc_config = json.loads(orthanc.GetConfiguration())
    try:
        config = parse_configuration(orthanc_config, os.environ, Path.cwd())
        _check_orthanc_settings(orthanc_config, config)
        auto = resolve_auto_anonymize(config, orthanc_config)
    except AnonymizerError as error:
        orthanc.LogError(f"anonymizer: wrong configuration: {error}")
        raise
    if config.development_secret:
        logger.warning(
            "no Anonymizer.Secret nor ANONYMIZER_SECRET: using the public development secret "
            "(AllowDevelopmentSecret); never use this setup for real data"
        )
    if config.shared_database is None:
        _launch(config, orthanc_config, auto)
    else:
        # Orthanc chooses its index (PostgreSQL or SQLite) after every plugin is initialized, and its configuration
        # may hold a "PostgreSQL" section that no loaded plugin reads: ask Orthanc itself once it answers.
        threading.Thread(
            target=_start_once_orthanc_answers,
            args=(config, orthanc_config, auto),
            name="anonymizer-start",
            daemon=True,
        ).start()

    orthanc.RegisterRestCallback("/anonymizer/profiles", _profiles)
    orthanc.RegisterRestCallback("/anonymizer/batch", _batch)
    orthanc.RegisterRestCallback("/anonymizer/jobs/([^/]+)", _job)
    orthanc.RegisterRestCallback("/anonymizer/audit", _audit)
    orthanc.RegisterRestCallback("/anonymizer/audit/verify", _audit_verify)
    orthanc.RegisterRestCallback("/anonymizer/ui/([^/]*)", _ui)
    orthanc.RegisterRestCallback(f"/anonymizer/{LEVEL_PATTERN}/([^/]+)", _anonymize)
    orthanc.RegisterRestCallback(f"/anonymizer/{LEVEL_PATTERN}/([^/]+)/links", _links)
    orthanc.RegisterRestCallback("/anonymizer/instances/([^/]+)/pixel-preview", _pixel_preview)
    # No on-change callback on purpose: orthanc-python calls it for every change (each copy makes several), each
    # call waits for the GIL, and Orthanc's stop waits for the backlog. Jobs notice a stopping Orthanc by its
    # refused loopback connections instead, and the rest is closed when Python ends.
    if auto is not None and auto.auto.mode == "Gateway":
        orthanc.RegisterReceivedInstanceCallback(_received_instance)
    # The "Anonymize (PS3.15)" button of Orthanc Explorer (explorer.py, dialog.js + explorer.js); Orthanc Explorer 2's
    # buttons open /anonymizer/ui/anonymize.html (the shipped configuration's CustomButtons).
    orthanc.ExtendOrthancExplorer(explorer_javascript())


def _launch(config: AnonymizerConfig, orthanc_config: dict[str, Any], auto: AutoAnonymizeSetup | None) -> None:
    """Make the plugin's state and start its threads; requests wait for this (:func:`_state`)."""
    global _plugin
    _plugin = _Plugin(config, orthanc_config, auto)
    atexit.register(_plugin.stop)
    if _plugin.auto is not None:
        _plugin.auto.start()
    _ready.set()
    logger.info(
        "orthanc-anonymizer %s started: %d workers, %d concurrent jobs, state in %s%s",
        __version__,
        config.workers,
        config.concurrent_jobs,
        config.state_directory,
        f"; links, ingest position and audit trail shared in PostgreSQL {config.shared_database.description}"
        if config.shared_database
        else "",
    )


def _start_once_orthanc_answers(
    config: AnonymizerConfig, orthanc_config: dict[str, Any], auto: AutoAnonymizeSetup | None
) -> None:
    """Share the state in PostgreSQL only if Orthanc's index is there (``/system``'s ``DatabaseBackendPlugin``,
    the same on Orthanc 1.10 to 1.13); else keep it here, naming the setting that cannot be honoured. If the shared
    database cannot be used, the plugin stays off (its routes answer 503 saying why) and Orthanc runs on."""
    global _not_started
    client = _loopback_client(config, orthanc_config, timeout=10, keep_alive=False)
    while True:
        try:
            backend = client.get_json("/system").get("DatabaseBackendPlugin")
            break
        except Exception:  # Orthanc not answering yet (or stopping: this daemon thread ends with it)
            time.sleep(0.1)
    client.close()
    if "postgresql" not in str(backend or "").lower():
        logger.warning(
            "Anonymizer.SharedState %s cannot be honoured: Orthanc's index is %s, not PostgreSQL (its configuration "
            'has a "PostgreSQL" section, but no PostgreSQL index plugin is loaded); links, ingest position and audit '
            "trail are kept in this Orthanc's state folder",
            config.shared_database.setting if config.shared_database else "",
            "SQLite" if backend is None else "another database plugin",
        )
        config = dataclasses.replace(config, shared_database=None)
    try:
        _launch(config, orthanc_config, auto)
    except Exception as error:
        _not_started = f"the anonymizer is not started: {exception_summary(error)}"
        logger.error("%s", _not_started)
        _ready.set()
