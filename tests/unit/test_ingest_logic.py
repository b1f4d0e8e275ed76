"""On-ingest logic without Orthanc: the filter, the settings, the persisted position, and the change-log loop."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from orthanc_anonymizer.deid.deidentification_method import claims_engine_output
from orthanc_anonymizer.deid.profiles import Option
from orthanc_anonymizer.server.ingest import (
    AutoAnonymizeConfig,
    BatchOutcome,
    ChangeCursor,
    IngestConfigurationError,
    IngestFilter,
    IngestLoop,
)
from orthanc_anonymizer.server.orthanc_client import ResourceNotFound


def test_filter_by_attributes_with_wildcards_and_by_origin() -> None:
    ingest = IngestFilter.parse({"Modality": ["CT", "MR"], "StudyDescription": "*chest*", "CallingAET": "MODALITY?"})
    origin = {"RemoteAET": "MODALITY1", "Origin": "DicomProtocol"}
    assert ingest.matches({"Modality": "CT", "StudyDescription": "CT Chest w/o"}, origin)
    assert not ingest.matches({"Modality": "US", "StudyDescription": "CT Chest"}, origin)
    assert not ingest.matches({"Modality": "MR", "StudyDescription": "Head"}, origin)
    assert not ingest.matches({"Modality": "MR", "StudyDescription": "chest"}, {"RemoteAET": "PACS"})
    assert not ingest.matches({"StudyDescription": "chest"}, origin)  # no Modality: no match
    assert IngestFilter.parse({}).matches({}, {})
    rest_only = IngestFilter.parse({"Origin": "RestApi"})
    assert rest_only.matches({}, {"Origin": "RestApi"}) and not rest_only.matches({}, {"Origin": "DicomProtocol"})


@pytest.mark.parametrize(
    "section, names",
    [
        ({"Enabled": "yes"}, "AutoAnonymize.Enabled"),
        ({"Options": ["RetainEverything"]}, "RetainEverything"),
        ({"Mode": "Stealth"}, "AutoAnonymize.Mode"),
        ({"Filter": {"NotAKeyword": "x"}}, "Filter.NotAKeyword"),
        ({"Filter": {"Modality": 3}}, "Filter.Modality"),
        ({"Frobnicate": True}, "AutoAnonymize.Frobnicate"),
        ({"Mode": "Gateway", "DeleteOriginal": True}, "DeleteOriginal"),
        ({"ForwardTo": [""]}, "ForwardTo"),
    ],
)
def test_wrong_settings_are_named(section: dict[str, Any], names: str) -> None:
    with pytest.raises(IngestConfigurationError, match=names.replace(".", r"\.")):
        AutoAnonymizeConfig.parse(section)


def test_settings_parse() -> None:
    config = AutoAnonymizeConfig.parse(
        {"Enabled": True, "Profile": "research-longitudinal", "Options": ["CleanDesc"], "ForwardTo": "RESEARCH"}
    )
    assert config.enabled and config.profile == "research-longitudinal"
    assert config.options == (Option.CleanDesc,) and config.forward_to == ("RESEARCH",) and config.mode == "Copy"


def test_what_an_instance_claims_is_read_but_proves_nothing() -> None:
    assert claims_engine_output(
        {
            "PatientIdentityRemoved": "YES",
            "DeidentificationMethod": "DICOM PS3.15 2026d Basic Profile\\orthanc-anonymizer 0.1.0 profile basic",
        }
    )
    assert not claims_engine_output({"PatientIdentityRemoved": "YES", "DeidentificationMethod": "Some other tool"})
    assert not claims_engine_output({"DeidentificationMethod": "orthanc-anonymizer"})


def test_cursor_survives_and_is_never_torn(tmp_path: Path) -> None:
    cursor = ChangeCursor(tmp_path / "state" / "ingest.json")
    assert cursor.load() is None
    cursor.save(41)
    cursor.save(42)
    assert ChangeCursor(tmp_path / "state" / "ingest.json").load() == 42
    assert [p.name for p in (tmp_path / "state").iterdir()] == ["ingest.json"]  # no temporary left behind


class FakeOrthanc:
    """A change log and instance tags, as Orthanc's REST API would answer them."""

    def __init__(self) -> None:
        self.changes: list[dict[str, Any]] = []
        self.tags: dict[str, dict[str, str]] = {}

    def add(self, instance: str, **tags: str) -> None:
        self.tags[instance] = tags
        self.changes.append({"Seq": len(self.changes) + 1, "ChangeType": "NewInstance", "ID": instance})

    def get_json(self, path: str) -> Any:
        if path == "/changes?last":
            return {"Last": len(self.changes)}
        if path.startswith("/changes?since="):
            since, limit = (int(part.split("=")[1]) for part in path.split("?")[1].split("&"))
            page = [change for change in self.changes if change["Seq"] > since][:limit]
            last = page[-1]["Seq"] if page else since
            return {"Changes": page, "Done": last >= len(self.changes), "Last": last}
        if path.endswith("/simplified-tags"):
            if path.split("/")[2] not in self.tags:
                raise ResourceNotFound("GET", path, 404)
            return self.tags[path.split("/")[2]]
        raise AssertionError(path)


