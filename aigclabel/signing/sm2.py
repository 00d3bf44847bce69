"""SM2 with SM3 (GB/T 32918, the TC260 guide's algorithm) on top of gmssl's curve arithmetic.

gmssl is pure Python and little maintained, so it is used only for the curve arithmetic: nonces
come from :mod:`secrets` (gmssl's own use :mod:`random`), and public keys are checked to lie on the
curve and ``r``/``s`` to lie in range before gmssl sees them. gmssl signs with the default user ID
``1234567812345678`` (GB/T 32918.2 / GB/T 35276).

gmssl is optional (``aigclabel[sm2]``) and imported only when an SM2 key signs or verifies; without
it :func:`require` raises :class:`~aigclabel.errors.MissingExtraError`. The curve checks below need
no import, so SM2 public keys can still be parsed and registered.
"""

from __future__ import annotations

import importlib
import secrets
from types import ModuleType
from typing import Any

from .._extras import needs_extra
from ..errors import MissingExtraError

#: Curve constants (GB/T 32918.5).
P = int("FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFF", 16)
A = int("FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC", 16)
B = int("28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93", 16)
N = int("FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123", 16)


def require() -> ModuleType:
    """gmssl's ``sm2`` module; :class:`MissingExtraError` naming ``aigclabel[sm2]`` when it is not installed."""
    with needs_extra("sm2"):
        return importlib.import_module("gmssl.sm2")  # imported lazily: it pulls in pycryptodomex


def available() -> bool:
    """True when gmssl can be imported (SM2 signatures can be made and checked)."""
    try:
        require()
    except MissingExtraError:
        return False
    return True


def on_curve(x: int, y: int) -> bool:
    """True if ``(x, y)`` is a point of the SM2 curve."""
    if not (0 <= x < P and 0 <= y < P):
        return False
    return (y * y - (x * x * x + A * x + B)) % P == 0


def _crypt(private_hex: str, public_xy_hex: str) -> Any:
    crypt = require().CryptSM2(private_key=private_hex, public_key="")
    # Set after construction: gmssl's constructor runs str.lstrip("04"), which also eats
    # leading "0"/"4" digits of the X coordinate.
    crypt.public_key = public_xy_hex
    return crypt


def public_from_private(d: int) -> bytes:
    """The public point ``04 || x || y`` of private scalar ``d``."""
    xy: str = _crypt(f"{d:064x}", "")._kg(d, require().default_ecc_table["g"])
    return b"\x04" + bytes.fromhex(xy)


def sign(d: int, public: bytes, message: bytes) -> tuple[int, int]:
    """``(r, s)`` of an SM3withSM2 signature over ``message`` by private scalar ``d`` (public key ``public``)."""
    crypt = _crypt(f"{d:064x}", public[1:].hex())
    while True:
        nonce = secrets.randbelow(N - 1) + 1
        raw: str | None = crypt.sign_with_sm3(message, f"{nonce:064x}")
        if raw:
            return int(raw[:64], 16), int(raw[64:], 16)


def verify(public: bytes, message: bytes, r: int, s: int) -> bool:
    """True if ``(r, s)`` is a signature over ``message`` by ``public`` (``04 || x || y``, already on the curve)."""
    if not (1 <= r < N and 1 <= s < N):
        return False
    try:
        return bool(_crypt("00", public[1:].hex()).verify_with_sm3(f"{r:064x}{s:064x}", message))
    except (ValueError, TypeError, ZeroDivisionError):
        return False
