"""Read a PyTorch checkpoint's tensors into numpy arrays without PyTorch and without running its code.

Why: a ``.pt`` file is a pickle, and unpickling lets the file call any importable function (``os.system``
included); ``torch.load`` is also a multi-gigabyte dependency we do not need to multiply a few matrices.
The unpickler here can build exactly three things: an ``OrderedDict``, a typed storage marker and a tensor
(a strided view of a storage, checked against the storage's size). Any other global the pickle names is
refused before anything is called, so a hostile file can fail to load but cannot execute code.

Both of PyTorch's formats are read: the legacy one (torch < 1.6: magic number, protocol and system pickles,
the object pickle, the storage keys, then each storage as an int64 element count and its raw bytes) and the
zip one (``<root>/data.pkl`` and one ``<root>/data/<key>`` member per storage).
"""

from __future__ import annotations

import io
import pickle
import struct
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import LimitExceededError, MalformedFileError

__all__ = ["MAX_CHECKPOINT_BYTES", "load_tensors"]

#: A speaker encoder is 17 MB; nothing this loader is meant for is larger.
MAX_CHECKPOINT_BYTES = 256 * 1024 * 1024

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C

#: The storage classes a checkpoint may name, and the little-endian dtype of their elements.
_STORAGE_DTYPES = {
    "FloatStorage": "<f4",
    "DoubleStorage": "<f8",
    "HalfStorage": "<f2",
    "LongStorage": "<i8",
    "IntStorage": "<i4",
    "ShortStorage": "<i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "?",
}


class _StorageType:
    """Stands for ``torch.<Name>Storage`` in the pickle: only its element dtype is kept."""

    def __init__(self, name: str) -> None:
        self.dtype = np.dtype(_STORAGE_DTYPES[name])


class _Storage:
    """A storage the object pickle refers to; its bytes are filled in after (legacy) or read from the zip."""

    def __init__(self, dtype: np.dtype[Any], numel: int) -> None:
        self.dtype, self.numel = dtype, numel
        self.data: npt.NDArray[Any] | None = None


def _rebuild_tensor(storage: Any, offset: Any, size: Any, stride: Any, *_: Any) -> _Tensor:
    if not isinstance(storage, _Storage):
        raise pickle.UnpicklingError("a tensor that is not built on a storage")
    if not all(isinstance(v, tuple) and all(type(x) is int and x >= 0 for x in v) for v in (size, stride)):
        raise pickle.UnpicklingError("a tensor with a malformed size or stride")
    if type(offset) is not int or offset < 0 or len(size) != len(stride):
        raise pickle.UnpicklingError("a tensor with a malformed offset")
    extent = offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True)) + 1 if all(size) else offset
    if extent > storage.numel:
        raise pickle.UnpicklingError("a tensor that reaches past the end of its storage")
    return _Tensor(storage, offset, size, stride)


class _Tensor:
    """A strided view of a storage, turned into an array once the storage's bytes are known."""

    def __init__(self, storage: _Storage, offset: int, size: tuple[int, ...], stride: tuple[int, ...]) -> None:
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def array(self) -> npt.NDArray[Any]:
        data = self.storage.data
        if data is None:
            raise MalformedFileError("checkpoint: a tensor's storage is missing")
        item = data.itemsize
        view = np.lib.stride_tricks.as_strided(
            data[self.offset :], shape=self.size, strides=tuple(s * item for s in self.stride), writeable=False
        )
        return np.array(view)  # a compact copy that owns its memory


class _Unpickler(pickle.Unpickler):
    """Builds OrderedDicts, storage markers and tensors; refuses every other global."""

    def __init__(self, stream: io.BytesIO) -> None:
        super().__init__(stream)
        self.storages: dict[str, _Storage] = {}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: a weights file may only hold tensors")

    def persistent_load(self, pid: Any) -> _Storage:
        # legacy: ("storage", type, key, location, numel, view_metadata); zip: the same without view_metadata
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"):
            raise pickle.UnpicklingError("an unknown persistent reference")
        _, kind, key, _location, numel = pid[:5]
        if not isinstance(kind, _StorageType) or not isinstance(key, str) or type(numel) is not int or numel < 0:
            raise pickle.UnpicklingError("a malformed storage reference")
        if len(pid) == 6 and pid[5] is not None:
            raise pickle.UnpicklingError("storage views are not supported")
        storage = self.storages.get(key)
        if storage is None:
            storage = self.storages[key] = _Storage(kind.dtype, numel)
        return storage


