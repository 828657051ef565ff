#!/usr/bin/env bash
# On the development machine: what the GPU machine needs and cannot download.
# Puts the wheels in .whl/ and the llama.cpp source and llama-cpp-python's Python
# files in .carry/ (both ignored by git; name them in the device run's carry).
# .carry/build/, where a GPU machine's build was saved (`round.sh save`), is kept.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=.venv/bin/python
mkdir -p .whl .carry
pins=()
for p in starlette uvicorn pydantic pydantic-core httpx httpcore h11 anyio sniffio idna certifi \
         platformdirs py-cpuinfo gguf diskcache filelock typing-extensions annotated-types \
         typing-inspection click rich markdown-it-py mdurl pygments \
         jsonschema jsonschema-specifications referencing rpds-py jinja2 markupsafe attrs pillow; do
    pins+=("$p==$($PY -m pip show "$p" | awk '/^Version:/{print $2}')")
done
$PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .whl "${pins[@]}"
release=$($PY -m pip show llama-cpp-python | awk '/^Version:/{print $2}')
work=$(mktemp -d)
$PY -m pip download -q --no-deps --no-binary :all: -d "$work" "llama-cpp-python==$release"
tar xzf "$work"/llama_cpp_python-*.tar.gz -C "$work"
tar czf .carry/llama.cpp.tar.gz -C "$work"/llama_cpp_python-*/vendor \
    --exclude='llama.cpp/models/*.gguf' --exclude='llama.cpp/docs' --exclude='llama.cpp/media' \
    --exclude='llama.cpp/benches' --exclude='llama.cpp/.git*' llama.cpp
site=$($PY -c 'import llama_cpp, os; print(os.path.dirname(llama_cpp.__file__))')
rm -rf .carry/llama_cpp
cp -r "$site" .carry/llama_cpp
rm -rf .carry/llama_cpp/lib
find .carry/llama_cpp -name __pycache__ -prune -exec rm -rf {} +
du -sh .whl .carry
