#!/usr/bin/env bash
# Proves the core install: `pip install aigclabel` without extras, in a throwaway virtual environment
# (pip's cache keeps it to seconds after the first run), labels and inspects bundled samples of several
# formats, pulls in none of the extras' packages, and a command that needs [media] says so (exit 2, the
# pip command in the message, no traceback). Usage: scripts/check-core-install.sh [python3]
set -euo pipefail
python="${1:-python3}"
repo="$(cd "$(dirname "$0")/.." && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
unset PYTHONPATH  # the installed package, not a source tree, is under test

"$python" -m venv "$tmp/venv"
"$tmp/venv/bin/python" -m pip install -q --disable-pip-version-check "$repo" 2>"$tmp/pip.log" \
  || { cat "$tmp/pip.log" >&2; exit 1; }
bin="$tmp/venv/bin"

extras="$("$bin/python" -m pip list --format=freeze 2>/dev/null \
  | grep -iE '^(scipy|opencv|av|onnxruntime|rapidocr|pillow.heif|sqlalchemy|alembic|gmssl|fastapi|c2pa)' || true)"
if [ -n "$extras" ]; then
  echo "core install pulled in packages of the extras: $extras" >&2
  exit 1
fi

samples="$("$bin/python" -c 'import aigclabel, pathlib; print(pathlib.Path(aigclabel.__file__).parent / "samples")')"
mkdir "$tmp/out"
formats=(jpg png tiff heic pdf docx mp3 flac wav mp4 webm glb txt)
for ext in "${formats[@]}"; do
  (cd "$tmp" && "$bin/aigclabel" label "$samples/sample.$ext" -o "out/sample.$ext" -p 001191440300708461136T1XGW3 >/dev/null)
done
(cd "$tmp" && "$bin/aigclabel" inspect --json "${formats[@]/#/out/sample.}") >"$tmp/inspect.json"
"$bin/python" - "$tmp/inspect.json" "${#formats[@]}" <<'EOF'
import json, sys
reports = json.load(open(sys.argv[1]))
assert len(reports) == int(sys.argv[2]), reports
for report in reports:
    assert report["ok"] and report["labels"][0]["fields"]["ContentProducer"] == "001191440300708461136T1XGW3", report
EOF

for command in "mark $samples/sample.png -o $tmp/marked.png" "watermark embed $samples/sample.png -o $tmp/wm.png --produce-id job-1"; do
  set +e
  # shellcheck disable=SC2086  # the command's words
  (cd "$tmp" && "$bin/aigclabel" $command) >"$tmp/stdout" 2>"$tmp/stderr"
  code=$?
  set -e
  if [ "$code" -ne 2 ] || ! tr -s ' \n' '  ' <"$tmp/stderr" | grep -qF "pip install 'aigclabel[media]'" || grep -q Traceback "$tmp/stderr"; then
    echo "aigclabel $command in a core install: exit $code, expected 2 and the [media] extra named:" >&2
    cat "$tmp/stderr" >&2
    exit 1
  fi
done
echo "core install: ${#formats[@]} formats labelled and inspected; mark and watermark name the [media] extra"
