"""Explicit labels for virtual scenes (GB 45438 §5.5, Measures Art. 4(5)): a label plate in a glTF scene.

§5.5 asks for a conspicuous text prompt in the opening frame when the scene is presented, and allows it
for the rest of the session. A viewer presents a scene through a camera. For every camera the file
defines, the label is a textured plate parented to the camera node just beyond its near plane, so it stays
in frame whatever the camera does (a heads-up plate, present from the first frame on). It is sized like
the image label: every glyph's ink at least 5 % of the view's shortest side, with a margin. Whether §5.5
takes over the 5 % rule is [UNCONFIRMED] in our digest; we apply it. A camera with a known aspect ratio
gets the plate bottom-right; without one it goes bottom-centre, which fits any viewport. A scene with no
camera is shown through the viewer's own camera, so the plate then stands above the scene's bounding box,
facing +Z (glTF's front), as wide as the scene.

The plate is unlit (``KHR_materials_unlit``, with an emissive fallback for viewers without it) and
double-sided. Its geometry and texture travel in a new data-URI buffer and image, so the file's own
buffers (a GLB's binary chunk) keep every byte. The JSON is re-serialised: a visible label is the one
edit where aigclabel rewrites content. The implicit label is carried over.
"""

from __future__ import annotations

import base64
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._io import atomic_output
from ..containers.gltf import read_scene_json, write_scene_json
from ..errors import MalformedFileError
from ._implicit import ImplicitPolicy, read_implicit, restore_implicit
from .image import LabelLayout, plan_label, render_plate
from .text import DEFAULT_LABEL

#: Name of the node carrying the plate (how :func:`find_scene_labels` recognises ours).
NODE_NAME = "AIGC explicit label"
#: Pixels of the view's shortest side the plate is laid out on (the texture's resolution follows).
_VIEW_PIXELS = 1000
_UNLIT = "KHR_materials_unlit"


@dataclass(frozen=True)
class SceneLabelResult:
    """What :func:`add_scene_label` did."""

    path: Path
    #: Camera nodes that got a heads-up plate.
    cameras: int
    #: True when the scene had no camera and got a plate standing above it.
    free_standing: bool
    #: Smallest glyph's ink height over the view's shortest side (camera plates; 0 without a camera).
    glyph_ratio: float
    #: The implicit label was carried over.
    implicit_kept: bool


def add_scene_label(
    src: Path | str, dst: Path | str, *, text: str = DEFAULT_LABEL, implicit: ImplicitPolicy = "require"
) -> SceneLabelResult:
    """Write ``src`` (``.gltf`` or ``.glb``) to ``dst`` with a visible label plate in every camera's view,
    or above the scene when it has no camera."""
    src, dst = Path(src), Path(dst)
    before = read_implicit(src, implicit)
    doc = json.loads(read_scene_json(src))
    if not isinstance(doc, dict):
        raise MalformedFileError(f"{src}: glTF JSON is not an object")
    builder = _Builder(doc)
    cameras = [i for i, node in enumerate(_list(doc, "nodes")) if isinstance(node.get("camera"), int)]
    ratio = 0.0
    for index in cameras:
        ratio = min(ratio or 1.0, builder.camera_plate(index, text))
    if not cameras:
        builder.free_plate(text)
    builder.finish()
    edited = json.dumps(doc, ensure_ascii=False, separators=(",", ":"))
    with atomic_output(dst, mode_from=src) as tmp:
        write_scene_json(src, tmp, lambda _old: edited)
    kept = restore_implicit(dst, before, implicit)
    return SceneLabelResult(dst, len(cameras), not cameras, ratio, kept)


def find_scene_labels(path: Path | str) -> list[str]:
    """Names of the label plates :func:`add_scene_label` put in a scene (empty when it has none)."""
    doc = json.loads(read_scene_json(Path(path)))
    return [n["name"] for n in _list(doc, "nodes") if n.get("name") == NODE_NAME]


def _list(doc: dict[str, Any], key: str) -> list[dict[str, Any]]:
    value = doc.get(key)
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


