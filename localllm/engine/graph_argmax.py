"""The greedy token of every output row of a decode in one op of llama.cpp's graph.

llama.cpp's own greedy backend sampler adds an argmax of one row per sequence to the
graph: at 64 streams, 64 kernels of one block each made the decode 8.6 ms where the
model's layers take 5.5, so greedy rows were read off the logits on the host instead
(1.2 ms of argmax after 32 MB of logits crossed to it). Here each sequence's sampler
is a custom one (`llama_sampler_i`, its graph part written in Python) that takes one
argmax over the whole logits matrix, built once per graph by the first sequence whose
sampler is asked, and gives each sequence the view of its own row: one kernel for
every stream, and with every row sampled in the graph no logits cross to the host.

A second argmax, over the logits plus a bias row that pushes the end tokens down,
answers requests that ban them (`ignore_eos`). The two are joined into a pair per row,
and each sequence's sampler hands over the view of its row's pair as the row's
"candidates": one 8-byte copy a row. The bias row is a tensor of its own, written once
into a buffer on the device the logits are on when llama.cpp first sets a chain up,
and read by every graph after as a weight is: nothing to set before each decode.

llama.cpp calls a sampler's graph part while it builds a graph, on the thread that
called `llama_decode` (a graph it reuses calls nothing). Python callbacks cost about a
microsecond each, paid only at a build.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Sequence
from typing import Any

import llama_cpp

_TOKEN = ctypes.sizeof(ctypes.c_int32)
_INTS = ctypes.POINTER(ctypes.c_int32)
_BURIED = -1.0e30
"""Added to an end token's logit where it is banned: far below any logit, and finite,
so that a row the model gives all to end tokens still has an argmax."""


class _InitParams(ctypes.Structure):
    _fields_ = [
        ("mem_size", ctypes.c_size_t),
        ("mem_buffer", ctypes.c_void_p),
        ("no_alloc", ctypes.c_bool),
    ]


class _Tensor(ctypes.Structure):
    """The head of `struct ggml_tensor` (ggml.h) up to its view fields; the size of the
    whole is checked against `ggml_tensor_overhead` before any is read."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("buffer", ctypes.c_void_p),
        ("ne", ctypes.c_int64 * 4),
        ("nb", ctypes.c_size_t * 4),
        ("op", ctypes.c_int),
        ("op_params", ctypes.c_int32 * 16),
        ("flags", ctypes.c_int32),
        ("src", ctypes.c_void_p * 10),
        ("view_src", ctypes.c_void_p),
        ("view_offs", ctypes.c_size_t),
        ("data", ctypes.c_void_p),
        ("name", ctypes.c_char * 64),
        ("extra", ctypes.c_void_p),
        ("padding", ctypes.c_char * 8),
    ]


_F32 = 0
"""GGML_TYPE_F32."""
_OBJECT_SIZE = 32
"""sizeof(struct ggml_object), which `ggml_tensor_overhead` adds to a tensor's."""

_SIGNATURES: dict[str, tuple[list[Any], Any]] = {
    "ggml_tensor_overhead": ([], ctypes.c_size_t),
    "ggml_argmax": ([ctypes.c_void_p, ctypes.c_void_p], ctypes.c_void_p),
    "ggml_add": ([ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p], ctypes.c_void_p),
    "ggml_init": ([_InitParams], ctypes.c_void_p),
    "ggml_free": ([ctypes.c_void_p], None),
    "ggml_new_tensor_1d": ([ctypes.c_void_p, ctypes.c_int, ctypes.c_int64], ctypes.c_void_p),
    "ggml_backend_alloc_ctx_tensors_from_buft": (
        [ctypes.c_void_p, ctypes.c_void_p],
        ctypes.c_void_p,
    ),
    "ggml_backend_tensor_set": (
        [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t],
        None,
    ),
    "ggml_backend_buffer_free": ([ctypes.c_void_p], None),
    "ggml_reshape_2d": (
        [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64],
        ctypes.c_void_p,
    ),
    "ggml_concat": (
        [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int],
        ctypes.c_void_p,
    ),
    "ggml_view_1d": (
        [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_size_t],
        ctypes.c_void_p,
    ),
}


