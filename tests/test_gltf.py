"""glTF 2.0 scenes (.gltf, .glb): the label in asset.extras.AIGC, read back with pygltflib and trimesh.

The scenes come from other tools: trimesh writes the GLB and embedded-buffer glTF, pygltflib writes a
glTF with its own formatting and an ``asset.extras`` of its own.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from aigclabel import DEMO_PROVIDER_CODE, AIGCLabel, api
from aigclabel.containers import open_container
from aigclabel.errors import (
    AIGCLabelError,
    MalformedFileError,
    UnsupportedFormatError,
    WriteNotSupportedError,
)

pygltflib = pytest.importorskip("pygltflib")
trimesh = pytest.importorskip("trimesh")

LABEL = AIGCLabel.for_producer(DEMO_PROVIDER_CODE)


def _scene() -> Any:
    box = trimesh.creation.box(extents=(1, 2, 3))
    box.visual = trimesh.visual.TextureVisuals(
        uv=np.random.default_rng(1).random((len(box.vertices), 2)),
        image=__import__("PIL.Image", fromlist=["Image"]).new("RGB", (8, 8), (10, 200, 30)),
    )
    scene = trimesh.Scene(box)
    scene.set_camera(angles=(0.2, 0.3, 0), distance=5, fov=(60, 45))
    return scene


@pytest.fixture()
def glb(tmp_path: Path) -> Path:
    path = tmp_path / "trimesh.glb"
    path.write_bytes(trimesh.exchange.gltf.export_glb(_scene()))
    return path


@pytest.fixture()
def gltf(tmp_path: Path) -> Path:
    """A glTF written by pygltflib (pretty-printed), given an ``asset.extras`` of its own (pygltflib drops it)."""
    doc = pygltflib.GLTF2(
        asset=pygltflib.Asset(version="2.0"),
        scenes=[pygltflib.Scene(nodes=[0])],
        nodes=[pygltflib.Node(name="empty", translation=[0.1, 0.25, 3.0])],
    )
    path = tmp_path / "pygltflib.gltf"
    doc.save(str(path))
    text = json.loads(path.read_text())
    text["asset"]["extras"] = {"author": "someone", "n": 1.50}
    path.write_text(json.dumps(text, indent=2))
    return path


def _extras(path: Path) -> dict[str, Any]:
    extras = pygltflib.GLTF2().load(str(path)).asset.extras
    return extras if isinstance(extras, dict) else {}


def test_glb_from_trimesh_keeps_its_buffers_and_geometry(glb: Path, tmp_path: Path) -> None:
    out = api.write_label(glb, LABEL, tmp_path / "labelled.glb")
    assert json.loads(_extras(out)["AIGC"]) == LABEL.to_dict()  # the Annex E text, a string
    before, after = pygltflib.GLTF2().load(str(glb)), pygltflib.GLTF2().load(str(out))
    assert before.binary_blob() == after.binary_blob()  # buffers untouched
    assert len(out.read_bytes()) % 4 == 0 and struct.unpack("<I", out.read_bytes()[8:12])[0] == out.stat().st_size
    original, labelled = trimesh.load(glb, force="mesh"), trimesh.load(out, force="mesh")
    assert np.array_equal(original.vertices, labelled.vertices) and np.array_equal(original.faces, labelled.faces)
    assert api.read_label(out) == LABEL
    assert open_container(out).payload_digest(out) == open_container(glb).payload_digest(glb)
    stripped = api.strip_label(out, tmp_path / "stripped.glb")
    assert stripped.read_bytes() == glb.read_bytes()  # write then strip gives the original bytes


def test_gltf_keeps_formatting_other_extras_and_numbers(gltf: Path, tmp_path: Path) -> None:
    original = gltf.read_text()
    out = api.write_label(gltf, LABEL, tmp_path / "labelled.gltf")
    extras = _extras(out)
    assert extras["author"] == "someone" and extras["n"] == 1.5 and json.loads(extras["AIGC"])["Label"] == "1"
    text = out.read_text()
    assert text.replace(f'"AIGC":{json.dumps(LABEL.to_json())},', "") == original  # only the member was added
    platform = AIGCLabel.from_mapping({**LABEL.to_dict(), "ContentPropagator": DEMO_PROVIDER_CODE, "PropagateID": "p1"})
    again = api.write_label(out, platform, tmp_path / "propagated.gltf")
    assert api.read_label(again) == platform and len(api.read_labels(again)) == 1
    digests = {open_container(p).payload_digest(p) for p in (gltf, out, again)}
    assert len(digests) == 1
    assert api.strip_label(again, tmp_path / "stripped.gltf").read_text() == original


def test_a_label_another_tool_stored_as_an_object_is_read(gltf: Path) -> None:
    doc = json.loads(gltf.read_text())
    doc["asset"]["extras"]["AIGC"] = LABEL.to_dict()
    gltf.write_text(json.dumps(doc, indent=4))
    assert api.read_label(gltf) == LABEL


def test_cli_round_trip_in_place_and_with_output(glb: Path, tmp_path: Path) -> None:
    run = [sys.executable, "-m", "aigclabel"]
    subprocess.run([*run, "label", "-p", DEMO_PROVIDER_CODE, str(glb)], check=True, capture_output=True)
    subprocess.run([*run, "label", "-p", DEMO_PROVIDER_CODE, str(glb), "-o", str(tmp_path / "o.glb")], check=True)
    marked = tmp_path / "marked.glb"
    done = subprocess.run([*run, "mark", str(glb), "-o", str(marked)], check=True, capture_output=True, text=True)
    assert "camera" in done.stdout
    for path in (glb, tmp_path / "o.glb", marked):
        shown = json.loads(subprocess.run([*run, "inspect", "--json", str(path)], capture_output=True).stdout)
        assert shown[0]["format"] == "glb" and shown[0]["ok"] and len(shown[0]["labels"]) == 1


def test_extras_that_are_not_an_object_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "odd.gltf"
    path.write_text('{"asset": {"version": "2.0", "extras": [1, 2]}}')
    with pytest.raises(WriteNotSupportedError, match="not a JSON object"):
        api.write_label(path, LABEL)
    assert path.read_text() == '{"asset": {"version": "2.0", "extras": [1, 2]}}'


@pytest.mark.parametrize(
    ("mutate", "error"),
    [
        (lambda b: b[:30], AIGCLabelError),
        (lambda b: b[:4] + struct.pack("<I", 1) + b[8:], UnsupportedFormatError),
        (lambda b: b[:16] + b"BIN\x00" + b[20:], MalformedFileError),
        (lambda b: b[:20] + b"[" + b[21:], MalformedFileError),
        (lambda b: b[:8] + struct.pack("<I", len(b) + 100) + b[12:], MalformedFileError),
    ],
    ids=["truncated", "version-1", "no-json-chunk", "bad-json", "length-past-end"],
)
def test_hostile_glb_gets_a_typed_error_and_is_left_alone(glb: Path, mutate: Any, error: type[Exception]) -> None:
    bad = mutate(glb.read_bytes())
    glb.write_bytes(bad)
    with pytest.raises(error):
        api.write_label(glb, LABEL)
    with pytest.raises(AIGCLabelError):
        api.read_labels(glb)
    assert glb.read_bytes() == bad


def test_a_gltf_without_an_asset_is_malformed(tmp_path: Path) -> None:
    path = tmp_path / "no-asset.gltf"
    path.write_text('{"scenes": []}')
    with pytest.raises(MalformedFileError, match="no asset"):
        api.read_labels(path)


# ---------------------------------------------------------------------------- the visible label (§5.5)


def _projected_plate(path: Path) -> tuple[np.ndarray[Any, Any], float]:
    """The label plate's corners in the camera's normalised device coordinates, and the view's aspect."""
    doc = pygltflib.GLTF2().load(str(path))
    camera_node = next(n for n in doc.nodes if n.camera is not None)
    plate_node = doc.nodes[next(c for c in camera_node.children if doc.nodes[c].name == "AIGC explicit label")]
    accessor = doc.accessors[doc.meshes[plate_node.mesh].primitives[0].attributes.POSITION]
    view = doc.bufferViews[accessor.bufferView]
    data = doc.get_data_from_buffer_uri(doc.buffers[view.buffer].uri)
    corners = np.frombuffer(data[view.byteOffset : view.byteOffset + view.byteLength], np.float32).reshape(4, 3)
    camera = doc.cameras[camera_node.camera].perspective
    f = 1 / np.tan(camera.yfov / 2)
    aspect = camera.aspectRatio
    ndc = np.stack([corners[:, 0] * f / aspect / -corners[:, 2], corners[:, 1] * f / -corners[:, 2]], axis=1)
    return ndc, aspect