def _arrays(obj: Any) -> Any:
    """``obj`` with every tensor replaced by its array (dicts, lists and tuples walked)."""
    if isinstance(obj, _Tensor):
        return obj.array()
    if isinstance(obj, dict):
        return {k: _arrays(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_arrays(v) for v in obj)
    return obj


def _legacy(raw: bytes) -> Any:
    stream = io.BytesIO(raw)
    magic = _SafeHeader(stream).load()
    if magic != _LEGACY_MAGIC:
        raise MalformedFileError("checkpoint: not a PyTorch file (bad magic number)")
    _SafeHeader(stream).load()  # protocol version
    info = _SafeHeader(stream).load()
    if not isinstance(info, dict) or not info.get("little_endian", False):
        raise MalformedFileError("checkpoint: only little-endian checkpoints are supported")
    unpickler = _Unpickler(stream)
    root = unpickler.load()
    keys = _SafeHeader(stream).load()
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise MalformedFileError("checkpoint: malformed storage key list")
    for key in keys:
        storage = unpickler.storages.get(key)
        head = stream.read(8)
        if storage is None or len(head) != 8:
            raise MalformedFileError("checkpoint: storage table does not match the object pickle")
        (numel,) = struct.unpack("<q", head)
        if numel != storage.numel:
            raise MalformedFileError("checkpoint: a storage's size does not match its declaration")
        body = stream.read(numel * storage.dtype.itemsize)
        if len(body) != numel * storage.dtype.itemsize:
            raise MalformedFileError("checkpoint: truncated storage data")
        storage.data = np.frombuffer(body, dtype=storage.dtype)
    return root, unpickler


class _SafeHeader(pickle.Unpickler):
    """The small header pickles of the legacy format hold only plain values: no global at all."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a checkpoint header")


def _zipped(archive: zipfile.ZipFile) -> Any:
    names = [n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
    if len(names) != 1:
        raise MalformedFileError("checkpoint: a zip without exactly one data.pkl")
    root_dir = names[0][: -len("data.pkl")]
    if f"{root_dir}byteorder" in archive.namelist() and archive.read(f"{root_dir}byteorder") != b"little":
        raise MalformedFileError("checkpoint: only little-endian checkpoints are supported")
    unpickler = _Unpickler(io.BytesIO(archive.read(names[0])))
    root = unpickler.load()
    for key, storage in unpickler.storages.items():
        member = f"{root_dir}data/{key}"
        try:
            info = archive.getinfo(member)
        except KeyError:
            raise MalformedFileError(f"checkpoint: storage {key!r} is missing from the zip") from None
        if info.file_size != storage.numel * storage.dtype.itemsize:
            raise MalformedFileError(f"checkpoint: storage {key!r} has the wrong size")
        storage.data = np.frombuffer(archive.read(member), dtype=storage.dtype)
    return root, unpickler


def load_tensors(path: Path) -> Any:
    """The object saved in the PyTorch checkpoint at ``path``, its tensors as read-only numpy arrays.

    Raises :class:`MalformedFileError` for a file that is not a checkpoint or that names any global beyond
    ``OrderedDict``, tensor rebuilding and typed storages (a pickle that would call ``os.system``, say).
    """
    size = path.stat().st_size
    if size > MAX_CHECKPOINT_BYTES:
        raise LimitExceededError(f"{path.name}: {size} bytes is over the {MAX_CHECKPOINT_BYTES} byte checkpoint limit")
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                root, _ = _zipped(archive)
        else:
            root, _ = _legacy(path.read_bytes())
        return _arrays(root)
    except MalformedFileError:
        raise
    except MemoryError as exc:
        # the file is capped at MAX_CHECKPOINT_BYTES, so this is a pickle opcode declaring an absurd length
        raise MalformedFileError(f"{path.name}: not a loadable weights file (a declared length is absurd)") from exc
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        KeyError,
        AttributeError,
        IndexError,
        OverflowError,
    ) as exc:
        raise MalformedFileError(f"{path.name}: not a loadable weights file ({exc})") from exc
    except zipfile.BadZipFile as exc:
        raise MalformedFileError(f"{path.name}: corrupt checkpoint zip ({exc})") from exc