class _Builder:
    """Adds plates (mesh, material, texture, image) to a glTF document, geometry in one new buffer."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.data = bytearray()
        self.buffer = len(doc.setdefault("buffers", []))
        self.used = False

    def _plate(self, layout: LabelLayout, corners: np.ndarray[Any, np.dtype[np.float32]]) -> int:
        """A plate mesh with ``layout``'s plate as texture on the quad ``corners`` (BL, BR, TR, TL); its node."""
        png = io.BytesIO()
        render_plate(layout).save(png, "PNG")
        doc = self.doc
        image = _append(doc, "images", {"uri": "data:image/png;base64," + base64.b64encode(png.getvalue()).decode()})
        sampler = _append(doc, "samplers", {"magFilter": 9729, "minFilter": 9729, "wrapS": 33071, "wrapT": 33071})
        texture = _append(doc, "textures", {"source": image, "sampler": sampler})
        material = _append(doc, "materials", {
            "name": NODE_NAME, "doubleSided": True,
            "pbrMetallicRoughness": {"baseColorTexture": {"index": texture}, "metallicFactor": 0, "roughnessFactor": 1},
            "emissiveTexture": {"index": texture}, "emissiveFactor": [1, 1, 1],
            "extensions": {_UNLIT: {}},
        })  # fmt: skip
        uv = np.array([[0, 1], [1, 1], [1, 0], [0, 0]], np.float32)
        position = self._accessor(corners.astype(np.float32), "VEC3", 5126, 34962, bounds=True)
        texcoord = self._accessor(uv, "VEC2", 5126, 34962)
        indices = self._accessor(np.array([0, 1, 2, 0, 2, 3], np.uint16), "SCALAR", 5123, 34963)
        primitive = {"attributes": {"POSITION": position, "TEXCOORD_0": texcoord}, "indices": indices}
        mesh = _append(doc, "meshes", {"name": NODE_NAME, "primitives": [{**primitive, "material": material}]})
        self.used = True
        return _append(doc, "nodes", {"name": NODE_NAME, "mesh": mesh})

    def _accessor(
        self, values: np.ndarray[Any, Any], kind: str, component: int, target: int, *, bounds: bool = False
    ) -> int:
        self.data += b"\0" * (-len(self.data) % 4)
        raw = values.tobytes()
        view = _append(self.doc, "bufferViews", {
            "buffer": self.buffer, "byteOffset": len(self.data), "byteLength": len(raw), "target": target,
        })  # fmt: skip
        self.data += raw
        accessor: dict[str, Any] = {"bufferView": view, "componentType": component, "count": len(values), "type": kind}
        if bounds:
            accessor["min"] = values.min(axis=0).tolist()
            accessor["max"] = values.max(axis=0).tolist()
        return _append(self.doc, "accessors", accessor)

    def camera_plate(self, node_index: int, text: str) -> float:
        """A heads-up plate in front of the camera of node ``node_index``; the smallest glyph's ratio."""
        node = self.doc["nodes"][node_index]
        camera = _list(self.doc, "cameras")[node["camera"]]
        aspect: float | None = None
        if camera.get("type") == "orthographic":
            ortho = camera.get("orthographic") or {}
            half_w, half_h = float(ortho.get("xmag", 1)), float(ortho.get("ymag", 1))
            znear, zfar = float(ortho.get("znear", 0)), float(ortho.get("zfar", 100))
            depth = znear + 0.01 * (zfar - znear)
            aspect = half_w / half_h
        else:
            persp = camera.get("perspective") or {}
            znear = float(persp.get("znear", 0.1))
            depth = znear * 1.05
            half_h = depth * math.tan(float(persp.get("yfov", 0.8)) / 2)
            aspect = float(persp["aspectRatio"]) if persp.get("aspectRatio") else None
            half_w = half_h * (aspect or 1.0)
        short = _VIEW_PIXELS
        if aspect is None or aspect == 1.0:
            width, height = short, short
        else:
            width, height = (round(short * aspect), short) if aspect > 1 else (short, round(short / aspect))
        layout = plan_label((width, height), text=text, placement="bottom-right" if aspect else "bottom")
        x0, y0, x1, y1 = layout.plate

        def at(px: float, py: float) -> list[float]:
            return [(px / width * 2 - 1) * half_w, (1 - py / height * 2) * half_h, -depth]

        corners = np.array([at(x0, y1), at(x1, y1), at(x1, y0), at(x0, y0)])
        node.setdefault("children", []).append(self._plate(layout, corners))
        return layout.smallest_glyph_ratio

    def free_plate(self, text: str) -> None:
        """A plate above the scene's bounding box, facing +Z, as wide as the scene."""
        scenes = _list(self.doc, "scenes")
        if not scenes:
            raise MalformedFileError("the glTF file has no scene to label")
        chosen = self.doc.get("scene", 0)
        scene = scenes[chosen if isinstance(chosen, int) and chosen < len(scenes) else 0]
        low, high = _bounds(self.doc, scene.get("nodes") or [])
        layout = plan_label((4 * _VIEW_PIXELS, _VIEW_PIXELS), text=text, placement="bottom")
        x0, y0, x1, y1 = layout.plate
        width = max(float(high[0] - low[0]), 1e-3)
        height = width * (y1 - y0) / (x1 - x0)
        cx, top, front = float(low[0] + high[0]) / 2, float(high[1]) + 0.05 * width, float(high[2])
        corners = np.array([
            [cx - width / 2, top, front], [cx + width / 2, top, front],
            [cx + width / 2, top + height, front], [cx - width / 2, top + height, front],
        ])  # fmt: skip
        scene.setdefault("nodes", []).append(self._plate(layout, corners))

    def finish(self) -> None:
        """Append the buffer holding every plate's geometry, and declare the unlit extension."""
        if not self.used:
            return
        uri = "data:application/octet-stream;base64," + base64.b64encode(bytes(self.data)).decode()
        self.doc["buffers"].append({"byteLength": len(self.data), "uri": uri})
        used = self.doc.setdefault("extensionsUsed", [])
        if _UNLIT not in used:
            used.append(_UNLIT)