def test_scene_label_is_a_plate_in_the_cameras_opening_frame(glb: Path, tmp_path: Path) -> None:
    from aigclabel.explicit import add_scene_label, find_scene_labels

    labelled = api.write_label(glb, LABEL, tmp_path / "labelled.glb")
    result = add_scene_label(labelled, tmp_path / "marked.glb")
    assert result.cameras == 1 and not result.free_standing and result.implicit_kept
    assert result.glyph_ratio >= 0.05  # §5.2's 5 % of the shortest side, applied to the view
    assert find_scene_labels(result.path) == ["AIGC explicit label"]
    assert api.read_label(result.path) == LABEL  # the implicit label carried over
    before, after = pygltflib.GLTF2().load(str(glb)), pygltflib.GLTF2().load(str(result.path))
    assert before.binary_blob() == after.binary_blob()  # the file's own buffers untouched
    ndc, aspect = _projected_plate(result.path)
    assert np.all(np.abs(ndc) <= 1) and ndc[:, 0].max() > 0.5 and ndc[:, 1].min() < -0.5  # bottom-right, in frame
    plate_height = (ndc[:, 1].max() - ndc[:, 1].min()) / 2  # of the view height
    assert plate_height * min(1.0, aspect) >= 0.05
    assert len(trimesh.load(result.path).geometry) == 2  # the viewer sees the model and the plate


def test_scene_without_a_camera_gets_a_plate_above_it(tmp_path: Path) -> None:
    from aigclabel.explicit import add_scene_label, find_scene_labels

    box = trimesh.creation.box(extents=(2, 1, 1))
    path = tmp_path / "nocam.gltf"
    path.write_bytes(trimesh.exchange.gltf.export_gltf(trimesh.Scene(box), embed_buffers=True)["model.gltf"])
    result = add_scene_label(path, tmp_path / "marked.gltf", implicit="if-supported")
    assert result.free_standing and result.cameras == 0 and find_scene_labels(result.path)
    scene = trimesh.load(result.path)
    plate = next(g for name, g in scene.geometry.items() if "AIGC" in name)
    assert plate.bounds[0][1] > 0.5 and np.isclose(plate.bounds[1][0] - plate.bounds[0][0], 2)  # above, as wide
