"""Export a trained student as a self-contained bundle that `distilrnn.runtime` runs without torch.

The bundle (see `distilrnn.runtime`) holds the ONNX graph, the tokenizer, the label names, a
config and a model card. Optional compressions (`ExportSettings`), each reported in bytes:

- vocabulary pruning (`vocabulary`): only the embedding rows of tokens that occur in a set of
  texts (the transfer set) and the special tokens are kept. The graph still takes the
  tokenizer's ids: an int64 id table inside it (an initializer read by a Gather before the
  embedding) maps each id to its row in the pruned embedding, and every dropped id to the row of
  the unknown token, so the tokenizer ships unchanged.
- embedding rank: the embedding and the weights that read it (first recurrent layer, first
  convolution, or a bag student's first head layer) factorised to N columns
  (`RNNStudent.narrow`), with no training; tokens weighted by their frequency in a set of texts.
- int8 quantisation (`quantize`): weight-only (activations stay float32), except that a GRU
  computes its matrix products in int8 (`gru_int8`, `export.gru_int8`); optionally with the
  embedding in 4-bit blocks.

Modules: `graph` (the ONNX graphs), `quantize`, `vocabulary` (token counts, pruning) and
`bundle` (the folder: `export_bundle`, `export_student`, the teacher's bundle).
"""

from distilrnn.export.bundle import (
    SAMPLE_TEXTS,
    bundle_accuracy,
    export_bundle,
    export_student,
    export_teacher_bundle,
    find_student,
    write_compact_tokenizer,
)
from distilrnn.export.files import file_bytes
from distilrnn.export.graph import BundleModel, TeacherLogits, export_onnx, export_teacher_onnx
from distilrnn.export.quantize import EMBEDDING_BITS, EMBEDDING_BLOCK, quantize_onnx
from distilrnn.export.vocabulary import (
    load_tokenizer,
    prune_vocabulary,
    special_token_ids,
    token_counts,
    token_weights,
    unknown_token_id,
    used_token_ids,
)
from distilrnn.timing import latency_ms

__all__ = [
    "EMBEDDING_BITS",
    "EMBEDDING_BLOCK",
    "SAMPLE_TEXTS",
    "BundleModel",
    "TeacherLogits",
    "bundle_accuracy",
    "export_bundle",
    "export_onnx",
    "export_student",
    "export_teacher_bundle",
    "export_teacher_onnx",
    "file_bytes",
    "find_student",
    "latency_ms",
    "load_tokenizer",
    "prune_vocabulary",
    "quantize_onnx",
    "special_token_ids",
    "token_counts",
    "token_weights",
    "unknown_token_id",
    "used_token_ids",
    "write_compact_tokenizer",
]
