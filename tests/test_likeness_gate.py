"""The generation-time gate and the platform scan with its review queue, on a real SQLite file.

The decision logic runs on chosen embeddings (``find=`` hands the gate what an encoder would find, the
registry's :class:`Euclid` measures them) so every consent state is reached exactly; the end-to-end tests run
the real face encoder on scikit-image's astronaut and skip until the ``likeness`` extra's encoder is present.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aigclabel.audit import AuditStore
from aigclabel.errors import LikenessError
from aigclabel.likeness.gate import gate, label_edited
from aigclabel.likeness.ledger import ConsentLedger, Notice, Purposes
from aigclabel.likeness.registry import LikenessRegistry
from aigclabel.likeness.scan import ReviewQueue, scan
from aigclabel.likeness.types import Likeness
from aigclabel.signing import demo_signing_key
from tests.test_likeness_ledger import NOTICE, T0, Clock
from tests.test_likeness_registry import KEY, Euclid, face

ENCODERS = {"face": Euclid()}


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def parts(tmp_path: Path, clock: Clock) -> Iterator[tuple[LikenessRegistry, ConsentLedger]]:
    store = AuditStore(tmp_path / "audit.sqlite", clock=clock)
    ledger = ConsentLedger(store, demo_signing_key())
    registry = LikenessRegistry(store, KEY, ledger)
    registry.enrol("alice", [face(1)], protected=True)
    registry.enrol("bob", [face(2)])
    yield registry, ledger
    store.close()


@pytest.fixture
def content(tmp_path: Path) -> Path:
    path = tmp_path / "edit.png"
    Image.new("RGB", (64, 64), (90, 120, 150)).save(path)
    return path


def finder(*likenesses: Likeness) -> object:
    return lambda _path: list(likenesses)


def run_gate(parts: tuple[LikenessRegistry, ConsentLedger], content: Path, *seen: Likeness, **kw: bool) -> str:
    registry, ledger = parts
    result = gate(registry, ledger, grantee="studio", output=content, encoders=ENCODERS, find=finder(*seen), **kw)  # type: ignore[arg-type]
    return result.decision


def test_gate_decisions_follow_the_ledger(
    parts: tuple[LikenessRegistry, ConsentLedger], content: Path, clock: Clock
) -> None:
    registry, ledger = parts
    nobody = face(9)
    assert run_gate(parts, content, nobody) == "allow"  # no enrolled person in it
    assert run_gate(parts, content, face(2, 0.1)) == "consent-required"  # bob: enrolled, no grant
    assert run_gate(parts, content, face(1, 0.1)) == "refuse"  # alice opted out
    ledger.grant("alice", "studio", "face", purposes=Purposes(distortion=False), notice=NOTICE)
    assert run_gate(parts, content, face(1, 0.1), distortion=True) == "refuse"  # not for distortion
    assert run_gate(parts, content, face(1, 0.1), distortion=False) == "allow"
    grant = ledger.grant("bob", "studio", "face", purposes=Purposes(distortion=True))
    assert run_gate(parts, content, face(2, 0.1)) == "consent-required"  # not notified yet
    ledger.notify(grant.token, Notice.of_text("notice", "app", T0))
    assert run_gate(parts, content, face(2, 0.1)) == "allow"
    assert run_gate(parts, content, face(2, 0.1), face(1, 0.1)) == "refuse"  # the worst decision wins
    clock.now = T0 + timedelta(seconds=5)
    ledger.revoke("bob", grantee="studio")
    assert run_gate(parts, content, face(2, 0.1)) == "refuse"  # at once
    result = gate(registry, ledger, grantee="studio", output=content, encoders=ENCODERS, find=finder(face(2, 0.1)))  # type: ignore[arg-type]
    [person] = result.to_dict()["people"]
    assert person["consent"]["state"] == "revoked" and person["threshold"] == 0.6 and person["model"] == "test-euclid"
    [event] = [e for e in registry.store.events(kinds=["likeness"]) if e.id == result.audit_event_id]
    assert event.detail["action"] == "gate" and event.detail["decision"] == "refuse"
    assert event.recipient == "studio" and len(event.content_sha256 or "") == 64
    with pytest.raises(LikenessError, match="source or an output"):
        gate(registry, ledger, grantee="studio")


def test_scan_queues_matches_without_a_token(parts: tuple[LikenessRegistry, ConsentLedger], content: Path) -> None:
    registry, ledger = parts
    seen = finder(face(1, 0.1), face(1, 0.12), face(2, 0.1))
    result = scan(content, registry, ledger, uploader="u1", encoders=ENCODERS, find=seen)  # type: ignore[arg-type]
    assert [m.match.person for m in result.matches] == ["alice"]  # bob is not protected; one item per person
    assert len(result.queued) == 1 and not result.clear
    grant = ledger.grant("alice", "uploader-app", "face", purposes=Purposes(commercial=True), notice=NOTICE)
    cleared = scan(content, registry, ledger, tokens=[grant.token], encoders=ENCODERS, find=seen)  # type: ignore[arg-type]
    assert cleared.clear and cleared.matches[0].consent is not None and cleared.matches[0].consent.ok
    bobs = ledger.grant("bob", "uploader-app", "face", notice=NOTICE)
    wrong = scan(content, registry, ledger, tokens=[bobs.token], encoders=ENCODERS, find=seen)  # type: ignore[arg-type]
    assert wrong.queued and "not alice's face consent" in wrong.matches[0].to_dict()["consent"]["reason"]
    ledger.revoke("alice", grant=grant.token)
    again = scan(content, registry, ledger, tokens=[grant.token], encoders=ENCODERS, find=seen)  # type: ignore[arg-type]
    assert again.queued

    queue = ReviewQueue(ledger)
    first, *_ = queue.list()
    assert len(queue.list()) == 3 and first.person == "alice" and first.uploader == "u1"
    decided = queue.decide(first.id, "remove", "reviewer-7", "no consent on file")
    assert decided.status == "remove" and len(queue.list()) == 2
    assert ledger.entries("alice")[-1].body["decision"] == "remove"
    false = queue.decide(queue.list()[0].id, "false-match", "reviewer-7")
    assert false.status == "false-match"
    kinds = [e.kind for e in ledger.entries("alice")]
    assert kinds.count("review") == 1  # a false match is no consent matter: audit event only
    actions = [e.detail["action"] for e in registry.store.events(kinds=["likeness"])]
    assert actions.count("scan") == 4 and actions.count("review") == 2
    with pytest.raises(LikenessError, match="decided already"):
        queue.decide(first.id, "approve", "reviewer-8")
    with pytest.raises(LikenessError, match="one of"):
        queue.decide(first.id, "maybe", "reviewer-8")
    assert ledger.verify_chain().ok


@pytest.mark.interop  # exiftool reads the implicit label
def test_label_edited_adds_the_conspicuous_and_the_implicit_label(tmp_path: Path) -> None:
    from aigclabel import DEMO_PROVIDER_CODE, AIGCLabel
    from aigclabel.explicit.image import locate_label
    from tests._tools import exiftool_label

    skdata = pytest.importorskip("skimage.data")
    src, dst = tmp_path / "swapped.jpg", tmp_path / "published.jpg"
    Image.fromarray(np.asarray(skdata.astronaut())).save(src, quality=92)
    label = AIGCLabel.for_producer(DEMO_PROVIDER_CODE, "face-swap-1")
    label_edited(src, dst, label, ["face"])
    assert '"ProduceID":"face-swap-1"' in (exiftool_label(dst) or "").replace(" ", "")
    with Image.open(dst) as out:
        located = locate_label(out.convert("RGB"))
    assert located is not None and located.glyph_ratio >= 0.05
    assert src.read_bytes() != dst.read_bytes()


# ---------------------------------------------------------------- end to end with the real face encoder
def _astronaut(tmp_path: Path) -> Path:
    skdata = pytest.importorskip("skimage.data")
    path = tmp_path / "astronaut.png"
    Image.fromarray(np.asarray(skdata.astronaut())).save(path)
    return path


def test_gate_and_scan_on_a_real_face_through_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("aigclabel.likeness.face")
    from aigclabel import DEMO_PROVIDER_CODE, api
    from aigclabel.explicit.image import locate_label
    from aigclabel.likeness import face
    from aigclabel.likeness.registry import KEY_ENV
    from tests.test_likeness_cli import cli

    photo = _astronaut(tmp_path)
    edited, published = tmp_path / "edited.jpg", tmp_path / "published.jpg"
    with Image.open(photo) as img:
        img.resize((384, 384)).save(edited, quality=80)  # a resized, recompressed copy: the same person
    db = ["--db", str(tmp_path / "audit.sqlite")]
    monkeypatch.setenv(KEY_ENV, KEY.hex())
    code, out = cli("enrol", "eileen", str(photo), "--protected", *db, "--json")
    assert code == 0 and json.loads(out)["templates"] == {"face": 1}
    gate_args = ["gate", "--grantee", "studio", "--output", str(edited), *db]
    code, out = cli(*gate_args, "--source", str(photo), "--json")
    decision = json.loads(out)
    assert code == 1 and decision["decision"] == "refuse" and decision["people"][0]["person"] == "eileen"
    assert decision["people"][0]["distance"] <= decision["people"][0]["threshold"] == face.THRESHOLD
    assert decision["models"] == {"face": "dlib-hog/sp5/resnet128-v1"}
    grant = ["consent", "grant", "--person", "eileen", "--grantee", "studio", "--modality", "face"]
    notice = tmp_path / "notice.txt"
    notice.write_text("notice", encoding="utf-8")
    assert cli(*grant, "--distortion", "--notice-file", str(notice), "--channel", "app", "--demo-key", *db)[0] == 0
    code, out = cli(*gate_args, "--label-out", str(published), "--producer", DEMO_PROVIDER_CODE, "--produce-id", "x1")
    assert code == 0 and out.startswith("allow: eileen (face): allow, granted"), out
    written = api.read_label(published)
    assert written is not None and written.produce_id == "x1"
    with Image.open(published) as labelled:
        assert locate_label(labelled.convert("RGB")) is not None
    code, out = cli("scan", str(edited), *db, "--json")
    found = json.loads(out)
    assert code == 1 and len(found["queued"]) == 1 and found["matches"][0]["person"] == "eileen"
    assert cli("delete", "eileen", "--demo-key", *db)[0] == 0
    code, out = cli("scan", str(edited), *db, "--json")
    assert code == 0 and json.loads(out)["matches"] == []


def test_enrolment_needs_a_face(tmp_path: Path) -> None:
    pytest.importorskip("aigclabel.likeness.face")
    blank = tmp_path / "blank.png"
    Image.new("RGB", (200, 200), (200, 200, 200)).save(blank)
    store = AuditStore(tmp_path / "audit.sqlite")
    with pytest.raises(LikenessError, match="no face or voice"):
        LikenessRegistry(store, KEY).enrol_files("x", [blank])
    with Image.open(_astronaut(tmp_path)) as one:
        two = Image.new("RGB", (one.width * 2, one.height))
        two.paste(one, (0, 0))
        two.paste(one, (one.width, 0))
    two.save(tmp_path / "two.png")
    with pytest.raises(LikenessError, match="one face per photo or frame, found 2"):
        LikenessRegistry(store, KEY).enrol_files("x", [tmp_path / "two.png"])
    store.close()


# ---------------------------------------------------------------- end to end with the real voice encoder
# espeak-ng voices are a weak proxy for people: formant synthesis, no natural timbre. They show the
# plumbing (the same synthetic voice matches across sentences, another does not), not the accuracy.
SENTENCES = (
    "The quick brown fox jumps over the lazy dog while the sun sets behind the quiet hills of the valley.",
    "Please remember to bring the documents to the meeting on Thursday morning at nine o clock sharp.",
)


def _speak(tmp_path: Path, voice: str, sentence: int) -> Path:
    import shutil
    import subprocess

    from tests.conftest import require_tool

    require_tool("espeak-ng")
    path = tmp_path / f"{voice}-{sentence}.wav"
    espeak = shutil.which("espeak-ng")
    assert espeak is not None
    subprocess.run([espeak, "-v", voice, "-w", str(path), SENTENCES[sentence]], check=True, capture_output=True)
    return path


@pytest.mark.interop  # espeak-ng speaks the test voices
def test_voice_gate_scan_and_label(tmp_path: Path) -> None:
    pytest.importorskip("aigclabel.likeness.voice")
    from aigclabel import DEMO_PROVIDER_CODE, AIGCLabel, api
    from aigclabel.explicit.audio import detect_cue_in_file

    store = AuditStore(tmp_path / "audit.sqlite")
    ledger = ConsentLedger(store, demo_signing_key())
    registry = LikenessRegistry(store, KEY, ledger)
    assert registry.enrol_files("speaker-m3", [_speak(tmp_path, "en+m3", 0)], protected=True) == 1
    same, other = _speak(tmp_path, "en+m3", 1), _speak(tmp_path, "en+f4", 1)
    refused = gate(registry, ledger, grantee="dubbing", output=same)
    assert refused.decision == "refuse" and refused.people[0].modality == "voice"
    assert gate(registry, ledger, grantee="dubbing", output=other).decision == "allow"  # nobody enrolled
    assert scan(other, registry, ledger).matches == []
    ledger.grant("speaker-m3", "dubbing", "voice", purposes=Purposes(distortion=True), notice=NOTICE)
    allowed = gate(registry, ledger, grantee="dubbing", output=same)
    assert allowed.allowed and allowed.people[0].to_dict()["distance"] <= allowed.people[0].to_dict()["threshold"]
    published = tmp_path / "published.wav"
    label_edited(same, published, AIGCLabel.for_producer(DEMO_PROVIDER_CODE, "dub-1"), ["voice"])
    written = api.read_label(published)
    assert written is not None and written.produce_id == "dub-1"
    assert detect_cue_in_file(published)  # the short-long-short-short rhythm at the start
    store.close()


@pytest.mark.interop  # ffmpeg makes the video
def test_scan_samples_video_frames(tmp_path: Path) -> None:
    pytest.importorskip("aigclabel.likeness.face")
    from tests._video import ffmpeg

    photo = _astronaut(tmp_path)
    video = ffmpeg(tmp_path / "clip.mp4", "-loop", "1", "-i", str(photo), "-t", "2", "-r", "5", "-pix_fmt", "yuv420p")
    store = AuditStore(tmp_path / "audit.sqlite")
    ledger = ConsentLedger(store, demo_signing_key())
    registry = LikenessRegistry(store, KEY, ledger)
    registry.enrol_files("eileen", [photo], protected=True)
    result = scan(video, registry, ledger, uploader="u")
    [match] = result.matches  # one review per person however many frames show her
    assert match.match.at is not None and match.review_id is not None and result.found >= 2
    store.close()
