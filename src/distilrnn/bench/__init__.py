"""Benchmarks: what a student costs and keeps, measured against its teacher.

    models      teacher against student in one process: size, latency, throughput, training
                time (`distilrnn benchmark`: `benchmark_run`)
    bundles     every compression setting of one student's bundle, against the teacher
    narrow      narrowed students over their seeds, against the student they started from
    flops       multiply-adds per sentence of a student or a BERT-like teacher
    gru_int8    int8 GRU bundles against float: bytes, speed, logit change
    peers       TF-IDF + logistic regression, fastText and the teacher in onnxruntime (fp32,
                int8): what a user would deploy instead (the `Peer` type and bundles as peers:
                `peer`; TF-IDF and fastText trained: `trained_peers`)
    frontier    every student, the teacher bundles and the peers: accuracy, bytes, latency,
                throughput, multiply-adds and GFLOP/s, the Pareto plot (MACs, GFLOP/s and the
                time breakdown: `compute`; the markdown: `frontier_report`)
    confidence  the teacher's confidence on its training texts and calibration on validation
    throughput  labelling and transfer-set generation speed
    tables      markdown tables, JSON beside them, the machine the numbers belong to

Every timing goes through `distilrnn.timing`; every path into a run folder through
`distilrnn.run.Run`. The scripts in benchmarks/ parse flags, call one function here and write
its results.
"""

from __future__ import annotations

import importlib
from typing import Any

# name -> module; imported on first use, so that `markdown_table` (the report) loads no torch
_EXPORTS = {
    "benchmark_models": "distilrnn.bench.models",
    "benchmark_run": "distilrnn.bench.models",
    "benchmark_student": "distilrnn.bench.models",
    "markdown_table": "distilrnn.bench.tables",
    "cell_gates": "distilrnn.bench.flops",
    "encoder_macs": "distilrnn.bench.flops",
    "pooling_macs": "distilrnn.bench.flops",
    "head_macs": "distilrnn.bench.flops",
    "student_macs": "distilrnn.bench.flops",
    "teacher_macs": "distilrnn.bench.flops",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'distilrnn.bench' has no attribute {name!r}")
