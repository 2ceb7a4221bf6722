#!/usr/bin/env bash
# main-job.sh — the README's first quick-start command: builds lcam and runs `lcam demo`, the
# paper end to end on the committed scenes classifier (weights/demo_vgg_scenes.h5): Fashion-MNIST
# scenes are generated, L-CAM-Img and L-CAM-Fm are trained on the frozen classifier, every method
# is evaluated on held-out scenes (Table 1, pointing game, energy in box) and pictures are drawn.
# Everything lands in out/demo/ (the table in out/demo/report.csv, the figure in
# out/demo/figures/grid.png). A few minutes on two CPU cores; the GPU is used when there is one.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/build.sh
build/lcam demo --out out/demo "$@"
