"""The IPTC digital-source-type detector: a format-independent scan for XMP packets."""

from __future__ import annotations

from pathlib import Path

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from ..sourcetypes import GENERATIVE_AI, source_type_code
from .detectors import register_detector
from .evidence import Evidence

IPTC_EXT_NS = "http://iptc.org/std/Iptc4xmpExt/2008-02-29/"
RDF_NS = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"


class XmpSourceTypeDetector:
    """Finds IPTC ``Iptc4xmpExt:DigitalSourceType`` = ``trainedAlgorithmicMedia`` in XMP packets.

    It scans the file's bytes for XMP packets, the format-independent method of the XMP
    specification (Part 3, "scanning files for XMP"), streaming with bounded memory, so it works for
    JPEG, PNG (uncompressed iTXt), WebP, TIFF, GIF, MP4 ``uuid`` boxes and uncompressed PDF metadata
    alike. Compressed XMP (PNG zTXt, Flate PDF streams) is not seen.
    """

    name = "xmp-digital-source-type"
    #: A bounded byte scan: the cheapest detector, and format-independent.
    cost = 1.0
    formats = None
    #: Largest XMP packet considered, and most packets examined per file.
    MAX_PACKET = 4 << 20
    MAX_PACKETS = 16
    _START = b"<x:xmpmeta"
    _END = b"</x:xmpmeta>"
    _CHUNK = 1 << 20

    def detect(self, path: Path) -> list[Evidence]:
        """Evidence for each AI source type found (never raises on bad bytes)."""
        found: list[Evidence] = []
        try:
            for offset, packet in self._packets(path):
                for value in self._source_types(packet):
                    code = source_type_code(value)
                    if code in GENERATIVE_AI:
                        found.append(
                            Evidence(
                                kind="xmp-digital-source-type",
                                detail=f"XMP Iptc4xmpExt:DigitalSourceType is {code} (IPTC: made with generative AI)",
                                location=f"XMP packet at byte {offset}",
                                source=self.name,
                                data={"digital_source_type": value},
                            )
                        )
        except OSError:
            return found
        return found

    def _packets(self, path: Path) -> list[tuple[int, bytes]]:
        packets: list[tuple[int, bytes]] = []
        buf = bytearray()
        base = 0  # file offset of buf[0]
        eof = False
        with open(path, "rb") as handle:
            while len(packets) < self.MAX_PACKETS:
                start = buf.find(self._START)
                if start < 0:
                    if eof:
                        break
                    drop = max(0, len(buf) - (len(self._START) - 1))
                    del buf[:drop]
                    base += drop
                    chunk = handle.read(self._CHUNK)
                    eof = not chunk
                    buf += chunk
                    continue
                del buf[:start]
                base += start
                end = buf.find(self._END)
                while end < 0 and len(buf) <= self.MAX_PACKET and not eof:
                    chunk = handle.read(self._CHUNK)
                    eof = not chunk
                    buf += chunk
                    end = buf.find(self._END)
                if end < 0 or end > self.MAX_PACKET:  # unterminated or runaway: skip this start tag
                    del buf[: len(self._START)]
                    base += len(self._START)
                    continue
                stop = end + len(self._END)
                packets.append((base, bytes(buf[:stop])))
                del buf[:stop]
                base += stop
        return packets

    @staticmethod
    def _source_types(packet: bytes) -> list[str]:
        try:
            root = SafeET.fromstring(packet)
        except (DefusedXmlException, SafeET.ParseError, ValueError):
            return []
        values: list[str] = []
        tag = f"{{{IPTC_EXT_NS}}}DigitalSourceType"
        for element in root.iter():
            if element.get(tag):
                values.append(str(element.get(tag)))
            if element.tag == tag:
                resource = element.get(f"{{{RDF_NS}}}resource")
                values.append((resource or element.text or "").strip())
        return [v for v in values if v]


register_detector(XmpSourceTypeDetector())
