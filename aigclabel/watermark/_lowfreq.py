"""The image mark's second layer (v2): quantisation of keyed projections of coarse cell means.

Why a second layer: the tile mark (:mod:`.image`) lives at 0.15-0.5 cycles/pixel, where it is least
visible and where its lattice sync works; blur, a 0.25x downscale and JPEG q10 remove exactly that band.
Moving its energy lower trades one attack against another (measured, see the README), so this layer
carries the same payload in a domain those attacks leave alone: the means of a G x G grid of cells laid
over the whole picture (G = 32, 64 or 128, cells of >= 9 pixels; G = 16 on pictures under 288 px, whose
32-cell grid would keep 2 px a cell after a 0.25x downscale), in coordinates normalised to the
picture's width and height. Cell means survive compression (they are JPEG's DC terms averaged over
several blocks), blur and downscaling (they are what a downscale keeps); normalised coordinates make the
grid invariant to any global rescale and aspect change, and the 8 flips/quarter turns of the square grid
are tried by the reader. Crops, rotations and pastes move the grid: the tile layer covers those.

Modulation (spread-transform dither modulation, Chen & Wornell): the cells are split by a keyed
permutation into one group per coded bit; a group's projection is the mean of its cells' values with keyed
signs, and it is moved to the nearest point of a keyed dithered lattice of step :data:`STEP` whose parity is
the bit. The host does not interfere (QIM), unlike an additive spread spectrum at these frequencies where
the picture's own energy is highest; the reader needs no original. The change a group needs is spread over
its cells in proportion to a texture/luminance mask (textured cells take more, flat and clipped ones less:
the reader only sees the projection, so the embedder may shape it freely), rendered as a smooth field
(bilinear between cell centres, weighted towards textured pixels) and corrected until the cell means hit
their targets. On saturated pixels (a channel near 0 or 255) the luminance change is shared between R, G and B by
:class:`ChannelSplit` rather than added to each (which clipping would undo: a saturated green darkens by its G
alone), and measured as written; the projections of such pictures are quantised half-way towards the shift that
clipping the noise of lossy coding gives their saturated areas (:data:`_CLIP_BLEND`). Its energy sits far below
the tile mark's frequencies, so each layer reads the other as host.
The 16-cell grid's groups are one or two cells, so they take a larger step (:data:`_COARSE_STEPS`), are
quantised half-way towards the means of the host's blur (a low-pass attack moves them about half as far)
and model the picture per channel: room before any channel clips, texture as every channel shows it.

Payload: the 64 bits of :mod:`.payload` with a 32-bit keyed MAC over the payload and a keyed perceptual hash
of the whole picture (:func:`host_hash`; the copy attack fails as for the tile layer), rate-1/2 K=7
convolutional code, 204 coded bits. The MAC is twice the tile layer's because this layer has no sync pattern:
it is the decision itself. Presence: a group's soft value is cos(2 pi r) of its offset r from the lattice
(in steps); on an unmarked picture r is uniform and E|cos| = 2/pi, on a marked one |cos| is near 1, so the
mean |cos| over the groups gives a z-score that the reader computes for 40 candidates (32/64/128-cell grids
and the 16-cell grid at its 2 steps, x 8 symmetries) in well under a millisecond; only candidates with
z >= :data:`Z_TRY` are Viterbi-decoded and checked against the MAC with the 176 host hashes within 3 flips
of the 10 least reliable hash bits and the 256 likeliest by soft decision (at most 432: JPEG q10 flipped 5 of
the 7 weakest bits of a bench photo's hash, its 48th by soft decision). False positives: at most 40
candidates x 432 hashes x 2**-32 ~ 4e-6 per picture if every candidate were decoded, and the z gate passes
~1e-3 of unmarked candidates (measured on the bench's null set: see the README).
"""

from __future__ import annotations

import hashlib
import hmac
import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from .._opencv import cv2
from .payload import Payload, conv_encode, hash_candidates, hash_variants, keyed_rng, viterbi_decode

__all__ = [
    "CANDIDATES",
    "GRIDS",
    "STEP",
    "Z_TRY",
    "ChannelSplit",
    "LowFreqRead",
    "embed_lowfreq",
    "host_hash",
    "read_lowfreq",
    "read_lowfreq_area",
]

