#!/usr/bin/env bash
# On the GPU machine (no package index there): build llama.cpp with CUDA, shared
# libraries and llama-server, from the source inside llama-cpp-python's sdist,
# and lay out /tmp/site: the carried wheels, and llama-cpp-python's Python files
# over the CUDA libraries. Idempotent: a second run on a warm machine does nothing.
#
# Carried (made on the development machine by benchmarks/gpu/carry.sh):
#   .whl/    localllm's pure-Python dependencies as cp312 wheels
#   .carry/  llama.cpp.tar.gz (the sdist's vendor/llama.cpp, trimmed) and
#            llama_cpp/ (llama-cpp-python's Python files)
#   .carry/build/  optional: llama-build.tar.xz.part-* from an earlier GPU machine
#            (`round.sh save`): the same build unpacked instead of 4.5 minutes of cmake,
#            where it was built from the release carried (its version checked)
set -euo pipefail
SITE=/tmp/site
BUILD=/tmp/llama-build
if [ -f "$SITE/.ready" ]; then exit 0; fi
if [ ! -f "$SITE/.wheels" ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$SITE" .whl/*.whl
    touch "$SITE/.wheels"
fi
if [ "${1:-}" = wheels ]; then exit 0; fi  # only the wheels (the GPU round writes models meanwhile)
# the build's source: llama-cpp-python's release (carry.sh packs its vendored llama.cpp)
release=$(grep -m1 __version__ .carry/llama_cpp/__init__.py | tr -cd '0-9.')
if ls .carry/build/llama-build.tar.xz.part-* > /dev/null 2>&1 \
        && [ "$(cat .carry/build/source 2> /dev/null)" = "$release" ]; then
    cat .carry/build/llama-build.tar.xz.part-* | tar -C / -xJf -
    echo "setup: the carried build of llama-cpp-python $release"
else
    mkdir -p /tmp/src
    tar xzf .carry/llama.cpp.tar.gz -C /tmp/src
    cmake -S /tmp/src/llama.cpp -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release \
        -DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=90-real -DBUILD_SHARED_LIBS=ON \
        -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF > /tmp/cmake.log
    cmake --build "$BUILD" --target llama-server llama-batched-bench llama mtmd -j "$(nproc)" \
        > /tmp/build.log
    echo "$release" > "$BUILD/source"
fi
cp -r .carry/llama_cpp "$SITE/"
mkdir -p "$SITE/llama_cpp/lib"
find "$BUILD" -name '*.so*' -exec cp -P {} "$SITE/llama_cpp/lib/" \;
ln -sf "$BUILD/bin/llama-server" /tmp/llama-server
ln -sf "$BUILD/bin/llama-batched-bench" /tmp/llama-batched-bench
touch "$SITE/.ready"
