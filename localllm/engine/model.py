"""A model and its context, loaded with llama.cpp's low-level API.

Only worker processes import this module (it imports llama_cpp). The model
is memory-mapped; the context is created with the planner's settings, and a
load that fails with GPU layers is retried with fewer (three quarters, down
to none) rather than giving up: the planner's estimate and the driver's real
free memory can disagree.
"""

from __future__ import annotations

import ctypes
import functools
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from typing import Any

import llama_cpp

from localllm.engine.graph_argmax import GraphArgmax
from localllm.engine.llamalog import capture_log, last_reason
from localllm.engine.params import context_params, model_params
from localllm.engine.protocol import Adapter, Load, Loaded
from localllm.engine.speculation import K_MAX
from localllm.errors import LocalLLMError
from localllm.planner.settings import LoadSettings


class LoadError(LocalLLMError):
    """llama.cpp could not load the model or create its context."""


class LlamaModel:
    def __init__(
        self,
        paths: Sequence[str],
        settings: LoadSettings,
        adapters: Sequence[Adapter],
        keep_log: int | None = 400,
    ):
        """`keep_log`: how many of llama.cpp's log lines to keep (for error messages);
        None keeps all (to read the whole load report)."""
        self.log = capture_log(keep=keep_log, echo=True)
        self._pieces: dict[int, bytes] = {}
        self._control: dict[tuple[str, ...], frozenset[int]] = {}
        llama_cpp.llama_backend_init()
        if settings.numa or settings.cpus:
            from localllm.engine import numa

            numa.apply(settings)
        s = asdict(settings)
        self.settings = settings
        self.model = self._load_model(paths, model_params(llama_cpp, s, devices=self._devices()))
        self.adapters: list[Any] = []
        self.ctx = None
        self.vocab = llama_cpp.llama_model_get_vocab(self.model)
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(self.vocab)
        vocab = self.vocab  # a scan of the vocabulary (tens of ms for 128k), done once
        self.eog = tuple(t for t in range(self.n_vocab) if llama_cpp.llama_vocab_is_eog(vocab, t))
        """Every end-of-generation token."""
        self._eog_set = frozenset(self.eog)
        """The same, to look each sampled token up in (cheaper than a call into C)."""
        try:
            for adapter in adapters:
                handle = llama_cpp.llama_adapter_lora_init(self.model, adapter.path.encode())
                if not handle:
                    raise LoadError(f"adapter {adapter.path}: {last_reason(self.log)}")
                self.adapters.append(handle)
            cp = context_params(llama_cpp, s)
            self._backend_chains: list[Any] = []
            """Each sequence's greedy chain, its home (`graph_sampling`; freed at `close`)."""
            self.argmax: GraphArgmax | None = None
            """What the greedy chains are made of (`engine.graph_argmax`), sampling in the graph."""
            if settings.backend_sampling:
                self._configure_backend_sampling(cp, max(1, settings.n_seq_max))
            if self._meta_int("pooling_type", -1) < 0:
                # Models without their own pooling (chat models) embed by mean pooling;
                # generation is unaffected (only used with embeddings on).
                cp.pooling_type = llama_cpp.LLAMA_POOLING_TYPE_MEAN
            self.ctx = llama_cpp.llama_init_from_model(self.model, cp)
            if not self.ctx:
                raise LoadError(f"no context for the model: {last_reason(self.log)}")
            self.default_lora = tuple((i, a.scale) for i, a in enumerate(adapters))
            """The adapters a request runs with unless it names its own."""
            self.lora: tuple[tuple[int, float], ...] = ()
            if self.adapters and not self.use_lora(self.default_lora):
                raise LoadError(f"the adapters do not fit this model: {last_reason(self.log)}")
        except BaseException:
            self.close()
            raise
        self.n_ctx = llama_cpp.llama_n_ctx(self.ctx)
        self.n_ctx_seq = llama_cpp.llama_n_ctx_seq(self.ctx)
        """The context of one sequence (slot): the whole context split among n_seq_max."""
        self.n_ctx_train = llama_cpp.llama_model_n_ctx_train(self.model)
        self.memory = llama_cpp.llama_get_memory(self.ctx)
        self.add_bos = bool(llama_cpp.llama_vocab_get_add_bos(self.vocab))
        self.bos = int(llama_cpp.llama_vocab_bos(self.vocab))
        self.bos_text = self._special_text(self.bos)
        self.eos_text = self._special_text(llama_cpp.llama_vocab_eos(self.vocab))
        template = llama_cpp.llama_model_chat_template(self.model, None)
        self.chat_template = template.decode(errors="replace") if template else None
        self.recurrent = bool(llama_cpp.llama_model_is_recurrent(self.model))
        self.has_swa = llama_cpp.llama_model_n_swa(self.model) > 0
        self.n_layer = int(llama_cpp.llama_model_n_layer(self.model))

    def _devices(self) -> list[int]:
        """With RPC workers: their devices, then this machine's GPUs (llama.cpp's own
        order), or only the GPUs of `settings.devices`; else none, and llama.cpp picks.
        Aborts if a worker does not answer: the server then names it (`workers.runner`)."""
        if not self.settings.workers and not self.settings.devices:
            return []
        from localllm.remote import rpc

        remote = [d for e in self.settings.workers for d in rpc.connect(e)]
        gpus = [d for d in rpc.local_devices() if d.kind in ("gpu", "igpu")]
        if self.settings.devices:  # pinned (a model's copy on one GPU: `workers.replicas`)
            gpus = [g for i, g in enumerate(gpus) if i in self.settings.devices]
        if not remote and not gpus:
            return []  # no GPU here after all: llama.cpp's choice (the CPU)
        return [d.handle for d in (*remote, *gpus)]

    def _load_model(self, paths: Sequence[str], mp: Any) -> Any:
        if len(paths) == 1:
            model = llama_cpp.llama_model_load_from_file(paths[0].encode(), mp)
        else:
            array = (ctypes.c_char_p * len(paths))(*(p.encode() for p in paths))
            model = llama_cpp.llama_model_load_from_splits(array, len(paths), mp)
        if not model:
            raise LoadError(f"llama.cpp could not load the model: {last_reason(self.log)}")
        return model

    def use_lora(self, lora: tuple[tuple[int, float], ...]) -> bool:
        """Run the next decodes with these adapters (index, scale): llama.cpp applies one
        set to the whole context, so the batch decodes one set's requests at a time."""
        if lora == self.lora:
            return True
        n = len(lora)
        handles = (llama_cpp.llama_adapter_lora_p_ctypes * max(n, 1))(
            *(self.adapters[i] for i, _ in lora)
        )
        scales = (ctypes.c_float * max(n, 1))(*(scale for _, scale in lora))
        if llama_cpp.llama_set_adapters_lora(self.ctx, handles, n, scales) != 0:
            return False
        self.lora = lora
        return True

    def metadata_text(self, key: str) -> str | None:
        """A metadata value of the GGUF as text (None when it has no such key)."""
        size = llama_cpp.llama_model_meta_val_str(self.model, key.encode(), None, 0)
        if size < 0:
            return None
        buf = ctypes.create_string_buffer(size + 1)
        llama_cpp.llama_model_meta_val_str(self.model, key.encode(), buf, size + 1)
        return buf.value.decode(errors="replace")

    def _meta_int(self, suffix: str, missing: int = 0) -> int:
        arch = self.metadata_text("general.architecture") or ""
        try:
            return int(self.metadata_text(f"{arch}.{suffix}") or missing)
        except ValueError:
            return missing

    def _special_text(self, token: int) -> str:
        return "" if token < 0 else self.piece(token, special=True).decode(errors="replace")

    def tokenize(self, text: str, add_special: bool, parse_special: bool = True) -> list[int]:
        data = text.encode()
        size = len(data) + 16
        while True:
            array = (llama_cpp.llama_token * size)()
            n = llama_cpp.llama_tokenize(
                self.vocab, data, len(data), array, size, add_special, parse_special
            )
            if n >= 0:
                return list(array[:n])
            size = -n

    def detokenize(self, tokens: Sequence[int]) -> str:
        """The text of `tokens`, control tokens written out (to show a prompt)."""
        return b"".join(self.piece(t, special=True) for t in tokens).decode(errors="replace")

    def piece(self, token: int, special: bool = False) -> bytes:
        if not special and (cached := self._pieces.get(token)) is not None:
            return cached
        buf = ctypes.create_string_buffer(64)
        n = llama_cpp.llama_token_to_piece(self.vocab, token, buf, 64, 0, special)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = llama_cpp.llama_token_to_piece(self.vocab, token, buf, -n, 0, special)
        if not special:
            self._pieces[token] = buf.raw[:n]
        return buf.raw[:n]

    @functools.cached_property
    def fim(self) -> tuple[int, int, int] | None:
        """The fill-in-the-middle tokens (prefix, suffix, middle); None if it has none."""
        ids = (
            llama_cpp.llama_vocab_fim_pre(self.vocab),
            llama_cpp.llama_vocab_fim_suf(self.vocab),
            llama_cpp.llama_vocab_fim_mid(self.vocab),
        )
        return None if min(ids) < 0 else (int(ids[0]), int(ids[1]), int(ids[2]))

    def control_tokens(self, texts: tuple[str, ...]) -> frozenset[int]:
        """The tokens whose text is one of `texts` (a format's markers; strings that are
        not one token are left out: the model writes those as plain text)."""
        if texts not in self._control:
            ids = (self.tokenize(t, add_special=False) for t in texts)
            self._control[texts] = frozenset(i[0] for i in ids if len(i) == 1)
        return self._control[texts]

    def is_eog(self, token: int) -> bool:
        return token in self._eog_set

    def _configure_backend_sampling(self, cp: Any, n_seq: int) -> None:
        """llama.cpp samples in the graph only for a context created with a sampler per
        sequence: each gets a chain that takes its greedy token in the graph
        (`engine.graph_argmax`: one argmax for every row of the decode), which the engine
        replaces with a request's own chain (or none, for what the backend cannot do)."""
        self.argmax = GraphArgmax(self.n_vocab, self.eog)
        configs = (llama_cpp.llama_sampler_seq_config * n_seq)()
        for seq in range(n_seq):
            chain = self._home_chain()
            self._backend_chains.append(chain)
            configs[seq].seq_id = seq
            configs[seq].sampler = ctypes.cast(chain, ctypes.c_void_p)
        self._backend_configs = configs  # llama.cpp keeps the pointer: keep it alive
        self._attached: list[Any] = list(self._backend_chains)
        """The chain each sequence samples with in the graph now (None: on the CPU)."""
        cp.samplers, cp.n_samplers = configs, n_seq
        # A guessing request has its next token and its guesses sampled in one pass.
        cp.n_outputs_max_per_seq = K_MAX + 1

    @property
    def samples_in_graph(self) -> bool:
        return bool(self._backend_chains)

    def sampler_of(self, seq: int) -> Any:
        """The chain sampling sequence `seq` in the graph, or None (on the CPU)."""
        return self._attached[seq] if self._backend_chains else None

    def at_home(self, seq: int) -> bool:
        """Whether `seq` has its greedy chain (`engine.graph_argmax`) attached."""
        return bool(self._backend_chains) and self._attached[seq] is self._backend_chains[seq]

    def send_home(self, seq: int) -> Any:
        """Attach `seq`'s greedy chain again and return it (None: sampling on the CPU).
        A new one each time but the first: llama.cpp sets a chain up only once."""
        if not self._backend_chains:
            return None
        if self.at_home(seq):
            return self._backend_chains[seq]
        chain = self._home_chain()
        if not self.use_sampler(seq, chain):
            llama_cpp.llama_sampler_free(chain)
            return None
        llama_cpp.llama_sampler_free(self._backend_chains[seq])  # no context holds it now
        self._backend_chains[seq] = chain
        return chain

    def _home_chain(self) -> Any:
        """A new greedy chain: `graph_argmax`'s, or llama.cpp's where it cannot be."""
        argmax = self.argmax
        return argmax.chain() if argmax is not None and argmax.usable else greedy_chain()

    def use_sampler(self, seq: int, chain: Any) -> bool:
        """Sample sequence `seq` in the graph with `chain` (None: on the CPU, from its
        logits). False when this context samples on the CPU only."""
        if not self._backend_chains:
            return False
        done = bool(llama_cpp.llama_set_sampler(self.ctx, seq, chain))
        self._attached[seq] = chain if done else None
        return done

    def close(self) -> None:
        if self.ctx:
            llama_cpp.llama_free(self.ctx)
            self.ctx = None
        for chain in getattr(self, "_backend_chains", ()):
            llama_cpp.llama_sampler_free(chain)
        self._backend_chains = []
        argmax: GraphArgmax | None = getattr(self, "argmax", None)
        if argmax is not None:
            argmax.close()  # after the context whose graphs read its bias row
            self.argmax = None
        for handle in self.adapters:
            llama_cpp.llama_adapter_lora_free(handle)
        self.adapters = []
        if self.model:
            llama_cpp.llama_model_free(self.model)
            self.model = None


