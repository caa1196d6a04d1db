#!/usr/bin/env bash
# The whole anti-aliasing roadmap with the quick profile on the packaged demo teacher (CPU, ~25 min):
#   bash experiments/aa/roadmap_quick.sh [work folder]      (default: ./roadmap_quick)
# Every run lands in <work folder>/mlflow.db; the last step writes the comparison report.
# Pass a teacher with TEACHER=my.nam; any other override with EXTRA="loss.lr=1e-4 ...".
set -euo pipefail
AAEXP=${AAEXP:-aaexp}
WORK=$(mkdir -p "${1:-roadmap_quick}" && cd "${1:-roadmap_quick}" && pwd)
cd "$WORK"
common=(trainer=quick progress=false)
[[ -n "${TEACHER:-}" ]] && common+=("model.teacher.path=$TEACHER")
# shellcheck disable=SC2206
[[ -n "${EXTRA:-}" ]] && common+=($EXTRA)
base="$WORK/runs/baseline"

"$AAEXP" train +experiment=baseline "${common[@]}" hydra.run.dir="$base"
"$AAEXP" train -m +experiment=baseline loss.lam=0.1,0.3,0.5,3.0 "${common[@]}" \
  model.baseline.path="$base" hydra.sweep.dir="$WORK/runs/lambda_sweep"
for exp in extended_f0 curriculum harmonic combined; do
  "$AAEXP" train +experiment=$exp "${common[@]}" model.baseline.path="$base" hydra.run.dir="$WORK/runs/$exp"
done
"$AAEXP" report --experiment-name aaexp-aa --metrics 'eval/nmr_s/*' --param loss.lam --param loss.schedule \
  --out "$WORK/report_nmr_s"
"$AAEXP" report --experiment-name aaexp-aa --metrics 'eval/hesr_r/*' --out "$WORK/report_hesr_r"
