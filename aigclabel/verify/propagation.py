"""What a platform writes once content is classified: :func:`apply`.

It adds the platform's propagation fields (never rewriting an earlier party's), signs ReservedCode2
when a key is given, and puts the visible prompt where it breaks nothing: a prompt file for the
platform's page by default, burnt into the media only when asked.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from .._io import atomic_output, scratch, write_lock
from .._media import MediaSample
from ..errors import AIGCLabelError, VerifyError
from ..label import FIELD_ATTRS, PRODUCER_FIELDS, AIGCLabel, value_conforms
from ..signing import SigningKey, payload_digest, sign
from .detectors import plan_detectors, registered_detectors, registered_labelers, run_detector
from .evidence import Classification, Evidence, Verdict

#: Visible prompt per classification; each has the AI element and the generation element (GB 45438 §5).
PROMPTS = {
    Classification.CONFIRMED: "人工智能生成",
    Classification.POSSIBLE: "可能为人工智能生成",
    Classification.SUSPECTED: "疑似人工智能生成",
}
#: Where :func:`apply` puts the visible prompt: a prompt file beside the content for the platform's
#: page (nothing re-encoded), burnt into the media (re-encodes it; only when asked), or nowhere.
PromptMode = Literal["sidecar", "burn", "none"]
#: Suffix of the prompt file written beside the content in ``sidecar`` mode.
PROMPT_SUFFIX = ".aigc-prompt.json"


@dataclass(frozen=True)
class Applied:
    """What :func:`apply` wrote."""

    path: Path
    label: AIGCLabel
    #: What happened to the visible prompt (written as a prompt file, burnt in, skipped and why).
    visible: str
    #: The prompt text for the platform's page ("around the content", Measures Art. 6).
    prompt: str = ""
    #: The prompt file written in ``sidecar`` mode.
    prompt_file: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "path": str(self.path),
            "label": self.label.to_dict(),
            "visible_label": self.visible,
            "prompt": self.prompt,
            "prompt_file": str(self.prompt_file) if self.prompt_file else None,
        }


def propagation_label(verdict: Verdict, propagator: str, propagate_id: str | None = None) -> AIGCLabel:
    """The label a platform writes for ``verdict``: the earlier parties' fields kept, its own added.

    A conforming label is kept as it is (``Label``, ``ContentProducer``, ``ProduceID`` and
    ``ReservedCode1`` belong to the parties who wrote them, Measures Art. 10); only
    ``ContentPropagator``, ``PropagateID`` (and later ``ReservedCode2``) change. Without one, the
    ``Label`` is the classification's value; producer fields of a non-conforming label that would
    break Annex E (bad characters, over-long) are dropped rather than copied.
    """
    value = verdict.label_value
    if value is None:
        raise VerifyError("content is classified 'none': there is no AI label to propagate")
    old = verdict.label
    try:
        if old is not None and verdict.label_conforms and old.value is not None:
            return replace(old, reserved_code2="").with_propagation(propagator, propagate_id)
        kept = AIGCLabel(label=value.value)
        if old is not None:
            producer = (FIELD_ATTRS[key] for key in PRODUCER_FIELDS if key != "Label")
            kept = replace(kept, **{a: getattr(old, a) for a in producer if value_conforms(getattr(old, a))})
        return kept.with_propagation(propagator, propagate_id, label=value)
    except AIGCLabelError as exc:
        raise VerifyError(str(exc)) from None


def prompt_file_for(path: Path) -> Path:
    """The prompt file :func:`apply` writes beside ``path`` in ``sidecar`` mode."""
    return path.with_name(path.name + PROMPT_SUFFIX)


def _write_prompt_file(dst: Path, verdict: Verdict, label: AIGCLabel, prompt: str) -> Path:
    target = prompt_file_for(dst)
    body = {
        "content": dst.name,
        "prompt": prompt,
        "classification": verdict.classification.value,
        "label": label.label,
        "placement": "show around the content (Measures Art. 6); the content itself is not altered",
    }
    with atomic_output(target) as tmp:
        tmp.write_text(json.dumps(body, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return target


def _visible_label_present(verdict: Verdict) -> Evidence | None:
    """An explicit label already on the content (found by classify, or by the explicit detectors now)."""
    found = [e for e in verdict.evidence if e.kind.startswith("explicit-") and e.role == "trace"]
    if not found:
        skipped = {n: d for n, d in registered_detectors().items() if n in verdict.skipped_detectors}
        media = MediaSample(verdict.path, verdict.format)
        for name, detector in plan_detectors(skipped, verdict.format):
            if name.startswith("explicit-"):
                with contextlib.suppress(Exception):  # a detector fault only means "not known": burn in
                    found += [e for e in run_detector(detector, verdict.path, media) if e.role == "trace"]
    return found[0] if found else None


def apply(
    verdict: Verdict,
    propagator: str,
    *,
    propagate_id: str | None = None,
    key: SigningKey | None = None,
    output: Path | str | None = None,
    prompt: PromptMode = "sidecar",
) -> Applied:
    """Write the platform's label for ``verdict`` into the file (or ``output``), atomically.

    The earlier parties' fields are kept (:func:`propagation_label`); with ``key``, ReservedCode2 is
    signed over the final payload. The visible prompt goes where it breaks nothing: by default
    (``"sidecar"``) into a prompt file beside the output for the platform's page, leaving the payload
    and so the producer's ReservedCode1 intact. ``"burn"`` asks a registered :class:`VisibleLabeler`
    to draw it into the media (a re-encode), unless the content already shows a visible label;
    ``"none"`` writes no prompt.
    """
    from ..api import write_label

    src = verdict.path
    dst = Path(output) if output is not None else src
    label = propagation_label(verdict, propagator, propagate_id)
    text = PROMPTS[verdict.classification]
    status = "not requested"
    labeler = None
    if prompt == "burn":
        existing = _visible_label_present(verdict)
        if existing is not None:
            status = f"not added: the content already shows a visible label ({existing.detail})"
        else:
            # The most recently registered labeler wins, so a platform's own overrides the built-in one.
            labeler = next((lb for lb in reversed(registered_labelers().values()) if lb.supports(src)), None)
            if labeler is None:
                status = "not available: no visible labeler is registered for this format (aigclabel.explicit)"
    source = src
    with contextlib.ExitStack() as stack:
        stack.enter_context(write_lock(dst))  # a concurrent writer of dst waits, then works on our result
        if labeler is not None:
            # The visible label goes to a temporary file first, so a failure leaves the input untouched.
            staged = stack.enter_context(scratch(dst, src.suffix))
            try:
                labeler.add_label(src, staged, verdict.classification)
                source, status = staged, f"added by {labeler.name}"
            except AIGCLabelError as exc:
                status = f"failed ({labeler.name}: {exc}); implicit label written without it"
        if key is not None:
            # After a visible label, vouch for the payload the producer signed so its signature stays checkable.
            before = bytes.fromhex(verdict.payload_digest) if source != src and verdict.payload_digest else None
            label = sign(label, payload_digest(source), key, "propagator", before)
        written = write_label(source, label, dst)
    prompt_path = None
    if prompt == "sidecar":
        prompt_path = _write_prompt_file(written, verdict, label, text)
        status = f"prompt file {prompt_path.name} (content not re-encoded)"
    return Applied(path=written, label=label, visible=status, prompt=text, prompt_file=prompt_path)