def _append(doc: dict[str, Any], key: str, item: dict[str, Any]) -> int:
    items = doc.setdefault(key, [])
    items.append(item)
    return len(items) - 1


def _matrix(node: dict[str, Any]) -> np.ndarray[Any, np.dtype[np.float64]]:
    """A node's local transform (``matrix``, or translation-rotation-scale)."""
    if isinstance(node.get("matrix"), list) and len(node["matrix"]) == 16:
        return np.array(node["matrix"], float).reshape(4, 4).T  # glTF stores column-major
    x, y, z, w = (float(v) for v in node.get("rotation", [0, 0, 0, 1]))
    rotation = np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])  # fmt: skip
    out = np.eye(4)
    out[:3, :3] = rotation * np.array([float(v) for v in node.get("scale", [1, 1, 1])])
    out[:3, 3] = [float(v) for v in node.get("translation", [0, 0, 0])]
    return out


def _bounds(doc: dict[str, Any], roots: list[int]) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """World-space bounding box of every mesh under ``roots`` (from the POSITION accessors' min/max)."""
    nodes, meshes, accessors = _list(doc, "nodes"), _list(doc, "meshes"), _list(doc, "accessors")
    corners: list[np.ndarray[Any, Any]] = []
    stack = [(i, np.eye(4)) for i in roots if isinstance(i, int) and i < len(nodes)]
    seen: set[int] = set()
    while stack:
        index, parent = stack.pop()
        if index in seen:  # a cycle is invalid glTF; do not loop on it
            continue
        seen.add(index)
        node = nodes[index]
        world = parent @ _matrix(node)
        mesh = node.get("mesh")
        if isinstance(mesh, int) and mesh < len(meshes):
            for primitive in meshes[mesh].get("primitives") or []:
                position = (primitive.get("attributes") or {}).get("POSITION")
                if isinstance(position, int) and position < len(accessors) and "min" in accessors[position]:
                    low, high = accessors[position]["min"], accessors[position]["max"]
                    box = np.array([[a, b, c, 1.0] for a in (low[0], high[0]) for b in (low[1], high[1])
                                    for c in (low[2], high[2])])  # fmt: skip
                    corners.append((world @ box.T).T[:, :3])
        stack.extend((c, world) for c in node.get("children") or [] if isinstance(c, int) and c < len(nodes))
    if not corners:
        return np.zeros(3), np.ones(3)
    every = np.concatenate(corners)
    return every.min(axis=0), every.max(axis=0)