def greedy_chain() -> Any:
    """llama.cpp's own greedy sampler in a chain (an argmax subgraph per sequence)."""
    chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
    llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_greedy())
    return chain


def fewer_layers(n_gpu_layers: int) -> int:
    return 0 if n_gpu_layers <= 1 else n_gpu_layers * 3 // 4


def warm_up(model: LlamaModel) -> None:
    """One decode of two tokens, then an empty cache: as llama.cpp's own tools warm up
    (the beginning and end tokens). Some backends first fail on the first inference
    (llama.cpp's AMX kernels, on CPUs or sandboxes that do not allow them: SIGILL or a
    segfault); here that happens while loading, where the server loads again more
    carefully (`workers.fallback`), and not in a user's first answer. Two tokens, not
    one: a one-row product takes another kernel than a prompt's (AMX's tiles start at
    two rows)."""
    eos = int(llama_cpp.llama_vocab_eos(model.vocab))
    tokens = (llama_cpp.llama_token * 2)(*(t if t >= 0 else 0 for t in (model.bos, eos)))
    batch = llama_cpp.llama_batch_get_one(tokens, 2)  # points into `tokens`: keep it alive
    llama_cpp.llama_decode(model.ctx, batch)  # a failure here is the first request's to say
    llama_cpp.llama_synchronize(model.ctx)  # (a GPU's decode runs on after it returns)
    llama_cpp.llama_memory_clear(model.memory, True)


def load(request: Load) -> tuple[LlamaModel, Loaded]:
    """Load as planned, with fewer GPU layers while llama.cpp cannot; raises LoadError."""
    start = time.perf_counter()
    settings = request.settings
    notes: list[str] = []
    while True:
        try:
            model = LlamaModel(request.paths, settings, request.adapters)
            break
        except LoadError as exc:
            if settings.n_gpu_layers <= 0:
                raise
            lower = fewer_layers(settings.n_gpu_layers)
            notes.append(f"{settings.n_gpu_layers} GPU layers failed ({exc}); trying {lower}")
            settings = replace(settings, n_gpu_layers=lower)
    warm_up(model)  # (a graph sampler draws for its row: the home chain keeps nothing)
    if settings.numa:
        from localllm.engine import numa

        note = numa.check(settings, request.paths)
        if note:
            notes.append(note)
    loaded = Loaded(
        settings=settings,
        n_ctx_train=model.n_ctx_train,
        chat_template=model.chat_template,
        load_seconds=time.perf_counter() - start,
        notes=tuple(notes),
    )
    return model, loaded
