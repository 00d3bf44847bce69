"""Image watermark: PSNR, payload round trip through real encoders and geometric attacks, no false alarms."""

from __future__ import annotations

import io
import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image, ImageFilter, ImageOps
from typer.testing import CliRunner

from aigclabel.cli import app
from aigclabel.errors import MalformedFileError
from aigclabel.watermark import DEMO_KEY, Payload, detect_file, detect_image, embed_file, embed_image, psnr

from .conftest import require_module, require_tool

Img = npt.NDArray[np.uint8]
PAYLOAD = Payload.for_produce_id("test-produce-id-0001", key_id=42)


def natural(seed: int, h: int = 360, w: int = 480) -> Img:
    """A photo-like test image: 1/f (pink) noise texture in colour plus smooth gradients and an edge."""
    rng = np.random.default_rng(seed)
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    amp = 1.0 / np.maximum(np.hypot(fx, fy), 1.0 / max(h, w)) ** 1.1
    chans = []
    for _ in range(3):
        spec = amp * np.exp(2j * np.pi * rng.random(amp.shape))
        chans.append(np.fft.irfft2(spec, s=(h, w)))
    img = np.stack(chans, axis=-1)
    img = (img - img.mean()) / img.std() * 40 + 120
    img += np.linspace(-30, 30, w)[None, :, None]
    img[h // 3 :, : w // 4] += 35
    return np.asarray(np.clip(img, 0, 255), dtype=np.uint8)


def _encode(img: Img, fmt: str, **params: object) -> Img:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format=fmt, **params)
    buf.seek(0)
    return np.asarray(Image.open(buf).convert("RGB"))


def _resize(img: Img, f: float) -> Img:
    h, w = img.shape[:2]
    return np.asarray(Image.fromarray(img).resize((round(w * f), round(h * f)), Image.Resampling.BICUBIC))


