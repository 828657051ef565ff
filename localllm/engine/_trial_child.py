"""Child process of `trial.trial_load`: load a model, create a context, print the log.

Input (stdin): JSON {"path", "settings": LoadSettings fields, "no_alloc": bool}.
Output (stdout): JSON {"model": bool, "context": bool, "log": str}.
Only the standard library, llama_cpp and `engine.params`: a crash here costs
nothing but this process.
"""

from __future__ import annotations

import json
import sys
from typing import Any


def main() -> None:
    request: dict[str, Any] = json.load(sys.stdin)
    import llama_cpp

    from localllm.engine.llamalog import capture_log

    lines = capture_log()
    llama_cpp.llama_backend_init()
    from localllm.engine.params import context_params, model_params

    s = request["settings"]
    mp = model_params(llama_cpp, s, no_alloc=request["no_alloc"])
    model = llama_cpp.llama_model_load_from_file(request["path"].encode(), mp)
    context = None
    if model:
        context = llama_cpp.llama_init_from_model(model, context_params(llama_cpp, s))
    json.dump({"model": bool(model), "context": bool(context), "log": "".join(lines)}, sys.stdout)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
