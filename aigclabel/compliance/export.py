"""Recording a copy supplied without the explicit label (Measures Art. 9), with its two preconditions.

Art. 9 waives the explicit label only: the file must still carry its implicit label. And the copy may
be supplied only after the user agreement has set out the recipient's labelling duties, so the
recipient's recorded acceptance is required (not merely warned about: a warning would let the very
export Art. 9 does not permit through, with nothing to show for it afterwards). Either check can be
overridden with a reason, which is stored in the event.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..api import read_label
from ..errors import ExportRefusedError

if TYPE_CHECKING:
    from ..audit import AuditStore


def record_label_free_export(
    store: AuditStore,
    path: Path | str,
    recipient: str,
    *,
    agreement_version: str | None = None,
    override_no_label: str | None = None,
    override_no_agreement: str | None = None,
) -> int:
    """Check and record an Art. 9 export of ``path`` to ``recipient``; returns the event id.

    Raises :class:`ExportRefusedError` when the file carries no implicit label or the recipient has
    no accepted agreement (of ``agreement_version``, when given), unless the matching override gives a
    reason.
    """
    from ..audit import EventKind, file_event

    label = read_label(path)
    detail: dict[str, Any] = {"implicit_label": label is not None}
    overrides: dict[str, str] = {}
    if label is None:
        if not override_no_label:
            raise ExportRefusedError(
                f"{path} carries no implicit label: Art. 9 waives only the explicit label, so a label-free copy "
                "must keep its implicit one (label it first, or override with a reason)"
            )
        overrides["no_implicit_label"] = override_no_label
    accepted = store.acceptance_of(recipient)
    if agreement_version is not None:
        wanted = agreement_version.lower().removeprefix("sha256:")
        accepted = [a for a in accepted if a.version == wanted]
    if accepted:
        detail["acceptance_id"] = accepted[0].id
        detail["agreement_version"] = accepted[0].version
    elif override_no_agreement:
        overrides["no_agreement"] = override_no_agreement
    else:
        which = f"version {agreement_version} of " if agreement_version else ""
        raise ExportRefusedError(
            f"{recipient!r} has not accepted {which}the user agreement: Art. 9 allows a copy without the explicit "
            "label only after the agreement has set out the user's labelling duties (record the acceptance with "
            "`aigclabel agreement accept`, or override with a reason)"
        )
    if overrides:
        detail["override"] = overrides
    return store.record(file_event(EventKind.EXPORT_UNLABELED, path, label, recipient=recipient, detail=detail))
