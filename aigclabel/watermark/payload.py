"""The watermark payload shared by every modality, and its error correction.

A payload is 64 bits: a 16-bit key id (so a platform holding several keys knows which one to verify
with) followed by the first 48 bits of SHA-256(ProduceID). The digest is unkeyed on purpose: whoever
holds the metadata label (or a database of ProduceIDs) can check that a watermark matches it without
the embedding key.

On the wire (image tiles, audio blocks) the 64 bits are followed by a 16-bit keyed MAC (HMAC-SHA256,
truncated) and protected by a rate-1/2, constraint-length-7 convolutional code (the NASA/802.11
polynomials 171/133 octal) decoded with soft-decision Viterbi. The MAC both rejects decoding errors
and makes a payload read with the wrong key fail verification. Every pattern the modalities spread
these bits with is drawn from a keyed generator, so without the key the mark can be neither read nor
forged from scratch.

A modality may *bind* the mark to its host: the MAC is then computed over the payload and
``bound`` bytes (the image mark uses a 32-bit perceptual hash of the host), which are not transmitted.
The detector recomputes the hash from what it received, so a mark copied onto other content fails
verification (see :mod:`.image`).
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "CODED_BITS",
    "DEMO_KEY",
    "INFO_BITS",
    "PAYLOAD_BITS",
    "Payload",
    "conv_encode",
    "decode_soft",
    "decode_soft_bound",
    "encode_payload",
    "hash_candidates",
    "keyed_rng",
    "produce_id_digest",
    "viterbi_decode",
]

#: Public demonstration key. Anyone can read and forge marks made with it: use your own secret bytes.
DEMO_KEY = b"aigclabel demo watermark key v1"

PAYLOAD_BITS = 64
MAC_BITS = 16
INFO_BITS = PAYLOAD_BITS + MAC_BITS
_K = 7  # constraint length
_G = (0o171, 0o133)
CODED_BITS = (INFO_BITS + _K - 1) * len(_G)

FloatArray = npt.NDArray[np.float64]
BitArray = npt.NDArray[np.uint8]


def produce_id_digest(produce_id: str) -> bytes:
    """First 6 bytes of SHA-256 over the UTF-8 ProduceID: what a watermark carries of it."""
    return hashlib.sha256(produce_id.encode("utf-8")).digest()[:6]


@dataclass(frozen=True)
class Payload:
    """The 64 bits a watermark carries: ``key_id`` (0..65535) and a 6-byte ProduceID digest."""

    key_id: int
    digest: bytes

    def __post_init__(self) -> None:
        if not 0 <= self.key_id <= 0xFFFF:
            raise ValueError("key_id must be in 0..65535")
        if len(self.digest) != 6:
            raise ValueError("digest must be exactly 6 bytes")

    @classmethod
    def for_produce_id(cls, produce_id: str, key_id: int = 0) -> Payload:
        """The payload for a GB 45438 ProduceID."""
        return cls(key_id, produce_id_digest(produce_id))

    def matches(self, produce_id: str) -> bool:
        """True when this payload was made from ``produce_id``."""
        return hmac.compare_digest(self.digest, produce_id_digest(produce_id))

    def to_bytes(self) -> bytes:
        """The 8 payload bytes, big-endian key id first."""
        return self.key_id.to_bytes(2, "big") + self.digest

    @classmethod
    def from_bytes(cls, data: bytes) -> Payload:
        """Inverse of :meth:`to_bytes`."""
        if len(data) != 8:
            raise ValueError("a payload is exactly 8 bytes")
        return cls(int.from_bytes(data[:2], "big"), bytes(data[2:]))

    def hex(self) -> str:
        """The digest as hex (what ``inspect`` prints)."""
        return self.digest.hex()


def _mac(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, b"aigclabel-wm-mac" + data, hashlib.sha256).digest()[: MAC_BITS // 8]


def keyed_rng(key: bytes, purpose: str) -> np.random.Generator:
    """A deterministic generator derived from the secret key; ``purpose`` separates its uses."""
    seed = hmac.new(key, purpose.encode("utf-8"), hashlib.sha256).digest()
    return np.random.default_rng(np.frombuffer(seed, dtype=np.uint32))


def _bytes_to_bits(data: bytes) -> BitArray:
    return np.unpackbits(np.frombuffer(data, dtype=np.uint8))


def _parity(x: int) -> int:
    return bin(x).count("1") & 1


# Trellis tables: state = last K-1 input bits, newest in the most significant position.
_NSTATES = 1 << (_K - 1)
_OUT = np.zeros((_NSTATES, 2, len(_G)), dtype=np.float64)
_NEXT = np.zeros((_NSTATES, 2), dtype=np.int64)
for _s in range(_NSTATES):
    for _b in (0, 1):
        _reg = (_b << (_K - 1)) | _s
        _NEXT[_s, _b] = _reg >> 1
        for _j, _g in enumerate(_G):
            _OUT[_s, _b, _j] = 1.0 - 2.0 * _parity(_reg & _g)  # bit 0 -> +1, bit 1 -> -1


def conv_encode(bits: BitArray) -> BitArray:
    """Rate-1/2 K=7 convolutional encoding with a zero tail (the trellis ends in state 0)."""
    state = 0
    out: list[int] = []
    for b in [*bits.tolist(), *([0] * (_K - 1))]:
        reg = (int(b) << (_K - 1)) | state
        out.extend(_parity(reg & g) for g in _G)
        state = reg >> 1
    return np.asarray(out, dtype=np.uint8)


def viterbi_decode(soft: FloatArray, n_info: int) -> BitArray:
    """Soft-decision Viterbi. ``soft[i] > 0`` means coded bit i is more likely 0; magnitude = confidence."""
    n_g = len(_G)
    steps = n_info + _K - 1
    obs = np.asarray(soft, dtype=np.float64)[: steps * n_g].reshape(steps, n_g)
    metric = np.full(_NSTATES, -np.inf)
    metric[0] = 0.0
    back_state = np.zeros((steps, _NSTATES), dtype=np.int64)
    dst = np.arange(_NSTATES)
    inp = dst >> (_K - 2)  # the input bit that leads into each state
    pred = np.stack([((dst & (_NSTATES // 2 - 1)) << 1), ((dst & (_NSTATES // 2 - 1)) << 1) | 1])
    outs = _OUT[pred, inp[None, :]]  # (2, states, n_g)
    for t in range(steps):
        cand = metric[pred] + (outs * obs[t]).sum(axis=2)
        if t >= n_info:  # tail: only zero inputs are possible
            cand[:, inp == 1] = -np.inf
        choice = np.argmax(cand, axis=0)
        metric = cand[choice, dst]
        back_state[t] = pred[choice, dst]
    state = 0
    bits = np.zeros(steps, dtype=np.uint8)
    for t in range(steps - 1, -1, -1):
        bits[t] = state >> (_K - 2)
        state = int(back_state[t, state])
    return bits[:n_info]


def _bound_mac(key: bytes, data: bytes, bound: bytes) -> bytes:
    return hmac.new(key, b"aigclabel-wm-bound" + data + bound, hashlib.sha256).digest()[: MAC_BITS // 8]


def encode_payload(payload: Payload, key: bytes, bound: bytes = b"") -> BitArray:
    """The :data:`CODED_BITS` channel bits for ``payload`` + keyed MAC (over ``bound`` too), convolutionally coded.

    ``bound`` itself is not transmitted: the detector recomputes it from the host and tries the few values
    its unreliable bits allow (:func:`decode_soft_bound`).
    """
    data = payload.to_bytes()
    return conv_encode(_bytes_to_bits(data + (_bound_mac(key, data, bound) if bound else _mac(key, data))))


def hash_variants(projections: npt.NDArray[np.floating[Any]], weak: int, flips: int) -> list[bytes]:
    """The host hash (signs of ``projections``) and its variants with up to ``flips`` of its ``weak`` least
    reliable bits flipped: the candidates a reader checks the MAC against, since attacks move a few
    near-zero projections across zero."""
    bits = (projections > 0).astype(np.uint8)
    least = np.argsort(np.abs(projections))[:weak].tolist()
    out = []
    for k in range(flips + 1):
        for flip in combinations(least, k):
            b = bits.copy()
            b[list(flip)] ^= 1
            out.append(np.packbits(b).tobytes())
    return out


def hash_candidates(projections: npt.NDArray[np.floating[Any]], count: int) -> list[bytes]:
    """The host hash (signs of ``projections``) and its ``count - 1`` likeliest variants, by soft decision.

    An attack moves a projection across zero with a probability that falls with its distance from zero,
    so a set of flipped bits is the likelier the smaller the sum of their ``|projection|``: the variants
    come in increasing order of that sum (every subset of the bits can appear, not only a few of the
    weakest: brightness clipping flipped the 1st, 2nd and 4th weakest bits of one bench photo). Each
    candidate is one more chance for a wrong MAC to verify, so the count is the false-positive budget:
    ``count * 2**-MAC_BITS`` per picture whose MAC is checked.
    """
    bits = (projections > 0).astype(np.uint8)
    order = np.argsort(np.abs(projections), kind="stable")
    weights = np.abs(np.asarray(projections, dtype=np.float64))[order]
    out: list[bytes] = []
    # Best-first over subsets of the bits sorted by weight: a subset's successors extend it by the next bit
    # or move its last bit one place on, which enumerates every subset once, in nondecreasing sum.
    heap: list[tuple[float, tuple[int, ...]]] = [(0.0, ())]
    while heap and len(out) < count:
        cost, subset = heapq.heappop(heap)
        b = bits.copy()
        b[order[list(subset)]] ^= 1
        out.append(np.packbits(b).tobytes())
        last = subset[-1] if subset else -1
        if last + 1 < len(weights):
            heapq.heappush(heap, (cost + weights[last + 1], (*subset, last + 1)))
            if subset:
                heapq.heappush(heap, (cost - weights[last] + weights[last + 1], (*subset[:-1], last + 1)))
    return out


def decode_soft_bound(soft: FloatArray, key: bytes, candidates: Iterable[bytes]) -> tuple[Payload, bytes | None]:
    """Decode a host-bound payload; returns it and the candidate host hash its MAC verifies with, if any."""
    raw = np.packbits(viterbi_decode(soft, INFO_BITS)).tobytes()
    data, mac = raw[:8], raw[8:]
    for bound in candidates:
        if hmac.compare_digest(mac, _bound_mac(key, data, bound)):
            return Payload.from_bytes(data), bound
    return Payload.from_bytes(data), None


def decode_soft(soft: FloatArray, key: bytes) -> tuple[Payload, bool]:
    """Decode soft channel values; returns the payload and whether its keyed MAC verifies."""
    info = viterbi_decode(soft, INFO_BITS)
    raw = np.packbits(info).tobytes()
    data, mac = raw[:8], raw[8:]
    return Payload.from_bytes(data), hmac.compare_digest(mac, _mac(key, data))