def _crop(img: Img, f: float) -> Img:
    h, w = img.shape[:2]
    ch, cw = int(h * f), int(w * f)
    return img[(h - ch) // 2 : (h - ch) // 2 + ch, (w - cw) // 2 : (w - cw) // 2 + cw].copy()


ATTACKS: dict[str, Callable[[Img], Img]] = {
    "jpeg-q50": lambda a: _encode(a, "JPEG", quality=50),
    "webp-q75": lambda a: _encode(a, "WEBP", quality=75),
    "resize-0.5": lambda a: _resize(a, 0.5),
    "crop-80": lambda a: _crop(a, 0.8),
    "rotate-3deg": lambda a: np.asarray(Image.fromarray(a).rotate(3, resample=Image.Resampling.BICUBIC)),
    "screenshot-0.75+jpeg85": lambda a: _encode(_resize(a, 0.75), "JPEG", quality=85),
}


@pytest.fixture(scope="module")
def marked() -> tuple[Img, Img]:
    host = natural(1)
    return host, embed_image(host, PAYLOAD)


@pytest.mark.interop  # ffmpeg
def test_psnr_and_clean_roundtrip(marked: tuple[Img, Img], tmp_path: Path) -> None:
    host, wm = marked
    # Tile mark at 42 dB plus the low-frequency layer (~2.5 dB more on a textured picture).
    assert psnr(host, wm) >= 38.5
    # Cross-check with ffmpeg's psnr filter (an independent implementation).
    require_tool("ffmpeg")
    Image.fromarray(host).save(tmp_path / "a.png")
    Image.fromarray(wm).save(tmp_path / "b.png")
    log = subprocess.run(
        [
            "ffmpeg",
            "-v",
            "info",
            "-i",
            tmp_path / "a.png",
            "-i",
            tmp_path / "b.png",
            "-lavfi",
            "psnr",
            "-f",
            "null",
            "-",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stderr
    average = float(log.split("average:")[1].split()[0])
    assert average >= 38.5
    assert abs(average - psnr(host, wm)) < 0.5
    found = detect_image(wm)
    assert found.present and found.mac_ok
    assert found.payload == PAYLOAD
    assert found.payload is not None and found.payload.matches("test-produce-id-0001")


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_survives_attack(marked: tuple[Img, Img], attack: str) -> None:
    found = detect_image(ATTACKS[attack](marked[1]))
    assert found.present, f"{attack}: z={found.z:.2f}"
    assert found.payload == PAYLOAD


#: What platforms do to the orientation and shape of an upload: flips, quarter turns, aspect changes.
GEOMETRY: dict[str, Callable[[Img], Img]] = {
    "flip-h": lambda a: np.ascontiguousarray(a[:, ::-1]),
    "flip-v": lambda a: np.ascontiguousarray(a[::-1]),
    "rot90": lambda a: np.ascontiguousarray(np.rot90(a, 1)),
    "rot270": lambda a: np.ascontiguousarray(np.rot90(a, 3)),
    "width-0.8": lambda a: np.asarray(Image.fromarray(a).resize((round(a.shape[1] * 0.8), a.shape[0]))),
    "height-0.8": lambda a: np.asarray(Image.fromarray(a).resize((a.shape[1], round(a.shape[0] * 0.8)))),
}


@pytest.fixture(scope="module")
def marked_large() -> Img:
    return embed_image(natural(2, 512, 640), PAYLOAD)


#: The orientation each attack leaves, in the words the detector reports it.
TURNED = {
    "flip-h": "mirrored left-right",
    "flip-v": "flipped upside down",
    "rot90": "turned 90° counter-clockwise",
    "rot270": "turned 90° clockwise",
    "width-0.8": "upright",
    "height-0.8": "upright",
}


@pytest.mark.parametrize("attack", sorted(GEOMETRY))
def test_survives_flips_quarter_turns_and_aspect_change(marked_large: Img, attack: str) -> None:
    found = detect_image(GEOMETRY[attack](marked_large))
    # The payload verifies: the host hash was recomputed in the corrected geometry (content_ok).
    assert found.present and found.content_ok, f"{attack}: z={found.z:.2f}"
    assert found.payload == PAYLOAD
    assert found.orientation == TURNED[attack]


def test_cli_reports_how_the_picture_was_turned(marked_large: Img, tmp_path: Path) -> None:
    """A turned upload reads as turned, not as "rotation 0°": the quarter turn is in ``orientation``."""
    import json

    turned = tmp_path / "turned.png"
    Image.fromarray(np.ascontiguousarray(np.rot90(np.rot90(marked_large, 1)[:, ::-1], 1))).save(turned)
    got = CliRunner().invoke(app, ["watermark", "detect", str(turned), "--json"])
    assert got.exit_code == 0, got.output
    details = json.loads(got.output)[0]["details"]
    # turned, mirrored and turned the same way again: the turns cancel, the mirror stays
    assert details["orientation"] == "mirrored left-right"
    assert details["rotation_deg"] == 0.0


def flat_pictures() -> dict[str, Img]:
    """Where a mark shows first: a flat-colour illustration, an app icon, a text screenshot."""
    from PIL import ImageDraw, ImageFont

    rng = np.random.default_rng(8)
    shapes = Image.new("RGB", (512, 384), (236, 230, 214))
    draw = ImageDraw.Draw(shapes)
    for _ in range(10):
        x0, y0 = int(rng.integers(0, 512)), int(rng.integers(0, 384))
        box = (x0, y0, x0 + int(rng.integers(50, 250)), y0 + int(rng.integers(40, 190)))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=colour)
    icon = Image.new("RGB", (256, 256), (255, 255, 255))
    draw = ImageDraw.Draw(icon)
    draw.rounded_rectangle((24, 24, 232, 232), radius=48, fill=(52, 120, 246))
    draw.ellipse((80, 70, 176, 166), fill=(255, 255, 255))
    text = Image.new("RGB", (640, 360), (255, 255, 255))
    draw = ImageDraw.Draw(text)
    font = ImageFont.load_default(size=18)
    for row in range(18, 340, 28):
        draw.text((18, row), "the quick brown fox jumps over a lazy dog, 0123456789", fill=(20, 20, 20), font=font)
    return {"illustration": np.asarray(shapes), "icon": np.asarray(icon), "text": np.asarray(text)}


def test_flat_pictures_stay_clean_and_carry_the_mark() -> None:
    from skimage.metrics import structural_similarity

    for name, host in flat_pictures().items():
        wm = embed_image(host, PAYLOAD)
        ssim = float(structural_similarity(host, wm, channel_axis=2, data_range=255))  # type: ignore[no-untyped-call]
        assert ssim >= 0.97, f"{name}: SSIM {ssim:.3f}"
        assert detect_image(wm).payload == PAYLOAD, name
        assert not detect_image(host).present, name


def test_marks_of_the_first_version_still_verify() -> None:
    """A JPEG marked by the first released embedder (kept in tests/data) reads with today's detector."""
    res = detect_file(Path(__file__).parent / "data" / "watermark-v1.jpg")
    assert res is not None and res.present and res.matches("marked-by-v1")
    assert res.payload is not None and res.payload.key_id == 3


def test_resize_estimate_is_accurate(marked: tuple[Img, Img]) -> None:
    found = detect_image(_resize(marked[1], 0.5))
    assert abs(found.scale - 0.5) < 0.01


def test_unmarked_images_are_not_detected(marked: tuple[Img, Img]) -> None:
    hosts = [natural(s, 256 + 32 * (s % 3), 320) for s in range(10, 22)]
    hosts.append(marked[0])
    hosts.append(np.asarray(Image.open(Path(__file__).parent.parent / "aigclabel" / "samples" / "sample.jpg")))
    hosts += [GEOMETRY[name](h) for name, h in zip(sorted(GEOMETRY), hosts[:6], strict=False)]
    for host in hosts:
        found = detect_image(host)
        assert not found.present, f"false positive z={found.z:.2f}"
        assert found.payload is None


def test_wrong_key_reads_nothing(marked: tuple[Img, Img]) -> None:
    found = detect_image(marked[1], key=b"some other secret key")
    assert found.payload is None
    assert not found.present


def test_grayscale_and_alpha_are_supported() -> None:
    host = natural(3, 256, 256)
    gray = host[..., 0].copy()
    assert detect_image(embed_image(gray, PAYLOAD)).payload == PAYLOAD
    rgba = np.dstack([host, np.full(host.shape[:2], 200, np.uint8)])
    out = embed_image(rgba, PAYLOAD)
    assert np.array_equal(out[..., 3], rgba[..., 3])
    assert detect_image(out).payload == PAYLOAD


def test_rejects_tiny_or_bad_arrays() -> None:
    with pytest.raises(ValueError):
        embed_image(np.zeros((10, 10, 3), np.uint8), PAYLOAD)
    with pytest.raises(ValueError):
        detect_image(np.zeros((64, 64, 5), np.uint8))


def test_file_api_and_cli(tmp_path: Path) -> None:
    src = tmp_path / "in.jpg"
    Image.fromarray(natural(5)).save(src, quality=92)
    out = embed_file(src, tmp_path / "out.jpg", "file-produce-id", key_id=7)
    with Image.open(out) as im:
        assert im.format == "JPEG"
    res = detect_file(out)
    assert res is not None and res.present and res.matches("file-produce-id")
    assert res.payload is not None and res.payload.key_id == 7
    plain = detect_file(src)
    assert plain is not None and not plain.present

    runner = CliRunner()
    cli_out = tmp_path / "cli.png"
    Image.fromarray(natural(6)).save(tmp_path / "cli-in.png")
    r = runner.invoke(
        app, ["watermark", "embed", str(tmp_path / "cli-in.png"), "-o", str(cli_out), "--produce-id", "P9"]
    )
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["watermark", "detect", "--json", str(cli_out)])
    assert r.exit_code == 0, r.output
    assert '"present": true' in r.output
    r = runner.invoke(app, ["watermark", "detect", str(tmp_path / "cli-in.png")])
    assert r.exit_code == 1
    key = tmp_path / "key.bin"
    key.write_bytes(bytes(range(32)))
    keyed = tmp_path / "keyed.png"
    args = ["--produce-id", "P9", "--key-file", str(key)]
    r = runner.invoke(app, ["watermark", "embed", str(tmp_path / "cli-in.png"), "-o", str(keyed), *args])
    assert r.exit_code == 0, r.output
    assert runner.invoke(app, ["watermark", "detect", str(keyed), "--key-file", str(key)]).exit_code == 0
    assert runner.invoke(app, ["watermark", "detect", str(keyed)]).exit_code == 1  # demo key cannot read it


def test_truncated_file_is_a_typed_error(tmp_path: Path) -> None:
    src = tmp_path / "in.png"
    Image.fromarray(natural(7, 128, 128)).save(src)
    data = src.read_bytes()
    bad = tmp_path / "bad.png"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(MalformedFileError):
        embed_file(bad, tmp_path / "o.png", "x")
    assert bad.read_bytes() == data[: len(data) // 2]


def test_a_file_nothing_decodes_is_refused_not_read_as_a_video(tmp_path: Path) -> None:
    # FFmpeg's image2 demuxer opens any file named .jpg or .png as a one-frame "video"; such a file used to
    # be reported as "no decodable video frames" (and a random .png as a video too).
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"garbage")
    noise = tmp_path / "noise.png"
    noise.write_bytes(np.random.default_rng(3).integers(0, 256, 3000, dtype=np.uint8).tobytes())
    for bad in (garbage, noise):
        r = CliRunner().invoke(app, ["watermark", "detect", str(bad)])
        said = " ".join(r.output.split())  # Rich wraps the message at the console's width
        assert r.exit_code == 3, said
        assert "not an image, audio, video or text file aigclabel can read" in said
        assert "video frames" not in said
    assert garbage.read_bytes() == b"garbage"


@pytest.mark.interop  # ffmpeg
def test_video_frames_are_marked_and_audio_copied(tmp_path: Path) -> None:
    require_tool("ffmpeg")
    src = tmp_path / "in.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=480x360:rate=25", "-f", "lavfi",
         "-i", "sine=frequency=440:sample_rate=44100", "-t", "1", "-c:v", "libx264", "-pix_fmt", "yuv420p",
         "-c:a", "aac", str(src)],
        check=True,
    )  # fmt: skip
    out = embed_file(src, tmp_path / "out.mp4", "video-pid", key_id=5)
    res = detect_file(out)
    assert res is not None and res.media == "video" and res.present and res.matches("video-pid")
    plain = detect_file(src)
    assert plain is not None and not plain.present

    def audio_packets(p: Path) -> str:
        return subprocess.run(
            ["ffprobe", "-v", "error", "-select_streams", "a", "-show_entries", "packet=pts,size", "-of", "csv", p],
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    assert audio_packets(src) == audio_packets(out) != ""


@pytest.mark.parametrize("ext", ["png", "jpg", "webp", "tiff"])
def test_existing_label_survives_watermarking(tmp_path: Path, ext: str) -> None:
    from aigclabel import DEMO_PROVIDER_CODE, AIGCLabel
    from aigclabel.api import inspect, write_label

    src = tmp_path / f"in.{ext}"
    Image.fromarray(natural(8, 256, 320)).save(src)
    label = AIGCLabel.for_producer(DEMO_PROVIDER_CODE)
    write_label(src, label)
    out = embed_file(src, tmp_path / f"out.{ext}", label.produce_id)
    found = inspect(out)
    assert found.ok and found.label is not None and found.label.produce_id == label.produce_id
    res = detect_file(out)
    assert res is not None and res.matches(label.produce_id)


def test_exif_orientation_is_baked_in_so_platform_rotation_keeps_the_mark(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    src = tmp_path / "o.jpg"
    Image.fromarray(natural(9, 300, 400)).save(src, exif=exif.tobytes(), quality=92)
    out = embed_file(src, tmp_path / "w.jpg", "oriented")
    with Image.open(out) as im:
        assert im.size == (300, 400) and im.getexif().get(0x0112) in (None, 1)
        baked = tmp_path / "baked.jpg"
        ImageOps.exif_transpose(im).save(baked, quality=85)
    res = detect_file(baked)
    assert res is not None and res.matches("oriented")


def test_payload_code_corrects_errors_and_mac_rejects_noise() -> None:
    from aigclabel.watermark.payload import CODED_BITS, DEMO_KEY, decode_soft, encode_payload

    coded = encode_payload(PAYLOAD, DEMO_KEY)
    assert len(coded) == CODED_BITS
    rng = np.random.default_rng(3)
    soft = 1.0 - 2.0 * coded.astype(np.float64)
    flipped = soft.copy()
    flipped[rng.choice(CODED_BITS, 12, replace=False)] *= -1  # 7% hard errors
    got, ok = decode_soft(flipped, DEMO_KEY)
    assert ok and got == PAYLOAD
    assert not decode_soft(soft, b"another key")[1]
    assert sum(decode_soft(rng.standard_normal(CODED_BITS), DEMO_KEY)[1] for _ in range(200)) == 0


def test_host_hash_candidates_flip_the_least_reliable_bits_first() -> None:
    """Soft decision over the host hash: flip sets in increasing total distance from zero, any size."""
    from itertools import combinations

    from aigclabel.watermark.payload import hash_candidates

    rng = np.random.default_rng(8)
    proj = rng.standard_normal(32) * 10
    proj[[4, 9, 17]] = [0.05, -0.08, 0.2]  # the three weakest bits (a brightness change moved them)
    cands = hash_candidates(proj, 37)
    bits = (proj > 0).astype(np.uint8)
    assert len(set(cands)) == 37 and cands[0] == np.packbits(bits).tobytes()
    three = bits.copy()
    three[[4, 9, 17]] ^= 1
    assert np.packbits(three).tobytes() in cands[:8]  # 3 flips cost less than flipping any stronger bit

    def cost(c: bytes) -> float:
        return float(np.abs(proj)[np.unpackbits(np.frombuffer(c, np.uint8)) != bits].sum())

    costs = [cost(c) for c in cands]
    assert costs == sorted(costs)
    # The 37 are the cheapest flip sets: none of the sets left out (of up to 3 bits) costs less than the last.
    order = np.argsort(np.abs(proj))
    left_out = [
        float(np.abs(proj)[list(s)].sum())
        for k in (1, 2, 3)
        for s in combinations(order[:12].tolist(), k)
        if not any(cost(c) == float(np.abs(proj)[list(s)].sum()) for c in cands)
    ]
    assert min(left_out) >= costs[-1]


@pytest.mark.slow  # many watermark detections
def test_copy_attack_does_not_verify_on_other_images() -> None:
    """The attacker's tile estimate from one marked image, added at 42 dB to 20 other images."""
    from aigclabel.watermark.attack import apply_tile, estimate_tile
    from aigclabel.watermark.image import _detect_whitened, _luma, _whiten

    donor = natural(1, 768, 1024)  # 48 tiles to average: a clean estimate
    hosts = [natural(s, 360, 480) for s in range(40, 60)]
    bound = estimate_tile(embed_image(donor, PAYLOAD))
    found = [detect_image(apply_tile(h, bound, 42.0)) for h in hosts]
    assert [d.payload for d in found] == [None] * len(hosts)
    # Reported as a mark made for other content, not as "no mark".
    assert all(d.present and not d.content_ok for d in found)
    # The same attack on the unbound mark (what video frames carry) forges the payload: the attack is real.
    unbound = estimate_tile(embed_image(donor, PAYLOAD, bind=False))
    forged = [_detect_whitened(_whiten(_luma(apply_tile(h, unbound, 42.0))), DEMO_KEY).payload for h in hosts]
    assert forged == [PAYLOAD] * len(hosts)


def test_copied_mark_is_reported_as_content_mismatch(tmp_path: Path) -> None:
    from aigclabel.watermark import CONTENT_MISMATCH
    from aigclabel.watermark.attack import apply_tile, estimate_tile
    from aigclabel.watermark.detector import WatermarkDetector

    forged = apply_tile(natural(41, 360, 480), estimate_tile(embed_image(natural(1, 768, 1024), PAYLOAD)), 42.0)
    path = tmp_path / "forged.png"
    Image.fromarray(forged).save(path)
    res = detect_file(path)
    assert res is not None and res.present and not res.verified and res.payload is None
    assert res.details["unverified"] == CONTENT_MISMATCH
    (evidence,) = WatermarkDetector().detect(path)
    assert evidence.detail.endswith("unverified: content mismatch") and not evidence.data


def _pasted(img: Img, seed: int) -> Img:
    """``img`` at half size inside an unrelated picture of its own size (a collage, a post, a letterbox)."""
    h, w = img.shape[:2]
    canvas = natural(seed, h, w)
    small = _resize(img, 0.5)
    canvas[h // 5 : h // 5 + small.shape[0], w // 3 : w // 3 + small.shape[1]] = small
    return canvas


def test_marked_picture_pasted_into_a_larger_one_verifies() -> None:
    # The host hash is taken around the centre of the marked area, not of the whole picture.
    found = detect_image(_pasted(embed_image(natural(5, 960, 1280), PAYLOAD), 70))
    assert found.present and found.content_ok and found.payload == PAYLOAD, f"z={found.z:.2f}"


@pytest.mark.parametrize(("seed", "h", "w"), [(5, 480, 640), (7, 600, 800)])
def test_small_paste_is_read_from_its_own_area(seed: int, h: int, w: int) -> None:
    """Pastes whose lattice the whole picture's autocorrelation does not show: the exact half-size prior
    and a second fold of the located area alone (the first fold is three quarters surround) read them."""
    found = detect_image(_pasted(embed_image(natural(seed, h, w), PAYLOAD), 70 + seed))
    assert found.present and found.content_ok and found.payload == PAYLOAD, f"z={found.z:.2f}"


@pytest.mark.parametrize("turn", [0, 1])
def test_paste_located_off_is_hashed_from_its_first_corner_on_the_tile_lattice(turn: int) -> None:
    """A paste whose fitted area is ~10 px off (its flat top carries little of the mark): the tile starts at the
    marked picture's first pixel, so the area's first corner put on the tile lattice gives a second centre
    (quarter turn: that corner is another one of the area's)."""
    pasted = np.ascontiguousarray(np.rot90(_pasted(embed_image(natural(3, 512, 512), PAYLOAD), 73), turn))
    found = detect_image(pasted, lowfreq=False)
    assert found.present and found.content_ok and found.payload == PAYLOAD, f"z={found.z:.2f}"


def test_weak_paste_is_found_by_the_tile_scan() -> None:
    """A paste whose sync peak over the whole picture stays under the area search's threshold (noise over
    all of it): the tile-by-tile scan finds the rectangle where the sync correlates and starts the search."""
    from aigclabel.watermark.image import _SCAN_Z, Z_AREA

    pasted = _pasted(embed_image(natural(6, 512, 512), PAYLOAD), 76).astype(np.float32)
    pasted += np.random.default_rng(6).normal(0, 10.0, pasted.shape[:2])[..., None]
    found = detect_image(np.clip(np.rint(pasted), 0, 255).astype(np.uint8), lowfreq=False)
    assert found.details["scan_z"] >= _SCAN_Z  # only scanned when the whole picture's z is under Z_AREA
    assert found.present and found.payload == PAYLOAD and found.z > Z_AREA, f"z={found.z:.2f}"


@pytest.mark.parametrize("at", [(0, 0), (74, 212), (207, 36), (141, 9)])
def test_photo_pasted_at_half_size_verifies_at_any_position(at: tuple[int, int]) -> None:
    """A textured photo (scikit-image's brick wall, 512 px) at half size anywhere in a picture of its size: a
    corner on or off the tile grid, off-grid offsets. The whole picture's fold reads such a paste at z ~4-6:
    the half-size prior is screened over the whole picture (not a central window, which misses a corner),
    windows of the paste's size find it, and the paste's straight edges give its centre and its own fold."""
    brick = np.asarray(require_module("skimage.data").brick())
    marked = embed_image(np.ascontiguousarray(np.stack([brick] * 3, axis=-1)), PAYLOAD)
    canvas = natural(77, 512, 512)
    canvas[at[0] : at[0] + 256, at[1] : at[1] + 256] = _resize(marked, 0.5)
    found = detect_image(canvas, lowfreq=False)
    assert found.present and found.content_ok and found.payload == PAYLOAD, f"z={found.z:.2f} {found.details}"


@pytest.mark.parametrize(("photo", "donor", "at"), [("gravel", "camera", (67, 250)), ("brick", "moon", (75, 211))])
def test_photo_pasted_at_half_size_then_saved_as_jpeg_is_read_through_the_cli(
    tmp_path: Path, photo: str, donor: str, at: tuple[int, int]
) -> None:
    """A marked photo at half size inside another photo, at an off-grid position, the collage saved as JPEG q85 (what
    a platform does to every upload): the tile mark's cells are single pixels there and JPEG removes most of them
    (its half-size window reads z 5.7-6.5, its area search finds no MAC), but the low-frequency layer of the pasted
    picture, read from the area between the paste's straight edges, carries the payload."""
    data = require_module("skimage.data")

    def rgb(name: str) -> Img:
        grey = np.asarray(getattr(data, name)())
        return np.ascontiguousarray(np.stack([grey] * 3, axis=-1))

    canvas = rgb(donor)
    canvas[at[0] : at[0] + 256, at[1] : at[1] + 256] = _resize(embed_image(rgb(photo), PAYLOAD), 0.5)
    path = tmp_path / "collage.jpg"
    Image.fromarray(canvas).save(path, quality=85)
    r = CliRunner().invoke(app, ["watermark", "detect", "--json", str(path)])
    assert r.exit_code == 0, r.output
    (row,) = json.loads(r.output)
    assert row["present"] and row["verified"] and row["produce_id_digest"] == PAYLOAD.hex(), row
    assert row["details"]["layer"] == 2  # the tile mark did not verify: the second layer read the paste's own area


def test_paste_windows_stay_under_their_threshold_on_unmarked_pictures() -> None:
    from aigclabel.watermark.image import _WINDOW_Z, _half_windows, _luma, _whiten

    for seed in (90, 91, 92):
        for h, w in ((512, 512), (300, 700)):
            z = _half_windows(_whiten(_luma(natural(seed, h, w))), DEMO_KEY).z
            assert z < _WINDOW_Z, (seed, z)


def test_tile_scan_stays_under_its_threshold_on_unmarked_pictures() -> None:
    from aigclabel.watermark.image import _SCAN_Z, _fold_plane, _local_read, _luma, _whiten

    for seed in (90, 91, 92):
        r = _whiten(_luma(natural(seed, 512, 512)))
        for basis in (None, np.eye(2) * 64):
            fold, plane = _fold_plane(r, basis)
            z, read = _local_read(plane, fold, DEMO_KEY)
            assert z < _SCAN_Z and read is None, (seed, z)


def test_copied_mark_on_part_of_a_picture_does_not_verify() -> None:
    """The copy attack again, the estimated tile added to a region only: the region's own content is hashed."""
    from aigclabel.watermark.attack import apply_tile, estimate_tile

    tile = estimate_tile(embed_image(natural(1, 768, 1024), PAYLOAD))
    for seed in (80, 81, 82):
        host = natural(seed, 720, 960)
        host[150:510, 200:680] = apply_tile(host[150:510, 200:680].copy(), tile, 40.0)
        found = detect_image(host)
        assert found.payload is None and not found.content_ok, f"z={found.z:.2f}"


def test_aspect_change_on_a_small_image() -> None:
    # Two tile periods in height: the autocorrelation votes see too few lags, the harmonic comb over the
    # line spectrum finds the squeezed period (102.4 px) from all its harmonics.
    small = embed_image(natural(6, 256, 384), PAYLOAD)
    squeezed = np.asarray(Image.fromarray(small).resize((307, 256), Image.Resampling.BICUBIC))
    found = detect_image(squeezed)
    assert found.present and found.content_ok and found.payload == PAYLOAD, f"z={found.z:.2f}"


#: What a platform or an evader does that removes the tile mark's frequencies: the second layer's attacks.
HEAVY: dict[str, Callable[[Img], Img]] = {
    "jpeg-q10": lambda a: _encode(a, "JPEG", quality=10),
    "webp-q50": lambda a: _encode(a, "WEBP", quality=50),
    "blur-2": lambda a: np.asarray(Image.fromarray(a).filter(ImageFilter.GaussianBlur(2))),
    "down-0.25-up": lambda a: _resize(_resize(a, 0.25), 4.0),
    "down-0.5+jpeg70": lambda a: _encode(_resize(a, 0.5), "JPEG", quality=70),
}


@pytest.fixture(scope="module")
def marked_photo() -> Img:
    return embed_image(natural(9, 512, 640), PAYLOAD)


@pytest.mark.parametrize("attack", sorted(HEAVY))
def test_second_layer_survives_heavy_compression_blur_and_downscaling(marked_photo: Img, attack: str) -> None:
    found = detect_image(HEAVY[attack](marked_photo))
    assert found.present and found.content_ok and found.payload == PAYLOAD, f"{attack}: {found.details}"


def test_second_layer_reads_what_the_tile_mark_cannot() -> None:
    """Blur + JPEG q40 of a v2 mark (kept in tests/data): the tile mark is gone, the low-frequency layer reads it."""
    path = Path(__file__).parent / "data" / "watermark-v2.jpg"
    pixels = np.asarray(Image.open(path).convert("RGB"))
    assert detect_image(pixels, lowfreq=False).payload is None
    res = detect_file(path)
    assert res is not None and res.present and res.verified and res.matches("marked-by-v2")
    assert res.details["layer"] == 2


def test_second_layer_is_bound_to_its_picture() -> None:
    """The exact low-frequency change of one picture, stretched onto others, verifies on none of them."""
    from aigclabel.watermark._lowfreq import embed_lowfreq, read_lowfreq
    from aigclabel.watermark.image import _luma

    donor = _luma(natural(1, 512, 640))
    change = embed_lowfreq(donor, PAYLOAD, DEMO_KEY)
    assert change is not None
    assert read_lowfreq(np.clip(donor + change, 0, 255), DEMO_KEY).payload == PAYLOAD
    for seed in range(60, 72):
        host = _luma(natural(seed, 360 + 16 * (seed % 4), 480))
        moved = np.asarray(Image.fromarray(change).resize(host.shape[::-1], Image.Resampling.BILINEAR))
        assert read_lowfreq(np.clip(host + moved, 0, 255), DEMO_KEY).payload is None, seed


def test_lowfreq_reader_tries_soft_decision_hashes_beyond_the_embedders() -> None:
    """JPEG q10 flipped 5 of the 7 weakest bits of a photo's second-layer hash: the reader tries the embedder's
    176 variants (up to 3 flips of the 10 weakest) and then the likeliest by soft decision."""
    from aigclabel.watermark._lowfreq import _hash_candidates, _hash_values, _read_candidates

    m = natural(3, 256, 256)[..., 0].astype(np.float64)
    values = _hash_values(m, DEMO_KEY)
    read = _read_candidates(m, DEMO_KEY)
    assert read[:176] == _hash_candidates(m, DEMO_KEY) and len(read) == len(set(read)) <= 432
    flipped = (values > 0).astype(np.uint8)
    flipped[np.argsort(np.abs(values))[:4]] ^= 1  # 4 flips: beyond the embedder's variants
    assert np.packbits(flipped).tobytes() in read[176:]


def test_whitening_from_the_8_bit_grey_matches_the_float_plane() -> None:
    """The detector whitens with its Gaussian reading the 8-bit grey (faster): the plane of the float path, and
    the folds of the whole-image tiles the sum numpy gives over both tile axes at once."""
    from aigclabel._opencv import cv2
    from aigclabel.watermark.image import TILE, _fold_tiles, _luma, _luma_whitened, _whiten

    for h, w in ((300, 1600), (471, 115), (128, 1599)):
        img = natural(h + w, h, w)
        y, r, padded = _luma_whitened(img)
        assert np.array_equal(y, _luma(img)) and np.shares_memory(r, padded) and r.shape == (h, w)
        assert not padded[h:].any() and not padded[:, w:].any()
        float_path = cv2.subtract(y, cv2.GaussianBlur(y, (7, 7), 1.5))
        local = np.sqrt(np.maximum(cv2.blur(float_path * float_path, (11, 11)), 0.0)) + 0.5
        expected = np.clip(float_path / local, -2.5, 2.5)
        assert np.abs(r - expected).max() < 1e-4
        assert np.abs(r - _whiten(y)).max() < 1e-4
        plane = np.zeros((-(-h // TILE) * TILE, -(-w // TILE) * TILE), dtype=np.float32)
        plane[:h, :w] = r
        assert np.array_equal(plane, padded)
        ph, pw = plane.shape
        both = plane.reshape(ph // TILE, TILE, pw // TILE, TILE).sum(axis=(0, 2))
        assert np.abs(_fold_tiles(plane) - both).max() < 1e-3


def saturated_picture(seed: int = 2, h: int = 512, w: int = 768) -> Img:
    """Smooth green and magenta areas, R and B at 0 or 255 on every pixel (as in posters, renders, hopper.pcd)."""
    tex = np.asarray(Image.fromarray(natural(seed, h, w)).filter(ImageFilter.GaussianBlur(16)), dtype=np.float32)
    magenta = tex[..., 0] > np.median(tex[..., 0])
    g = np.clip((tex[..., 1] - 120.0) * 2.0 + 170.0, 0.0, 255.0)
    out = np.zeros((h, w, 3), dtype=np.float32)
    out[..., 0] = out[..., 2] = np.where(magenta, 255.0, 0.0)
    out[..., 1] = np.where(magenta, 0.6 * g, g)
    return np.asarray(np.rint(out), dtype=np.uint8)


@pytest.mark.parametrize(("fmt", "quality"), [("JPEG", 20), ("WEBP", 50)])
def test_saturated_picture_keeps_its_mark_through_strong_compression(tmp_path: Path, fmt: str, quality: int) -> None:
    """On a saturated picture the same change on R, G and B was clipped away (a channel at 0 cannot darken, a
    channel at 255 cannot lighten): the mark is shared between the channels that can take it, and the second
    layer's projections allow for the shift clipping gives saturated areas under lossy coding."""
    host = saturated_picture()
    assert (host.min(axis=2) == 0).mean() > 0.4 and (host.max(axis=2) == 255).mean() > 0.4
    src = tmp_path / "in.png"
    Image.fromarray(host).save(src)
    marked = tmp_path / "marked.png"
    runner = CliRunner()
    r = runner.invoke(app, ["watermark", "embed", str(src), "-o", str(marked), "--produce-id", "saturated-1"])
    assert r.exit_code == 0, r.output
    with Image.open(marked) as im:
        pixels = np.asarray(im.convert("RGB"))
    attacked = tmp_path / f"attacked.{fmt.lower()}"
    Image.fromarray(pixels).save(attacked, format=fmt, quality=quality)
    r = runner.invoke(app, ["watermark", "detect", "--json", str(attacked)])
    assert r.exit_code == 0, r.output
    (row,) = json.loads(r.output)
    assert row["present"] and row["verified"], row
    assert row["produce_id_digest"] == Payload.for_produce_id("saturated-1").hex(), row
    from skimage.metrics import structural_similarity

    ssim = float(structural_similarity(host, pixels, channel_axis=2, data_range=255))  # type: ignore[no-untyped-call]
    assert ssim >= 0.97, ssim
