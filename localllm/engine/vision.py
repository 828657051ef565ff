"""Images into a slot, through llama.cpp's multimodal library (libmtmd).

A model with a projector (`mmproj` GGUF) loads it here beside the model. A request's
prompt text holds one `MARKER` per image; `mtmd_tokenize` splits it into text tokens
and image chunks (with the model's own image wrappers, e.g. Gemma 3's
`<start_of_image>`). In the slot's token list an image stands as a run of one
negative id (from the image's digest) as long as its tokens, so the
prefix cache compares images as it compares tokens: a follow-up question about the
same image keeps its KV cells and does not encode it again.

Images are encoded on a thread of their own (ctypes lets go of the GIL), so the
other streams keep decoding meanwhile; the embeddings then go into the slot in a
decode of their own (`mtmd_helper_decode_image_chunk`, which also sets the
positions of M-RoPE models and non-causal attention where the model wants them).
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import llama_cpp
import numpy as np

from localllm.engine.llamalog import route_mtmd_log
from localllm.engine.protocol import MARKER, Image
from localllm.errors import LocalLLMError

if TYPE_CHECKING:
    from localllm.engine.model import LlamaModel


class ProjectorError(LocalLLMError):
    """The projector does not load, or not for this model."""


@dataclass
class ImagePart:
    """One image chunk of a prompt."""

    chunk: Any
    """libmtmd's chunk (owned by the prompt's chunk list)."""
    n_tokens: int
    n_pos: int
    """Positions it takes (fewer than its tokens with M-RoPE)."""
    embedding: Future[np.ndarray[Any, Any]] | None = None
    """Its encoding, once asked for (`Projector.encode`)."""


def image_token_id(image_id: str, ordinal: int) -> int:
    """The id that stands for each token of an image's `ordinal`-th chunk in a slot."""
    value = int(hashlib.sha256(f"{image_id}/{ordinal}".encode()).hexdigest()[:8], 16)
    return -1 - value % (2**31 - 2)


class Projector:
    def __init__(self, path: str, model: LlamaModel) -> None:
        from llama_cpp import mtmd_cpp as mtmd

        self._mtmd = mtmd
        route_mtmd_log()
        params = mtmd.mtmd_context_params_default()
        settings = model.settings
        params.use_gpu = settings.n_gpu_layers != 0
        params.n_threads = max(1, settings.n_threads)
        params.print_timings = False
        params.flash_attn_type = (
            llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED
            if settings.flash_attn
            else llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
        )
        self._marker = MARKER.encode()
        params.media_marker = self._marker  # kept alive by self: ctypes holds a pointer
        self.ctx = mtmd.mtmd_init_from_file(path.encode(), model.model, params)
        if not self.ctx:
            from localllm.engine.llamalog import last_reason

            raise ProjectorError(f"the vision projector did not load: {last_reason(model.log)}")
        if not mtmd.mtmd_support_vision(self.ctx):
            mtmd.mtmd_free(self.ctx)
            self.ctx = None
            raise ProjectorError("the projector reads no images (an audio-only projector)")
        self.model = model
        self.n_embd = int(llama_cpp.llama_model_n_embd_inp(model.model))
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="encode")
        self._no_callback = mtmd.mtmd_helper_post_decode_callback()  # NULL

    def tokenize(self, text: str, images: Sequence[Image], add_special: bool) -> Tokenized:
        """`text` (one MARKER per image) as tokens with each image's run of its id,
        and its image chunks by where they start; LocalLLMError for a bad count."""
        mtmd = self._mtmd
        bitmaps = []
        for image in images:
            data = (ctypes.c_uint8 * len(image.rgb)).from_buffer_copy(image.rgb)
            bitmap = mtmd.mtmd_bitmap_init(image.width, image.height, data)
            mtmd.mtmd_bitmap_set_id(bitmap, image.digest.encode())
            bitmaps.append(bitmap)
        chunks = mtmd.mtmd_input_chunks_init()
        raw = text.encode()
        given = mtmd.mtmd_input_text()
        given.text, given.text_len = raw, len(raw)
        given.add_special, given.parse_special = add_special, True
        array = (mtmd.mtmd_bitmap_p_ctypes * max(1, len(bitmaps)))(*bitmaps)
        try:
            code = mtmd.mtmd_tokenize(self.ctx, chunks, ctypes.byref(given), array, len(bitmaps))
        finally:
            for bitmap in bitmaps:
                mtmd.mtmd_bitmap_free(bitmap)
        if code != 0:
            mtmd.mtmd_input_chunks_free(chunks)
            if code == 1:
                raise LocalLLMError(
                    f"the prompt has {text.count(MARKER)} image places ({MARKER}) "
                    f"for {len(images)} images"
                )
            raise LocalLLMError("an image could not be prepared for the model")
        return Tokenized(self, chunks)

    def encode(self, part: ImagePart) -> None:
        """Start encoding `part` on the encoding thread (one at a time: libmtmd keeps one
        output buffer)."""
        part.embedding = self._pool.submit(self._encode, part)

    def _encode(self, part: ImagePart) -> np.ndarray[Any, Any]:
        mtmd = self._mtmd
        if mtmd.mtmd_encode_chunk(self.ctx, part.chunk) != 0:
            raise LocalLLMError("the image could not be encoded")
        out = mtmd.mtmd_get_output_embd(self.ctx)
        return np.ctypeslib.as_array(out, shape=(part.n_tokens * self.n_embd,)).copy()

    def decode(self, part: ImagePart, pos: int, seq: int, n_batch: int) -> int:
        """Put the encoded `part` into sequence `seq` from position `pos`; returns the
        position after it."""
        assert part.embedding is not None
        embedding = part.embedding.result()
        after = llama_cpp.llama_pos(0)
        data = embedding.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        code = self._mtmd.mtmd_helper_decode_image_chunk(
            self.ctx, self.model.ctx, part.chunk, data, pos, seq, n_batch,
            ctypes.byref(after), self._no_callback, None,
        )  # fmt: skip
        if code != 0:
            raise LocalLLMError(f"the image did not fit the model's batch (code {code})")
        return int(after.value)

    def close(self) -> None:
        if self.ctx is not None:
            self._pool.shutdown(wait=True)
            self._mtmd.mtmd_free(self.ctx)
            self.ctx = None


