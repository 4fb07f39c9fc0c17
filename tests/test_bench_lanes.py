"""Lane planning for benchmarks/sst2.sh: init_from chains stay in one lane, work is balanced."""

from __future__ import annotations

import pytest

from distilrnn.bench.lanes import group_variants, plan_lanes, variant_work
from distilrnn.config import load_config
from distilrnn.errors import ConfigError

VARIANTS = (
    'variant=[{name="ce-lstm", objective="ce"}, {name="ce-gru", objective="ce", rnn="gru"}, '
    '{name="kl", objective="kl", epochs=4}, '
    '{name="kl-narrow", objective="kl", init_from="kl", embedding_projection=8}, '
    '{name="kl-narrower", objective="kl", init_from="kl-narrow", embedding_projection=4}, '
    '{name="mse-a", objective="mse", epochs=2}, {name="mse-b", objective="mse", epochs=2}]'
)


@pytest.fixture
def config():
    return load_config(None, ["student.epochs=1", VARIANTS])


def test_an_init_from_chain_stays_in_one_lane_in_config_order(config):
    for lanes in (1, 2, 3, 4):
        plan = plan_lanes(config, lanes, "distilled")
        (lane,) = [lane for lane in plan if "kl" in lane]
        chain = [name for name in lane if name.startswith("kl")]
        assert chain == ["kl", "kl-narrow", "kl-narrower"]


def test_lanes_hold_every_variant_of_the_group_once(config):
    plan = plan_lanes(config, 2, "distilled")
    assert sorted(name for lane in plan for name in lane) == sorted(
        ["kl", "kl-narrow", "kl-narrower", "mse-a", "mse-b"]
    )
    # the chain (4 + 1 + 1 epochs) outweighs both mse variants (2 + 2): they share the other lane
    assert plan[1] == ["mse-a", "mse-b"]
    assert variant_work(config, "kl") == 4 * variant_work(config, "kl-narrow")


def test_groups_split_on_the_objective_and_the_cell(config):
    assert group_variants(config, "baselines") == ["ce-lstm", "ce-gru"]
    assert group_variants(config, "baselines", rnn="gru") == ["ce-gru"]
    with pytest.raises(ConfigError, match="lanes"):
        plan_lanes(config, 0, "baselines")
