"""The RNN student: config, model, pooling and AWD-LSTM regularisers, and the registration of
your own cells and poolings."""

from distilrnn.student.model import RNNStudent, StudentConfig, register_cell, register_pooling

__all__ = ["RNNStudent", "StudentConfig", "register_cell", "register_pooling"]
