"""Invisible image watermark: a keyed, tile-periodic spread-spectrum pattern with self-synchronisation.

Why this design (and not a fixed-grid DCT mark): platforms rescale, crop, rotate slightly and
re-encode. The mark is one keyed 128x128-pixel tile repeated over the whole image, so

* any crop still contains whole periods (crop robustness comes for free);
* the periodicity shows up as a lattice of peaks in the autocorrelation of the whitened image, whose
  two basis vectors give the scale and rotation the image went through (the "self-reference");
* after undoing that affine map, all tiles are folded (summed) into one, which multiplies the
  signal-to-noise ratio by the number of tiles; a keyed *sync* sub-pattern in a quarter of the tile's
  cells then gives the unknown cyclic translation by FFT cross-correlation and the detection score;
* the other cells carry the 172 convolutionally coded bits of :mod:`.payload`, each spread over ~18
  keyed cells per tile with keyed signs.

Flips, quarter turns and aspect changes (what platforms and editors apply): a square lattice looks the
same after any of the 8 symmetries of the square, so the autocorrelation cannot see them; the reader
instead correlates the sync template with all 8 flips/rotations of the folded tile (8 small FFTs) and
reads the payload through the best. An aspect change makes the two lattice periods differ: besides the
rotation-and-scale candidates, the lattice search scores each axis alone and pairs it with the best
near-perpendicular second axis (two pairs tried: see :func:`_estimate_lattice`). Candidates the
autocorrelation hardly supports are not read (:data:`_MIN_LATTICE_STRENGTH`; the prior scales always are):
that skips ~40 % of the reads that reject an unmarked picture, with no bench detection lost. On large pictures
(~1 MP and more) each remaining candidate is first read through a quarter of its fold window and read in full
only when that sync peak is not weak (:data:`_SCREEN_Z`): most unmarked candidates then cost a quarter of a
warp. The exact half-size prior is screened over the whole picture instead, folded at its 64-pixel period in
image space (:func:`_half_fold`, no warp), so that a picture pasted at half size off the centre is not missed.
The host hash is then recomputed through the full corrected geometry (lattice basis and symmetry), so a
flipped or rotated marked picture still verifies, and the copy attack is checked in every orientation.

The pattern is added to luminance only (the same delta to R, G and B; on saturated pixels, where a channel at 0
would clip it, shared out by :class:`._lowfreq.ChannelSplit`), scaled by a local-activity mask so textured regions
carry more of it, and the global strength is set to hit a target PSNR; each
pixel's amplitude is capped where the local SSIM would drop below ~0.97 (:func:`_strength`), so flat
illustrations, icons and text screenshots stay clean (they end above the target PSNR).

A second, low-frequency layer (:mod:`._lowfreq`, marks made since issue 18) carries the same payload in the
means of coarse cells of the whole picture, which JPEG q10, WebP q50, blur and a 0.25x downscale leave
alone; :func:`embed_image` adds it first and :func:`detect_image` reads it when this mark does not verify.

Content binding (against the copy attack): a tile repeated over the picture can be estimated by anyone
from one marked image (average the noise residual over the tile positions) and added to other pictures.
So the 16-bit MAC of an image mark is computed over the payload *and* a keyed 32-bit perceptual hash of
the host (:func:`_host_hash`: SimHash of the low DCT frequencies of the 16x16 area average of the central
192x192 tile-space pixels), which is not transmitted. The detector recomputes the hash through the
geometry it found and accepts the payload when the MAC verifies for it or for one of its 36 likeliest
variants: soft decision, the sets of flipped bits in increasing order of the sum of their projections'
distances from zero (:func:`.payload.hash_candidates`). On the bench's attacks the true hash comes at
most 19th in that order, beside brightness clipping's 3 flips (12th), which the earlier rule (up to 2
flips among the 8 weakest bits, also 37 candidates) missed; the budget is the same 37 * 2**-16.

Security analysis (key unknown to the attacker; figures from ``bench/watermark/run.py``):

* estimation: the tile is still estimable from one image (it must be periodic for the lattice sync);
  averaging many outputs of one producer also learns the sync and the payload cells, which are the same
  in all of them, but not a MAC valid for any other picture: that needs the key.
* copy: the copied MAC was computed for the donor's hash; on other content it verifies only if that
  content's hash lies within the tolerated flips of the donor's (near-duplicates of the donor, which
  legitimately carry its mark) or by chance, at most 37 * 2**-16 ~ 5.6e-4 per forged image. Measured:
  0 of 100 unmarked images verify with a tile averaged from a 2 MP marked photo (the same attack on an
  unbound mark verifies on 94 of 100). Such images are reported ``present`` with ``content_ok=False``:
  a mark is there but it proves nothing about this picture.
* removal: subtracting the own-image estimate at 36-42 dB erases the mark on about half to two thirds
  of the bench photos. Binding does not help there; only a non-estimable (non-periodic, content-adaptive)
  carrier would, at the cost of the self-synchronisation.
* the marked picture inside a larger one (pasted into a collage or a post, letterboxed, padded): when the best
  read has z >= :data:`_SCAN_FROM` (4.4) but no hash around the image centre verifies, one area search
  (:func:`_read_marked_area`) runs from the strongest of three starts: that read when its z reaches :data:`Z_AREA`
  (5.3); else the rectangle of tiles where its fold's sync correlates, scanned tile by tile at the fold's 8 best
  sync peaks (:func:`_local_read`), when it reaches :data:`_SCAN_Z` (7.0); and, where the whole picture's z at the
  exact half-size prior reaches :data:`_WINDOW_FROM` (4.0), the best of 25 windows of half the picture's size
  folded at that prior (:func:`_half_windows`), when it reaches :data:`_WINDOW_Z` (6.5). A picture pasted at half
  size into one of its own size is a quarter of the whole fold, which reads it at z ~4-7 depending on where it
  lies (the surround's own peaks reach 6); a window over it reads it at 9-22. The area search locates the marked
  area (:func:`_mark_area`: the re-encoded tile correlated with the picture, row and column sums, a step fit),
  folds its tiles alone and reads them again (the surround only dilutes the fold), up to :data:`_AREA_ROUNDS`
  times as the better bits locate it better. The step fit is a few pixels off, more where the picture carries
  little mark (flat borders shrink it, a busy surround stretches it), so three centres are tried: the fitted
  area's, the same with its first corner on the tile lattice (:func:`_snap_corner`; the tile starts at the marked
  picture's first pixel), and the area between the paste's straight luminance edges (:func:`_edge_box`: its far
  sides at the strongest jump along all its rows or columns within half a tile, or the picture's border; its first
  corner at a lattice point), whose own fold is read too (the fitted area's fold may decode wrong bits where it
  takes in surround). Each fold is checked against the hashes around its own centres: the 37 usual candidates at
  each centre, and on a grid around it (+-8 tile pixels in steps of 2 at the fitted centre, +-6 in steps of 3 at
  the others) the hash and its likeliest variant (a point next to the true centre often differs in one weak bit),
  taken in turn over the centres, each (fold, hash) pair once, at most :data:`_AREA_HASHES` = 120 (the fitted
  centre's grid and the snapped one were 178 hashes before, about 106 of them distinct; no bench paste needs more
  than 80 now). Only a verified MAC counts (the area was chosen where the sync correlates, which inflates the
  refolded sync peak on unmarked pictures, but not the data cells, disjoint from the sync cells, that the MAC is
  read from). Cost to the false-positive rate, with one area search per picture at most: of
  ``bench/watermark/run.py``'s 1,000 unmarked pictures 2.5 % reach z >= 5.3; 83 % are scanned (best rectangle z
  mean 4.9, sd 0.3, max 6.9: none reaches 7.0; marked pastes 8.3-30) and 79 % searched by windows (86 % ungated;
  best window z mean 4.57, sd 0.28, max 5.68: none reaches 6.5), so (0.025 + 1e-3 + 1e-3) * 120 * 2**-16 ~ 4.9e-5
  per unmarked picture (6.8e-5 before). A tile copied onto part of another picture is hashed on that part's
  content: at most 120 * 2**-16 ~ 1.8e-3 per forged image beside the 37 at the image centre (2.7e-3 before; of 200
  unmarked pictures with a tile copied onto a random part at 40 dB one verified, a MAC collision at the 46th of
  106 hashes, as such a budget lets happen). Measured on the 512 px and larger bench photos pasted at half size:
  23 of 25 at the bench's 5 positions (13 before this search; the two misses saved as JPEG q85 after the paste)
  and 45 of 45 at random positions (9 of 15 more saved as JPEG q85).
* the same paste re-encoded (what a platform does to every upload): at half size the tile's 2-pixel cells are single
  pixels, which JPEG q85 mostly removes, so the tile search above often finds the paste (its best half-size window
  reads z 5-7) without a MAC to verify. The low-frequency layer survives the re-encode, but it is read in fractions
  of the marked picture's width and height, so only from the pasted picture's own area, to the pixel (z ~13 on the
  exact area, 2-4 a pixel off). When neither layer verified and the best window reached :data:`_PASTE_FROM` (5.0),
  :func:`_paste_boxes` takes the candidate areas between the paste's straight edges (the first side on the tile
  lattice the window's sync peak gives), :func:`._lowfreq.read_lowfreq_area` scores each by that layer's presence
  z and reads the best when it reaches :data:`_PASTE_Z` (3.0, the layer's own decode gate): one more read of that
  layer, whose 32-bit MAC bounds it by 40 decodes x 432 hashes x 2**-32 ~ 4.0e-6, run on 2.1 % of unmarked
  pictures, so <= 8.5e-8 per unmarked picture whatever the z gate (best area z max 2.6 over the 21 searched of
  1,000, 3.9 over 1,000 searched regardless of their window: none was read; marked pastes 7-15). No tile-mark hash
  is added: the copy attack's 1.8e-3 per forged part and the 4.9e-5 above are unchanged; copying the second layer
  onto part of a picture needs a 32-bit MAC collision for that part (<= 4.0e-6). The search costs ~8 ms at 512 px,
  ~12 ms at 2 MP where it runs. A photo (>= 512 px) pasted at half size into another at a random position: 21 -> 29
  of 30 verify after JPEG q85, 16 -> 26 of 30 after q75 (of 15 such photos, two positions each); the bench's
  synthetic pictures pasted (not re-encoded) at its 4 other places: 18 -> 22 of 32 (a text screenshot's area reads
  z 4.8 at half size, under the 6.0 this gate was first set to).
* limits: the hash is taken around the centre of the marked area, so crops that move it by more than a
  few percent of the central square (off-centre crops; not flips or quarter turns, which the detector
  undoes before hashing, nor pastes and padding, located as above) make a genuine mark read as a
  content mismatch. A pasted picture whose borders carry little of the mark (flat backgrounds, a black
  surround) and whose edges do not show against the surround is located too small and may fail the same way;
  a paste at half size saved as JPEG keeps little of the tile (its cells are then single pixels), and is read
  through its second layer only where its half-size window still reaches z 5 and its edges show. Video frames
  change while the mark must not, so video keeps the unbound mark (and the copy attack on it).

Detection decision: ``present`` when the sync peak's z-score over all 16,384 cyclic offsets of the 8
symmetries reaches :data:`Z_PRESENT`, or reaches :data:`Z_WITH_MAC` while the decoded payload's keyed
16-bit MAC also verifies (for one of the 37 host hashes tried). At most :data:`MAX_GEOMETRIES` (10)
geometry hypotheses are tried (identity, 4 lattice candidates, the 0.5x and 2x priors, 2 aspect pairs,
the axis periods of the harmonic comb), each in 8 symmetries: 1,310,720 offsets, so under a Gaussian null
the first term is bounded by 1.31e6 * Q(7) ~ 1.7e-6. The null z behaves like the maximum of that many
near-Gaussians (``bench/watermark/run.py --fpr N`` measures it: mean ~4.7, sd ~0.3 with the symmetry
search, ~4.2 before it); :data:`Z_WITH_MAC` was raised from 5.0 to 5.5 with the symmetry search so that
the z >= Z_WITH_MAC rate stays near 1 % (no marked bench image verified with z below 5.5), giving an FPR
of about 1.7e-6 + P(z >= 5.5) * 37 * 2**-16; the figure measured on 1,000+ unmarked images is in the README.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from functools import cached_property, lru_cache
from itertools import repeat, zip_longest

import numpy as np
import numpy.typing as npt

from .._extras import needs_extra
from .._opencv import cv2
from ..errors import CannotCarryMarkError
from ._lowfreq import (
    LOWFREQ_TO_TILE_SYMMETRY,
    Z_TRY,
    ChannelSplit,
    embed_lowfreq,
    read_lowfreq,
    read_lowfreq_area,
)
from .payload import (
    CODED_BITS,
    DEMO_KEY,
    INFO_BITS,
    Payload,
    conv_encode,
    decode_soft,
    decode_soft_bound,
    encode_payload,
    hash_candidates,
    keyed_rng,
    viterbi_decode,
)

with needs_extra("media"):
    from scipy import fft  # numpy's FFT is ~5x slower on the 768 px autocorrelation (its column pass)

__all__ = ["MAX_GEOMETRIES", "TILE", "Z_PRESENT", "Z_WITH_MAC", "ImageDetection", "detect_image", "embed_image", "psnr"]

TILE = 128
_CELL = 2
_CELLS = TILE // _CELL
_SYNC_FRACTION = 0.25
#: z-score of the sync peak above which the mark is declared present on its own.
Z_PRESENT = 7.0
#: Lower z-score that suffices when the payload's keyed MAC also verifies.
Z_WITH_MAC = 5.5
#: Sync z-score from which a picture whose MAC did not verify is searched for a marked area inside it
#: (:func:`_read_marked_area`).
Z_AREA = 5.3
#: Rounds of locating the marked area and reading its fold (each read's better bits locate it better).
_AREA_ROUNDS = 3
_MIN_SCALE, _MAX_SCALE = 0.4, 2.0
_MAX_SECTOR_DEG = 20.0
_LATTICE_CROP = 768
_LATTICE_CANDIDATES = 4
#: Scales always tried: "resized to half" and "a centre crop zoomed back to the original size" (2x), the
#: commonest platform transforms, whose lattices are the hardest to see (few periods, or periods of 256 px).
_PRIOR_SCALES = (0.5, 2.0)
#: First (and second) lattice vectors searched on their own for an aspect change.
_AXIS_CANDIDATES = 3
#: Lattice candidates (not the prior scales) weaker than this in the autocorrelation
#: (:func:`_lattice_strength`) are not read. Calibrated with ``bench/watermark/run.py``'s attacks: the weakest
#: candidate that a detection needed scored 5.97 (most score 7-40); on unmarked pictures 50 % of the
#: candidates score under 2.9-3.8 and 90 % under 5.2-5.8. At 4.5 the bench detects the same images under
#: every attack, and an unmarked 2 MP photo is read through ~5.4 geometries instead of 8.8. Not higher: at 5.5
#: (~0.7 fewer reads per unmarked picture, no change on the bench's attacks) 6 of 336 marked photos resized to
#: 0.6-0.9x and saved as JPEG q50-70 were lost, and a video scaled to 75 % at CRF 23 (``bench/watermark/video.py``).
_MIN_LATTICE_STRENGTH = 4.5
#: The same for the candidates a still picture screens (:func:`_screen`: a full fold window of :data:`_WARP_MAX`
#: tile pixels a side) when its lattice crop is the whole :data:`_LATTICE_CROP` square (768 px and more a side).
#: A screened candidate is read only when the central quarter of its window shows the sync, and a mark there shows
#: its lattice in the central crop the autocorrelation is taken on. Measured on 2 MP pictures (the bench's photos
#: and other projects' photos scaled to 2 MP, marked, then resized 0.6-0.9x + JPEG q50-70, rotated 1-5 degrees +
#: JPEG q70, cropped to 60-70 % and scaled back + JPEG q80, the basic and geometry attacks: 616 reads), every
#: screened candidate that verified scored 9.5 or more; on unmarked 2 MP pictures 1.2 screened candidates a picture
#: score 4.5-5.5 (~0.8 ms of screen each). Not higher for the candidates read in full (their window is the whole
#: picture's centre, which a smaller marked area pasted off-centre needs): marked photos scaled 1.2x and pasted over a
#: fifth of a 2 MP picture verified through candidates of strength 4.95-5.2, and 3 of 132 were lost at 5.5.
_SCREENED_STRENGTH = 5.5
_WARP_MAX = 1024
#: Large pictures (a full fold window of :data:`_WARP_MAX` tile pixels a side, 64 tiles: ~1 MP and more) read
#: each geometry candidate first through the central _SCREEN_WINDOW^2 (16 tiles, a quarter of the warp), and in
#: full only when that sync peak reaches _SCREEN_Z. Measured on 2 MP pictures: unmarked candidates score under
#: 4.8 there in 94 % of the reads (98 % under 5.0), so most of them cost a quarter warp instead of a full one;
#: the candidate that verified a marked 2 MP photo (resized 0.6-0.9x + JPEG q50-70, rotated, cropped, aspect
#: changes, ...) scored 5.1-27 (its full read 8.1-33). Smaller pictures are read in full as before.
_SCREEN_WINDOW = 512
_SCREEN_Z = 4.8
#: Geometry hypotheses at most: identity, the lattice candidates, the prior scales, two aspect-change pairs.
MAX_GEOMETRIES = 1 + _LATTICE_CANDIDATES + len(_PRIOR_SCALES) + 2 + 1
#: Host binding: bits of perceptual hash under the MAC; the detector tries the hash and its 36 likeliest
#: variants (:func:`.payload.hash_candidates`): 37 candidates, each a 2^-16 chance for a wrong MAC to pass.
BIND_BITS = 32
_BIND_CANDIDATES = 37
_HASH_SPAN = 192  # side of the central square (tile-space pixels) the hash is computed on
_HASH_GRID = 16
#: Perceptual cap (see :func:`_strength`): noise variance that keeps a 7x7 SSIM window above ~0.97
#: (flat part and gain on the host's local variance), a safety factor for rounding, and how far the
#: budget the cap frees may raise the other pixels.
_SSIM_NOISE_FLAT = 1.81
_SSIM_NOISE_GAIN = 0.062
_SSIM_SAFETY = 0.9
_SSIM_SAFETY_WITH_LOWFREQ = 0.8
_MAX_BOOST = 3.0

FloatImage = npt.NDArray[np.float32]
UInt8Image = npt.NDArray[np.uint8]
_Scored = tuple[float, npt.NDArray[np.float64]]


@dataclass(frozen=True)
class ImageDetection:
    """What the image detector found (see module docstring for the decision rule)."""

    present: bool
    z: float
    payload: Payload | None
    mac_ok: bool
    scale: float
    rotation_deg: float
    elapsed_ms: float
    #: The best-effort decoded payload even when absent or unverified (for bit-accuracy statistics only).
    decoded: Payload | None = None
    details: dict[str, float] = field(default_factory=dict)
    #: False when a mark is present but its MAC verifies with no host hash of this image: a mark copied
    #: from other content (or damaged beyond reading); its payload then proves nothing.
    content_ok: bool = True
    #: The best half-size window over a paste, when the tile reader searched them (:func:`_half_windows`): where
    #: :func:`detect_image` looks for the pasted picture's second layer, without searching them again.
    _window: _Window | None = field(default=None, repr=False, compare=False)

    @property
    def orientation(self) -> str | None:
        """How the picture was turned or mirrored since it was marked (an :data:`ORIENTATIONS` text), read
        from the layer that verified; None without a verified payload. :attr:`rotation_deg` is the angle
        beyond that."""
        if self.payload is None:
            return None
        if self.details.get("layer") == 2.0:
            return ORIENTATIONS[LOWFREQ_TO_TILE_SYMMETRY[int(self.details["lowfreq_symmetry"])]]
        return ORIENTATIONS[int(self.details.get("symmetry", 0))]


@dataclass(frozen=True)
class _Layout:
    sync_cells: npt.NDArray[np.int64]
    data_cells: npt.NDArray[np.int64]
    data_bit: npt.NDArray[np.int64]
    pn: npt.NDArray[np.float32]  # per cell, +-1
    sync_tile: FloatImage  # pixel template of the sync cells (zero elsewhere)


@lru_cache(maxsize=8)
def _layout(key: bytes) -> _Layout:
    rng = keyed_rng(key, "image-layout-v1")
    n = _CELLS * _CELLS
    perm = rng.permutation(n)
    n_sync = int(n * _SYNC_FRACTION)
    sync_cells = np.sort(perm[:n_sync])
    data_cells = perm[n_sync:]
    data_bit = np.arange(len(data_cells)) % CODED_BITS
    pn = rng.choice(np.array([-1.0, 1.0], dtype=np.float32), size=n)
    cells = np.zeros(n, dtype=np.float32)
    cells[sync_cells] = pn[sync_cells]
    return _Layout(sync_cells, data_cells, data_bit, pn, _render(cells))


def _render(cells: npt.NDArray[np.float32]) -> FloatImage:
    """Cell values -> smooth periodic TILE x TILE pixel pattern."""
    grid = cells.reshape(_CELLS, _CELLS)
    up = np.kron(grid, np.ones((_CELL, _CELL), dtype=np.float32))
    big = np.tile(up, (3, 3))
    big = cv2.GaussianBlur(big, (0, 0), 0.6)
    return np.ascontiguousarray(big[TILE : 2 * TILE, TILE : 2 * TILE])


@lru_cache(maxsize=32)
def _tile(payload: Payload, key: bytes, bound: bytes) -> FloatImage:
    lay = _layout(key)
    coded = encode_payload(payload, key, bound)
    cells = lay.pn.copy()
    cells[lay.data_cells] *= 1.0 - 2.0 * coded[lay.data_bit].astype(np.float32)
    tile = _render(cells)
    tile /= float(np.sqrt(np.mean(tile**2)))
    return tile


def _luma(img: npt.NDArray[np.generic]) -> FloatImage:
    return np.asarray(_grey(img), dtype=np.float32)


def _grey(img: npt.NDArray[np.generic]) -> npt.NDArray[np.uint8] | FloatImage:
    """The luminance as :func:`_luma` gives it, but left in 8 bits when the image is (whose filters run faster)."""
    arr = np.asarray(img)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim == 2:
        return arr if arr.dtype == np.uint8 else arr.astype(np.float32)
    rgb = np.ascontiguousarray(arr[..., :3])
    if rgb.dtype == np.uint8:
        return np.asarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), dtype=np.uint8)
    return np.asarray(rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32), dtype=np.float32)


def _check_image(img: npt.NDArray[np.generic]) -> None:
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] not in (1, 3, 4)):
        raise ValueError("expected an HxW or HxWx{1,3,4} image array")
    if img.shape[0] < 32 or img.shape[1] < 32:
        raise CannotCarryMarkError(
            f"a {img.shape[1]}x{img.shape[0]} image is too small to watermark (needs at least 32x32 pixels)"
        )


#: The 8 symmetries of the square (flips, 90-degree rotations) as integer 2x2 maps of (x, y) tile
#: coordinates. The tile lattice is invariant under them, so the autocorrelation cannot tell them apart:
#: the reader tries each on the folded tile instead (see :func:`_read_fold`).
_DIHEDRAL = tuple(
    np.array(m, dtype=np.int64)
    for m in (
        ((1, 0), (0, 1)),
        ((0, -1), (1, 0)),
        ((-1, 0), (0, -1)),
        ((0, 1), (-1, 0)),
        ((-1, 0), (0, 1)),
        ((1, 0), (0, -1)),
        ((0, 1), (1, 0)),
        ((0, -1), (-1, 0)),
    )
)


#: How the picture lies against the one that was marked, by index into :data:`_DIHEDRAL` (the symmetry the
#: reader found; measured by turning and mirroring marked pictures with numpy's ``rot90`` and slicing).
ORIENTATIONS = (
    "upright",
    "turned 90° counter-clockwise",
    "turned 180°",
    "turned 90° clockwise",
    "mirrored left-right",
    "flipped upside down",
    "mirrored left-right, then turned 90° counter-clockwise",
    "mirrored left-right, then turned 90° clockwise",
)


def _gather(maps: tuple[npt.NDArray[np.int64], ...]) -> npt.NDArray[np.int64]:
    """Gather indices: ``tile.ravel()[idx[k]]`` reads tile coordinate ``maps[k] @ t`` (cyclically) at each ``t``."""
    ty, tx = np.mgrid[0:TILE, 0:TILE]
    out = []
    for m in maps:
        fx = (m[0, 0] * tx + m[0, 1] * ty) % TILE
        fy = (m[1, 0] * tx + m[1, 1] * ty) % TILE
        out.append((fy * TILE + fx).ravel())
    return np.stack(out)


@lru_cache(maxsize=1)
def _dihedral_index() -> npt.NDArray[np.int64]:
    """Gather indices: ``fold.ravel()[idx[g]]`` is the fold mapped by ``_DIHEDRAL[g]`` (cyclically)."""
    # Output coordinate t reads fold coordinate g^-1 t.
    return _gather(tuple(np.round(np.linalg.inv(g)).astype(np.int64) for g in _DIHEDRAL))


@lru_cache(maxsize=8)
def _sync_spectra(key: bytes) -> npt.NDArray[np.complex64]:
    """Conjugate spectra of the sync template read through each symmetry (``S_g[u] = sync[g u]``).

    Correlating the fold mapped by ``g`` with the template equals correlating the fold itself with
    ``S_g``, at offsets permuted by ``g`` (``corr_g[d] = C_g[g^-1 d]``): one FFT of the fold instead of 8.
    """
    sync = _layout(key).sync_tile.ravel()[_gather(_DIHEDRAL)].reshape(len(_DIHEDRAL), TILE, TILE)
    return np.asarray(np.conj(fft.rfft2(sync, axes=(1, 2))), dtype=np.complex64)


@lru_cache(maxsize=8)
def _hash_projection(key: bytes) -> npt.NDArray[np.float32]:
    rng = keyed_rng(key, "image-host-hash-v1")
    # Low DCT frequencies weighted by their index sum, which roughly whitens a natural image's 1/f spectrum.
    u, v = np.mgrid[0:8, 0:8]
    weight = (u + v).ravel()[1:].astype(np.float32)
    return np.asarray(rng.standard_normal((BIND_BITS, 63)).astype(np.float32) * weight, dtype=np.float32)


def _host_projections(
    y: FloatImage, basis: npt.NDArray[np.float64] | None, key: bytes, centre: tuple[float, float] | None = None
) -> npt.NDArray[np.float32]:
    """Keyed 32-bit perceptual hash of the central square of the host, in tile coordinates.

    The square is ``_HASH_SPAN`` tile-space pixels around the image centre (or ``centre``, the centre of
    the marked picture inside a larger one: see :func:`_mark_area`), mapped through the detected
    geometry, so resizing, small rotations and centred crops see the same content. Its 16x16 area-average
    keeps only the coarse layout (the mark itself and compression noise average away), and the bits are
    the signs of keyed random projections of its low DCT frequencies (SimHash): brightness and contrast
    changes do not flip them, different pictures give unrelated bits.
    """
    h, w = y.shape
    b = np.eye(2) if basis is None else basis / TILE
    m = np.zeros((2, 3), dtype=np.float64)
    m[:, :2] = b
    c = np.array([(w - 1) / 2, (h - 1) / 2] if centre is None else centre)
    m[:, 2] = c - b @ np.array([(_HASH_SPAN - 1) / 2, (_HASH_SPAN - 1) / 2])
    sq = cv2.warpAffine(
        y, m, (_HASH_SPAN, _HASH_SPAN), flags=cv2.INTER_AREA | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REFLECT_101
    )
    small = cv2.resize(sq, (_HASH_GRID, _HASH_GRID), interpolation=cv2.INTER_AREA)
    coef = cv2.dct(np.ascontiguousarray(small, dtype=np.float32))[:8, :8].ravel()[1:]
    return np.asarray(_hash_projection(key) @ coef, dtype=np.float32)


def _host_hash(y: FloatImage, key: bytes) -> bytes:
    """The hash the embedder binds the mark to (host geometry = tile geometry)."""
    return np.packbits((_host_projections(y, None, key) > 0).astype(np.uint8)).tobytes()


def _hash_candidates(
    y: FloatImage, basis: npt.NDArray[np.float64] | None, key: bytes, centre: tuple[float, float] | None = None
) -> list[bytes]:
    """The received image's hash and its likeliest variants (the least reliable bits flipped first)."""
    return hash_candidates(_host_projections(y, basis, key, centre), _BIND_CANDIDATES)


