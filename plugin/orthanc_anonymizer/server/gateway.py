"""Gateway mode: an arriving instance is anonymized before Orthanc stores it, so the original never reaches disk.

The glue registers :meth:`GatewayHandler.decide` as orthanc-python's received-instance callback. It runs on
Orthanc's storage thread with the received bytes; the filter and the engine run in a worker process (waiting on
the future releases the GIL, so other Python callbacks go on). The answer is one of:

- ``modify`` with the anonymized bytes: Orthanc stores those instead of what it received;
- ``keep``: a copy the plugin's REST routes are storing, known by its exact bytes (the plugin registers the MD5
  of every copy while it stores it). Nothing a file says about itself counts: a received file that carries
  PatientIdentityRemoved ``YES`` and this engine's DeidentificationMethod is anonymized like any other (anyone
  can write those attributes); so is an output of another gateway;
- ``discard``: the instance does not match the filter, or it could not be anonymized cleanly (engine error,
  residual PHI): a gateway stores nothing that is not de-identified.

What the mode gives up: there is no original, so no ``AnonymizedFromResource`` link, no ``links`` route answer, no
``DeleteOriginal``, and a wrong profile cannot be corrected by anonymizing again; the audit record of each instance
has ``"Source": null``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from io import BytesIO

from pydicom import dcmread

from orthanc_anonymizer.audit import AuditTrail, anonymization_record
from orthanc_anonymizer.logs import exception_summary
from orthanc_anonymizer.pipeline import Failure, InstanceFailure, InstanceOutcome, InstanceTask, anonymize_instance
from orthanc_anonymizer.server.ingest import IngestFilter
from orthanc_anonymizer.server.job_records import JobSettings
from orthanc_anonymizer.server.workers import Pool

logger = logging.getLogger("orthanc_anonymizer.gateway")


class GatewayAction(StrEnum):
    """What Orthanc does with a received instance (the glue maps each to ``orthanc.ReceivedInstanceAction``)."""

    KEEP = "keep"
    MODIFY = "modify"
    DISCARD = "discard"


KEEP, MODIFY, DISCARD = GatewayAction.KEEP, GatewayAction.MODIFY, GatewayAction.DISCARD
NOT_MATCHED = "does not match Anonymizer.AutoAnonymize.Filter"


@dataclass
class GatewayOutcome:
    """What a worker decided for one received instance. No PHI."""

    action: GatewayAction
    outcome: InstanceOutcome | None = None
    reason: str = ""
    orthanc_id: str | None = None
    """The Orthanc ID the anonymized instance will have (for the audit trail)."""
    counts: dict[str, int] = field(default_factory=dict)
    failure: Failure | None = None
    """Why it was discarded, as the pipeline says (``None``: stored, or the worker itself failed)."""


def _tags(data: bytes, keywords: list[str]) -> dict[str, str]:
    if not keywords:
        return {}
    dataset = dcmread(BytesIO(data), stop_before_pixels=True, specific_tags=keywords)
    tags: dict[str, str] = {}
    for keyword in keywords:
        value = dataset.get(keyword)
        if value is None:
            continue
        if keyword == "DeidentificationMethod" and not isinstance(value, str):
            tags[keyword] = "\\".join(str(item) for item in value)
        else:
            tags[keyword] = str(value)
    return tags


def decide_in_worker(data: bytes, task: InstanceTask, ingest_filter: IngestFilter, origin: str) -> GatewayOutcome:
    """Runs in a worker process: filter, then the pipeline. Never raises."""
    try:
        # Whatever the file claims (PatientIdentityRemoved, DeidentificationMethod: anyone can write them), it is an
        # original: the plugin's own copies were recognised before this, by their bytes (GatewayHandler.decide).
        tags = _tags(data, ingest_filter.needed_keywords)
        if not ingest_filter.matches(tags, {"Origin": origin}):
            return GatewayOutcome(DISCARD, reason=NOT_MATCHED, failure=Failure.NOT_MATCHED)
    except Exception as error:  # unreadable input: a gateway stores nothing it could not check
        reason = f"cannot read the instance: {exception_summary(error)}"
        return GatewayOutcome(DISCARD, reason=reason, failure=Failure.INVALID_INPUT)
    outcome = anonymize_instance(data, task)
    if outcome.failure is not None:
        return GatewayOutcome(DISCARD, reason=outcome.reason, counts=outcome.counts, failure=outcome.failure)
    return GatewayOutcome(MODIFY, outcome=outcome, orthanc_id=outcome.orthanc_id, counts=outcome.counts)


class GatewayHandler:
    """The decision for each received instance, and its audit record (``User`` "auto", ``Source`` null)."""

    TIMEOUT = 300.0

    def __init__(
        self,
        pool: Pool,
        task: InstanceTask,
        settings: JobSettings,
        ingest_filter: IngestFilter,
        audit: AuditTrail,
        own_store: Callable[[bytes], bool] = lambda data: False,
    ) -> None:
        self.own_store = own_store
        """Whether these bytes are a copy this plugin is storing right now (:meth:`.jobs.JobManager.is_storing`)."""
        self.pool = pool
        self.task = task
        self.settings = settings
        self.filter = ingest_filter
        self.audit = audit

    def decide(self, data: bytes, origin: str) -> tuple[GatewayAction, bytes | None]:
        """``(action, bytes to store)`` for one received instance; fails closed (``discard``)."""
        if self.own_store(data):
            return KEEP, None  # a copy the REST routes made here: its exact bytes are being stored by the plugin
        try:
            decision: GatewayOutcome = self.pool.call(decide_in_worker, data, self.task, self.filter, origin).result(
                timeout=self.TIMEOUT
            )
        except Exception as error:
            decision = GatewayOutcome(DISCARD, reason=f"worker failed: {exception_summary(error)}")
        if decision.action == KEEP:
            return KEEP, None
        if decision.failure is Failure.NOT_MATCHED:
            return DISCARD, None
        self._audit(decision)
        if decision.action == MODIFY and decision.outcome is not None:
            return MODIFY, decision.outcome.data
        logger.warning("gateway: a received instance was discarded: %s", decision.reason)
        return DISCARD, None

    def _audit(self, decision: GatewayOutcome) -> None:
        stored = decision.action == MODIFY
        outcome = decision.outcome
        record = anonymization_record(
            user="auto",
            mode="Gateway",
            level="Instance",
            source=None,
            result=decision.orthanc_id,
            source_instances=1,
            instances=1 if stored else 0,
            failed=[] if stored else [InstanceFailure(None, decision.reason, decision.failure)],
            settings=self.settings.description,
            counts=decision.counts,
            residual_checked=1 if outcome is not None and outcome.residual_clean is not None else 0,
            residual_not_checked=1 if outcome is not None and outcome.residual_clean is None else 0,
        )
        try:
            self.audit.append(record)
        except Exception as error:
            logger.error("gateway: audit record not written: %s", exception_summary(error))