#: Cells per side of the grids the layer may use; the embedder picks the finest with cells of >= _MIN_CELL px,
#: the 16-cell grid only on pictures under _COARSE_BELOW px (the 32-cell one's cells would be under 9 px).
GRIDS = (16, 32, 64, 128)
_WORK = GRIDS[-1]
_MIN_CELL = 12
_COARSE_BELOW = 288
#: Smallest picture side that is marked (the coarsest grid at 4-pixel cells).
MIN_SIDE = 128
_MAC_BITS = 32
_INFO_BITS = 64 + _MAC_BITS
_CODED = (_INFO_BITS + 6) * 2
#: Lattice step of the projections, grey levels. The 16-cell grid's groups are one or two cells (a 32-cell grid's
#: five), whose means move most under blur and downscaling: it uses _COARSE_STEPS, the first on flat pictures
#: (least SSIM budget, least host change), the second on textured ones; the reader tries both.
STEP = 6.0
_COARSE_STEPS = (10.0, 12.0)
#: On the 16-cell grid the embedder quantises the cell means of a host blended with this share of its blur at
#: _REF_SIGMA px, so a low-pass attack (blur, downscale, strong compression) moves a projection about half as far
#: from its lattice point (the clean picture reads half of that blur's shift the other way).
_REF_BLEND = 0.5
_REF_SIGMA = 1.5
#: Mask range of a cell's share of its group's change (relative to the group's mean).
_MASK_MIN, _MASK_MAX = 0.35, 2.5
#: A cell moves at most this many grey levels (clipped pictures, flat groups).
_CELL_CAP = 12.0
#: SSIM's C2 ((0.03 * 255)^2): a channel's texture counts against it in the per-channel activity (harmonic mean).
_SSIM_C2 = 58.5
#: Cells darker than this (grey level) take proportionally less of the change.
_DARK = 64.0
#: Pictures whose median cell activity (high-pass RMS) is under this are marked on cells twice as large.
_FLAT_ACTIVITY = 2.5
#: Variance a flat cell's change may add to a 7x7 SSIM window (the tile mark takes the rest of ~1.8).
_FLAT_VAR = 0.7
#: Presence z-score (mean |cos| over the groups) from which a candidate is decoded.
Z_TRY = 3.0
#: Inside a cell the change leans towards textured pixels: weight = local high-pass RMS + this floor.
_PIX_FLOOR = 8.0
#: Renderings of the smooth field, each corrected by the cell means the previous one reached.
_ROUNDS = 3
#: Host hash: 32 bits from the 16x16 means; the embedder makes sure the reader finds it by flipping up to 3 of
#: its 10 weakest (176 hashes); the reader also tries the _HASH_SOFT likeliest by soft decision
#: (:func:`.payload.hash_candidates`): JPEG q10 flipped 5 of the 7 weakest bits of a bench photo (48th there).
_HASH_GRID = 16
_HASH_BITS = 32
_HASH_WEAK = 10
_HASH_FLIPS = 3
_HASH_SOFT = 256

FloatArray = npt.NDArray[np.float64]

#: The reader's luminance weights of R, G and B (ITU-R BT.601, as OpenCV's grey conversion).
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
#: A channel's tolerance of a change on a saturated pixel: SSIM's luminance term (taken per channel) sees a shift d
#: of a channel at mean mu as d^2 / (2 mu^2 + C1 + ...), where mu is its distance from 0 (and, for a change that
#: must not be clipped away, from 255). A channel under _CHANNEL_LOW grey levels from that end whose tolerance is
#: under _CHANNEL_DEAD of the pixel's most tolerant channel takes a share of a luminance change in proportion.
_SSIM_C1 = 6.5
_CHANNEL_LOW = 16
_CHANNEL_DEAD = 0.1
_TOLERANCE = (2.0 * np.arange(256, dtype=np.float32) ** 2 + np.float32(_SSIM_C1)).astype(np.float32)
#: Per level l of a pixel's lowest channel, the level its highest must exceed for the lowest to be dead (255: never).
_DEAD_ABOVE = np.array(
    [
        min(255, int(np.searchsorted(_TOLERANCE, t / _CHANNEL_DEAD, side="right")) - 1) if lv < _CHANNEL_LOW else 255
        for lv, t in enumerate(_TOLERANCE)
    ],
    dtype=np.uint8,
)
#: The tile mark's noise is clipped (half-wave rectified: a mean shift and structure) only by a channel within a
#: few grey levels of 0; at 255 rectifying costs less than moving its share to the other channels would.
_NOISE_ROOM = 2.0
#: At most this multiple of a luminance change goes to one channel (red alone may carry it all).
_CHANNEL_GAIN_MAX = 1.0 / 0.299
#: Lossy coding and resampling add noise to every channel, which is clipped on decoding where a channel is near 0 or
#: 255: the mean of a saturated area moves away from the end it touches (a pure green's R and B rise). The noise is
#: mostly the chroma's, so it grows with the pixel's saturation (max - min channel): _CLIP_SIGMA grey levels from
#: _CLIP_SATURATED on, in proportion below (none under _SPLIT_SATURATION). The projections are quantised from the
#: means moved _CLIP_BLEND of the expected shift (the clean picture reads the rest of it the other way), as the
#: 16-cell grid's are towards a blur. On hopper.pcd this layer's z rises from 5.7 to 6.8 under JPEG q20, 7.7 to 8.6
#: under WebP q50, 7.1 to 8.2 under downscale 0.5 + JPEG 70 (mean of 6 payloads), for 14.0 to 13.2 unattacked.
_CLIP_SIGMA = 8.0
_CLIP_SATURATED = 128
_CLIP_BLEND = 0.5
#: Channels farther than this from 0 and 255 are not clipped by that noise (its expected shift is < 0.02).
_CLIP_NEAR = 20
#: Pixels whose channels differ by less than this are left alone: no channel of theirs is dead (one at 0 is so only
#: beside one at 6 or more) and their noise is the luminance's.
_SPLIT_SATURATION = 6
#: The saturation's rows in :func:`_clip_shift_table`.
_CLIP_ROWS = 16


