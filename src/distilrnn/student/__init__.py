"""The RNN student: config, model, attention pooling and AWD-LSTM regularisers."""

from distilrnn.student.model import RNNStudent, StudentConfig

__all__ = ["RNNStudent", "StudentConfig"]