def test_loop_anonymizes_each_matching_instance_once_even_after_a_crash(tmp_path: Path) -> None:
    orthanc = FakeOrthanc()
    for index in range(10):
        orthanc.add(f"i{index}", Modality="CT" if index % 2 == 0 else "US")
    orthanc.add("copy", Modality="CT", PatientIdentityRemoved="YES", DeidentificationMethod="orthanc-anonymizer 0.1")
    # The same markers on a file the links index does not know: a claim anyone can write, so an original.
    orthanc.add("forged", Modality="CT", PatientIdentityRemoved="YES", DeidentificationMethod="orthanc-anonymizer 0.1")
    anonymized: list[str] = []
    crash_once = {"armed": True}

    def run_batch(batch: list[str]) -> BatchOutcome:
        if crash_once["armed"] and "i4" in batch:
            crash_once["armed"] = False
            anonymized.extend(batch[:1])  # a copy stored just before the crash
            raise ConnectionError("Orthanc went away")
        anonymized.extend(batch)
        return BatchOutcome(anonymized=len(batch))

    config = AutoAnonymizeConfig.parse({"Enabled": True, "Filter": {"Modality": "CT"}, "BatchSize": 2})
    cursor = ChangeCursor(tmp_path / "ingest.json")
    cursor.save(0)
    loop = IngestLoop(orthanc, cursor, config, run_batch, page=4, known_copy=lambda instance_id: instance_id == "copy")
    position, done = 0, False
    with pytest.raises(ConnectionError):
        while not done:
            position, done = loop.poll_once(position)
    saved = cursor.load()
    assert saved is not None and saved < 5  # the position did not move past the unfinished batch
    restarted = IngestLoop(orthanc, cursor, config, run_batch, page=4, known_copy=loop.known_copy)
    position, done = restarted.poll_once(saved)
    while not done:
        position, done = loop.poll_once(position)
    assert cursor.load() == len(orthanc.changes)
    # every CT (the forged one too), never the US, never our copy
    assert sorted(set(anonymized)) == ["forged", "i0", "i2", "i4", "i6", "i8"]
    # replaying a stored-but-unacknowledged copy is harmless: the same keyed UIDs give the same instance
    assert anonymized.count("i4") <= 2


def test_first_run_starts_at_the_end_of_the_log(tmp_path: Path) -> None:
    orthanc = FakeOrthanc()
    orthanc.add("old", Modality="CT")
    loop = IngestLoop(
        orthanc, ChangeCursor(tmp_path / "c.json"), AutoAnonymizeConfig(enabled=True), lambda b: BatchOutcome()
    )
    assert loop.start_position() == 1


class Holes:
    """A cluster's judge of missing change numbers: a number is for good once ``final`` holds it."""

    def __init__(self) -> None:
        self.final: set[int] = set()
        self.asked: list[int] = []

    def settled(self, missing: int) -> bool:
        self.asked.append(missing)
        return missing in self.final


