"""``Anonymizer.AutoAnonymize`` put together: settings resolved like the REST routes', and the parts that run.

- Copy mode: an :class:`~.ingest.IngestLoop` thread follows ``/changes`` and submits each batch of matching new
  instances as a job (:class:`~.ingest.JobBatchRunner`); the position in the log advances only after the batch.
- Gateway mode: :class:`~.gateway.GatewayHandler` answers the received-instance callback; the loop only watches
  for stable studies.
- ``ForwardTo``: :class:`~.forwarding.Forwarder` sends stable anonymized studies on.

The glue builds an :class:`AutoAnonymizer` at start-up, starts it, stops it when Orthanc stops, and registers the
received-instance callback in Gateway mode. Nothing here imports ``orthanc``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from orthanc_anonymizer.deid.profile_files import resolve_profile
from orthanc_anonymizer.errors import ProfileError
from orthanc_anonymizer.pipeline import InstanceTask
from orthanc_anonymizer.server.cluster import IngestLeadership
from orthanc_anonymizer.server.config import AnonymizerConfig, ConfigurationError
from orthanc_anonymizer.server.forwarding import Forwarder
from orthanc_anonymizer.server.gateway import GatewayHandler
from orthanc_anonymizer.server.ingest import (
    ORIGIN_KEYS,
    AutoAnonymizeConfig,
    ChangeCursor,
    IngestConfigurationError,
    IngestLoop,
    JobBatchRunner,
)
from orthanc_anonymizer.server.job_records import JobSettings, JobStore
from orthanc_anonymizer.server.jobs import JobManager
from orthanc_anonymizer.server.orthanc_client import OrthancClient
from orthanc_anonymizer.server.workers import WorkerPool

logger = logging.getLogger("orthanc_anonymizer.auto")
SETTING = "Anonymizer.AutoAnonymize"


@dataclass(frozen=True)
class AutoAnonymizeSetup:
    """The checked section and the job settings it resolves to."""

    auto: AutoAnonymizeConfig
    settings: JobSettings


def resolve_auto_anonymize(config: AnonymizerConfig, orthanc_config: Mapping[str, Any]) -> AutoAnonymizeSetup | None:
    """``None`` when disabled; else the setup. :class:`ConfigurationError` naming a wrong setting.

    The profile and options are resolved as a REST request's: ``Profile`` and ``Options`` default to
    ``Anonymizer.DefaultProfile`` and ``DefaultOptions``.
    """
    section = config.auto_anonymize
    try:
        auto = AutoAnonymizeConfig.parse(section)
    except IngestConfigurationError as error:
        raise ConfigurationError(str(error)) from None
    if not auto.enabled:
        return None
    profile_name = auto.profile if "Profile" in section else config.default_profile
    options = auto.options if "Options" in section else config.default_options
    try:
        profile = resolve_profile(profile_name, config.profiles_directory, shipped=config.shipped_profiles)
    except ProfileError as error:
        raise ConfigurationError(f"{SETTING}.Profile: {error}") from None
    try:
        profile = profile.with_options(options)
    except ProfileError as error:
        raise ConfigurationError(f"{SETTING}.Options: {error}") from None
    if auto.mode == "Gateway":
        unusable = sorted(key for key in auto.filter.origin if key != "Origin")
        if unusable:
            raise ConfigurationError(
                f"{SETTING}.Filter.{unusable[0]}: not known before storage, so not usable in Gateway mode "
                f"(only Origin is; known origin conditions: {', '.join(sorted(ORIGIN_KEYS))})"
            )
    _check_destinations(auto.forward_to, orthanc_config)
    return AutoAnonymizeSetup(
        auto=auto,
        settings=JobSettings(profile=profile, in_place=auto.delete_original, project=auto.project),
    )


def _check_destinations(names: tuple[str, ...], orthanc_config: Mapping[str, Any]) -> None:
    """Each ``ForwardTo`` name must be a configured modality or peer (unless those live in the database)."""
    if orthanc_config.get("DicomModalitiesInDatabase") or orthanc_config.get("OrthancPeersInDatabase"):
        return
    modalities = orthanc_config.get("DicomModalities") or {}
    peers = orthanc_config.get("OrthancPeers") or {}
    for name in names:
        if name not in modalities and name not in peers:
            raise ConfigurationError(f"{SETTING}.ForwardTo: {name!r} is neither in DicomModalities nor in OrthancPeers")


class AutoAnonymizer:
    """The running parts of on-ingest anonymization."""

    def __init__(
        self,
        setup: AutoAnonymizeSetup,
        config: AnonymizerConfig,
        client: OrthancClient,
        manager: JobManager,
        pool: WorkerPool,
        store: JobStore,
        leadership: IngestLeadership | None = None,
    ) -> None:
        self.setup = setup
        self.leadership = leadership
        """A cluster's: the loop and the forwarder run only while this node holds the lead (:mod:`.cluster`)."""
        auto = setup.auto
        self.stopping = threading.Event()
        self.forwarder: Forwarder | None = None
        if auto.forward_to:
            self.forwarder = Forwarder(client, store, manager.audit, auto.forward_to, gateway=auto.mode == "Gateway")
        self.gateway: GatewayHandler | None = None
        if auto.mode == "Gateway":
            if not manager.register_stores:  # else the copies the REST routes store would be anonymized again
                raise ValueError("Gateway mode needs a JobManager made with register_stores=True")
            task = InstanceTask(settings=setup.settings.engine_settings(manager.hasher))
            _ = task.settings.profile.action_table  # compiled once here, sent with every instance
            self.gateway = GatewayHandler(
                pool, task, setup.settings, auto.filter, manager.audit, own_store=manager.is_storing
            )
        own_outputs: set[str] = set()
        runner = JobBatchRunner(manager.submit, setup.settings, self.stopping, own_outputs)
        links = manager.links
        self.loop = IngestLoop(
            client,
            leadership.position() if leadership else ChangeCursor(config.state_directory / "ingest-position.json"),
            auto,
            runner,
            on_stable_study=self.forwarder.study_stable if self.forwarder else None,
            # Two batches at a time (each a job of its own): the next is read, checked and downloaded while the
            # previous one is still being stored; the position in the log still moves in order.
            start_batch=runner.start,
            in_flight=min(2, config.concurrent_jobs),
            own_outputs=own_outputs,
            known_copy=lambda instance_id: links.source("Instance", instance_id) is not None,
            follow_new_instances=auto.mode == "Copy",
            started_at=time.strftime("%Y%m%dT%H%M%S", time.gmtime(time.time() - 1)),
            # A cluster's leader waits at holes of the change log and stops once it loses the lead.
            gaps=leadership.gaps() if leadership else None,
            leading=leadership.leading if leadership else None,
        )
        self._thread: threading.Thread | None = None
        if auto.mode == "Copy" or self.forwarder is not None:
            self._thread = threading.Thread(target=self._run_loop, name="anonymizer-ingest", daemon=True)

    def start(self) -> None:
        if self.forwarder is not None and self.leadership is None:
            self.forwarder.start()
        if self._thread is not None:
            self._thread.start()
        auto = self.setup.auto
        logger.info(
            "on-ingest anonymization: mode %s, profile %s, %d filter conditions, forward to %d destinations%s",
            auto.mode,
            self.setup.settings.profile.name,
            len(auto.filter.attributes) + len(auto.filter.origin),
            len(auto.forward_to),
            ", originals deleted once copied" if auto.delete_original else "",
        )

    def _run_loop(self) -> None:
        if self.leadership is not None:
            self.leadership.run(self.loop, on_first_lead=self.forwarder.start if self.forwarder else None)
            return
        self.loop.run_forever()

    def stop(self, timeout: float = 3.0) -> None:
        """Stop polling; a batch under way is left to the job machinery's own stop and replayed after restart."""
        self.stopping.set()
        self.loop.stopping.set()
        self.loop.wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self.forwarder is not None:
            self.forwarder.stop(timeout)