@lru_cache(maxsize=1)
def _clip_shift_table() -> npt.NDArray[np.float32]:
    """E[clip(v + n, 0, 255)] - v, n ~ N(0, sigma^2), per saturation // (_CLIP_SATURATED / _CLIP_ROWS) and level v."""
    sat = np.maximum(np.arange(_CLIP_ROWS + 1, dtype=np.float64), 0.5) / _CLIP_ROWS
    sigma = (_CLIP_SIGMA * sat)[:, None]
    v = np.arange(256, dtype=np.float64)[None, :]

    def rise(room: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        z = room / sigma
        below = np.array([0.5 * math.erfc(t / math.sqrt(2.0)) for t in z.ravel()]).reshape(z.shape)
        return np.asarray(sigma * np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi) - room * below)

    return np.asarray(rise(v) - rise(255.0 - v), dtype=np.float32)


def _clip_shift(rgb: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32] | None:
    """The luminance shift that clipping the noise of lossy coding is expected to make (None: none anywhere), on
    every other pixel of every other row (only its cell means are used)."""
    sub = np.ascontiguousarray(rgb[::2, ::2])
    chans = cv2.split(sub)
    lo = cv2.min(cv2.min(chans[0], chans[1]), chans[2])
    hi = cv2.max(cv2.max(chans[0], chans[1]), chans[2])
    sat = cv2.subtract(hi, lo)
    index = np.flatnonzero((sat >= _SPLIT_SATURATION) & ((lo < _CLIP_NEAR) | (hi > 255 - _CLIP_NEAR)))
    if not len(index):
        return None
    row = np.minimum(sat.reshape(-1)[index], _CLIP_SATURATED).astype(np.intp) * _CLIP_ROWS // _CLIP_SATURATED
    out = np.zeros(sub.shape[:2], dtype=np.float32)
    out.reshape(-1)[index] = _clip_shift_table()[row[:, None], sub.reshape(-1, 3)[index]] @ _LUMA
    return out


@dataclass(frozen=True)
class ChannelSplit:
    """How a luminance change is shared by R, G and B on the pixels where a channel is near 0 or 255.

    Elsewhere each channel takes the change itself (a luminance-only change). On a saturated pixel that is clipped
    away (green on black: darkening moves G alone) or shows (lightening a channel at 0 raises a flat black, which
    SSIM, taken per channel, sees at once): there each channel takes a share by its tolerance (:data:`_TOLERANCE`),
    scaled so that the luminance changes as much as asked. A dark pixel whose channels are all low keeps the even
    split: moving its change to its least dark channel (often blue, 0.114 of the luminance) costs more.
    """

    index: npt.NDArray[np.intp]  # flat indices of the pixels concerned
    value: npt.NDArray[np.float32]  # their R, G, B
    up: npt.NDArray[np.float32]  # per channel, the multiple of a positive smooth luminance change it takes
    down: npt.NDArray[np.float32]  # ... of a negative one
    noise: npt.NDArray[np.float32]  # ... of the tile mark's (either sign)

    @staticmethod
    def of(rgb: npt.NDArray[np.uint8]) -> ChannelSplit:
        """The split of an H x W x 3 picture."""
        # A channel can be dead only where the darkest one (or, lightening, the one nearest either end) is under
        # _CHANNEL_LOW and the pixel's farthest is above _DEAD_ABOVE of that level: a screen on whole planes.
        chans = cv2.split(rgb)
        folded = [cv2.min(c, cv2.bitwise_not(c)) for c in chans]
        dead = []
        for planes in (chans, folded):
            lo = cv2.min(cv2.min(planes[0], planes[1]), planes[2])
            hi = cv2.max(cv2.max(planes[0], planes[1]), planes[2])
            dead.append(cv2.compare(hi, cv2.LUT(lo, _DEAD_ABOVE), cv2.CMP_GT))
        index = np.flatnonzero(cv2.bitwise_or(dead[0], dead[1]))
        value = rgb.reshape(-1, 3)[index]
        out = []
        for level in (np.minimum(value, 255 - value), value, value):
            w = _TOLERANCE[level]
            most = np.maximum(np.maximum(w[:, 0], w[:, 1]), w[:, 2])
            share = np.minimum(w / (np.float32(_CHANNEL_DEAD) * most)[:, None], np.float32(1.0))
            share[level >= _CHANNEL_LOW] = 1.0
            out.append(share)
        np.maximum(out[2], np.minimum(value / np.float32(_NOISE_ROOM), np.float32(1.0)), out=out[2])
        # The screen lets through a few pixels with no dead channel (the fold picks other channels): they keep the
        # even split.
        low = np.minimum(out[0], out[1]).min(axis=1) < 1.0
        keep = np.flatnonzero(low)
        out = [share[keep] for share in out]
        for share in out:
            np.maximum(share, np.float32(1e-3), out=share)
            share /= (share @ _LUMA)[:, None]
            np.minimum(share, np.float32(_CHANNEL_GAIN_MAX), out=share)
        return ChannelSplit(index[keep], value[keep].astype(np.float32), *out)

    def shares(self, delta: npt.NDArray[np.float32], noise: bool = False) -> npt.NDArray[np.float32]:
        """Per channel, the rounded change of each concerned pixel for the luminance change ``delta`` (H x W)."""
        d = delta.reshape(-1)[self.index][:, None]
        return np.rint(d * (self.noise if noise else np.where(d > 0.0, self.up, self.down)))

    def written(
        self, delta: npt.NDArray[np.float32], lo: npt.NDArray[np.float32], hi: npt.NDArray[np.float32]
    ) -> npt.NDArray[np.float32]:
        """The luminance change the smooth change ``delta`` makes once rounded, shared and clipped (``lo``/``hi``:
        the luminance's room, for the pixels this split leaves alone)."""
        out = np.rint(delta)
        cv2.max(out, lo, dst=out)
        cv2.min(out, hi, dst=out)
        if len(self.index):
            got = np.clip(self.shares(delta), -self.value, 255.0 - self.value) @ _LUMA
            out.reshape(-1)[self.index] = got
        return out

    def apply(
        self, img: npt.NDArray[np.uint8], mark: npt.NDArray[np.float32], second: npt.NDArray[np.float32] | None
    ) -> None:
        """Write the concerned pixels of ``img`` (an H x W x 3 or 4 copy of the picture this split was taken on):
        their values plus the tile mark's change ``mark`` and the smooth change ``second``, each shared out."""
        if len(self.index):
            got = self.value + self.shares(mark, noise=True)
            if second is not None:
                got += self.shares(second)
            img.reshape(-1, img.shape[-1])[self.index, :3] = np.clip(got, 0.0, 255.0).astype(np.uint8)