class Tokenized:
    """A prompt's chunks as one token list: text tokens, and a run of one negative id for
    each image chunk (`parts`, by the index where it starts)."""

    def __init__(self, projector: Projector, chunks: Any) -> None:
        mtmd = projector._mtmd
        self._mtmd = mtmd
        self.chunks = chunks
        self.tokens: list[int] = []
        self.parts: dict[int, ImagePart] = {}
        ordinals: dict[str, int] = {}
        for i in range(mtmd.mtmd_input_chunks_size(chunks)):
            chunk = mtmd.mtmd_input_chunks_get(chunks, i)
            kind = mtmd.mtmd_input_chunk_get_type(chunk)
            if kind == mtmd.MTMD_INPUT_CHUNK_TYPE_TEXT:
                n = ctypes.c_size_t(0)
                ptr = mtmd.mtmd_input_chunk_get_tokens_text(chunk, ctypes.byref(n))
                self.tokens += [int(ptr[j]) for j in range(n.value)]
                continue
            image_id = (mtmd.mtmd_input_chunk_get_id(chunk) or b"").decode()
            ordinal = ordinals[image_id] = ordinals.get(image_id, -1) + 1
            n_tokens = int(mtmd.mtmd_input_chunk_get_n_tokens(chunk))
            n_pos = int(mtmd.mtmd_input_chunk_get_n_pos(chunk))
            self.parts[len(self.tokens)] = ImagePart(chunk, n_tokens, n_pos)
            self.tokens += [image_token_id(image_id, ordinal)] * n_tokens

    @property
    def image_tokens(self) -> int:
        return sum(p.n_tokens for p in self.parts.values())

    def next_image(self, index: int) -> int | None:
        """Where the first image at or after token `index` starts (None: no more)."""
        later = [start for start in self.parts if start >= index]
        return min(later) if later else None

    def close(self) -> None:
        """Free the chunks, once no encoding of theirs is still running."""
        for part in self.parts.values():
            if part.embedding is not None and not part.embedding.cancel():
                with contextlib.suppress(Exception):
                    part.embedding.result()
        if self.chunks is not None:
            self._mtmd.mtmd_input_chunks_free(self.chunks)
            self.chunks = None


class ImagePrompt:
    """The tokenizer `prompt.prompt_tokens` uses for a request with images: it keeps
    the chunks of its last call (the text the prompt ended up as).

    Dropping old messages (`truncate`) drops their markers; the images that go with
    the markers left are then the last ones, since messages go oldest first."""

    def __init__(self, projector: Projector, images: Sequence[Image]) -> None:
        self.projector = projector
        self.images = tuple(images)
        self.last: Tokenized | None = None

    def __call__(self, text: str, add_special: bool) -> list[int]:
        n = text.count(MARKER)
        if n > len(self.images):
            raise LocalLLMError(
                f"the prompt has {n} image places ({MARKER}) for {len(self.images)} images"
            )
        if self.last is not None:
            self.last.close()
        images = self.images[len(self.images) - n :] if n else ()
        self.last = self.projector.tokenize(text, images, add_special)
        return self.last.tokens
