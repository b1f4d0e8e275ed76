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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from io import BytesIO
from typing import Any, Protocol

from pydicom import dcmread

from orthanc_anonymizer.logs import exception_summary
from orthanc_anonymizer.server.ingest import IngestFilter
from orthanc_anonymizer.server.jobs import AuditTrail, JobSettings
from orthanc_anonymizer.server.workers import InstanceOutcome, InstanceTask, anonymize_instance

logger = logging.getLogger("orthanc_anonymizer.gateway")
KEEP, MODIFY, DISCARD = "keep", "modify", "discard"


class Pool(Protocol):
    def call(self, function: Any, *args: Any) -> Any: ...


@dataclass
class GatewayOutcome:
    """What a worker decided for one received instance. No PHI."""

    action: str
    outcome: InstanceOutcome | None = None
    reason: str = ""
    orthanc_id: str | None = None
    """The Orthanc ID the anonymized instance will have (for the audit trail)."""
    counts: dict[str, int] = field(default_factory=dict)


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
    """Runs in a worker process: filter, then anonymize. Never raises."""
    try:
        # Whatever the file claims (PatientIdentityRemoved, DeidentificationMethod: anyone can write them), it is an
        # original: the plugin's own copies were recognised before this, by their bytes (GatewayHandler.decide).
        tags = _tags(data, ingest_filter.needed_keywords)
        if not ingest_filter.matches(tags, {"Origin": origin}):
            return GatewayOutcome(DISCARD, reason="does not match Anonymizer.AutoAnonymize.Filter")
        outcome = anonymize_instance(data, task)
        if outcome.error is not None:
            return GatewayOutcome(DISCARD, reason=outcome.error, counts=outcome.counts)
        if outcome.residual_clean is False:
            where = ", ".join(sorted(set(outcome.residual_leaks))[:10])
            return GatewayOutcome(DISCARD, reason=f"residual PHI found at {where}", counts=outcome.counts)
        assert outcome.data is not None
        return GatewayOutcome(MODIFY, outcome=outcome, orthanc_id=outcome.orthanc_id, counts=outcome.counts)
    except Exception as error:  # unreadable input: a gateway stores nothing it could not check
        return GatewayOutcome(DISCARD, reason=f"cannot read the instance: {exception_summary(error)}")


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

    def decide(self, data: bytes, origin: str) -> tuple[str, bytes | None]:
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
        if decision.action == DISCARD and decision.reason.startswith("does not match"):
            return DISCARD, None
        self._audit(decision)
        if decision.action == MODIFY and decision.outcome is not None:
            return MODIFY, decision.outcome.data
        logger.warning("gateway: a received instance was discarded: %s", decision.reason)
        return DISCARD, None

    def _audit(self, decision: GatewayOutcome) -> None:
        stored = decision.action == MODIFY
        outcome = decision.outcome
        record: Mapping[str, Any] = {
            "Event": "anonymize",
            "User": "auto",
            "Mode": "Gateway",
            "Level": "Instance",
            "Source": None,
            "Result": decision.orthanc_id,
            "SourceInstances": 1,
            "Instances": 1 if stored else 0,
            "Failed": [] if stored else [{"Instance": None, "Reason": decision.reason}],
            "Settings": self.settings.describe(),
            "InPlace": False,
            "DeletedOriginal": False,
            "Counts": decision.counts,
            "ResidualPhi": {
                "Checked": 1 if outcome is not None and outcome.residual_clean is not None else 0,
                "NotChecked": 1 if outcome is not None and outcome.residual_clean is None else 0,
                "Leaking": 1 if decision.reason.startswith("residual PHI") else 0,
            },
        }
        try:
            self.audit.append(dict(record))
        except Exception as error:
            logger.error("gateway: audit record not written: %s", exception_summary(error))