def _strength(y: FloatImage, target_psnr: float, safety: float = _SSIM_SAFETY) -> FloatImage:
    """Per-pixel amplitude of the mark: a texture mask scaled to the PSNR budget, capped where SSIM would see it.

    The texture mask (local high-pass energy relative to the image's median, 0.35-2.5) puts more of the
    mark where the picture is busy. On flat illustrations, icons, text screenshots and smooth renders
    that is not enough: most of the picture is flat and the budget lands there. So each pixel's
    amplitude is also capped at what keeps the local SSIM (7x7 window, as in Wang et al.) above ~0.97:
    with the host's local variance v, added noise of variance d keeps the window's SSIM
    (2v + C2) / (2v + d + C2) at 0.97 or more when d <= 0.031 * (2v + C2) = 1.81 + 0.062 v
    (C2 = (0.03 * 255)^2), taken at the flattest window the pixel belongs to. The budget the caps free
    is given back to the pixels under their cap (up to 3x the uncapped strength); a picture that is flat
    nearly everywhere ends above the target PSNR rather than showing the mark.
    """
    # In place where it can be (same figures; a 1080p picture is 8 MB a plane).
    mask = np.asarray(cv2.GaussianBlur(y, (7, 7), 1.5), dtype=np.float32)
    np.subtract(y, mask, out=mask)
    np.multiply(mask, mask, out=mask)
    mask = np.asarray(cv2.blur(mask, (9, 9)), dtype=np.float32)
    np.maximum(mask, 0.0, out=mask)
    np.sqrt(mask, out=mask)  # the local activity
    mask *= 1.0 / (float(np.median(mask[::4, ::4])) + 1e-3)
    np.clip(mask, 0.35, 2.5, out=mask)
    # Strength from the PSNR budget: MSE of the (rounded) delta must stay under 255^2 / 10^(psnr/10).
    budget = max(255.0**2 / 10 ** (target_psnr / 10.0) - 1.0 / 12.0, 0.1)
    uncapped = float(np.sqrt(budget / float(np.mean(mask**2))))
    mu = np.asarray(cv2.blur(y, (7, 7)), dtype=np.float32)
    np.multiply(mu, mu, out=mu)
    var = np.asarray(cv2.blur(y * y, (7, 7)), dtype=np.float32)
    var -= mu
    np.maximum(var, 0.0, out=var)
    var *= _SSIM_NOISE_GAIN
    var += _SSIM_NOISE_FLAT
    np.sqrt(var, out=var)
    var *= safety
    cap = cv2.erode(var, np.ones((7, 7), np.uint8))
    scale = uncapped
    sub_mask, sub_cap = mask[::3, ::3], cap[::3, ::3]  # the mean square is estimated on a subsample
    for _ in range(4):
        ms = float(np.mean(np.minimum(sub_mask * np.float32(scale), sub_cap) ** 2))
        if ms >= budget * 0.98 or scale >= _MAX_BOOST * uncapped:
            break
        scale = min(scale * float(np.sqrt(budget / max(ms, 1e-9))), _MAX_BOOST * uncapped)
    mask *= np.float32(scale)
    return np.asarray(np.minimum(mask, cap, out=mask), dtype=np.float32)


