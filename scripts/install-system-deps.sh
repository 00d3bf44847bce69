#!/usr/bin/env bash
# Installs the Debian packages aigclabel's tests, demo and benchmarks use; skips what is present.
set -euo pipefail
packages=(
  python3-venv             # `python3 -m venv .venv` (with pip) for the system's externally managed Python
  libimage-exiftool-perl   # exiftool: independent reader/writer in interop tests and the benchmark peer
  libexempi8               # python-xmp-toolkit: the TC260 image guide's own XMP method
  ffmpeg                   # ffprobe/ffmpeg: fixtures and stream-identity checks
  mkvtoolnix               # mkvinfo/mkvextract: independent Matroska reader
  qpdf                     # independent PDF structure checks
  libarchive-zip-perl      # lets exiftool read DOCX/XLSX/PPTX/EPUB properties (interop tests)
  fonts-wqy-microhei       # CJK font for visible labels
  espeak-ng sox libsox-fmt-mp3   # spoken labels and audio measurement
  tesseract-ocr tesseract-ocr-chi-sim   # optional OCR of visible labels
  postgresql               # audit store tests against a real server
  chromium                 # end-to-end tests of the web page (driven by Playwright)
  libreoffice-writer-nogui # renders labelled DOCX to PDF in the visible-label tests (soffice --headless)
  wrk                      # HTTP load benchmark (bench/service.py)
)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
