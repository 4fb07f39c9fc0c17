"""The student: config, model (an RNN, bag-of-embeddings or CNN encoder), pooling and AWD-LSTM
regularisers, and the registration of your own cells and poolings."""

from distilrnn.student.model import RNNStudent, StudentConfig, register_cell, register_pooling

Student = RNNStudent  # the student of any encoder; `RNNStudent` is its historical name

__all__ = ["RNNStudent", "Student", "StudentConfig", "register_cell", "register_pooling"]
