"""distilrnn: distil transformer text classifiers into small, fast LSTM/GRU students."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from distilrnn.runtime import Predictor

__all__ = ["Predictor"]


def __getattr__(name: str) -> Any:
    # Lazy, so that `import distilrnn` loads neither onnxruntime nor (through other modules) torch.
    if name == "Predictor":
        from distilrnn.runtime import Predictor

        return Predictor
    raise AttributeError(f"module 'distilrnn' has no attribute {name!r}")