def test_in_a_cluster_the_loop_waits_at_a_missing_change_until_it_appears_or_is_known_gone(tmp_path: Path) -> None:
    orthanc = FakeOrthanc()
    for index in range(6):
        orthanc.add(f"i{index}", Modality="CT")
    late = orthanc.changes.pop(2)  # number 3: its transaction (on the other Orthanc) has not committed yet
    anonymized: list[str] = []

    def run_batch(batch: list[str]) -> BatchOutcome:
        anonymized.extend(batch)
        return BatchOutcome(anonymized=len(batch))

    cursor = ChangeCursor(tmp_path / "ingest.json")
    holes = Holes()
    loop = IngestLoop(orthanc, cursor, AutoAnonymizeConfig.parse({"Enabled": True}), run_batch, gaps=holes)
    assert loop.poll_once(0) == (2, True)  # up to the hole, not past it
    assert anonymized == ["i0", "i1"] and cursor.load() == 2 and holes.asked == [3]
    orthanc.changes.insert(2, late)  # committed: nothing skipped
    assert loop.poll_once(2) == (6, True)
    assert anonymized == ["i0", "i1", "i2", "i3", "i4", "i5"]

    orthanc.add("i6", Modality="CT")
    orthanc.changes[-1]["Seq"] = 8  # number 7 rolled back: gone for good
    assert loop.poll_once(6) == (6, True)
    holes.final.add(7)
    assert loop.poll_once(6) == (8, True)
    assert anonymized[-1] == "i6" and cursor.load() == 8


def test_an_instance_deleted_right_after_it_arrived_is_passed_over(tmp_path: Path) -> None:
    orthanc = FakeOrthanc()
    for instance in ("i0", "gone", "i1"):
        orthanc.add(instance, Modality="CT")
    del orthanc.tags["gone"]  # Orthanc answers 404 for its tags
    anonymized: list[str] = []

    def run_batch(batch: list[str]) -> BatchOutcome:
        anonymized.extend(batch)
        return BatchOutcome(anonymized=len(batch))

    cursor = ChangeCursor(tmp_path / "ingest.json")
    loop = IngestLoop(orthanc, cursor, AutoAnonymizeConfig.parse({"Enabled": True}), run_batch)
    assert loop.poll_once(0) == (3, True)
    assert anonymized == ["i0", "i1"] and cursor.load() == 3


class Arrivals:
    """A clock the loop sleeps on, during which a modality keeps sending: one original every ``every`` seconds
    until ``until``, and the plugin's own copies (known to the links index) whenever asked."""

    def __init__(self, orthanc: FakeOrthanc, every: float, until: float) -> None:
        self.orthanc, self.every, self.until = orthanc, every, until
        self.now = 0.0
        self.next_arrival = every
        self.sent: list[float] = []
        self.copies = 0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        while self.next_arrival <= min(self.now, self.until):
            self.orthanc.add(f"o{len(self.sent)}", Modality="CT")
            self.sent.append(self.next_arrival)
            self.next_arrival += self.every

    def copy(self) -> None:
        self.orthanc.add(f"copy{self.copies}", Modality="CT")
        self.copies += 1


def yielding_loop(
    orthanc: FakeOrthanc, arrivals: Arrivals, tmp_path: Path, page: int = 500, **settings: object
) -> IngestLoop:
    config = AutoAnonymizeConfig.parse({"Enabled": True, **settings})
    loop = IngestLoop(
        orthanc,
        ChangeCursor(tmp_path / "c.json"),
        config,
        lambda batch: BatchOutcome(anonymized=len(batch)),
        page=page,
        known_copy=lambda instance_id: instance_id.startswith("copy"),
    )
    loop.clock, loop.sleep = arrivals.clock, arrivals.sleep
    return loop


