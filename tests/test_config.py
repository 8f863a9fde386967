import pytest

from entropylong_streamer.config import Config, ConfigError, load_config


def test_layers_file_then_environment_then_flags(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text("[verify]\nepsilon = 0.3\n[entropy]\nalpha = 1.5\n")
    cfg = load_config(f, ["entropy.alpha=2.5"], environ={"ELONG_VERIFY__EPSILON": "0.35",
                                                         "ELONG_RETRIEVAL__TOP_K": "7"})
    assert (cfg.verify.epsilon, cfg.entropy.alpha, cfg.retrieval.top_k) == (0.35, 2.5, 7)


def test_invalid_values_fail_at_start_up_with_the_field_named():
    with pytest.raises(ConfigError, match="top_k"):
        load_config(None, ["retrieval.top_k=0"], environ={})
    with pytest.raises(ConfigError, match="unknown configuration section"):
        load_config(None, ["nope.x=1"], environ={})
    with pytest.raises(ConfigError, match="extra"):
        load_config(None, ["verify.epsilonn=1"], environ={})


def test_stage_versions_change_only_downstream_of_the_changed_parameter():
    base = Config()
    eps = base.copy_with({"verify.epsilon": 0.3})
    alpha = base.copy_with({"entropy.alpha": 1.0})
    assert eps.entropy_version() == base.entropy_version()
    assert eps.retrieval_version() == base.retrieval_version()
    assert eps.verify_version() != base.verify_version() and eps.pack_version() != base.pack_version()
    assert alpha.entropy_version() != base.entropy_version()
    assert Config().stage_versions() == base.stage_versions()