def embed_image(
    img: npt.NDArray[np.uint8],
    payload: Payload,
    key: bytes = DEMO_KEY,
    target_psnr: float = 42.0,
    *,
    bind: bool = True,
    lowfreq: bool = True,
) -> UInt8Image:
    """Return a watermarked copy of an 8-bit HxW[x3|x4] image (alpha untouched).

    The tile mark is added at about ``target_psnr`` dB, then (``lowfreq``, pictures of 128 px and more)
    the low-frequency layer of :mod:`._lowfreq`, which costs another ~2 dB. ``bind`` carries a perceptual
    hash of this image under the MAC, so the mark cannot be copied onto other pictures (the video embedder
    turns it off, and the second layer with it: its frames change while the mark must not).
    """
    _check_image(img)
    if img.dtype != np.uint8:
        raise ValueError("embed_image expects an 8-bit image")
    lowfreq = lowfreq and bind
    y = _luma(img)
    h, w = y.shape
    # The second layer goes first: it moves the coarse layout the tile mark's host hash is taken from, while
    # the tile mark hardly moves the cell means the second layer quantises.
    rgb = np.ascontiguousarray(img[..., :3]) if img.ndim == 3 and img.shape[2] >= 3 else None
    split = ChannelSplit.of(rgb) if rgb is not None else None
    second = embed_lowfreq(y, payload, key, rgb, split) if lowfreq else None
    if second is not None:
        # Measured as written (rounded on its own, shared between the channels): the tile mark's host hash is
        # taken on the very pixels it is added to: rounding a smooth field shifts whole areas at once, enough to
        # move the coarse layout the hash reads.
        if split is None:
            y = np.asarray(np.clip(y + np.rint(second), 0.0, 255.0), dtype=np.float32)
        else:
            y = y + split.written(second, -y, 255.0 - y)
    tile = _tile(payload, key, _host_hash(y, key) if bind else b"")
    pattern = np.tile(tile, (-(-h // TILE), -(-w // TILE)))[:h, :w]
    # With the second layer the tile mark leaves it part of the flat windows' SSIM budget.
    mark = _strength(y, target_psnr, _SSIM_SAFETY_WITH_LOWFREQ if lowfreq else _SSIM_SAFETY) * pattern
    delta = np.rint(mark)
    if second is not None:
        delta += np.rint(second)
    # Same integer delta on R, G and B (= a luminance-only change), added with uint8 saturation; where a channel
    # is near 0 or 255 the split shares it out instead.
    step = np.clip(delta, -255, 255).astype(np.int16)
    up = np.clip(step, 0, 255).astype(np.uint8)
    down = np.clip(-step, 0, 255).astype(np.uint8)
    out = np.array(img, copy=True)
    if out.ndim == 2 or out.shape[2] == 1:
        plane = out if out.ndim == 2 else out[..., 0]
        res = cv2.subtract(cv2.add(np.ascontiguousarray(plane), up), down)
        if out.ndim == 2:
            return np.asarray(res, dtype=np.uint8)
        out[..., 0] = res
        return out
    rgb = np.ascontiguousarray(out[..., :3])
    out[..., :3] = cv2.subtract(cv2.add(rgb, cv2.merge([up, up, up])), cv2.merge([down, down, down]))
    if split is not None:
        split.apply(out, mark, second)
    return out


#: Rows :func:`_whiten` works on at a time, and the rows of context each needs on either side (the 7x7
#: Gaussian's radius 3 plus the 11x11 box's radius 5), so every strip gives exactly the whole-image figures.
_WHITEN_ROWS = 128
_WHITEN_HALO = 8


@lru_cache(maxsize=1)
def _gauss_kernel() -> FloatImage:
    """:func:`_whiten`'s high-pass Gaussian (7 taps, sigma 1.5), as ``cv2.GaussianBlur(y, (7, 7), 1.5)`` builds it."""
    return np.asarray(cv2.getGaussianKernel(7, 1.5, cv2.CV_32F), dtype=np.float32)


def _whiten(
    y: FloatImage, grey: npt.NDArray[np.uint8] | FloatImage | None = None, out: FloatImage | None = None
) -> FloatImage:
    """The luminance high-passed and divided by its local RMS (clipped to +-2.5): the host's texture flattened.

    Done in strips of :data:`_WHITEN_ROWS` rows with OpenCV, in place: the five passes over a strip stay in
    the CPU cache instead of streaming 2 MP float planes through memory five times (~40 % less CPU on a
    2 MP picture), and the figures are the whole-image ones bit for bit (each strip gets its halo of rows).
    ``grey``, the same plane in 8 bits (:func:`_grey`), is what the Gaussian reads when given: the same
    kernel on the same values (to a float rounding at some widths) at two thirds of the CPU. ``out``: the
    array (of ``y``'s shape; a view is fine) the plane is written to and returned.
    """
    h = y.shape[0]
    src = y if grey is None else grey
    kernel = _gauss_kernel()
    out = np.empty_like(y, dtype=np.float32) if out is None else out
    for top in range(0, h, _WHITEN_ROWS):
        bottom = min(h, top + _WHITEN_ROWS)
        lo, hi = max(0, top - _WHITEN_HALO), min(h, bottom + _WHITEN_HALO)
        part = y[lo:hi]
        r = cv2.subtract(part, cv2.sepFilter2D(src[lo:hi], cv2.CV_32F, kernel, kernel))
        local: FloatImage = np.asarray(cv2.blur(cv2.multiply(r, r), (11, 11)), dtype=np.float32)
        cv2.threshold(local, 0.0, 0.0, cv2.THRESH_TOZERO, dst=local)  # = max(local, 0) here, at a third of numpy's cost
        cv2.sqrt(local, local)
        local += 0.5
        rows = slice(top - lo, bottom - lo)
        got = cv2.divide(r[rows], local[rows], out[top:bottom])
        if not np.shares_memory(got, out):  # an OpenCV that cannot write into a strided view returns a new array
            out[top:bottom] = got
        np.clip(out[top:bottom], -2.5, 2.5, out=out[top:bottom])
    return out


def _luma_whitened(img: npt.NDArray[np.generic]) -> tuple[FloatImage, FloatImage, FloatImage]:
    """The luminance (:func:`_luma`), its whitened plane (:func:`_whiten`, its Gaussian reading the 8-bit grey)
    and the same plane at the top left of zeros grown to whole tiles, which it is a view of: what the fold of
    the untouched geometry sums (:func:`_fold_plane` would copy the 2 MP plane into such zeros)."""
    grey = _grey(img)
    y = np.asarray(grey, dtype=np.float32)
    h, w = y.shape
    padded = np.zeros((-(-h // TILE) * TILE, -(-w // TILE) * TILE), dtype=np.float32)
    r = _whiten(y, grey, padded[:h, :w])
    for plane in (r, padded):  # the reads keep the padded plane (:attr:`_Read.plane`): a write would change r
        plane.flags.writeable = False
    return y, r, padded


def _line_spectrum(r: FloatImage) -> tuple[FloatImage, tuple[int, int]]:
    """Excess of the power spectrum (rfft layout) of the central crop over its local average, and the crop size.

    JPEG 8x8 block-grid frequencies are suppressed; what is left is a map of sharp spectral lines.
    """
    h, w = r.shape
    c = min(h, _LATTICE_CROP), min(w, _LATTICE_CROP)
    y0, x0 = (h - c[0]) // 2, (w - c[1]) // 2
    crop = r[y0 : y0 + c[0], x0 : x0 + c[1]]
    spec = fft.rfft2(crop)  # the mean only moves the zero frequency, cleared below
    power = np.asarray(spec.real**2 + spec.imag**2, dtype=np.float32)
    # Block artefacts live on the lines f = k/8 cycles/pixel (x and y); their harmonics would mimic a lattice.
    for k in range(1, 5):
        fy = round(k * c[0] / 8)
        for d in (-1, 0, 1):
            for f in (fy + d, c[0] - fy + d):
                if 0 <= f < c[0]:
                    power[f, :] = 0
        fx = round(k * c[1] / 8)
        for d in (-1, 0, 1):
            if 0 <= fx + d < power.shape[1]:
                power[:, fx + d] = 0
    power[:2, :2] = 0
    power[-1:, :2] = 0
    # Spectral whitening: the tile's periodicity is a lattice of sharp lines, the host spectrum is smooth.
    # Dividing by a local average and keeping only the excess turns the autocorrelation into a line detector.
    local = cv2.blur(power, (9, 9), borderType=cv2.BORDER_REFLECT) + 1e-9
    power /= local
    power -= 1.0
    return np.maximum(power, 0.0, out=power), c


def _autocorr(flat: FloatImage, c: tuple[int, int]) -> FloatImage:
    """Autocorrelation of the whitened image from its line spectrum (:func:`_line_spectrum`)."""
    ac = np.fft.fftshift(np.asarray(fft.irfft2(flat, s=c), dtype=np.float32))
    # Widen the one-pixel peaks a little so that sampling at multiples of an integer lag still hits them.
    return np.asarray(cv2.GaussianBlur(ac, (0, 0), 0.8), dtype=np.float32)


# Lattice points (in units of the two basis vectors) that vote for a candidate basis.
_VOTES = ((1, 0), (0, 1), (1, 1), (1, -1), (2, 0), (0, 2), (2, 1), (1, 2), (2, -1), (1, -2))


@dataclass(frozen=True)
class _VoteGrid:
    """What the lattice vote samples on an autocorrelation of one size (:func:`_vote_grid`)."""

    ring: npt.NDArray[np.intp]  # flat indices of the lags the peaks are normalised on
    vx: FloatImage  # candidate first vectors, x
    vy: FloatImage  # and y
    ok: npt.NDArray[np.bool_]  # which of them lie in the sector
    #: Sample coordinates of every vote of :data:`_VOTES`, stacked (one remap reads them all).
    px: FloatImage
    py: FloatImage
    #: Per candidate, how many votes fall inside: all of them, those on the x axis, those on the y axis.
    used: FloatImage
    axis_used: tuple[FloatImage, FloatImage]


@lru_cache(maxsize=4)
def _vote_grid(h: int, w: int) -> _VoteGrid | None:
    """What the lattice vote samples on an ``h`` x ``w`` autocorrelation (the same for every image of a size):
    the ring of lags the peaks are normalised on, the candidate first vectors (x, y and which are in the
    sector), and for each of :data:`_VOTES` the sample coordinates and whether they fall inside (summed)."""
    cy, cx = h // 2, w // 2
    ring = np.hypot(*np.mgrid[-cy : h - cy, -cx : w - cx])
    sel = (ring >= _MIN_SCALE * TILE) & (ring <= _MAX_SCALE * TILE)
    if sel.sum() < 16:
        return None
    rmax = _MAX_SCALE * TILE
    span = np.tan(np.radians(_MAX_SECTOR_DEG)) * rmax
    vx, vy = np.meshgrid(
        np.arange(_MIN_SCALE * TILE * np.cos(np.radians(_MAX_SECTOR_DEG)), rmax + 1, dtype=np.float32),
        np.arange(-span, span + 1, dtype=np.float32),
    )
    rad = np.hypot(vx, vy)
    ok = (rad >= _MIN_SCALE * TILE) & (rad <= rmax) & (np.abs(np.degrees(np.arctan2(vy, vx))) <= _MAX_SECTOR_DEG)
    pxs, pys = [], []
    used = np.zeros(vx.shape, dtype=np.float32)
    axis_used = (np.zeros(vx.shape, dtype=np.float32), np.zeros(vx.shape, dtype=np.float32))
    for i, j in _VOTES:
        px = i * vx - j * vy + cx
        py = i * vy + j * vx + cy
        inside = ((px >= 0) & (px <= w - 1) & (py >= 0) & (py <= h - 1)).astype(np.float32)
        pxs.append(px)
        pys.append(py)
        used += inside
        if i == 0 or j == 0:  # a point on one axis: scores that axis alone
            axis_used[int(i == 0)][...] += inside
    grid = _VoteGrid(np.flatnonzero(sel), vx, vy, ok, np.concatenate(pxs), np.concatenate(pys), used, axis_used)
    for shared in (grid.ring, vx, vy, ok, grid.px, grid.py, used, *axis_used):
        shared.flags.writeable = False  # cached: every picture of this size reads them
    return grid


def _estimate_lattice(r: FloatImage, screened: float = _MIN_LATTICE_STRENGTH) -> list[npt.NDArray[np.float64]]:
    """Lattice bases (columns = images of the tile's x and y periods) from the autocorrelation peaks; other than
    the prior scales, those whose :func:`_lattice_strength` reaches :data:`_MIN_LATTICE_STRENGTH`, or ``screened``
    for those :func:`_screen` reads first.

    Every candidate first vector v (near the x axis) is scored by the sum of the autocorrelation at
    several points of the square lattice spanned by v and v rotated by 90 degrees, so the estimate uses
    many peaks at once instead of the single strongest one (which is often host texture). Aspect changes
    (a platform fitting a picture into a box) make the two periods differ: the same samples also score
    each axis on its own (the points along v, and along v rotated), and the best pair of independent
    axes is tried as well.
    """
    flat, c = _line_spectrum(r)
    ac = _autocorr(flat, c)
    h, w = ac.shape
    grid = _vote_grid(h, w)
    if grid is None:
        return []
    vx, vy, ok, used, axis_used = grid.vx, grid.vy, grid.ok, grid.used, grid.axis_used
    ac = ac / (float(np.std(ac.ravel().take(grid.ring))) + 1e-12)
    score = np.zeros(vx.shape, dtype=np.float32)
    axis_score = [np.zeros(vx.shape, dtype=np.float32), np.zeros(vx.shape, dtype=np.float32)]
    vals = cv2.remap(ac, grid.px, grid.py, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    for (i, j), val in zip(_VOTES, vals.reshape(len(_VOTES), *vx.shape), strict=True):
        score += val
        if i == 0 or j == 0:  # a point on one axis: scores that axis alone
            axis_score[int(i == 0)] += val
    score = np.where(ok & (used >= 4), score / np.sqrt(np.maximum(used, 1.0)), -np.inf).astype(np.float32)
    starts = [np.array([vx[iy, ix], vy[iy, ix]], dtype=np.float64) for iy, ix in _top_peaks(score, _LATTICE_CANDIDATES)]
    # The prior scales are always tried too (refined locally like the others).
    starts += [np.array([s * TILE, 0.0]) for s in _PRIOR_SCALES]
    out: list[npt.NDArray[np.float64]] = []
    for n, start in enumerate(starts):
        v1 = _fine(ac, start)
        basis = np.stack([v1, np.array([-v1[1], v1[0]])], axis=1)
        if n >= len(starts) - len(_PRIOR_SCALES) and _lattice_strength(ac, basis) < _MIN_LATTICE_STRENGTH:
            # A prior scale the autocorrelation does not show (a marked picture pasted at half size into a
            # larger one, whose lattice lags drown in the surround): the refinement only follows host texture
            # up to 1.5 px away, which misaligns the fold by a pixel every tile; the exact prior folds right.
            basis = np.eye(2) * start[0]
        out.append(basis)
    # Independent axes: for the best few first vectors (and second vectors), each alone, the other vector
    # is searched near the perpendicular with the votes of the lattice points involving both. Two votes
    # pick a pair: all those points, and the points off both axes only (periodicity along one direction,
    # like text lines or the rows of a UI, puts its strongest peaks on an axis and would pick a multiple
    # of the line spacing). Each best pair is tried when it is a real aspect change (a square lattice is
    # among the candidates above).
    pairs: list[list[tuple[float, npt.NDArray[np.float64]]]] = [[], []]
    for k in (0, 1):
        sc = np.where(ok & (axis_used[k] >= 1), axis_score[k] / np.sqrt(np.maximum(axis_used[k], 1.0)), -np.inf)
        for iy, ix in _top_peaks(sc.astype(np.float32), _AXIS_CANDIDATES):
            v = np.array([vx[iy, ix], vy[iy, ix]], dtype=np.float64)
            for n, scored in enumerate(_partner(ac, v if k == 0 else np.array([-v[1], v[0]]), k)):
                pairs[n].append(scored)
    for by_vote in pairs:
        if not by_vote:
            continue
        best = _fine_axes(ac, max(by_vote, key=lambda p: p[0])[1])
        ratio = np.hypot(*best[:, 1]) / max(np.hypot(*best[:, 0]), 1e-9)
        if abs(np.log(ratio)) > 0.05 and not any(np.abs(best - b).max() < 1.0 for b in out):
            out.insert(1, best)
    # A candidate the autocorrelation hardly supports is host texture, not the tile: reading it (a 1 MP warp
    # and 9 FFTs) cannot find the mark. The prior scales are read regardless: their lattices are the ones
    # the autocorrelation misses.
    priors = out[-len(_PRIOR_SCALES) :]
    out = [
        b
        for b in out
        if any(b is p for p in priors)
        or _lattice_strength(ac, b) >= (screened if _screened(r, b) else _MIN_LATTICE_STRENGTH)
    ]
    # The harmonic comb's axes are read regardless too: it exists for the lattices the autocorrelation misses.
    axes = _comb_axes(flat, c)
    if axes is not None and not any(np.abs(axes - b).max() < 1.0 for b in out):
        out.append(axes)
    return out


def _lattice_strength(ac: FloatImage, basis: npt.NDArray[np.float64]) -> float:
    """How strongly the normalised autocorrelation ``ac`` shows the lattice of ``basis``: its sum over the
    lattice points within reach over the square root of their number (about N(0, 1) on host texture)."""
    h, w = ac.shape
    cy, cx = h // 2, w // 2
    reach = min(h, w) / 2 - 2
    points = _lattice_points(ac, min(float(np.hypot(*basis[:, 0])), float(np.hypot(*basis[:, 1])))) @ basis.T
    points = points[np.hypot(points[:, 0], points[:, 1]) <= reach]
    if len(points) == 0:
        return 0.0
    vals = cv2.remap(
        ac, (points[:, 0] + cx).astype(np.float32)[None], (points[:, 1] + cy).astype(np.float32)[None],
        cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0,
    )  # fmt: skip
    return float(vals.sum() / np.sqrt(len(points)))


#: Periods (image pixels) the harmonic comb of :func:`_comb_axes` tries per axis, then a finer step
#: around the best few (a peak is ~p^2 / (K n) ~ 0.8 px wide at the K-th harmonic of an n-px crop).
_COMB_PERIODS = np.arange(_MIN_SCALE * TILE, _MAX_SCALE * TILE + 1e-9, 0.25)
_COMB_FINE = np.arange(-0.25, 0.2501, 0.025)
#: Larger pictures show enough lattice lags to the autocorrelation; the comb (2-3 ms of CPU and one more
#: geometry to read) would only slow their rejection.
_COMB_MAX_SIDE = 480


def _comb_axes(flat: FloatImage, c: tuple[int, int]) -> npt.NDArray[np.float64] | None:
    """An axis-aligned lattice (x and y periods found separately) from the harmonic combs of the line spectrum.

    An aspect change makes the tile's spectral lattice (k / px, l / py). Summing the line spectrum over
    fy gives a profile along fx whose lines sit at k / px for every k up to Nyquist; the comb sum over
    those k (noise level removed, divided by the square root of their count, so that 2 px and px / 2
    score lower than px) finds px from all harmonics at once, where the autocorrelation votes see only a
    few lags of a small picture. The spectrum's axis lines (text rows, UI rows, the zero frequency) are
    left out of the profiles. On small pictures (256-480 px: two to four periods) this finds aspect
    changes the autocorrelation misses; it fails where the host itself is periodic along an axis (lines
    of text), and is not run on larger ones.
    """
    rows, cols = c
    if not 2 * _MIN_SCALE * TILE <= min(rows, cols) <= _COMB_MAX_SIDE:
        return None
    # The full (fft2) layout: the fx < 0 half is the Hermitian mirror, P(-fx, fy) = P(fx, -fy).
    neg = flat[(-np.arange(rows)) % rows, 1 : cols - flat.shape[1] + 1]
    two_sided = np.concatenate([flat, neg[:, ::-1]], axis=1)
    two_sided = np.ascontiguousarray(two_sided - float(np.median(two_sided[::4, ::4])), dtype=np.float32)
    prof_x = two_sided[3:-2, : flat.shape[1]].sum(axis=0)  # over fy, lines near fy = 0 left out; fx = j / cols
    folded = two_sided[:, 3:-2].sum(axis=1)  # over fx; index i: fy = i / rows (wrapped)
    prof_y = folded[: rows // 2 + 1].copy()
    prof_y[1:] += folded[::-1][: rows // 2]
    best = []
    for prof, n in ((prof_x, cols), (prof_y, rows)):
        prof = prof - float(np.median(prof[4:]))  # what the comb sums is zero-mean where there is no line
        coarse = _comb_sum(prof, n, _COMB_PERIODS)
        fine = (_COMB_PERIODS[np.argsort(-coarse)[:3]][:, None] + _COMB_FINE[None, :]).ravel()
        best.append(float(fine[int(np.argmax(_comb_sum(prof, n, fine)))]))
    return np.diag(best).astype(np.float64)


def _comb_sum(prof: npt.NDArray[np.floating], n: int, periods: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Per period p: ``prof`` (linearly interpolated) summed at the harmonics ``k * n / p`` up to Nyquist,
    over the square root of their count."""
    k = np.arange(1, int(periods.max() / 2) + 1, dtype=np.float64)
    pos = k[None, :] * (n / periods[:, None])
    use = (k[None, :] <= periods[:, None] / 2) & (pos < len(prof) - 1)
    pos = np.where(use, pos, 0.0)
    i = pos.astype(np.int64)
    t = pos - i
    vals = np.where(use, prof[i] * (1 - t) + prof[i + 1] * t, 0.0)
    count = use.sum(axis=1)
    return np.where(count > 0, vals.sum(axis=1) / np.sqrt(np.maximum(count, 1)), -np.inf)


# Lattice points (i, j) that involve the second vector (j != 0): they score it given the first; the first
# two lie on its axis.
_PARTNER_VOTES = ((0, 1), (0, 2), (1, 1), (-1, 1), (1, 2), (-1, 2), (2, 1), (-2, 1))


def _partner(ac: FloatImage, v: npt.NDArray[np.float64], k: int) -> tuple[_Scored, _Scored]:
    """Best lattices (score, basis) whose axis ``k`` is ``v`` and whose other axis is near-perpendicular to it.

    The first by all :data:`_PARTNER_VOTES`, the second by those off both axes.
    """
    h, w = ac.shape
    cy, cx = h // 2, w // 2
    unit = v / max(float(np.hypot(*v)), 1e-9)
    lengths = np.arange(_MIN_SCALE * TILE, _MAX_SCALE * TILE + 1, dtype=np.float64)
    angles = np.radians(np.arange(-3.0, 3.01, 1.5))
    sign = 1.0 if k == 0 else -1.0  # the other vector is v rotated by +90 (k=0) or -90 degrees (k=1)
    ca, sa = np.cos(angles)[:, None], np.sin(angles)[:, None]
    px_dir = -unit[1] * sign * ca - unit[0] * sa * sign
    py_dir = unit[0] * sign * ca - unit[1] * sa * sign
    ox, oy = px_dir * lengths[None, :], py_dir * lengths[None, :]  # (A, L) candidate other vectors
    # Every vote's samples in one remap (the second vote set is the first without its two axis points).
    i, j = (np.array(c, dtype=np.float64)[:, None, None] for c in zip(*_PARTNER_VOTES, strict=True))
    px = (i * v[0] + j * ox[None] + cx).astype(np.float32)
    py = (i * v[1] + j * oy[None] + cy).astype(np.float32)
    inside = ((px >= 0) & (px <= w - 1) & (py >= 0) & (py <= h - 1)).astype(np.float64)
    n, rows, cols = px.shape
    vals = cv2.remap(
        ac, px.reshape(n * rows, cols), py.reshape(n * rows, cols), cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT, borderValue=0.0,
    ).reshape(n, rows, cols)  # fmt: skip
    results = []
    for first in (0, 2):
        score = np.zeros(ox.shape, dtype=np.float64)
        used = np.zeros(ox.shape, dtype=np.float64)
        for val, counted in zip(vals[first:], inside[first:], strict=True):
            score += val
            used += counted
        score = np.where(used >= 3, score / np.sqrt(np.maximum(used, 1.0)), -np.inf)
        a, li = np.unravel_index(int(np.argmax(score)), score.shape)
        other = np.array([ox[a, li], oy[a, li]], dtype=np.float64)
        results.append((float(score[a, li]), np.stack([v, other] if k == 0 else [other, v], axis=1)))
    return results[0], results[1]


def _top_peaks(score: FloatImage, n: int) -> npt.NDArray[np.int64]:
    """Row/column indices of the ``n`` best local maxima of ``score`` (7x7 non-maximum suppression)."""
    dil = cv2.dilate(score, np.ones((7, 7), np.uint8))
    at = np.flatnonzero((score >= dil) & np.isfinite(score))
    order = np.argsort(-score.ravel()[at])[:n]
    return np.stack(np.divmod(at[order], score.shape[1]), axis=1).astype(np.int64)


def _lattice_points(ac: FloatImage, step: float) -> npt.NDArray[np.float64]:
    """Lattice coordinates (i, j) of the points within reach of the autocorrelation for a period ``step``."""
    h, w = ac.shape
    return _lattice_range(int((min(h, w) / 2 - 2) / max(step, 1.0)))


@lru_cache(maxsize=64)
def _lattice_range(n: int) -> npt.NDArray[np.float64]:
    """The (i, j) of :func:`_lattice_points` up to ``n`` periods (read-only: shared between calls)."""
    ij = np.array(
        [(i, j) for i in range(-n, n + 1) for j in range(0, n + 1) if (j > 0 or i > 0)], dtype=np.float64
    ).reshape(-1, 2)
    ij.flags.writeable = False
    return ij


#: The offsets :func:`_fine` and :func:`_fine_axes` try around a lattice vector: 1/8 px steps up to 1.5 px.
_FINE_STEPS = np.stack([a.ravel() for a in np.meshgrid(*[np.arange(-1.5, 1.5001, 0.125)] * 2)], axis=1)
_FINE_STEPS.flags.writeable = False


def _fine_axes(ac: FloatImage, basis: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Sub-pixel refinement of two independent lattice vectors, one after the other, on every point in reach."""
    h, w = ac.shape
    cy, cx = h // 2, w // 2
    reach = min(h, w) / 2 - 2
    b = basis.copy()
    ij = _lattice_points(ac, min(float(np.hypot(*b[:, 0])), float(np.hypot(*b[:, 1]))))
    for k in (0, 1, 0, 1):
        moving = ij[ij[:, k] != 0]
        cand = b[:, k][None, :] + _FINE_STEPS  # (C, 2)
        fixed = moving[:, 1 - k][:, None] * b[:, 1 - k][None, :]  # (P, 2)
        # The points within reach of the first candidate (all candidates keep those), then each coordinate.
        first = moving[:, k][:, None] * cand[0][None, :] + fixed
        keep = np.hypot(first[:, 0], first[:, 1]) <= reach
        if not keep.any():
            continue
        steps, fixed = moving[keep, k][None, :], fixed[keep]
        px = (steps * cand[:, :1] + fixed[None, :, 0] + cx).astype(np.float32)  # (C, P)
        py = (steps * cand[:, 1:] + fixed[None, :, 1] + cy).astype(np.float32)
        vals = cv2.remap(ac, px, py, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
        b[:, k] = cand[int(np.argmax(vals.sum(axis=1)))]
    return b


def _fine(ac: FloatImage, v1: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Sub-pixel refinement of the first basis vector using every lattice point within reach."""
    h, w = ac.shape
    cy, cx = h // 2, w // 2
    reach = min(h, w) / 2 - 2
    ij = _lattice_points(ac, float(np.hypot(*v1)))
    ij = ij[np.hypot(ij[:, 0], ij[:, 1]) * np.hypot(*v1) <= reach]
    if len(ij) == 0:
        return v1
    cand = v1[None, :] + _FINE_STEPS  # (C, 2)
    px = (cand[:, :1] * ij[:, 0] - cand[:, 1:] * ij[:, 1] + cx).astype(np.float32)
    py = (cand[:, 1:] * ij[:, 0] + cand[:, :1] * ij[:, 1] + cy).astype(np.float32)
    vals = cv2.remap(ac, px, py, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    return np.asarray(cand[int(np.argmax(vals.sum(axis=1)))], dtype=np.float64)


def _tile_extent(r: FloatImage, basis: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Width and height, in tile-space pixels, of the whole picture ``r`` mapped through ``basis``."""
    h, w = r.shape
    corners = np.array([[0, 0], [w, 0], [0, h], [w, h]], dtype=np.float64) - [w / 2, h / 2]
    canon = corners @ np.linalg.inv(basis / TILE).T
    return np.asarray(canon.max(axis=0) - canon.min(axis=0), dtype=np.float64)


def _to_tile_space(
    r: FloatImage,
    basis: npt.NDArray[np.float64] | None,
    whole: bool = False,
    padded: bool = False,
    window: int = _WARP_MAX,
    border: int = cv2.BORDER_CONSTANT,
) -> tuple[FloatImage, npt.NDArray[np.float64] | None, tuple[int, int]]:
    """The whitened image warped into tile coordinates (if a basis is given), the tile -> image affine map,
    and the (x, y) shift to add to its coordinates for the phase of :func:`_fold`'s tiles.

    :func:`_fold` reads a central window of at most :data:`_WARP_MAX` tile-space pixels; ``whole`` warps
    the whole picture instead, grown by an even number of pixels on each axis so the shift is whole.
    ``padded`` returns the window at the top left of zeros grown to whole tiles (warped there directly:
    no copy of the window).
    """
    h, w = r.shape
    m = None
    shift = (0, 0)
    cw, ch = w, h
    if basis is not None:
        b = basis / TILE  # canonical -> image linear map
        # A central window of at most _WARP_MAX^2 tile-space pixels (64 tiles) is plenty and bounds the cost.
        full = [int(np.ceil(extent)) for extent in _tile_extent(r, basis)]
        cw, ch = (min(f, window) for f in full)
        if whole:
            grow = [-(-max(f - c, 0) // 2) for f, c in zip(full, (cw, ch), strict=True)]
            shift = (-grow[0], -grow[1])
            cw, ch = cw + 2 * grow[0], ch + 2 * grow[1]
        m = np.zeros((2, 3), dtype=np.float64)
        m[:, :2] = b
        m[:, 2] = np.array([w / 2, h / 2]) - b @ np.array([cw / 2, ch / 2])
    if m is not None and _whole_half(m):
        grown = (-(-ch // TILE) * TILE, -(-cw // TILE) * TILE)
        out = np.zeros(grown, np.float32) if padded else np.empty((ch, cw), np.float32)
        _decimate(r, m, out[:ch, :cw])
        return out, m, shift
    if not padded:
        if m is not None:
            r = np.asarray(
                cv2.warpAffine(
                    r, m, (cw, ch), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=border, borderValue=0.0
                ),
                dtype=np.float32,
            )
        return r, m, shift
    out = np.zeros((-(-ch // TILE) * TILE, -(-cw // TILE) * TILE), dtype=np.float32)
    if m is None:
        out[:h, :w] = r
    else:
        view = out[:ch, :cw]
        got = cv2.warpAffine(r, m, (cw, ch), dst=view, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderValue=0.0)
        if not np.shares_memory(got, out):  # an OpenCV that cannot write into the view returns a new array
            view[...] = got
    return out, m, shift


def _whole_half(m: npt.NDArray[np.float64]) -> bool:
    """Whether the tile -> image map ``m`` is the exact 2x prior at a whole-pixel offset: every sample of the
    bilinear warp then falls on a pixel (weights 1 and 0), so the warp is every other pixel (:func:`_decimate`)."""
    return bool(np.array_equal(m[:, :2], 2.0 * np.eye(2)) and np.array_equal(m[:, 2], np.round(m[:, 2])))


def _decimate(r: FloatImage, m: npt.NDArray[np.float64], out: FloatImage) -> None:
    """What ``cv2.warpAffine`` writes into ``out`` (zeros outside the picture) for a map :func:`_whole_half`
    accepts, bit for bit, as a strided copy at a quarter of the warp's CPU."""
    h, w = r.shape
    (ox, oy), (ch, cw) = (int(v) for v in m[:, 2]), out.shape
    x0, y0 = max(0, -(ox // 2)), max(0, -(oy // 2))  # the first tile pixels whose sample is inside
    x1, y1 = min(cw, (w - 1 - ox) // 2 + 1), min(ch, (h - 1 - oy) // 2 + 1)
    out[...] = 0.0
    if x1 > x0 and y1 > y0:
        out[y0:y1, x0:x1] = r[2 * y0 + oy : 2 * (y1 - 1) + oy + 1 : 2, 2 * x0 + ox : 2 * (x1 - 1) + ox + 1 : 2]


def _fold(r: FloatImage, basis: npt.NDArray[np.float64] | None, window: int = _WARP_MAX) -> FloatImage:
    """Warp the whitened image into tile coordinates (if a basis is given) and sum all tiles (of a central
    window of at most ``window`` tile-space pixels a side)."""
    return _fold_plane(r, basis, window)[0]


def _fold_plane(
    r: FloatImage, basis: npt.NDArray[np.float64] | None, window: int = _WARP_MAX
) -> tuple[FloatImage, FloatImage]:
    """:func:`_fold` and the tile-space window it summed (zero-padded to whole tiles)."""
    padded = _to_tile_space(r, basis, padded=True, window=window)[0]
    return _fold_tiles(padded), padded


def _fold_tiles(plane: FloatImage) -> FloatImage:
    """The sum of the TILE x TILE tiles of ``plane`` (whole tiles a side): rows of tiles first, each a
    contiguous block (twice as fast as numpy's reduction over both tile axes at once)."""
    ph, pw = plane.shape
    rows = plane.reshape(ph // TILE, TILE * pw).sum(axis=0, dtype=np.float32)
    return np.asarray(rows.reshape(TILE, pw // TILE, TILE).sum(axis=1, dtype=np.float32), dtype=np.float32)


@dataclass(frozen=True)
class _Read:
    z: float
    payload: Payload | None  # None: not decoded, the sync peak being too weak for any payload to count
    mac_ok: bool
    symmetry: int  # index into _DIHEDRAL
    shift: tuple[int, int]  # cyclic offset (dy, dx) of the sync peak in the fold read through the symmetry
    fold: FloatImage
    key: bytes
    #: The tile-space window the fold summed (kept for :func:`_local_read`; None for folds of parts).
    plane: FloatImage | None = field(default=None, repr=False, compare=False)
    #: The fold's correlation with the sync template of each symmetry (:func:`_sync_corr`; :func:`_local_read`
    #: starts from it).
    corr: FloatImage | None = field(default=None, repr=False, compare=False)

    @cached_property
    def soft(self) -> npt.NDArray[np.float64]:
        """Soft values of the coded bits (only asked of the reads that may count: most reads are rejected)."""
        return _soft_bits(self.fold, self.symmetry, self.shift, self.key)


def _soft_bits(acc: FloatImage, g: int, shift: tuple[int, int], key: bytes) -> npt.NDArray[np.float64]:
    """The fold read through symmetry ``g``, aligned on the sync peak, summed per data cell and per coded bit."""
    lay = _layout(key)
    variant = acc.ravel()[_dihedral_index()[g]].reshape(TILE, TILE)
    aligned = np.roll(variant, (-shift[0], -shift[1]), axis=(0, 1))
    cells = aligned.reshape(_CELLS, _CELL, _CELLS, _CELL).sum(axis=(1, 3)).ravel() * lay.pn
    return np.bincount(lay.data_bit, weights=cells[lay.data_cells], minlength=CODED_BITS).astype(np.float64)


def _sync_corr(acc: FloatImage, key: bytes) -> FloatImage:
    """C_g, the fold against the sync template mapped by each of the 8 flips/rotations (the same values as the
    mapped folds against the template), one row of all cyclic offsets per symmetry."""
    corr = fft.irfft2(fft.rfft2(acc)[None] * _sync_spectra(key), s=acc.shape, axes=(1, 2))
    return np.asarray(corr.reshape(len(_DIHEDRAL), -1), dtype=np.float32)


def _sync_peak(acc: FloatImage, key: bytes, corr: FloatImage | None = None) -> tuple[float, int, tuple[int, int]]:
    """z-score of the best sync peak over the cyclic offsets of the 8 flips/rotations of the fold, its
    symmetry (index into _DIHEDRAL) and offset (dy, dx) in the fold read through that symmetry (``corr``:
    :func:`_sync_corr` of the fold, when made already)."""
    corr = _sync_corr(acc, key) if corr is None else corr
    peak = corr.argmax(axis=1)
    zs = _peak_z(corr)
    g = int(np.argmax(zs))
    ey, ex = np.unravel_index(int(peak[g]), acc.shape)
    dx, dy = (_DIHEDRAL[g] @ np.array([ex, ey])) % TILE  # C_g's peak at e is the mapped fold's at g e
    return float(zs[g]), g, (int(dy), int(dx))


def _peak_z(corr: FloatImage) -> FloatImage:
    """The z-score of the highest value of each correlation along the last axis."""
    return np.asarray((corr.max(axis=-1) - corr.mean(axis=-1)) / (corr.std(axis=-1) + 1e-12), dtype=np.float32)


def _screen(r: FloatImage, basis: npt.NDArray[np.float64], key: bytes) -> float | None:
    """The sync z of a first read of the central quarter of the fold's window (of the whole picture at the exact
    half-size prior: :func:`_half_fold`); the full read is worth it only from :data:`_SCREEN_Z`.

    Only on large pictures (a full window of :data:`_WARP_MAX` tile pixels a side; None on others).
    """
    if not _screened(r, basis):
        return None
    if np.array_equal(basis, np.eye(2) * (TILE // 2)):
        return _sync_peak(_half_fold(r), key)[0]
    return _sync_peak(_fold(r, basis, _SCREEN_WINDOW), key)[0]


def _screened(r: FloatImage, basis: npt.NDArray[np.float64]) -> bool:
    """Whether :func:`_screen` reads the candidate ``basis`` first (its full window is :data:`_WARP_MAX` a side)."""
    return float(_tile_extent(r, basis).min()) >= _WARP_MAX


def _half_fold(r: FloatImage) -> FloatImage:
    """The fold of the whole picture at the exact half-size prior, summed in image space and brought to tile size.

    A picture pasted at half size into a larger one may sit anywhere, and a central screening window misses
    one in a corner; at the exact prior (no refinement: :func:`_estimate_lattice` keeps it when the lattice
    does not show) the tile is 64 image pixels, so the image's own 64-pixel blocks are summed (one pass, no
    warp) and the sum is interpolated to 128 (linear, cyclic: what folding the 2x warp gives, up to its phase).
    """
    h, w = r.shape
    half = TILE // 2
    rows = np.zeros((half, -(-w // half) * half), dtype=np.float32)  # the rows folded, then the columns
    for top in range(0, h, half):
        part = r[top : top + half]
        rows[: part.shape[0], :w] += part
    small = rows.reshape(half, -1, half).sum(axis=1)
    cols = np.empty((half, TILE), dtype=np.float32)
    cols[:, 0::2] = small
    cols[:, 1::2] = (small + np.roll(small, -1, axis=1)) / 2
    out = np.empty((TILE, TILE), dtype=np.float32)
    out[0::2] = cols
    out[1::2] = (cols + np.roll(cols, -1, axis=0)) / 2
    return out


def _read_fold(acc: FloatImage, key: bytes, candidates: Callable[[int], list[bytes]] | None) -> _Read:
    """Sync search over the cyclic offsets of the 8 flips/rotations of the fold, then the payload of the best.

    ``candidates(g)`` gives the host hashes to try when the fold is read through symmetry ``g``.
    """
    corr = _sync_corr(acc, key)
    z, g, (dy, dx) = _sync_peak(acc, key, corr)
    read = _Read(z, None, False, g, (dy, dx), acc, key, corr=corr)
    if z < Z_WITH_MAC:
        # No MAC can make so weak a peak present: the soft bits, the Viterbi decode and the host hashes, most
        # of the cost of rejecting an unmarked image, wait until this read turns out to be the best one.
        return read
    if candidates is None:
        payload, mac_ok = decode_soft(read.soft, key)
        return replace(read, payload=payload, mac_ok=mac_ok)
    payload, bound = decode_soft_bound(read.soft, key, candidates(g))
    return replace(read, payload=payload, mac_ok=bound is not None)


#: A fold whose sync peak is under :data:`Z_AREA` may still come from a marked area covering part of the
#: picture (pasted at half size into one of its own size: a quarter of the fold, half its z). Such reads of
#: z >= _SCAN_FROM are scanned tile by tile (:func:`_local_read`) at their :data:`_SCAN_PEAKS` best sync
#: peaks, and the rectangle of tiles whose summed score reaches _SCAN_Z is folded and read on its own.
_SCAN_FROM = 4.4
_SCAN_PEAKS = 8
_SCAN_Z = 7.0


@lru_cache(maxsize=8)
def _sync_tiles(key: bytes) -> FloatImage:
    """The sync template read through each symmetry: ``[g]`` = ``S_g``."""
    sync = _layout(key).sync_tile.ravel()[_gather(_DIHEDRAL)]
    return np.asarray(sync.reshape(len(_DIHEDRAL), TILE, TILE), dtype=np.float32)


def _local_read(
    padded: FloatImage, fold: FloatImage, key: bytes, corr: FloatImage | None = None
) -> tuple[float, _Read | None]:
    """The fold of the rectangle of tiles where the sync correlates best, when that is strong enough.

    ``padded`` is a read's tile-space window (:attr:`_Read.plane`), ``fold`` its sum (``corr``: its
    :func:`_sync_corr`, when the read made it). The fold is a sum of
    tiles, so its correlation with the sync template at an offset is the sum of the tiles' own correlations
    there. At each of the fold's :data:`_SCAN_PEAKS` best peaks, each tile's score is compared with the noise
    a tile of its energy gives (the fold's variance over all offsets shared out by energy, the host being
    whitened), and every rectangle of tiles is scored by its summed scores over the square root of its
    summed variances. Over a marked area only, that z is what the area's own fold gives (a paste at half
    size: 8.3-30 on the bench photos, where the whole picture's fold had 4.8-5); on the bench's unmarked
    pictures the maximum over the rectangles and peaks is 4.9 on average (sd 0.3, 6.9 in 1,000). Returns that
    maximum and the rectangle's read (None when the maximum is under :data:`_SCAN_Z`).
    """
    ph, pw = padded.shape
    ny, nx = ph // TILE, pw // TILE
    tiles = padded.reshape(ny, TILE, nx, TILE)
    corr = _sync_corr(fold, key) if corr is None else corr
    sd = corr.std(axis=1)
    zs = ((corr - corr.mean(axis=1, keepdims=True)) / sd[:, None]).ravel()
    top = np.argpartition(-zs, _SCAN_PEAKS)[:_SCAN_PEAKS]
    sym, (ey, ex) = top // (TILE * TILE), np.divmod(top % (TILE * TILE), TILE)
    # Peak e of symmetry g: each tile against that template moved by e (C_g[e] = sum_t fold[t + e] S_g[t]).
    sync = _sync_tiles(key)
    temps = np.stack([np.roll(sync[g], (y, x), axis=(0, 1)) for g, y, x in zip(sym, ey, ex, strict=True)])
    temps -= temps.mean(axis=(1, 2), keepdims=True)  # a tile's mean (flat areas, edges) must not score
    # einsum, not a BLAS product: OpenBLAS threads on so skinny a product spin for more CPU than they save.
    scores = np.einsum("aibj,kij->abk", tiles, temps).reshape(ny * nx, -1).astype(np.float64)  # (tiles, peaks)
    energy = np.einsum("aibj,aibj->ab", tiles, tiles).ravel().astype(np.float64)
    energy = np.maximum(energy, 0.1 * float(energy.mean()))  # near-empty tiles (padding) get a noise floor
    var = (sd[sym] ** 2)[None, :] * (energy / float(energy.sum()))[:, None]
    cs = np.zeros((ny + 1, nx + 1, len(top)))
    cv = np.zeros((ny + 1, nx + 1, len(top)))
    cs[1:, 1:] = scores.reshape(ny, nx, -1).cumsum(0).cumsum(1)
    cv[1:, 1:] = var.reshape(ny, nx, -1).cumsum(0).cumsum(1)
    y0, y1 = np.triu_indices(ny + 1, 1)
    x0, x1 = np.triu_indices(nx + 1, 1)

    def box(c: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return np.asarray(c[y1][:, x1] - c[y0][:, x1] - c[y1][:, x0] + c[y0][:, x0])  # (rows, cols, peaks)

    z = box(cs) / np.sqrt(np.maximum(box(cv), 1e-12))
    i, j, k = np.unravel_index(int(np.argmax(z)), z.shape)
    best = float(z[i, j, k])
    if best < _SCAN_Z:
        return best, None
    part = padded[y0[i] * TILE : y1[i] * TILE, x0[j] * TILE : x1[j] * TILE]
    fold = np.asarray(part.reshape(y1[i] - y0[i], TILE, x1[j] - x0[j], TILE).sum(axis=(0, 2)), dtype=np.float32)
    return best, _read_fold(fold, key, lambda g: [])


#: The half-size paste search (:func:`_half_windows`): window positions per axis, and the z from which the best
#: window starts the area search. On the bench's 1,000 unmarked pictures the best window has z mean 4.57, sd 0.28,
#: max 5.68; marked pastes at half size of the 512 px and larger photos read 9-22 (JPEG q85 after the paste: 5.2-13).
_WINDOW_STEPS = 5
_WINDOW_Z = 6.5
#: The windows are searched only where the whole picture's sync z at the exact half-size prior reaches this: that
#: of 78 % of unmarked pictures and of all 45 such pastes at random positions (4.1 and more); the ~2 ms of CPU the
#: windows cost at 2 MP are saved on the others (on 40 unmarked 1600x1200 photos: 5 searched instead of 18). That z
#: alone decides (the screen of the prior over the whole picture, :func:`_half_fold`, also when the prior was then
#: read in full, whose window is only the picture's centre; made for the gate where the prior was refined off its
#: exact scale and no read reached :data:`_SCAN_FROM`). The windows used to be searched only when some read also
#: reached _SCAN_FROM, which a paste's picture did by chance, through an unrelated candidate's host texture (with
#: one candidate fewer read, a 1175x1600 photo pasted at half size in a corner was no longer found). They now run
#: on 79 % of the bench's 1,000 unmarked pictures (70 % before; best window z unchanged, max 5.65: none starts an
#: area search), and 3 more of the bench's half-size pastes verify, 1 more at 2 MP.
_WINDOW_FROM = 4.0


@lru_cache(maxsize=8)
def _half_sync_spectra(key: bytes) -> npt.NDArray[np.complex64]:
    """:func:`_sync_spectra` for the tile at half size (64 pixels: the 2-pixel cells become single pixels)."""
    half = TILE // 2
    small = np.stack([cv2.resize(t, (half, half), interpolation=cv2.INTER_AREA) for t in _sync_tiles(key)])
    return np.asarray(np.conj(fft.rfft2(small, axes=(1, 2))), dtype=np.complex64)


@dataclass(frozen=True)
class _Window:
    """The best of :func:`_half_windows`' windows."""

    z: float  # its sync z
    box: tuple[int, int, int, int]  # y0, y1, x0, x1 in image pixels
    symmetry: int  # the orientation the sync peak was found in (index into _DIHEDRAL)
    #: The peak (y, x) in the window's 64-pixel fold: where the half-size tile's origin lies, modulo 64 image pixels
    #: (the marked picture's first pixel, on one of the paste's corners).
    origin: tuple[int, int]


def _half_windows(r: FloatImage, key: bytes) -> _Window:
    """The best sync z over windows of half the picture's size, with that window and its sync peak.

    A picture pasted at half size into one of its own size is a quarter of the whole fold, and a fold's z
    grows with the marked share of it: the whole picture's fold leaves such a paste at z ~5-7, where the
    surround's own peaks reach (and at odd offsets often under the scan's reach), while a window of its size
    over it reads it at twice that. The tile is then 64 image pixels, so the windows are folded in image
    space, no warp: each window's fold is a difference of running sums of the picture's 64-pixel blocks,
    correlated with the half-size sync template upright and in the one of its eight orientations that
    correlates best with the whole picture's fold (a paste lies the same way in every window; correlating
    every window in all eight cost three quarters of the search). :data:`_WINDOW_STEPS` start positions per
    axis, from one edge to the other: any such paste covers 77 % or more of one window.
    """
    half = TILE // 2
    h, w = r.shape
    ny, nx = -(-h // half), -(-w // half)
    wy, wx = max(1, round(ny / 2)), max(1, round(nx / 2))
    ys = sorted({int(v) for v in np.linspace(0, ny - wy, _WINDOW_STEPS).round()})
    xs = sorted({int(v) for v in np.linspace(0, nx - wx, _WINDOW_STEPS).round()})
    # Running sums of the picture's 64-row strips and of each band's 64-pixel blocks: every window's fold is
    # then a difference of two sums, one pass over the picture in all. Only the strip sums a window starts or ends
    # at (and the whole picture's) are kept: one strip's worth of running sum stays in the cache.
    # (A loop of whole-plane adds: numpy's cumsum along a leading axis is some fifty times slower.)
    kept = {0, ny, *ys, *(y + wy for y in ys)}
    running = np.zeros((half, nx * half), dtype=np.float32)
    strips = {0: running.copy()}
    for k in range(ny):
        part = r[k * half : (k + 1) * half]
        running[: part.shape[0], :w] += part
        if k + 1 in kept:
            strips[k + 1] = running.copy()
    folds = []
    for y in ys:
        band = (strips[y + wy] - strips[y]).reshape(half, nx, half)
        blocks = np.zeros((nx + 1, half, half), dtype=np.float32)
        for j in range(nx):
            np.add(blocks[j], band[:, j], out=blocks[j + 1])
        folds += [blocks[x + wx] - blocks[x] for x in xs]
    spectra = fft.rfft2(np.stack(folds), axes=(1, 2))
    templates = _half_sync_spectra(key)
    # The paste's orientation is the same in every window: take the whole picture's best one (and the upright
    # one) rather than correlating each window in all eight, a quarter of the inverse transforms.
    whole = fft.irfft2(fft.rfft2(strips[ny].reshape(half, nx, half).sum(axis=1)) * templates, s=(half, half))
    turns = sorted({0, int(np.argmax(_peak_z(whole.reshape(len(_DIHEDRAL), -1))))})
    corr = fft.irfft2(spectra[:, None] * templates[turns][None], s=(half, half))
    z = _peak_z(corr.reshape(len(folds), len(turns), -1))
    at, turn = (int(i) for i in np.unravel_index(int(np.argmax(z)), z.shape))
    y, x = ys[at // len(xs)], xs[at % len(xs)]
    ey, ex = np.unravel_index(int(np.argmax(corr[at, turn])), (half, half))
    box = (y * half, min(h, (y + wy) * half), x * half, min(w, (x + wx) * half))
    return _Window(float(z[at, turn]), box, turns[turn], (int(ey), int(ex)))


def _window_read(r: FloatImage, box: tuple[int, int, int, int], key: bytes) -> _Read:
    """The read of the fold of an image window (y0, y1, x0, x1) at the exact half-size prior, in `_fold`'s phase."""
    warped, m, shift = _to_tile_space(r, np.eye(2) * (TILE // 2), whole=True)
    assert m is not None
    # Tile-space coordinates at the half-size prior: t = 2 (image - offset).
    ty0, ty1 = (max(0, min(warped.shape[0], round(2 * (v - m[1, 2])))) for v in box[:2])
    tx0, tx1 = (max(0, min(warped.shape[1], round(2 * (v - m[0, 2])))) for v in box[2:])
    return _read_fold(_box_fold(warped, (ty0, ty1, tx0, tx1), shift), key, lambda g: [])


#: A picture pasted at half size and then re-encoded keeps little of the tile mark (its 2-pixel cells are single
#: pixels there, which JPEG q85 mostly removes), but all of the low-frequency layer, which is read from the pasted
#: picture's own area: when the best half-size window (:func:`_half_windows`) reaches _PASTE_FROM and neither layer
#: verified otherwise, the candidate areas between the paste's straight edges (:func:`_paste_boxes`) are scored by
#: that layer's presence z (:func:`._lowfreq.read_lowfreq_area`) and the best is read when it reaches _PASTE_Z, the
#: layer's own decode gate (its 32-bit MAC is the decision: the gate only spares the read's CPU).
#: Calibration (``bench/watermark/run.py``): the best window of 1,000 unmarked pictures has z mean 4.3, sd 0.3 and
#: reaches 5.0 on 21 of them (those pay the search: ~2 ms on the bench's pictures, ~8 ms at 512 px, ~12 ms at 2 MP);
#: such pastes at random positions saved as JPEG q85 or q75 read 4.9-16. Searched on 1,000 unmarked pictures
#: whatever their window's z, the best area's presence z has mean 2.2, sd 0.5, max 3.9 (the 21 searched: max 2.6);
#: the exact area of a marked paste reads 7-15 (a half-size text screenshot 4.8), one pixel off 2-4.
_PASTE_FROM = 5.0
_PASTE_Z = Z_TRY
#: :func:`_paste_boxes`: each edge's jump is taken against the median jumps this far either side (pixels 2-6 away).
_EDGE_SIDE = 5


def _paste_boxes(y: FloatImage, window: _Window) -> list[tuple[int, int, int, int]]:
    """Candidate areas (y0, y1, x0, x1) of a picture pasted at half size over ``window``, between its straight edges.

    A pasted picture ends at a straight line across which the luminance jumps along the whole side
    (:func:`_edge_jumps`). Each side is sought within a third of the window's side of the window's own (the paste
    covers 77 % of some window or more, and the best window is most often that one). The side where the marked
    picture starts (which one follows from the orientation the window's sync peak was found in) lies on the tile
    lattice the peak gives, to a pixel: the lattice boundary with the strongest edge; the other side may be anywhere
    (the paste's size is not known): the two strongest edges. The picture's own border is a candidate too where it
    is within reach (on the lattice, for the first side): a paste in a corner shows no jump there. At most 36 areas,
    4 where no border is near.
    """
    half = TILE // 2
    g_inv = np.round(np.linalg.inv(_DIHEDRAL[window.symmetry])).astype(np.int64)
    y0, y1, x0, x1 = window.box
    reach = max(half, max(y1 - y0, x1 - x0) // 3)
    sides: list[list[tuple[int, int]]] = []
    for axis, (a, b), span, origin in (
        (0, (y0, y1), (x0, x1), window.origin[0]),
        (1, (x0, x1), (y0, y1), window.origin[1]),
    ):
        jump = _edge_jumps(y if axis == 0 else y.T, (a - reach, b + reach + 1), span)
        if g_inv[1 - axis].sum() > 0:  # the marked picture starts at the area's start along this axis
            starts, ends = _lattice_edges(jump, a, origin, reach), _strongest_edges(jump, b, reach)
        else:
            starts, ends = _strongest_edges(jump, a, reach), _lattice_edges(jump, b, (origin + 1) % half, reach)
        sides.append([(s, e) for s in starts for e in ends if e - s >= half // 2])
    return [(ya, yb, xa, xb) for ya, yb in sides[0] for xa, xb in sides[1]]


def _edge_jumps(plane: FloatImage, bounds: tuple[int, int], span: tuple[int, int]) -> npt.NDArray[np.float64]:
    """How strongly each boundary p (between rows p - 1 and p of ``plane``, p in ``bounds``) is a straight edge along
    the middle three quarters of the columns ``span``: the mean jump across it, less the median jumps a few pixels
    either side (a busy texture jumps at every pixel, a paste's edge at one). Indexed by p, from 0 to the number of
    rows (the picture's own borders); -inf out of ``bounds`` and at the borders."""
    n = plane.shape[0]
    lo, hi = max(1, bounds[0]), min(n, bounds[1])
    trim = (span[1] - span[0]) // 8
    jump = np.full(n + 1, -np.inf)
    if hi > lo:
        raw = np.abs(np.diff(plane[lo - 1 : hi, span[0] + trim : span[1] - trim], axis=0)).mean(
            axis=1, dtype=np.float64
        )
        near = np.lib.stride_tricks.sliding_window_view(np.pad(raw, _EDGE_SIDE + 1, mode="edge"), _EDGE_SIDE)
        jump[lo:hi] = raw - 0.5 * (np.median(near[: len(raw)], axis=1) + np.median(near[_EDGE_SIDE + 3 :], axis=1))
    return jump


def _lattice_edges(jump: npt.NDArray[np.float64], e: int, o: int, reach: int) -> list[int]:
    """The boundary on the lattice o + 64 k within ``reach`` of ``e`` with the strongest edge (:func:`_edge_jumps`),
    moved to the strongest of itself and its two neighbours, and the picture's border where the lattice meets it."""
    half, n = TILE // 2, len(jump) - 1
    best, border = None, []
    for p in range(e - reach + (o - e + reach) % half, e + reach + 1, half):
        border += [q for q in (0, n) if abs(p - q) <= 1]
        around = [q for q in (p - 1, p, p + 1) if 0 < q < n]
        if around:
            q = max(around, key=lambda q: float(jump[q]))
            best = q if best is None or jump[q] > jump[best] else best
    return ([] if best is None else [best]) + border


def _strongest_edges(jump: npt.NDArray[np.float64], e: int, reach: int) -> list[int]:
    """The two strongest edges (:func:`_edge_jumps`) within ``reach`` of ``e``, three pixels apart at least, and the
    picture's border when within reach."""
    n = len(jump) - 1
    lo, hi = max(1, e - reach), min(n - 1, e + reach)
    out: list[int] = []
    for p in lo + np.argsort(-jump[lo : hi + 1], kind="stable"):
        if all(abs(int(p) - q) > 2 for q in out):
            out.append(int(p))
            if len(out) == 2:
                break
    return out + [q for q in (0, n) if abs(e - q) <= reach]


#: Where the marked area's centre is only estimated (:func:`_mark_area`, a few pixels off), the exact
#: hash is also tried at offsets of up to _CENTRE_REACH tile-space pixels, in steps of _CENTRE_STEP
#: (the hash of 12-pixel cells tolerates about +-2): 80 more host hashes, each a 2^-16 chance for a
#: copied MAC to pass.
_CENTRE_REACH = 8
_CENTRE_STEP = 2
#: The same around the centre of the area with its first corner on the tile lattice (:func:`_snap_corner`): a
#: coarser grid (24 more hashes, within 1.5 px of any point within +-7.5), the usual 37 flips at its centre.
_SNAP_REACH = 6
_SNAP_STEP = 3
#: (Fold, host hash) pairs one area search checks at most (each a 2^-16 chance for a wrong MAC to pass): see the
#: module docstring.
_AREA_HASHES = 120
#: How far (tile pixels) :func:`_edge_centre` looks for a paste's far edges from where the step fit put them.
_EDGE_REACH = 64


def _read_marked_area(
    r: FloatImage,
    host: FloatImage,
    read: _Read,
    basis: npt.NDArray[np.float64] | None,
    key: bytes,
    start: _Read | None = None,
) -> _Read:
    """``read`` verified with hashes around the centre of the marked area, when that is part of the picture.

    For a mark whose sync peak is strong enough (:data:`Z_AREA`) but whose MAC fits no hash around the
    image centre: the marked picture may sit inside a larger one (pasted, letterboxed, padded). The marked
    area is located, its tiles alone are folded again (the surround only adds noise to the fold: a picture
    pasted at half size into one of its own size is a quarter of the fold) and that fold's bits locate the
    area again, up to :data:`_AREA_ROUNDS` times. The last fold is then checked against the hashes around the
    last centre only (:func:`_centre_candidates`; and around the same centre with the area's first corner on the
    tile lattice, :func:`_snap_corner`), so a picture is tried with as many host hashes as one round. The
    result counts only when its MAC verifies: the area was chosen where the sync correlates, which biases
    the refolded sync peak upward on unmarked pictures, but not the data cells the MAC is read from (they
    are disjoint from the sync cells).
    """
    again, area = start or read, None
    for _ in range(_AREA_ROUNDS):
        found = _mark_area(r, basis, again, key)
        if found is None or (area is not None and found.centre == area.centre):
            break
        area = found
        again = _read_fold(area.fold, key, lambda g: [])
    if area is None:
        return read
    # Each fold is checked against the hashes around its own area's centres: the fitted area (and its snapped
    # variant) and, where the paste's straight edges were found, the area between them, folded on its own (the
    # fitted area may take in surround or leave out marked rows, its fold then decoding wrong bits).
    folds = [(again, [area.centre, area.snapped])]
    edges = _edge_box(host, basis, area)
    if edges != area.box:
        folds.insert(
            0, (_read_fold(_box_fold(area.warped, edges, area.shift), key, lambda g: []), [area.image_centre(edges)])
        )
    lists: list[Iterator[tuple[int, bytes]]] = []
    for n, (fold_read, centres) in enumerate(folds):
        b = (np.eye(2) * TILE if basis is None else basis) @ np.linalg.inv(_DIHEDRAL[fold_read.symmetry])
        for k, c in enumerate(centres):
            if k and max(abs(c[0] - centres[0][0]), abs(c[1] - centres[0][1])) <= 1.0:
                continue
            reach, step = (_CENTRE_REACH, _CENTRE_STEP) if fold_read is again and not k else (_SNAP_REACH, _SNAP_STEP)
            lists.append(zip(repeat(n), _centre_candidates(host, b, key, c, reach, step)))
    # Round robin over the centres, each (fold, hash) once, at most _AREA_HASHES: the false-positive budget. The
    # hashes are made as the round robin takes them: most of the fitted centre's grid lies beyond the budget.
    tried: dict[tuple[int, bytes], None] = {}
    for p in (p for group in zip_longest(*lists) for p in group if p is not None):
        tried[p] = None
        if len(tried) == _AREA_HASHES:
            break
    for n, (fold_read, _) in enumerate(folds):
        payload, bound = decode_soft_bound(fold_read.soft, key, [h for i, h in tried if i == n])
        if bound is not None:
            return replace(fold_read, payload=payload, mac_ok=True, z=max(fold_read.z, read.z))
    return read


def _centre_candidates(
    y: FloatImage,
    basis: npt.NDArray[np.float64],
    key: bytes,
    centre: tuple[float, float],
    reach: int = _CENTRE_REACH,
    step: int = _CENTRE_STEP,
) -> Iterator[bytes]:
    """Host hashes around an estimated centre: the usual flips there, then on a grid around it the hash and its
    likeliest variant (one bit flipped: at a point next to the true centre one weak bit often differs), each
    grid point's made only when the caller takes it."""
    yield from _hash_candidates(y, basis, key, centre)
    steps = np.arange(-reach, reach + 1, step, dtype=np.float64)
    for dy in steps:
        for dx in steps:
            if dx or dy:
                c = np.asarray(centre) + basis @ np.array([dx, dy]) / TILE
                yield from hash_candidates(_host_projections(y, basis, key, (float(c[0]), float(c[1]))), 2)


@dataclass(frozen=True)
class _Area:
    """Where :func:`_mark_area` located the marked picture inside a larger one."""

    centre: tuple[float, float]  # image coordinates of the fitted area's centre
    snapped: tuple[float, float]  # the same with the first corner on the tile lattice (:func:`_snap_corner`)
    fold: FloatImage  # the fold of the fitted area alone, in :func:`_fold`'s phase
    box: tuple[int, int, int, int]  # the snapped area (y0, y1, x0, x1) in the whole picture's tile space
    m: npt.NDArray[np.float64] | None  # that tile space -> image map (None: the identity)
    symmetry: int  # the read's symmetry, which tells the first corner
    warped: FloatImage  # the whole picture in tile space, and the shift of :func:`_to_tile_space`
    shift: tuple[int, int]

    def image_centre(self, box: tuple[int, int, int, int]) -> tuple[float, float]:
        """Image coordinates of the centre of a tile-space ``box`` (y0, y1, x0, x1)."""
        y0, y1, x0, x1 = box
        tc = np.array([(x0 + x1 - 1) / 2, (y0 + y1 - 1) / 2])
        c = tc if self.m is None else self.m[:, :2] @ tc + self.m[:, 2]
        return float(c[0]), float(c[1])


def _mark_area(r: FloatImage, basis: npt.NDArray[np.float64] | None, read: _Read, key: bytes) -> _Area | None:
    """Image coordinates of the centre of the marked area, when it covers only part of the picture, the same
    with the area's first corner on the tile lattice (:func:`_snap_corner`), and the fold of that area alone
    (in the phase of :func:`_fold`'s, so :func:`_read_fold` reads it alike): see :class:`_Area`.

    The decoded bits are re-encoded into the full tile as read (symmetry and offset), repeated over the
    picture in tile space and multiplied with the whitened plane: the product's row and column sums are
    positive on average across the marked area and zero-mean elsewhere, so the maximum-sum interval of
    each gives its extent to within a few pixels (where the decoded bits are wrong, their cells add noise
    and the sync cells still locate it). None when the marked area is the whole picture (the image centre
    was already tried).
    """
    lay = _layout(key)
    coded = conv_encode(viterbi_decode(read.soft, INFO_BITS))
    cells = lay.pn.copy()
    cells[lay.data_cells] *= 1.0 - 2.0 * coded[lay.data_bit].astype(np.float32)
    fold_t = np.empty(TILE * TILE, dtype=np.float32)
    fold_t[_dihedral_index()[read.symmetry]] = np.roll(_render(cells), read.shift, axis=(0, 1)).ravel()
    warped, m, (sx, sy) = _to_tile_space(r, basis, whole=True)  # the whole picture: its edges are sought
    h, w = warped.shape
    template = np.roll(fold_t.reshape(TILE, TILE), (-sy, -sx), axis=(0, 1))
    prod = warped * np.tile(template, (-(-h // TILE), -(-w // TILE)))[:h, :w]
    y0, y1, x0, x1 = 0, h, 0, w
    for _ in range(2):  # rows summed over the marked columns only, and the other way round
        y0, y1 = _step_interval(prod[:, x0:x1].sum(axis=1))
        x0, x1 = _step_interval(prod[y0:y1].sum(axis=0))
    edge = TILE // 16
    if (y0 <= edge and x0 <= edge and y1 >= h - edge and x1 >= w - edge) or y1 <= y0 or x1 <= x0:
        return None
    sy0, sy1, sx0, sx1 = _snap_corner((y0, y1, x0, x1), read, (sx, sy))
    tc = np.array([[(x0 + x1 - 1) / 2, (y0 + y1 - 1) / 2], [(sx0 + sx1 - 1) / 2, (sy0 + sy1 - 1) / 2]])
    c = tc if m is None else tc @ m[:, :2].T + m[:, 2]
    return _Area(
        (float(c[0, 0]), float(c[0, 1])),
        (float(c[1, 0]), float(c[1, 1])),
        _box_fold(warped, (y0, y1, x0, x1), (sx, sy)),
        (sy0, sy1, sx0, sx1),
        m,
        read.symmetry,
        warped,
        (sx, sy),
    )


def _edge_box(host: FloatImage, basis: npt.NDArray[np.float64] | None, area: _Area) -> tuple[int, int, int, int]:
    """The snapped area (:attr:`_Area.box`) with its sides on the straight luminance edges of the paste.

    The step fit finds the area's far edges only where the picture carries the mark: flat borders shrink it
    and a busy surround stretches it, by up to half a tile, beyond the grid of hashes tried around the centre.
    A picture pasted into another ends at a straight edge across which the luminance jumps along all its
    rows: each far side moves to the strongest such jump (averaged over the area's rows or columns) within
    :data:`_EDGE_REACH` tile pixels when that is at least twice the median jump there, or else to the
    picture's own border when that is within reach (a paste in a corner, where no jump shows). The first
    corner stays on the tile lattice: at the picture's border when a lattice point (the snapped one or a
    neighbour a tile away) lies there, else at the one with the strongest edge.
    """
    hw = _to_tile_space(host, basis, whole=True, border=cv2.BORDER_REPLICATE)[0]  # no jump at the picture's border
    inside = _to_tile_space(np.ones_like(host), basis, whole=True)[0]
    y0, y1, x0, x1 = area.box
    g_inv = np.round(np.linalg.inv(_DIHEDRAL[area.symmetry])).astype(np.int64)

    def side(plane: FloatImage, valid: FloatImage, a: int, b: int, e: int, first: bool, start: bool) -> int:
        """Side ``e`` (a boundary: between columns e - 1 and e) of the rows [a, b) of ``plane``: the first corner's
        (on the lattice) or a far one, the start of the area or its end."""
        a, b = max(a, 0), min(b, plane.shape[0])
        reach = TILE + 2 if first else _EDGE_REACH
        lo, hi = max(e - reach, 2), min(e + reach + 1, plane.shape[1] - 1)
        if b - a < 8 or hi - lo < 8:
            return e
        cols = np.flatnonzero(valid[a:b].mean(axis=0) > 0.5)
        if len(cols) == 0:
            return e
        border = int(cols[0]) if start else int(cols[-1]) + 1  # the picture's own, as a boundary
        d = np.abs(np.diff(plane[a:b, lo - 2 : hi + 1], axis=1)).mean(axis=0, dtype=np.float64)  # at lo - 1 ...
        jump = np.zeros(plane.shape[1] + 1)
        jump[lo:hi] = d[: hi - lo] + d[1 : hi - lo + 1]  # boundaries p - 1 and p: an upsampled edge spreads over two
        level = 2.0 * float(np.median(jump[lo:hi]))
        if first:
            at_border = [p for p in (e - TILE, e, e + TILE) if abs(p - border) <= 2]
            if at_border:
                return at_border[0]
            strength = {p: float(jump[max(p - 1, lo) : p + 2].max()) for p in (e - TILE, e, e + TILE) if lo <= p < hi}
            best = max(strength, key=strength.__getitem__, default=e)
            return best if strength.get(best, 0.0) >= level else e
        k = lo + int(np.argmax(jump[lo:hi]))
        if jump[k] >= level:
            return k
        return border if abs(border - e) <= reach else e

    if g_inv[0].sum() > 0:
        x0 = side(hw, inside, y0, y1, x0, True, True)
        x1 = side(hw, inside, y0, y1, x1, False, False)
    else:
        x1 = side(hw, inside, y0, y1, x1, True, False)
        x0 = side(hw, inside, y0, y1, x0, False, True)
    if g_inv[1].sum() > 0:
        y0 = side(hw.T, inside.T, x0, x1, y0, True, True)
        y1 = side(hw.T, inside.T, x0, x1, y1, False, False)
    else:
        y1 = side(hw.T, inside.T, x0, x1, y1, True, False)
        y0 = side(hw.T, inside.T, x0, x1, y0, False, True)
    return y0, y1, x0, x1


def _box_fold(warped: FloatImage, box: tuple[int, int, int, int], shift: tuple[int, int]) -> FloatImage:
    """The fold of the tiles of ``box`` (y0, y1, x0, x1; clipped to the plane) of a whole-picture tile-space plane,
    in :func:`_fold`'s phase.

    Whole-picture pixel p is fold coordinate p + (sy, sx) (``shift`` from :func:`_to_tile_space`).
    """
    y0, y1 = max(box[0], 0), min(box[1], warped.shape[0])
    x0, x1 = max(box[2], 0), min(box[3], warped.shape[1])
    ph, pw = -(-(y1 - y0) // TILE) * TILE, -(-(x1 - x0) // TILE) * TILE
    part = np.zeros((ph, pw), dtype=np.float32)
    part[: y1 - y0, : x1 - x0] = warped[y0:y1, x0:x1]
    acc = part.reshape(ph // TILE, TILE, pw // TILE, TILE).sum(axis=(0, 2))
    return np.asarray(np.roll(acc, (y0 + shift[1], x0 + shift[0]), axis=(0, 1)), dtype=np.float32)


def _snap_corner(box: tuple[int, int, int, int], read: _Read, shift: tuple[int, int]) -> tuple[int, int, int, int]:
    """``box`` (y0, y1, x0, x1 in :func:`_mark_area`'s tile space) with the marked picture's first pixel on the lattice.

    The tile pattern starts at the marked picture's first pixel, so that corner lies where the sync peak
    puts the tile's origin, to the pixel; the step fit finds the area's edges only where the picture carries
    the mark (flat borders shrink it, a busy surround stretches it). Which corner of the area is the first
    pixel follows from the flip or turn the read found. The far edges stay as fitted: a second estimate of
    the centre, tried beside the fitted one (it is worse when both edges shrank alike, as on a black border).
    """
    y0, y1, x0, x1 = box
    g_inv = np.round(np.linalg.inv(_DIHEDRAL[read.symmetry])).astype(np.int64)
    # The mapped fold's origin is at read.shift; the fold's own is at g^-1 of it, whole-picture pixel - shift.
    origin = g_inv @ np.array([read.shift[1], read.shift[0]])
    ox, oy = (int(origin[0]) - shift[0]) % TILE, (int(origin[1]) - shift[1]) % TILE

    def onto(a: int, o: int) -> int:
        return a + (o - a + TILE // 2) % TILE - TILE // 2

    # The picture runs from its first pixel along g^-1's axes: forwards (that pixel starts the interval) or back.
    x0, x1 = (onto(x0, ox), x1) if g_inv[0].sum() > 0 else (x0, onto(x1 - 1, ox) + 1)
    y0, y1 = (onto(y0, oy), y1) if g_inv[1].sum() > 0 else (y0, onto(y1 - 1, oy) + 1)
    return y0, y1, x0, x1


def _step_interval(profile: npt.NDArray[np.floating]) -> tuple[int, int]:
    """[start, end) of the step in a profile that is positive on average there and zero-mean elsewhere.

    The maximum-sum run overshoots into the noise on both sides (a zero-mean random walk has positive
    excursions); subtracting half the run's mean, the decision level between "step" and "no step", and
    taking the maximum-sum run again removes that bias.
    """
    a, b = _max_interval(profile)
    level = float(profile[a:b].mean()) / 2 if b > a else 0.0
    return _max_interval(profile - level)


def _max_interval(profile: npt.NDArray[np.floating]) -> tuple[int, int]:
    """[start, end) of the contiguous run of ``profile`` with the largest sum (Kadane)."""
    csum = np.concatenate([[0.0], np.cumsum(profile, dtype=np.float64)])
    end = int(np.argmax(csum - np.minimum.accumulate(csum)))
    return int(np.argmin(csum[: end + 1])), end


def detect_image(
    img: npt.NDArray[np.generic], key: bytes = DEMO_KEY, *, record: bool = True, lowfreq: bool = True
) -> ImageDetection:
    """Look for the watermark in an image array (any size, scale 0.4-2x, rotation within ~20 degrees).

    ``record=False`` leaves :attr:`ImageDetection.decoded` empty when the mark is absent (it is for bit
    statistics only; its Viterbi decode is ~2 ms of an unmarked picture's rejection). When the tile mark
    does not verify, the low-frequency layer (:mod:`._lowfreq`, marks made since issue 18) is read too
    (``lowfreq=False``: the tile mark only); ``details["layer"]`` is 2 when that layer verified.
    """
    started = time.perf_counter()
    _check_image(img)
    y, r, padded = _luma_whitened(img)
    found = _detect_whitened(r, key, started, host=y, record=record, padded=padded)
    if not lowfreq or found.payload is not None:
        return found
    second = read_lowfreq(y, key)
    details = {**found.details, "lowfreq_z": second.z, "lowfreq_decoded": float(second.decoded)}
    window = found._window
    if second.payload is None and window is not None and window.z >= _PASTE_FROM:
        details["paste_lowfreq_z"], pasted, _ = read_lowfreq_area(y, _paste_boxes(y, window), key, 0.5, _PASTE_Z)
        second = pasted if pasted is not None and pasted.payload is not None else second
    if second.payload is None:
        return replace(found, details=details, elapsed_ms=(time.perf_counter() - started) * 1000.0)
    return replace(
        found,
        present=True,
        payload=second.payload,
        mac_ok=True,
        decoded=second.payload,
        content_ok=True,
        details={
            **details,
            "layer": 2.0,
            "lowfreq_grid": float(second.grid),
            "lowfreq_symmetry": float(second.symmetry),
        },
        elapsed_ms=(time.perf_counter() - started) * 1000.0,
    )


def _detect_whitened(
    r: FloatImage,
    key: bytes,
    started: float | None = None,
    host: FloatImage | None = None,
    record: bool = True,
    padded: FloatImage | None = None,
) -> ImageDetection:
    """Detection on an already whitened luminance plane (shared with the video detector).

    With ``host`` (the luminance the plane came from) the mark must carry a matching host hash;
    without it (video: many frames averaged) the unbound mark is read. ``padded``: ``r`` at the top left of
    zeros grown to whole tiles, ``r`` being a view of it (:func:`_luma_whitened`), which the fold of the
    untouched geometry then sums without a copy.
    """
    if started is None:
        started = time.perf_counter()

    def read(basis: npt.NDArray[np.float64] | None) -> _Read:
        b = np.eye(2) * TILE if basis is None else basis

        def candidates(g: int) -> list[bytes]:
            # The fold was read through symmetry g: the tile's axes are b @ g^-1 in the image.
            assert host is not None
            return _hash_candidates(host, b @ np.linalg.inv(_DIHEDRAL[g]), key)

        fold, plane = _fold_plane(r, basis) if basis is not None or padded is None else (_fold_tiles(padded), padded)
        return replace(_read_fold(fold, key, None if host is None else candidates), plane=plane)

    best = read(None)
    best_basis: npt.NDArray[np.float64] | None = None
    tried = 1
    screened = 0
    half_z = None  # the sync z of the whole picture at the exact half-size prior, when read (or screened)
    # The untouched geometry is the common case and conclusive on its own; only then estimate the lattice.
    if not (best.mac_ok and best.z >= Z_PRESENT):
        large = host is not None and min(r.shape) >= _LATTICE_CROP
        for cand in _estimate_lattice(r, _SCREENED_STRENGTH if large else _MIN_LATTICE_STRENGTH):
            if np.abs(cand - np.eye(2) * TILE).max() <= 0.25:
                continue
            half = np.array_equal(cand, np.eye(2) * (TILE // 2))
            first = _screen(r, cand, key) if host is not None else None
            if first is not None and first < _SCREEN_Z:
                screened += 1
                half_z = first if half else half_z
                continue
            tried += 1
            got = read(cand)
            if half:  # the screen folded the whole picture; the full read only its centre, which a paste may miss
                half_z = got.z if first is None else max(first, got.z)
            if (got.mac_ok, got.z) > (best.mac_ok, best.z):
                best, best_basis = got, cand
            if got.mac_ok and got.z >= Z_PRESENT:
                break
    scan_z = None
    window: _Window | None = None
    # The half-size windows are searched where the whole picture's fold at the exact half-size prior shows the sync,
    # whatever the other reads found (see _WINDOW_FROM); where no read gave that fold (the prior refined off the
    # exact scale), as before when the best read reaches _SCAN_FROM, and else where that fold, made for this, does.
    if half_z is None and host is not None and best.z < _SCAN_FROM and not best.mac_ok:
        half_z = _sync_peak(_half_fold(r), key)[0]
    windows = best.z >= _SCAN_FROM if half_z is None else half_z >= _WINDOW_FROM
    if host is not None and (best.z >= _SCAN_FROM or windows) and not best.mac_ok:
        # One area search at most (its hashes are the false-positive budget), from the strongest start: the
        # read itself, the rectangle of tiles the scan found, or the half-size window over a paste.
        start: _Read | None = best if best.z >= Z_AREA else None
        start_basis = best_basis
        if start is None and best.plane is not None and best.z >= _SCAN_FROM:
            scan_z, start = _local_read(best.plane, best.fold, key, best.corr)
        if windows:
            window = _half_windows(r, key)
            if window.z >= _WINDOW_Z and (start is None or window.z > start.z):
                start, start_basis = _window_read(r, window.box, key), np.eye(2) * (TILE // 2)
        if start is not None:
            found = _read_marked_area(r, host, best, start_basis, key, start=start)
            if found.mac_ok:
                best, best_basis = found, start_basis
    z, payload, mac_ok = best.z, best.payload, best.mac_ok
    if payload is None and record:
        payload = decode_soft(best.soft, key)[0]  # only for the record (``decoded``): it cannot count
    present = z >= Z_PRESENT or (mac_ok and z >= Z_WITH_MAC)
    # A strong sync peak whose payload verifies with none of this image's hashes: the mark was made for
    # other content (copied) or is too damaged to read; either way it proves nothing about this image.
    content_ok = host is None or mac_ok or not present
    details = {"hypotheses": float(tried), "screened": float(screened), "symmetry": float(best.symmetry)}
    if scan_z is not None:
        details["scan_z"] = scan_z
    if window is not None:
        details["window_z"] = window.z
    b = np.eye(2) * TILE if best_basis is None else best_basis
    scale = float(np.sqrt(abs(np.linalg.det(b)))) / TILE
    rot = float(np.degrees(np.arctan2(b[1, 0], b[0, 0])))
    return ImageDetection(
        present=present,
        z=z,
        payload=payload if present and mac_ok else None,
        mac_ok=mac_ok,
        scale=scale,
        rotation_deg=rot,
        elapsed_ms=(time.perf_counter() - started) * 1000.0,
        decoded=payload,
        details=details,
        content_ok=content_ok,
        _window=window,
    )


def psnr(a: npt.NDArray[np.generic], b: npt.NDArray[np.generic]) -> float:
    """Peak signal-to-noise ratio in dB between two 8-bit images of the same shape."""
    mse = float(np.mean((np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0**2 / mse)