def sending(
    tmp_path: Path, until: float, page: int = 500, **settings: object
) -> tuple[FakeOrthanc, Arrivals, IngestLoop]:
    """A modality that sent one original and sends one every 0.1 s until ``until``; the loop that follows it."""
    orthanc = FakeOrthanc()
    orthanc.add("first", Modality="CT")
    arrivals = Arrivals(orthanc, every=0.1, until=until)
    return orthanc, arrivals, yielding_loop(orthanc, arrivals, tmp_path, page, **settings)


def test_ingest_waits_while_originals_arrive_and_starts_once_they_pause(tmp_path: Path) -> None:
    orthanc, arrivals, loop = sending(tmp_path, until=2.05, QuietSeconds=0.5)
    loop.yield_to_arrivals(0)
    # It went on only once nothing had arrived for QuietSeconds: after the last of the 20 arrivals, not before.
    assert len(arrivals.sent) == 20 and arrivals.now >= arrivals.sent[-1] + 0.5
    assert arrivals.now < arrivals.sent[-1] + 0.5 + 2 * loop.TICK and loop.yields == 1
    # Then the whole backlog is handled at once, each original once.
    position, done = loop.poll_once(0)
    assert done and loop.processed == 21 and position == len(orthanc.changes)


def test_ingest_does_not_wait_for_its_own_copies_nor_when_nothing_arrived(tmp_path: Path) -> None:
    orthanc = FakeOrthanc()
    arrivals = Arrivals(orthanc, every=0.1, until=0.0)  # no modality sending
    loop = yielding_loop(orthanc, arrivals, tmp_path, QuietSeconds=5)
    for _ in range(30):
        arrivals.copy()  # the copies of a job running meanwhile log NewInstance changes too
    loop.yield_to_arrivals(0)
    assert arrivals.now == 0.0 and loop.yields == 0
    # Already looked at: an original the loop has seen before does not hold it again.
    orthanc.add("original", Modality="CT")
    loop.yield_to_arrivals(0)
    assert arrivals.now == pytest.approx(5.0, abs=2 * loop.TICK) and loop.yields == 1
    before = arrivals.now
    loop.yield_to_arrivals(0)
    assert arrivals.now == before and loop.yields == 1


def test_ingest_that_never_pauses_is_held_back_at_most_max_delay_then_worked_off(tmp_path: Path) -> None:
    orthanc, arrivals, loop = sending(tmp_path, until=1000.0, page=10, QuietSeconds=0.5, MaxDelaySeconds=3)
    loop.yield_to_arrivals(0)
    assert 3.0 <= arrivals.now < 3.0 + 2 * loop.TICK
    # Catching up: no more waiting until the loop reached the end of the log, however much keeps arriving.
    position, done = loop.poll_once(0)
    arrivals.sleep(1.0)
    held = arrivals.now
    while not done:
        loop.yield_to_arrivals(position)
        assert arrivals.now == held
        position, done = loop.poll_once(position)
    assert loop.processed == len(orthanc.changes)
    orthanc.add("next", Modality="CT")  # at the end of the log: the next arrivals are yielded to again
    loop.yield_to_arrivals(position)
    assert arrivals.now >= held + 3.0 and loop.yields == 2


def test_quiet_seconds_zero_works_while_originals_arrive(tmp_path: Path) -> None:
    _, arrivals, loop = sending(tmp_path, until=1000.0, QuietSeconds=0)
    loop.yield_to_arrivals(0)
    assert arrivals.now == 0.0 and loop.yields == 0


def test_quiet_and_max_delay_settings_are_checked() -> None:
    assert AutoAnonymizeConfig.parse({}).quiet_seconds == 0.3
    assert AutoAnonymizeConfig.parse({"QuietSeconds": 0}).quiet_seconds == 0.0
    for key, value in (("QuietSeconds", -1), ("QuietSeconds", "1"), ("MaxDelaySeconds", 0), ("MaxDelaySeconds", True)):
        with pytest.raises(IngestConfigurationError, match=f"AutoAnonymize.{key}"):
            AutoAnonymizeConfig.parse({key: value})
