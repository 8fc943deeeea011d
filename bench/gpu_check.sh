#!/usr/bin/env bash
# The GPU check, for a lent CUDA machine that has torch and transformers but no network and no
# `pip install -e`: installs the server's wheels from .whl/ into /tmp/site, then runs the `gpu` tests
# (tests/gpu) and the trainer step bench on CUDA. Run from the repository root:
#
#     bash bench/gpu_check.sh          # logs and JSON go to $OUT (default /tmp/gpu_check_out)
#
# .whl/ (git-ignored, carried to the machine) holds the wheels of what the machine lacks, for its Python
# 3.12 (the bench's MATH-500 is in the repository, data/math/):
#
#     for spec in fastapi==0.165.0 starlette==1.10.0 pydantic==2.14.4 pydantic-core==2.50.5 \
#         pydantic-settings==2.16.3 uvicorn==0.54.0 annotated-types==0.8.0 typing-inspection==0.4.5 \
#         python-dotenv==1.2.4 cachetools==8.0.2 redis==8.1.0 annotated-doc==0.0.7 opentelemetry-api==1.45.2 \
#         typing-extensions==4.16.0 anyio==4.16.0 click==8.5.1 h11==0.16.0 idna==3.20; do
#       python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#         --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#         --platform any -d .whl "$spec"
#     done
#
# (the server's runtime imports plus their Requires-Dist; docker is left out: nothing here imports it.)
# A wheel is installed only where the machine has no such package or one too old for the other wheels,
# so that nothing the machine's torch stack relies on is shadowed needlessly.
#
# Every step runs even if an earlier one failed. Exit status: 1 if the tests failed or could not run
# (no CUDA, broken imports), 2 if only the bench failed, 0 otherwise.
#
# Environment: OUT (output folder), PYTHON (default python3), WHEEL_DIR (default .whl), SITE_DIR (default
# /tmp/site), GPU_TESTS_TIMEOUT_S (210), BENCH_TIMEOUT_S (120).

set -uo pipefail
export PYTHONUNBUFFERED=1 TQDM_DISABLE=1 HF_HUB_DISABLE_PROGRESS_BARS=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

OUT="${OUT:-/tmp/gpu_check_out}"
PY="${PYTHON:-python3}"
WHEELS="${WHEEL_DIR:-.whl}"
SITE="${SITE_DIR:-/tmp/site}"
mkdir -p "$OUT"
failed_tests=0
failed_other=0
started=$(date +%s)

step() { printf '\n===== %s (%ss) =====\n' "$1" "$(($(date +%s) - started))"; }

step "install wheels from $WHEELS into $SITE"
# Which wheels the machine needs: not installed, or installed at a version some wheel's requirements reject.
selected=$(env -u PYTHONPATH "$PY" - "$WHEELS" <<'EOF'
import sys
import zipfile
from email.parser import Parser
from importlib import metadata
from pathlib import Path

wheels = sorted(Path(sys.argv[1]).glob("*.whl"))
try:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name
except ImportError:
    print("packaging is missing: installing every wheel", file=sys.stderr)
    print("\n".join(map(str, wheels)))
    raise SystemExit(0)

found = {}
for path in wheels:
    with zipfile.ZipFile(path) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        meta = Parser().parsestr(archive.read(name).decode())
    found[canonicalize_name(meta["Name"])] = (path, meta["Version"], meta.get_all("Requires-Dist") or [])
wanted = {}
for _, _, requires in found.values():
    for line in requires:
        req = Requirement(line)
        if req.marker is None or req.marker.evaluate({"extra": ""}):
            wanted.setdefault(canonicalize_name(req.name), []).append(req.specifier)
for name, (path, version, _) in sorted(found.items()):
    try:
        have = metadata.version(name)
    except metadata.PackageNotFoundError:
        have = None
    keep = have is not None and all(spec.contains(have, prereleases=True) for spec in wanted.get(name, []))
    print(f"  {name:<20} machine {have or '-':<12} wheel {version:<12} {'keep' if keep else 'INSTALL'}",
          file=sys.stderr)
    if not keep:
        print(path)
EOF
)
if [ -z "$selected" ]; then
    echo "no wheel to install"
