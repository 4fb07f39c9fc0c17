"""distilrnn: distil transformer text classifiers into small, fast LSTM/GRU students."""
