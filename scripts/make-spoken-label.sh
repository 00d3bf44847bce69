#!/usr/bin/env bash
# Regenerates aigclabel/data/spoken-label-zh.flac: the spoken explicit label "人工智能生成" (GB 45438 §5.3).
#
# espeak-ng's plain `-v cmn` voice misreads several of these characters (it speaks tone digits in
# English), so the text goes through pypinyin first and is read by the `cmn-latn-pinyin` voice.
# Speed 130 gives ~2.5 s for the six characters (~140 characters/min), inside the 120-160
# characters/min that §5.3 note 4 calls normal speed; leading/trailing silence is trimmed so the
# measured duration is the speech itself. Output: 16 kHz mono FLAC, a few tens of KB.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$here/aigclabel/data/spoken-label-zh.flac}"
text="${AIGCLABEL_SPOKEN_TEXT:-人工智能生成}"
speed="${AIGCLABEL_SPOKEN_SPEED:-130}"
pinyin="$(python -c 'import sys; from pypinyin import Style, lazy_pinyin; print(" ".join(lazy_pinyin(sys.argv[1], style=Style.TONE3)))' "$text")"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
espeak-ng -v cmn-latn-pinyin -s "$speed" -w "$tmp/raw.wav" "$pinyin"
# Trim silence at both ends (sox), then resample to 16 kHz mono FLAC (ffmpeg).
sox "$tmp/raw.wav" "$tmp/trim.wav" silence 1 0.02 -50d reverse silence 1 0.02 -50d reverse
ffmpeg -nostdin -loglevel error -y -i "$tmp/trim.wav" -ac 1 -ar 16000 -sample_fmt s16 -c:a flac \
  -compression_level 12 -map_metadata -1 -fflags +bitexact -flags:a +bitexact "$out"
echo "$out: $(soxi -D "$out") s for '$text' ($pinyin)"
