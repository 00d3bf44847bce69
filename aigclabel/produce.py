"""The generation side in one call: watermark, sign, label, C2PA manifest, audit record.

A provider stamping an output wants every layer the rules ask for or encourage, in the one order
that keeps each layer valid:

1. **watermark** (optional; re-encodes the media, so it comes first);
2. **signature** in ReservedCode1 over the final payload digest (metadata edits later on, including
   a platform's propagation fields, leave it valid);
3. **implicit label** (GB 45438 Annex E) in the format's primary slot;
4. **C2PA manifest** (optional; its hard binding hashes the finished file, so it comes last);
5. **audit event** (Measures Art. 9 logs), with the watermark payload so a stripped copy found
   later can be traced back to this record.

Everything happens on temporary files beside the output; the output appears in one rename, and the
input is never modified unless it is also the output.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from ._io import scratch, write_lock
from .api import write_label, write_label_how
from .label import AIGCLabel

if TYPE_CHECKING:
    from .audit import AuditStore
    from .c2pa_manifest import C2PACredentials
    from .signing import SigningKey


@dataclass(frozen=True)
class ProduceOptions:
    """Which layers :func:`label_file` adds, with their keys. Defaults: the implicit label only."""

    #: Private key for the ReservedCode1 signature; ``None``: unsigned.
    signing_key: SigningKey | None = None
    #: Watermark key (bytes); ``None``: no watermark.
    watermark_key: bytes | None = None
    watermark_key_id: int = 0
    #: C2PA signing credentials; ``None``: no manifest.
    c2pa: C2PACredentials | None = None
    #: Audit store to record the event in; ``None``: not recorded.
    audit: AuditStore | None = None
    #: Rewrite a damaged file whole, repaired, where the format can (``write_label(repair=True)``).
    repair: bool = False


@dataclass(frozen=True)
class ProduceResult:
    """What :func:`label_file` wrote."""

    path: Path
    label: AIGCLabel
    watermark_payload: str | None
    signed: bool
    c2pa: bool
    audit_event_id: int | None
    #: How the output was written: ``"in-place"`` (a journalled edit of its metadata) or ``"copy"``.
    write: str = "copy"


def label_file(
    src: Path | str, label: AIGCLabel, output: Path | str | None = None, options: ProduceOptions | None = None
) -> ProduceResult:
    """Stamp ``src`` with every layer ``options`` asks for and write it to ``output`` (default: in place)."""
    source = Path(src)
    target = Path(output) if output is not None else source
    opts = options or ProduceOptions()
    label.validate(role="producer")
    watermark_payload: str | None = None
    how = "copy"
    with contextlib.ExitStack() as stack:
        stack.enter_context(write_lock(target))  # a concurrent writer waits, then works on our result
        work = source
        if opts.watermark_key is not None:
            from .watermark import Payload, embed_file

            marked = stack.enter_context(scratch(target, source.suffix))
            embed_file(work, marked, label.produce_id, key_id=opts.watermark_key_id, key=opts.watermark_key)
            watermark_payload = Payload.for_produce_id(label.produce_id, opts.watermark_key_id).hex()
            work = marked
        if opts.signing_key is not None:
            from .signing import payload_digest, sign  # the signing stack loads only to sign

            label = sign(replace(label, reserved_code1=""), payload_digest(work), opts.signing_key)
        # The last step writes ``target`` itself (atomically): a container that keeps its label
        # beside the file (plain text's XMP sidecar) must see the final name, not a temporary one.
        if opts.c2pa is not None:
            from .c2pa_manifest import write_manifest

            labelled = stack.enter_context(scratch(target, source.suffix))
            write_label(work, label, labelled, repair=opts.repair)
            write_manifest(labelled, target, label, credentials=opts.c2pa, title=source.name)
        else:
            how = write_label_how(work, label, target, repair=opts.repair)
    event_id = None
    if opts.audit is not None:
        from .audit import EventKind, file_event

        event = file_event(
            EventKind.LABEL,
            target,
            label,
            watermark_payload=watermark_payload,
            detail={"signed": opts.signing_key is not None, "c2pa": opts.c2pa is not None},
        )
        event_id = opts.audit.record(event)
    return ProduceResult(
        path=target,
        label=label,
        watermark_payload=watermark_payload,
        signed=opts.signing_key is not None,
        c2pa=opts.c2pa is not None,
        audit_event_id=event_id,
        write=how,
    )
