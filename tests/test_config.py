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
    with pytest.raises(ConfigError, match=r"unknown setting verify.epsilonn \(from --set verify.epsilonn\): did you "
                                          r"mean verify.epsilon\?"):
        load_config(None, ["verify.epsilonn=1"], environ={})


def test_errors_name_the_setting_where_its_value_came_from_and_a_near_miss(tmp_path):
    with pytest.raises(ConfigError, match=r"did you mean entropy.alpha\?"):
        load_config(None, ["entropy.alpah=1.0"], environ={})
    with pytest.raises(ConfigError, match=r"section 'entropie'.*did you mean entropy\?"):
        load_config(None, ["entropie.alpha=1.0"], environ={})
    with pytest.raises(ConfigError, match=r"verify.epsilon \(from environment variable ELONG_VERIFY__EPSILON\): .*"
                                          r"greater than or equal to 0, got -1"):
        load_config(None, [], environ={"ELONG_VERIFY__EPSILON": "-1"})
    f = tmp_path / "c.toml"
    f.write_text("[verify]\nnll_threshold = 1.5\n")
    with pytest.raises(ConfigError, match=rf"verify.nll_threshold \(from file {f}\)"):
        load_config(f, [], environ={})
    with pytest.raises(ConfigError) as caught:  # a section-wide check never echoes the section's secrets
        load_config(None, ["kafka.security_protocol=SASL_SSL", "kafka.sasl_password=hunter2"], environ={})
    assert "sasl_username" in str(caught.value) and "hunter2" not in str(caught.value)


def test_stage_versions_change_only_downstream_of_the_changed_parameter():
    base = Config()
    eps = base.copy_with({"verify.epsilon": 0.3})
    alpha = base.copy_with({"entropy.alpha": 1.0})
    assert eps.version("entropy") == base.version("entropy")
    assert eps.version("retrieval") == base.version("retrieval")
    assert eps.version("verify") != base.version("verify") and eps.version("pack") != base.version("pack")
    assert alpha.version("entropy") != base.version("entropy")
    assert Config().stage_versions() == base.stage_versions()


def test_the_separator_is_an_id_or_a_text_and_enters_every_measuring_version():
    base = Config().copy_with({"pack.separator": 0})
    text = load_config(None, ['pack.separator="\\n\\n"'], environ={})
    assert text.pack.separator == "\n\n" == Config().pack.separator
    assert load_config(None, [], environ={"ELONG_PACK__SEPARATOR": "1116"}).pack.separator == 1116
    for stage in ("entropy", "retrieval", "verify", "pack"):
        assert text.stage_versions()[stage] != base.stage_versions()[stage]
    assert text.version("index") == base.version("index")  # the pool's chunks do not depend on it
    for bad in ('pack.separator=""', "pack.separator=-1"):
        with pytest.raises(ConfigError, match="separator"):
            load_config(None, [bad], environ={})


def test_a_text_separator_is_tokenised_by_the_models_tokenizer(model_cache, tmp_path):
    from entropylong_streamer.pipeline import Pipeline

    cfg = load_config(None, ['pack.separator="\\n\\n"', "model.path=tiny", f"data_dir={str(tmp_path)!r}"],
                      environ={})
    (tmp_path / "models").symlink_to(model_cache, target_is_directory=True)
    pipe = Pipeline(cfg)
    assert pipe.separator == tuple(pipe.engine_tokenizer().tokenize("\n\n").ids) == (1116,)  # SmolLM2's "\n\n"
    assert "sep1116" in pipe.model_key
    assert Pipeline(Config().copy_with({"pack.separator": 0})).separator == (0,)  # an id needs no tokenizer


def test_sample_tokens_above_the_sequence_length_is_refused_and_enters_the_pack_version():
    with pytest.raises(ConfigError, match="pack.sample_tokens .* must not exceed pack.seq_len"):
        load_config(overrides=["pack.seq_len=1024", "pack.sample_tokens=2048"], environ={})
    base = load_config(environ={})
    grown = load_config(overrides=["pack.sample_tokens=32768"], environ={})
    assert grown.pack.sample_length == 32768 and base.pack.sample_length == base.pack.seq_len
    assert grown.version("pack") != base.version("pack") and grown.version("verify") == base.version("verify")


