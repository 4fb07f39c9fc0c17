"""Variants grouped by objective and by what reads the tokens: a bag or CNN student is its own
cell, never an LSTM's."""

from __future__ import annotations

from distilrnn.config import StudentSettings, load_config
from distilrnn.student import StudentConfig
from distilrnn.variants import encoder_name, group_variants


def test_groups_put_bag_and_cnn_students_in_their_own_cell():
    config = load_config(
        None,
        [
            'variant=[{name="ce-lstm", objective="ce"}, {name="ce-bag", objective="ce", '
            'encoder="bag"}, {name="ce-cnn", objective="ce", encoder="cnn"}, '
            '{name="kl-bag", objective="kl", encoder="bag"}]'
        ],
    )
    assert group_variants(config, "baselines", rnn="lstm") == ["ce-lstm"]
    assert group_variants(config, "baselines", rnn="bag") == ["ce-bag"]
    assert group_variants(config, "baselines", rnn="cnn") == ["ce-cnn"]
    assert group_variants(config, "distilled", rnn="bag") == ["kl-bag"]
    assert group_variants(config, "distilled", rnn="lstm") == []


def test_encoder_name_is_the_cell_of_an_rnn_and_the_encoder_otherwise():
    assert encoder_name(StudentSettings(rnn="gru")) == "gru"
    assert encoder_name(StudentSettings(encoder="cnn")) == "cnn"
    assert encoder_name(StudentConfig(vocab_size=10, embedding_dim=4, encoder="bag")) == "bag"
    # a student record's settings; older records have no `encoder`
    assert encoder_name({"rnn": "lstm", "encoder": "bag"}) == "bag"
    assert encoder_name({"rnn": "gru"}) == "gru"