@functools.cache
def _ggml() -> Any | None:
    """ggml's graph functions from the library llama-cpp-python ships, or None where
    this build's `ggml_tensor` is not the layout read here (once a process)."""
    from llama_cpp import _ggml as shipped  # loads libggml, which holds ggml-base's symbols

    lib = shipped.libggml
    for name, (args, result) in _SIGNATURES.items():
        function = getattr(lib, name)
        function.argtypes, function.restype = args, result
    if lib.ggml_tensor_overhead() != _OBJECT_SIZE + ctypes.sizeof(_Tensor):
        return None
    return lib


class GraphArgmax:
    """Makes the sampler chains that sample greedy rows in the graph, and builds their
    ops. One per context; it must outlive every chain it made."""

    def __init__(self, n_vocab: int, eog: Sequence[int]) -> None:
        self._n_vocab = n_vocab
        self._eog = tuple(sorted(set(eog)))
        self._lib = _ggml()
        self._bias: tuple[int, int, int] | None = None
        """(its ggml context, its buffer, the bias row), once a chain was set up."""
        self._built: tuple[int, int] | None = None
        """(the logits, the pairs of `_pairs`) of the graph being built, made when
        llama.cpp asks the first sampler."""
        self.whole = False
        """Hand every row's pair over at once, through the sampler of the graph's first
        row: one copy to the host a graph instead of one a row. Only for decodes whose
        every output row is sampled here, in one micro-batch in batch order (the
        caller's promise; `tokens` reads either layout). The engine does not set it:
        llama.cpp reuses a graph built so for a micro-batch of the same shape in a later
        decode it splits in several (streams with guesses: their first tokens alike),
        whose rows then come back in an order `tokens` cannot tell (`gpu/step.py`
        measures what it would save)."""
        i = llama_cpp
        self._iface = i.llama_sampler_i(
            name=i.llama_sampler_i_name(lambda _s: b"localllm-argmax"),
            accept=i.llama_sampler_i_accept(),
            apply=i.llama_sampler_i_apply(self._apply_on_host),
            reset=i.llama_sampler_i_reset(),
            clone=i.llama_sampler_i_clone(),
            free=i.llama_sampler_i_free(),
            backend_init=i.llama_sampler_i_backend_init(self._set_up),
            backend_accept=i.llama_sampler_i_backend_accept(),
            backend_apply=i.llama_sampler_i_backend_apply(self._apply_in_graph),
            backend_set_input=i.llama_sampler_i_backend_set_input(),
            backend_reset=i.llama_sampler_i_backend_reset(self._reset),
            copy_state=i.llama_sampler_i_copy_state(),
        )

    @property
    def usable(self) -> bool:
        return self._lib is not None

    @property
    def bans(self) -> bool:
        """Whether the pairs' second token bans the end tokens (their bias row is on the
        device), once a chain was set up."""
        return self.usable and (self._bias is not None or not self._eog)

    def chain(self) -> Any:
        """A new chain (llama.cpp attaches chains only) holding one argmax sampler; the
        caller frees it once no context holds it."""
        chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
        sampler = llama_cpp.llama_sampler_init(ctypes.pointer(self._iface), None)
        llama_cpp.llama_sampler_chain_add(chain, sampler)
        return chain

    def _set_up(self, _sampler: Any, buffer_type: int, _outputs: int) -> bool:
        """llama.cpp sets a chain up on the device its logits are on (`buffer_type`):
        the first time, the bias row is written there."""
        lib = self._lib
        if lib is None or self._bias is not None or not self._eog or not buffer_type:
            return True
        ctx = lib.ggml_init(_InitParams(lib.ggml_tensor_overhead() * 2, None, True))
        row = lib.ggml_new_tensor_1d(ctx, _F32, self._n_vocab)
        buffer = lib.ggml_backend_alloc_ctx_tensors_from_buft(ctx, buffer_type)
        if not buffer:
            lib.ggml_free(ctx)
            return True  # no banned argmax: `bans` says so
        values = (ctypes.c_float * self._n_vocab)()
        for token in self._eog:
            values[token] = _BURIED
        lib.ggml_backend_tensor_set(row, values, 0, ctypes.sizeof(values))
        self._bias = (ctx, buffer, row)
        return True

    def close(self) -> None:
        """Free the bias row: after the contexts whose graphs read it."""
        if self._bias is not None and self._lib is not None:
            ctx, buffer, _ = self._bias
            self._lib.ggml_backend_buffer_free(buffer)
            self._lib.ggml_free(ctx)
        self._bias = None

    def _reset(self, _sampler: Any) -> None:
        """A new graph is being built: what the last one built is gone with it."""
        self._built = None

    def _apply_in_graph(self, _sampler: Any, ctx: int, _graph: int, data: Any) -> None:
        """This sequence's row: a view of the pair (argmax, argmax with the end tokens
        banned) the graph takes once for every row of the logits (`data.logits` is a
        row view of them, padded with a row for idle samplers).

        When llama.cpp sets a chain up it probes it on a lone row of logits to count
        the nodes to leave room for in each graph: as many here as the shared nodes,
        more than the one view each sequence adds."""
        lib = self._lib
        if lib is None:
            return
        row_view = _Tensor.from_address(data.contents.logits)
        logits = row_view.view_src
        if not logits:  # llama.cpp's probe, counting the nodes to make room for
            data.contents.candidates = lib.ggml_view_1d(
                ctx, self._pairs(ctx, data.contents.logits, 1, probe=True), 2, 0
            )
            return
        head = _Tensor.from_address(logits)
        rows = head.ne[1]
        built = self._built
        if built is None or built[0] != logits:
            built = self._built = (logits, self._pairs(ctx, logits, rows))
        row = row_view.view_offs // head.nb[1]
        if self.whole and 2 * rows <= self._n_vocab:
            if row == 0:  # (every other row sets nothing: llama.cpp copies nothing for it)
                data.contents.candidates = built[1]
            return
        data.contents.candidates = lib.ggml_view_1d(ctx, built[1], 2, row * 2 * _TOKEN)

    def _pairs(self, ctx: int, logits: int, rows: int, probe: bool = False) -> int:
        """[2, rows]: each row's argmax, then its argmax with the end tokens banned (a
        `probe`'s logits are not the vocabulary's width: the same nodes, no bias)."""
        lib = self._lib
        assert lib is not None
        plain = lib.ggml_argmax(ctx, logits)
        banned = plain
        if self._bias is not None:
            biased = logits if probe else lib.ggml_add(ctx, logits, self._bias[2])
            banned = lib.ggml_argmax(ctx, biased)
        first, second = (
            lib.ggml_reshape_2d(ctx, plain, 1, rows),
            lib.ggml_reshape_2d(ctx, banned, 1, rows),
        )
        pairs: int = lib.ggml_concat(ctx, first, second, 0)
        return pairs

    def _apply_on_host(self, _sampler: Any, candidates: Any) -> None:
        """The CPU side, for a row the graph did not sample: the first highest logit."""
        array = candidates.contents
        best, best_logit = 0, float("-inf")
        for k in range(array.size):
            if array.data[k].logit > best_logit:
                best, best_logit = k, array.data[k].logit
        array.selected = best


