"""What an anonymization did: one :class:`Change` per attribute touched, and the :class:`AnonymizationReport` of an
instance (new UIDs, warnings, pixel boxes, counts). Tag numbers and action codes only, unless values were asked for."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Change:
    """What happened to one attribute. Without ``record_values`` it holds tag numbers and codes only."""

    path: str
    """Where: ``"0008,1140[0]/0008,1155"`` (sequence tag, item index, ..., tag); file meta tags start ``0002``."""
    tag: str
    """``"GGGG,EEEE"``."""
    keyword: str
    rule: str
    """The action the table or a custom rule names, e.g. ``"X/Z/D"``."""
    action: str
    """What was done: ``X`` removed, ``Z`` emptied, ``D`` dummy, ``K`` kept, ``C`` cleaned, ``U`` new UID,
    ``P`` patient pseudonym or chosen value, ``S`` date shifted (``C`` under RetainLongModifDates)."""
    changed: bool
    original: str | None = None
    new: str | None = None

    def as_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "Path": self.path,
            "Tag": self.tag,
            "Keyword": self.keyword,
            "Rule": self.rule,
            "Action": self.action,
            "Changed": self.changed,
        }
        if self.original is not None or self.new is not None:
            out["Original"] = self.original
            out["New"] = self.new
        return out


@dataclass
class AnonymizationReport:
    """The outcome of anonymizing one instance."""

    changes: list[Change] = field(default_factory=list)
    sop_class_uid: str = ""
    study_instance_uid: str = ""
    """New StudyInstanceUID (not PHI: keyed)."""
    series_instance_uid: str = ""
    sop_instance_uid: str = ""
    warnings: list[str] = field(default_factory=list)
    """Messages without values, e.g. ``"0008,0020: unparsable date left empty"``."""
    pixel_regions: list[dict[str, object]] = field(default_factory=list)
    """Under CleanPixelData: the boxes blacked out in the pixels (never the text found), see :mod:`.pixels`."""

    action_counts: dict[str, int] = field(default_factory=dict)
    """How many attributes each action touched, kept even when :attr:`changes` is not."""

    def counts(self) -> dict[str, int]:
        """How many attributes each action touched (for the audit trail)."""
        return dict(self.action_counts)
