#!/usr/bin/env bash
# main-job.sh — the README's first quick-start command: builds lcam, writes a VGG-16 weights
# file with torchvision's RANDOM initialisation (no pretrained weights can be downloaded here),
# and classifies eight of the sample ImageNet photos with it. The predictions are meaningless
# (random weights); the run shows the whole path: HDF5 weights, JPEG decode, PIL-exact resize,
# forward pass, top-k. Use tools/export_torchvision.py --pretrained for real weights.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/build.sh
mkdir -p out
[ -f out/random-vgg16.h5 ] || build/lcam init --arch vgg16 --seed 0 --out out/random-vgg16.h5
samples=../shared/data/imagenet-sample
[ -d "$samples" ] || { echo "main-job: $samples not found (it sits beside the checkout)" >&2; exit 2; }
images=$(ls "$samples"/*.JPEG | head -n 8)
echo "== lcam predict, VGG-16 with RANDOM weights (seed 0): predictions are meaningless =="
build/lcam predict --arch vgg16 --weights out/random-vgg16.h5 --topk 3 $images