def tokens(
    ctx: Any, n_vocab: int, rows: Sequence[tuple[int, int, bool]], first: int = 0
) -> dict[int, int]:
    """{batch index: its greedy token} for `rows` of the last decode, each (a batch
    index, its rank among the decode's outputs, whether end tokens are banned);
    `first`: the batch index of the decode's first output.

    llama.cpp copies each row's pair into its "candidates" block, a row of `n_vocab`
    per output, in batch order once read: one call finds the block, the rest is
    read in place. Where the pairs came over at once (`GraphArgmax.whole`, or a graph
    llama.cpp reused from such a decode), they are all in the first output's row."""
    if not rows:
        return {}
    index, rank, _ = rows[0]
    get, count = (
        llama_cpp.llama_get_sampled_candidates_ith,
        llama_cpp.llama_get_sampled_candidates_count_ith,
    )
    found = get(ctx, index)  # waits for the decode
    if found and count(ctx, index) == 2:
        block = ctypes.cast(ctypes.addressof(found.contents) - rank * n_vocab * _TOKEN, _INTS)
        return {i: block[r * n_vocab + ban] for i, r, ban in rows}
    whole = get(ctx, first)
    if not whole or count(ctx, first) < 2 * (max(r for _, r, _ in rows) + 1):
        raise RuntimeError(f"the graph sampled no token for batch position {index}")
    return {i: whole[2 * r + ban] for i, r, ban in rows}
