#!/usr/bin/env bash
# Quick start, end to end on the CPU: train a small CNN on scikit-learn's bundled digits,
# evaluate the best checkpoint, export it for Paddle Inference, write a few val digits as
# PNG files and predict them with nothing but the exported folder.
# Outputs go to output/quickstart_digits/ (override with OUT=...). Uses `python` from PATH.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
OUT=${OUT:-output/quickstart_digits}
CFG=configs/quickstart/digits.yml

echo "== train"
$PY tools/train.py -c $CFG --save-dir "$OUT" --overwrite   # a previous run moves to $OUT.old-<time>
echo "== eval best/"
$PY tools/eval.py -c $CFG --weights "$OUT/best" --output "$OUT/eval.json"
echo "== export"
$PY tools/export.py -c $CFG --weights "$OUT/best" --save-dir "$OUT/inference"
echo "== infer"
rm -rf "$OUT/digits_png"
$PY tools/make_digit_images.py --out-dir "$OUT/digits_png" --num 16
$PY tools/infer.py --model-dir "$OUT/inference" --input "$OUT/digits_png" --topk 3 \
    --output "$OUT/infer.jsonl"
echo "done: see $OUT/ (eval.json, inference/, infer.jsonl)"