def test_a_table_is_the_value_of_a_mapping_setting_and_merges_into_a_mapping_with_defaults(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text("[retrieval.index_params]\nM = 32\nefConstruction = 400\n[agents.max_batch]\nverify = 2\n"
                 "[nope.deeper]\nx = 1\n")
    with pytest.raises(ConfigError, match="unknown configuration section 'nope'"):
        load_config(f, [], environ={})
    f.write_text(f.read_text().split("[nope")[0])
    cfg = load_config(f, [], environ={})
    assert cfg.retrieval.index_params == {"M": 32, "efConstruction": 400}
    assert cfg.agents.max_batch == {**Config().agents.max_batch, "verify": 2}


def test_every_path_of_the_data_directory_is_its_own_under_data_dir(tmp_path):
    paths = Config().copy_with({"data_dir": str(tmp_path)}).paths
    named = [paths.models, paths.run, paths.broker, paths.milvus, paths.door, paths.corpus,
             paths.trainer, paths.shards, paths.reports("v"), paths.cache("scores")]
    assert len(set(named)) == len(named) and all(p.is_relative_to(tmp_path) for p in named)
    assert paths.shard_set("v").parent == paths.shards


def test_following_the_trainer_needs_it_to_train_and_publish_the_scoring_model():
    follow = {"policy.follow": True, "trainer.model": "smollm2", "trainer.from_scratch": False,
              "trainer.publish_every": 2}
    cfg = load_config(overrides=follow)
    with pytest.raises(ConfigError, match="trainer.model = model.path"):
        load_config(overrides=follow | {"trainer.model": "tiny"})
    with pytest.raises(ConfigError, match="from_scratch = false"):
        load_config(overrides=follow | {"trainer.from_scratch": True})
    with pytest.raises(ConfigError, match="publish_every > 0"):
        load_config(overrides=follow | {"trainer.publish_every": 0})
    with pytest.raises(ConfigError, match="rescore_last_shards needs policy.follow"):
        load_config(overrides={"policy.rescore_last_shards": 1})
    with pytest.raises(ConfigError, match="must be below trainer.publish_every"):  # it would never end
        load_config(overrides=follow | {"policy.rescore_last_shards": 2})
    with pytest.raises(ConfigError, match="cannot change the RoPE base"):
        load_config(overrides=follow | {"model.engine": "vllm", "trainer.rope_theta": 5e5})
    assert load_config(overrides=follow | {"trainer.rope_theta": 5e5}).trainer.rope_theta == 5e5
    # Following is another data set (new consumer groups, a new shard set); the versions it meets are not.
    frozen = Config()
    assert cfg.version("entropy") != frozen.version("entropy") and cfg.version("pack") != frozen.version("pack")
    rescoring = load_config(overrides=follow | {"policy.rescore_last_shards": 1})
    assert rescoring.version("entropy") == cfg.version("entropy")
    assert load_config(overrides={"trainer.publish_every": 5}).version("entropy") == frozen.version("entropy")


def test_float64_scoring_is_for_the_transformers_engine():
    assert load_config(overrides={"model.dtype": "float64"}).model.dtype == "float64"
    with pytest.raises(ConfigError, match="float64 is for the transformers engine"):
        load_config(overrides={"model.dtype": "float64", "model.engine": "vllm"})


def test_the_shared_criterion_has_its_settings_in_its_version_and_refuses_the_screen():
    shared = load_config(overrides={"verify.criterion": "shared"})
    assert shared.verify.criterion == Config().verify.criterion  # the default
    for setting, value in (("rival_quantile", 0.5), ("best_share", 0.5), ("span_tokens", 4)):
        assert shared.version("verify") != load_config(overrides={"verify.criterion": "shared",
                                                                 f"verify.{setting}": value}).version("verify")
    # under another criterion the quantile and the best share decide nothing, so they are no part of its version
    specific = {"verify.criterion": "specific"}
    assert load_config(overrides=specific).version("verify") == load_config(
        overrides=specific | {"verify.rival_quantile": 0.5, "verify.best_share": 0.5}).version("verify")
    assert load_config(overrides={"verify.criterion": "shared", "verify.screen": "shadow"}).verify.screen == "shadow"
    with pytest.raises(ConfigError, match="not \"shared\""):
        load_config(overrides={"verify.screen": "on"})
    assert load_config(overrides=specific | {"verify.screen": "on"}).verify.screen == "on"


def test_the_label_rule_is_part_of_the_index_and_retrieval_versions():
    off, on = load_config(overrides={"retrieval.template_prefix_words": 0}), Config()
    assert on.retrieval.template_prefix_words == 3  # on by default
    assert on.version("index") != off.version("index") and on.version("retrieval") != off.version("retrieval")


def test_the_retrieval_mode_is_part_of_the_versions_and_settings_it_ignores_are_not():
    dense, lexical, hybrid = (load_config(overrides={"retrieval.mode": m}) for m in ("dense", "lexical", "hybrid"))
    assert len({c.version("index") for c in (dense, lexical, hybrid)}) == 3  # each mode's pool is its own
    assert len({c.version("retrieval") for c in (dense, lexical, hybrid)}) == 3
    # what a mode does not use is no part of its versions: the embedder in lexical, the fusion constant outside hybrid
    other_embedder = {"retrieval.embedder": "null"}
    assert load_config(overrides={"retrieval.mode": "lexical", **other_embedder}).version("index") \
        == lexical.version("index")
    assert load_config(overrides={"retrieval.mode": "dense", **other_embedder}).version("index") \
        != dense.version("index")
    assert load_config(overrides={"retrieval.rrf_k": 10}).version("retrieval") == lexical.version("retrieval")
    assert load_config(overrides={"retrieval.mode": "dense", "retrieval.rrf_k": 10}).version("retrieval") \
        == dense.version("retrieval")
    assert load_config(overrides={"retrieval.mode": "hybrid", "retrieval.rrf_k": 10}).version("retrieval") \
        != hybrid.version("retrieval")
    with pytest.raises(ConfigError, match="retrieval.mode"):
        load_config(overrides={"retrieval.mode": "sparse"})
