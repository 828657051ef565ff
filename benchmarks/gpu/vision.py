"""Vision on the GPU: a generated model and projector loaded with every layer and the
projector on the GPU (libmtmd `use_gpu`), one image through the batching engine,
and libmtmd's reported compute buffer against the planner's prediction.

    python benchmarks/gpu/vision.py [--out FILE]

Prints a table (projector shape, flash attention, predicted and reported MiB, the
answer's image tokens and whether its greedy text equals the CPU's) and writes it
to FILE as Markdown.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from localllm.engine.batch import Engine
from localllm.engine.model import LlamaModel
from localllm.engine.protocol import MARKER, Done, Generate, Image, Piece, Sampling
from localllm.engine.vision import Projector
from localllm.gguf.reader import read_header
from localllm.gguf.source import FileSource
from localllm.planner.projector import ProjectorShape, compute_bytes
from localllm.planner.settings import LoadSettings

MIB = 1 << 20
SHAPES = [  # tests.factory.ProjectorSpec fields
    {},
    {"image_size": 256, "n_embd": 128, "n_ff": 512, "n_head": 4, "n_layer": 3},
    {"image_size": 384, "n_embd": 256, "n_ff": 1024, "n_head": 8, "n_layer": 4},
]
WRITE = """
import sys
from pathlib import Path
from tests.factory import TINY, ProjectorSpec, write_model, write_projector
folder = Path(sys.argv[1])
write_model(TINY, folder / "tiny.gguf")
for i, fields in enumerate(SHAPES):
    write_projector(ProjectorSpec(**fields), folder / f"mmproj-{i}.gguf", TINY)
"""


def write_files(folder: Path) -> None:
    """The model and projectors, written by a child process: the `gguf` package imports
    numpy, which loaded before llama.cpp made its CUDA load crash on the GPU machine."""
    code = f"SHAPES = {SHAPES!r}\n{WRITE}"
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", code, str(folder)], check=True, cwd=root)


def answer(model: LlamaModel, projector_path: Path, image: Image) -> tuple[str, Done, str]:
    """The greedy answer about `image`, and libmtmd's compute buffer (MiB) at load."""
    start = len(model.log)
    engine = Engine(model, projector=Projector(str(projector_path), model))
    text = "".join(list(model.log)[start:])
    # On a GPU libmtmd reports the device's buffer and a small host one; the device's
    # is the one that can run out. It reserves again after falling back to the CPU for
    # flash attention (head sizes CUDA has no kernel for): the last report counts.
    sizes = re.findall(r"CUDA0 compute buffer size =\s*([\d.]+) MiB", text) or re.findall(
        r"CPU compute buffer size =\s*([\d.]+) MiB", text
    )
    if "falling back to CPU" in text:
        sizes = [s + " (attention on the CPU)" for s in sizes]
    sampling = Sampling(temperature=0, num_predict=16, repeat_penalty=1.0)
    engine.submit(Generate(1, prompt=f"{MARKER} Say", sampling=sampling, images=(image,)))
    answer_text, done = "", None
    while engine.busy:
        for event in engine.step():
            if isinstance(event, Piece):
                answer_text += event.text
            elif isinstance(event, Done):
                done = event
    engine.close()
    assert done is not None
    return answer_text, done, sizes[-1] if sizes else "?"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    import numpy as np  # after llama_cpp: numpy's libraries loaded first crashed its CUDA load

    folder = Path(tempfile.mkdtemp())
    write_files(folder)
    model_path = folder / "tiny.gguf"
    pixels = np.random.default_rng(1).integers(0, 255, (300, 400, 3), dtype=np.uint8)
    data = pixels.tobytes()
    image = Image(400, 300, data, hashlib.sha256(data).hexdigest())
    rows = ["| projector | flash attention | predicted MiB | reported MiB | image tokens "
            "| greedy text as on the CPU |", "|---|---|---|---|---|---|"]  # fmt: skip
    for i in range(len(SHAPES)):
        path = folder / f"mmproj-{i}.gguf"
        with FileSource(path) as f:
            header = read_header(f)
        shape = ProjectorShape.from_header(
            header.metadata, {t.name: t.nbytes for t in header.tensors}
        )
        for flash in (True, False):
            texts = {}
            for where, ngl in (("gpu", 99), ("cpu", 0)):
                settings = LoadSettings(n_gpu_layers=ngl, n_ctx=4096, n_seq_max=1, n_threads=4,
                                        flash_attn=flash)  # fmt: skip
                model = LlamaModel([str(model_path)], settings, (), keep_log=None)
                texts[where], done, reported = answer(model, path, image)
                model.close()
                if where == "gpu":
                    gpu_reported, tokens = reported, done.image_tokens
            predicted = compute_bytes(shape, flash) / MIB
            rows.append(f"| {shape.image_size} px / {shape.patch_size} px, {shape.n_embd} wide, "
                        f"{shape.n_layer} layers | {'on' if flash else 'off'} | {predicted:.2f} "
                        f"| {gpu_reported} | {tokens} | "
                        f"{'yes' if texts['gpu'] == texts['cpu'] else 'no'} |")  # fmt: skip
            print(rows[-1], flush=True)
    table = "\n".join(rows)
    print(table)
    if args.out:
        args.out.write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