elif "$PY" -m pip --version >/dev/null 2>&1; then
    rm -rf "$SITE"
    # shellcheck disable=SC2086  # one path per word
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" $selected \
        || { echo "FAILED: pip install"; failed_tests=1; }
else
    echo "no pip: unpacking the wheels into $SITE"
    rm -rf "$SITE"
    "$PY" -c 'import sys, zipfile; [zipfile.ZipFile(w).extractall(sys.argv[1]) for w in sys.argv[2:]]' \
        "$SITE" $selected || { echo "FAILED: unpacking wheels"; failed_tests=1; }
fi
export PYTHONPATH="$SITE:$PWD"

step "machine"
nvidia-smi || echo "nvidia-smi failed"
"$PY" - <<'EOF' || { echo "FAILED: CUDA is not usable from torch"; failed_tests=1; }
import importlib, sys
from importlib import metadata
import torch, transformers, tokenizers
print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda,
      "transformers", transformers.__version__, "tokenizers", tokenizers.__version__)
for dist, name in [("fastapi",) * 2, ("starlette",) * 2, ("pydantic",) * 2, ("pydantic-core", "pydantic_core"),
                   ("pydantic-settings", "pydantic_settings"), ("uvicorn",) * 2, ("redis",) * 2, ("anyio",) * 2,
                   ("typing-extensions", "typing_extensions"), ("click",) * 2, ("httpx",) * 2, ("typer",) * 2]:
    try:
        where = importlib.import_module(name).__file__
        print(f"  {dist:<18} {metadata.version(dist):<10} {where}")
    except Exception as exc:  # the imports step below fails on it
        print(f"  {dist:<18} MISSING {exc!r}")
assert torch.cuda.is_available(), "torch.cuda.is_available() is False"
print(torch.cuda.get_device_name(0), "capability", torch.cuda.get_device_capability(0),
      "bf16", torch.cuda.is_bf16_supported())
EOF

step "imports"
"$PY" -c 'import reward_server.api.app, reward_server.cli, trainer_client.train, trainer_client.sampling.hf' \
    && "$PY" -m reward_server serve --help >/dev/null \
    && echo "reward_server and trainer_client import; python -m reward_server runs" \
    || { echo "FAILED: imports"; failed_tests=1; }

step "gpu tests"
# The machine has no pytest-asyncio, so pyproject's asyncio_* options are unknown there: not an error.
timeout "${GPU_TESTS_TIMEOUT_S:-210}" "$PY" -m pytest -q -m gpu tests/gpu -p no:cacheprovider --durations=10 \
    -W ignore::pytest.PytestConfigWarning 2>&1 | tee "$OUT/gpu_tests.log"
status=${PIPESTATUS[0]}
if [ "$status" -ne 0 ]; then
    echo "FAILED: gpu tests (exit $status; 124 is the timeout)"
    failed_tests=1
elif grep -qE '[0-9]+ skipped' "$OUT/gpu_tests.log" && ! grep -qE '[0-9]+ passed' "$OUT/gpu_tests.log"; then
    echo "FAILED: every gpu test was skipped"
    failed_tests=1
fi

step "trainer step bench on cuda"
data=data/math/math_test_500.jsonl
[ -f "$data" ] || { data=examples/toy_sums.jsonl; echo "no MATH-500 here: the bench runs on $data"; }
timeout "${BENCH_TIMEOUT_S:-120}" "$PY" bench/trainer_step.py --device cuda --data "$data" \
    --out bench/results/trainer_step_cuda.json 2>&1 | tee "$OUT/trainer_step.log"
status=${PIPESTATUS[0]}
if [ "$status" -eq 0 ] && cp bench/results/trainer_step_cuda.json "$OUT/"; then
    echo "bench JSON in $OUT/trainer_step_cuda.json"
else
    echo "FAILED: bench (exit $status; 124 is the timeout)"
    failed_other=1
fi

step "done"
if [ "$failed_tests" -ne 0 ]; then
    echo "RESULT: FAILED (tests or their set-up)"
    exit 1
elif [ "$failed_other" -ne 0 ]; then
    echo "RESULT: tests passed, bench FAILED"
    exit 2
fi
echo "RESULT: all passed"