@dataclass(frozen=True)
class _Plan:
    group: npt.NDArray[np.int64]  # group (= coded bit) of each cell, row-major
    sign: FloatArray  # keyed +-1 per cell
    count: FloatArray  # cells per group
    dither: FloatArray  # lattice offset per group, in steps


@lru_cache(maxsize=16)
def _plan(key: bytes, g: int) -> _Plan:
    rng = keyed_rng(key, f"image-lowfreq-v2-{g}")
    n = g * g
    group = np.empty(n, dtype=np.int64)
    group[rng.permutation(n)] = np.arange(n) % _CODED
    sign = rng.choice(np.array([-1.0, 1.0]), size=n)
    return _Plan(group, sign, np.bincount(group, minlength=_CODED).astype(np.float64), rng.random(_CODED))


def _steps(g: int) -> tuple[float, ...]:
    return _COARSE_STEPS if g == GRIDS[0] else (STEP,)


#: Candidates the reader scores: every grid at each of its steps, in 8 flips/quarter turns.
CANDIDATES = 8 * sum(len(_steps(g)) for g in GRIDS)


def _mac(key: bytes, data: bytes, bound: bytes) -> bytes:
    return hmac.new(key, b"aigclabel-wm-lowfreq-v2" + data + bound, hashlib.sha256).digest()[: _MAC_BITS // 8]


def _coded(payload: Payload, key: bytes, bound: bytes) -> npt.NDArray[np.uint8]:
    data = payload.to_bytes()
    return conv_encode(np.unpackbits(np.frombuffer(data + _mac(key, data, bound), dtype=np.uint8)))


def _cell_means(a: npt.NDArray[np.float32], g: int) -> FloatArray:
    """Exact area means of ``a`` over a g x g grid of cells with fractional edges (i * size / g).

    Bands of rows are summed (whole rows plus the covered fractions of the edge rows), then bands of the
    result's columns: one read of ``a``, where an integral image writes and reads 8 bytes more a pixel.
    """
    h, w = a.shape
    i, frac = _band_edges(h, g)
    # Row bands: one vectorised sum per band (a strided reduceat over rows is ~10x slower).
    rows = np.stack([a[i[k] : i[k + 1]].sum(axis=0) for k in range(g)]).astype(np.float64)
    part = a[i].astype(np.float64) * frac[:, None]
    rows += part[1:] - part[:-1]
    i, frac = _band_edges(w, g)
    # Column bands of the small g x w result: reduceat along its contiguous rows (its last band runs to
    # the end, which the last edge's fraction counts again; a band of no whole column sums nothing).
    cols = np.add.reduceat(rows, i[:-1], axis=1)
    cols[:, -1] -= rows[:, -1]
    cols[:, np.diff(i) == 0] = 0.0
    part = rows[:, i] * frac
    cols += part[:, 1:] - part[:, :-1]
    return np.asarray(cols * (g * g / (h * w)))


def _band_edges(n: int, g: int) -> tuple[npt.NDArray[np.int64], FloatArray]:
    """First pixel of each of g equal bands over n pixels, and the fraction of it that lies in the band before."""
    at = np.arange(g + 1, dtype=np.float64) * (n / g)
    # The last edge takes all of the last pixel.
    i = np.minimum(at.astype(np.int64), n - 1)
    return i, np.asarray(at - i, dtype=np.float64)


def work_grid(y: npt.NDArray[np.float32]) -> FloatArray:
    """The luminance's cell means on a _WORK x _WORK grid in normalised coordinates (every grid derives from it)."""
    return _cell_means(y, _WORK)


def _coarsen(m: FloatArray, g: int) -> FloatArray:
    f = m.shape[0] // g
    return np.asarray(m.reshape(g, f, g, f).mean(axis=(1, 3)))


@lru_cache(maxsize=8)
def _hash_projection(key: bytes) -> FloatArray:
    rng = keyed_rng(key, "image-lowfreq-host-hash-v2")
    return np.asarray(rng.standard_normal((_HASH_BITS, len(_HASH_TERMS[0]))) * _HASH_WEIGHT, dtype=np.float64)


# The DCT terms of the 16x16 means the hash projects: u + v <= 5 but not DC (coarse layout only: the mark's
# own cell pattern and compression noise sit in the higher terms), weighted by u + v against the 1/f spectrum.
_UV = np.add.outer(np.arange(8), np.arange(8))
_HASH_TERMS = np.nonzero((_UV <= 5) & (_UV > 0))
_HASH_WEIGHT = _UV[_HASH_TERMS].astype(np.float64)


def _hash_values(m: FloatArray, key: bytes) -> FloatArray:
    small = _coarsen(m, _HASH_GRID).astype(np.float32)
    coef = cv2.dct(np.ascontiguousarray(small))[_HASH_TERMS].astype(np.float64)
    return np.asarray(_hash_projection(key) @ coef)


def host_hash(m: FloatArray, key: bytes) -> bytes:
    """Keyed 32-bit SimHash of the whole picture's coarse layout (low DCT terms of its 16x16 means)."""
    return np.packbits((_hash_values(m, key) > 0).astype(np.uint8)).tobytes()


def _hash_candidates(m: FloatArray, key: bytes) -> list[bytes]:
    return hash_variants(_hash_values(m, key), _HASH_WEAK, _HASH_FLIPS)


def _read_candidates(m: FloatArray, key: bytes) -> list[bytes]:
    """The hashes the reader checks the MAC against: the embedder's 176, then the soft-decision likeliest
    (at most 432 in all, each a 2**-32 chance for a wrong MAC)."""
    values = _hash_values(m, key)
    out = hash_variants(values, _HASH_WEAK, _HASH_FLIPS)
    seen = set(out)
    return out + [h for h in hash_candidates(values, _HASH_SOFT) if h not in seen]


def _projections(cells: FloatArray, plan: _Plan) -> FloatArray:
    return np.bincount(plan.group, weights=cells.ravel() * plan.sign, minlength=_CODED) / plan.count


def _projections_of(stack: FloatArray, plan: _Plan) -> FloatArray:
    """:func:`_projections` of each grid of cells in ``stack`` (one bincount: the same sums in the same order)."""
    k = len(stack)
    groups = (plan.group[None, :] + _CODED * np.arange(k)[:, None]).ravel()
    sums = np.bincount(groups, weights=(stack.reshape(k, -1) * plan.sign).ravel(), minlength=k * _CODED)
    return np.asarray(sums.reshape(k, _CODED) / plan.count)


def grid_for(h: int, w: int, min_cell: int = _MIN_CELL) -> int | None:
    """The finest grid whose cells are ``min_cell`` pixels or more on an ``h`` x ``w`` picture (None: too small)."""
    if min(h, w) < MIN_SIDE:
        return None
    fit = [g for g in GRIDS[1:] if min(h, w) / g >= min_cell]
    return fit[-1] if fit else GRIDS[0] if min(h, w) < _COARSE_BELOW else GRIDS[1]


def embed_lowfreq(
    y: npt.NDArray[np.float32],
    payload: Payload,
    key: bytes,
    rgb: npt.NDArray[np.uint8] | None = None,
    split: ChannelSplit | None = None,
) -> npt.NDArray[np.float32] | None:
    """The luminance change that carries ``payload`` in this layer (same shape as ``y``), or None if too small.

    ``rgb``: the picture's H x W x 3 channels, when it has them (read on the 16-cell grid, see :func:`_coarse`);
    ``split``: how the caller will share the change between them (the change is measured as that writes it).
    The MAC is bound to the host hash of the *marked* picture when the change itself moves that hash: the
    embedder re-marks with the hash it produced until the reader's candidates contain it (2-3 rounds at most).
    """
    h, w = y.shape
    hp2 = np.asarray(cv2.GaussianBlur(y, (0, 0), _REF_SIGMA), dtype=np.float32)
    m = work_grid(y)
    coarse_ref = work_grid(hp2) if min(h, w) < _COARSE_BELOW else None
    np.subtract(y, hp2, out=hp2)
    np.multiply(hp2, hp2, out=hp2)
    # Flat pictures (illustrations, icons, renders) get cells twice as large: a cell-to-cell step of d
    # grey levels adds ~0.26 d^2 (8 / cell)^2 of variance to a flat 7x7 SSIM window.
    # Every grid's cell means are exact averages of the work grid's.
    hp2_work = _cell_means(hp2, _WORK)
    flat = float(np.median(np.sqrt(np.maximum(_coarsen(hp2_work, 32), 0.0))))
    g = grid_for(h, w, _MIN_CELL if flat >= _FLAT_ACTIVITY else 2 * _MIN_CELL)
    if g is None:
        return None
    if g == GRIDS[0] and coarse_ref is not None:
        host = _coarse(y, m, coarse_ref, hp2, rgb, g, split)
        step = _COARSE_STEPS[0] if flat < _FLAT_ACTIVITY else _COARSE_STEPS[1]
    else:
        shift = None if rgb is None else _clip_shift(rgb)
        ref = m if shift is None else m + _CLIP_BLEND * work_grid(shift)
        host = _Host(y, ref, hp2_work, _pixel_scale(hp2, g), g, -y, 255.0 - y, None, split)
        step = STEP
    bound = host_hash(m, key)
    best: npt.NDArray[np.float32] | None = None
    for _ in range(3):
        delta, written = _embed_bits(host, _coded(payload, key, bound).astype(np.float64), _plan(key, g), step)
        best = delta if best is None else best
        got = _hash_candidates(m + written, key)
        if bound in got:
            return delta
        bound = got[0]
    return best


@dataclass(frozen=True)
class _Host:
    """What every round of the embedder reads from the picture (computed once)."""

    y: npt.NDArray[np.float32]
    y_work: FloatArray  # the work-grid means the projections are quantised from
    hp2_work: FloatArray
    scale: npt.NDArray[np.float32]  # pixel weights of the smooth field, each cell's mean 1
    g: int
    lo: npt.NDArray[np.float32]  # the change a pixel can take before it (or one of its channels) clips
    hi: npt.NDArray[np.float32]
    room: tuple[FloatArray, FloatArray] | None  # 16-cell grid: per cell, the mean room up and down (grey levels)
    split: ChannelSplit | None  # how the change is shared between the channels (None: added to each)


def _coarse(
    y: npt.NDArray[np.float32],
    m: FloatArray,
    m_blur: FloatArray,
    hp2: npt.NDArray[np.float32],
    rgb: npt.NDArray[np.uint8] | None,
    g: int,
    split: ChannelSplit | None,
) -> _Host:
    """The host as the 16-cell grid (pictures under _COARSE_BELOW px) reads it.

    Its projections are quantised from the means of the host blended with its blur (:data:`_REF_BLEND`). The
    change is added to R, G and B alike (but on the pixels :class:`ChannelSplit` shares out), so a pixel has room
    up to 255 minus its largest channel and down to its smallest (a saturated colour has little either way), and
    its texture is what every channel shows: SSIM is taken per channel, and an edge between white and a light
    blue is strong in luminance but nearly flat in the blue channel. A channel's tolerance grows with its texture
    energy + C2, the channels' mean SSIM with the harmonic mean of those.
    """
    if rgb is None:
        lo, hi = -y, 255.0 - y
    else:
        inv = np.zeros_like(hp2)
        for c in range(3):
            ch = rgb[..., c].astype(np.float32)
            hc = np.asarray(cv2.GaussianBlur(ch, (0, 0), _REF_SIGMA), dtype=np.float32)
            np.subtract(ch, hc, out=hc)
            np.multiply(hc, hc, out=hc)
            hc += np.float32(_SSIM_C2)
            np.divide(np.float32(1.0), hc, out=hc)
            inv += hc
        np.divide(np.float32(3.0), inv, out=inv)
        inv -= np.float32(_SSIM_C2)
        hp2 = np.minimum(hp2, inv)
        lo = -cv2.min(cv2.min(rgb[..., 0], rgb[..., 1]), rgb[..., 2]).astype(np.float32)
        hi = 255.0 - cv2.max(cv2.max(rgb[..., 0], rgb[..., 1]), rgb[..., 2]).astype(np.float32)
    ref = (1.0 - _REF_BLEND) * m + _REF_BLEND * m_blur
    room = (_cell_means(hi, g), -_cell_means(lo, g))
    return _Host(y, ref, _cell_means(hp2, _WORK), _pixel_scale(hp2, g), g, lo, hi, room, split)


def _pixel_scale(hp2: npt.NDArray[np.float32], g: int) -> npt.NDArray[np.float32]:
    """Pixel weighting inside a cell: towards textured pixels, normalised so each cell's mean is kept."""
    h, w = hp2.shape
    pix = np.asarray(cv2.blur(hp2, (5, 5)), dtype=np.float32)
    np.maximum(pix, 0.0, out=pix)
    np.sqrt(pix, out=pix)
    pix += np.float32(_PIX_FLOOR)
    inv = (1.0 / _cell_means(pix, g)).astype(np.float32)
    scale = np.asarray(cv2.resize(inv, (w, h), interpolation=cv2.INTER_LINEAR), dtype=np.float32)
    scale *= pix
    return scale


def _embed_bits(host: _Host, bits: FloatArray, plan: _Plan, step: float) -> tuple[npt.NDArray[np.float32], FloatArray]:
    """The change carrying ``bits``, and the work-grid means of that change as written (rounded, clipped)."""
    y, g = host.y, host.g
    h, w = y.shape
    cells = _coarsen(host.y_work, g)
    p = _projections(cells, plan)
    # Nearest lattice point of the bit's coset: (k + dither + bit/2) * step.
    off = (p / step - plan.dither - bits / 2.0) % 1.0
    e = np.where(off < 0.5, -off, 1.0 - off) * step
    # Texture/luminance mask per cell: local activity (high-pass energy) relative to the picture's median.
    act = np.sqrt(np.maximum(_coarsen(host.hp2_work, g), 0.0))
    mask = np.clip((act + 0.5) / float(np.median(act) + 0.5), _MASK_MIN, _MASK_MAX).ravel()
    # SSIM's luminance term sees a mean shift d at mean level mu as 1 - d^2 / (2 mu^2 + C1): dark cells take
    # proportionally less; bright ones only avoid clipping.
    if host.room is None:
        wt = mask * np.clip(np.minimum(cells / _DARK, (255.0 - cells) / 24.0), 0.15, 1.0).ravel()
    else:
        # Per channel: cells whose darkest channel is dark take less. A cell near white can only darken, one
        # near black only lighten: each cell's share follows its room in the direction its sign asks for.
        up, down = host.room[0].ravel(), host.room[1].ravel()
        rises = e[plan.group] * plan.sign > 0.0
        wt = mask * np.clip(down / _DARK, 0.15, 1.0) * np.clip(np.where(rises, up, down) / 24.0, 0.02, 1.0)
    wsum = np.bincount(plan.group, weights=wt, minlength=_CODED)
    target = (e[plan.group] * plan.sign * wt * plan.count[plan.group] / wsum[plan.group]).reshape(g, g)
    # Absolute cap per cell: what keeps a flat window's SSIM (with the tile mark's share) near 0.97, more
    # with the cell's texture (SSIM tolerates noise in proportion to the local variance) and size.
    size = min(h, w) / g
    cap = np.sqrt((_FLAT_VAR + 0.062 * act * act) / 0.26) * (size / 8.0)
    cap = np.minimum(np.minimum(cap, _CELL_CAP), 1.5 + cells * (_CELL_CAP / 255.0))
    target = np.clip(target, -cap, cap)
    d = target.copy()
    # Rendered and measured three times: the last measurement (on the work grid) is the hash check's.
    for k in range(_ROUNDS):
        delta = np.asarray(cv2.resize(d.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR), dtype=np.float32)
        delta *= host.scale
        # Measured as written (rounded to whole grey levels): a smooth field rounds coherently over whole areas.
        if host.split is None:
            written = np.rint(delta)
            cv2.max(written, host.lo, dst=written)
            cv2.min(written, host.hi, dst=written)
        else:
            written = host.split.written(delta, host.lo, host.hi)
        if k == _ROUNDS - 1:
            break
        d += target - _cell_means(written, g)
    return delta, _cell_means(written, _WORK)


@dataclass(frozen=True)
class LowFreqRead:
    """What the layer's reader found: the best candidate's z, and its payload when the MAC verified."""

    z: float
    payload: Payload | None
    grid: int
    symmetry: int
    decoded: int  # candidates Viterbi-decoded


#: The tile reader's index (``image._DIHEDRAL``) of each of :func:`_symmetries`, so both layers report a
#: turned or mirrored picture in the same words (``image.ORIENTATIONS``).
LOWFREQ_TO_TILE_SYMMETRY = (0, 3, 2, 1, 6, 5, 7, 4)


def _symmetries(m: FloatArray) -> list[FloatArray]:
    out = []
    for t in (m, m.T):
        for k in range(4):
            out.append(np.rot90(t, k))
    return out


def _scores(cells: FloatArray, g: int, key: bytes) -> list[tuple[FloatArray, FloatArray]]:
    """Per step of grid ``g``: the soft values of the coded bits read from ``cells`` (g x g means) in each of the
    8 flips/quarter turns, and their presence z-scores (mean |soft| against its value where there is no layer)."""
    noise = np.sqrt(0.5 - 4.0 / np.pi**2) / np.sqrt(float(_CODED))  # sd of the mean |soft| where there is no layer
    plan = _plan(key, g)
    # Each symmetry maps whole cells to cells.
    p = _projections_of(np.stack(_symmetries(cells)), plan)
    softs = [np.cos(2.0 * np.pi * (p / step - plan.dither)) for step in _steps(g)]
    return [(soft, (np.abs(soft).mean(axis=1) - 2.0 / np.pi) / noise) for soft in softs]


def read_lowfreq(y: npt.NDArray[np.float32], key: bytes, m: FloatArray | None = None) -> LowFreqRead:
    """Look for this layer in a luminance plane (``m``: its :func:`work_grid`, if already computed)."""
    if m is None:
        m = work_grid(y)
    cands: list[tuple[float, int, int, FloatArray]] = []
    for gi, g in enumerate(GRIDS):
        # Coarsened once, then flipped/turned: the grids nest.
        scored = _scores(m if g == _WORK else _coarsen(m, g), g, key)
        cands += [(float(zs[si]), gi, si, soft[si]) for si in range(len(scored[0][1])) for soft, zs in scored]
    cands.sort(key=lambda c: -c[0])
    best = cands[0]
    decoded = 0
    for z, gi, si, soft in cands:
        if z < Z_TRY:
            break
        decoded += 1
        raw = np.packbits(viterbi_decode(soft, _INFO_BITS)).tobytes()
        data, mac = raw[:8], raw[8:]
        for bound in _read_candidates(_symmetries(m)[si], key):
            if hmac.compare_digest(mac, _mac(key, data, bound)):
                return LowFreqRead(z, Payload.from_bytes(data), GRIDS[gi], si, decoded)
    return LowFreqRead(best[0], None, GRIDS[best[1]], best[2], decoded)


def read_lowfreq_area(
    y: npt.NDArray[np.float32], boxes: list[tuple[int, int, int, int]], key: bytes, scale: float, z_min: float
) -> tuple[float, LowFreqRead | None, tuple[int, int, int, int] | None]:
    """This layer read from a marked picture pasted into ``y`` at about ``scale``, located only to a few candidate
    areas ``boxes`` (y0, y1, x0, x1 in pixels of ``y``): the best area's presence z, and its read and the area
    itself when that z reaches ``z_min``.

    The layer's cells are fractions of the marked picture's width and height, so the area must be the pasted
    picture to the pixel: a side one pixel off moves a half-size paste's cells by an eighth and its projections by
    the host's texture, which on a photo leaves no trace of the layer (z ~13 on the exact area, ~2-4 a pixel off).
    Each box is scored alone: the best presence z over the grids the embedder may have chosen for a picture of the
    box's size over ``scale``, in 8 symmetries (the cell means are exact area means, :func:`_cell_means`, read from
    the column sums of the boxes' surroundings: each pair of top and bottom sides is summed into its row bands
    once). Only the best box is read, when its z reaches ``z_min``: :func:`read_lowfreq` of its crop, at most 40
    decodes checked against 432 host hashes, each a 2**-32 chance.
    """
    if not boxes:
        return -np.inf, None, None
    top, left = min(b[0] for b in boxes), min(b[2] for b in boxes)
    bottom, right = max(b[1] for b in boxes), max(b[3] for b in boxes)
    columns = np.zeros((bottom - top + 1, right - left))  # columns[i]: the sum of the rows before i, per column
    np.cumsum(y[top:bottom, left:right], axis=0, dtype=np.float64, out=columns[1:])
    bands: dict[tuple[int, int, int], FloatArray] = {}
    best, at = -np.inf, boxes[0]
    for box in boxes:
        y0, y1, x0, x1 = box
        h, w = y1 - y0, x1 - x0
        # The embedder picks the grid from the picture's size and flatness (cells of 12 px or 24 px at least).
        sizes = [(round(h / scale) + d, round(w / scale) + d) for d in (-2, 2)]
        grids = {grid_for(*size, cell) for size in sizes for cell in (_MIN_CELL, 2 * _MIN_CELL)}
        for g in sorted(g for g in grids if g is not None):
            if (y0, y1, g) not in bands:  # the g row bands' sums, cumulated along the row
                rows = np.diff(_at_edges(columns, y0 - top, h, g, 0), axis=0)
                bands[y0, y1, g] = np.concatenate([np.zeros((g, 1)), np.cumsum(rows, axis=1)], axis=1)
            cells = np.diff(_at_edges(bands[y0, y1, g], x0 - left, w, g, 1), axis=1) * (g * g / (h * w))
            z = max(float(zs.max()) for _, zs in _scores(cells, g, key))
            if z > best:
                best, at = z, box
    if best < z_min:
        return best, None, None
    y0, y1, x0, x1 = at
    return best, read_lowfreq(np.ascontiguousarray(y[y0:y1, x0:x1], dtype=np.float32), key), at


def _at_edges(cum: FloatArray, start: int, size: int, g: int, axis: int) -> FloatArray:
    """Cumulative sums ``cum`` along ``axis`` (index i: the sum before pixel i) at the g + 1 edges of g equal bands
    over ``size`` pixels from ``start`` (:func:`_band_edges`): linear between whole pixels, which is exact for
    fractional edges."""
    i, t = _band_edges(size, g)
    i = i + start
    if axis == 0:
        return np.asarray(cum[i] * (1.0 - t)[:, None] + cum[i + 1] * t[:, None])
    return np.asarray(cum[:, i] * (1.0 - t) + cum[:, i + 1] * t)
