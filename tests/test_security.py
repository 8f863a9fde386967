"""Security rules: no pickle anywhere, Kafka SASL/TLS and the Milvus token reach every client, and
secrets never appear in a repr, a log line or the CLI's output. (Every server binding 127.0.0.1
is checked on a running stack in tests/integration/test_prometheus.py.)"""

import ast
import json
import logging
from pathlib import Path

import pytest
from typer.testing import CliRunner

from entropylong_streamer.agents.kafka_clients import client_kwargs
from entropylong_streamer.cli import app
from entropylong_streamer.config import ConfigError, load_config
from entropylong_streamer.services import processes

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [p for d in ("streamer", "services", "topics", "bench") for p in (ROOT / d).rglob("*.py")]
UNSAFE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"}
SECRET = "s3cr3t-Pa55"


def unsafe_uses(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] in UNSAFE_MODULES]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in UNSAFE_MODULES:
            found.append(node.module)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            name = node.func.attr
            kwargs = {k.arg: k.value for k in node.keywords}
            weights_only = kwargs.get("weights_only")
            if name == "load" and ast.unparse(node.func.value) == "torch" and not (
                    isinstance(weights_only, ast.Constant) and weights_only.value is True):
                found.append("torch.load without weights_only=True")
            allow = kwargs.get("allow_pickle")
            if allow is not None and not (isinstance(allow, ast.Constant) and allow.value is False):
                found.append(f"{name}(allow_pickle=...)")
            if name in ("read_pickle", "to_pickle"):
                found.append(name)
    return found


def test_no_pickle_anywhere():
    assert len(SOURCES) > 40
    bad = {str(p.relative_to(ROOT)): u for p in SOURCES if (u := unsafe_uses(ast.parse(p.read_text())))}
    assert not bad


def test_the_scanner_catches_what_it_forbids():
    for code in ("import pickle", "from joblib import load", "torch.load(f)", "np.load(f, allow_pickle=True)",
                 "import cloudpickle as cp", "df.read_pickle('x')"):
        assert unsafe_uses(ast.parse(code)), code
    assert not unsafe_uses(ast.parse("torch.load(f, weights_only=True); np.load(f)"))


def secure_config(**extra):
    return load_config(None, {"kafka.security_protocol": "SASL_SSL", "kafka.sasl_mechanism": "SCRAM-SHA-512",
                              "kafka.sasl_username": "elong", "kafka.sasl_password": SECRET,
                              "kafka.ssl_cafile": "/etc/ssl/ca.pem", "milvus.token": f"root:{SECRET}", **extra})


def test_kafka_security_settings_reach_kafka_python():
    cfg = secure_config()
    kw = client_kwargs(cfg)
    assert kw["security_protocol"] == "SASL_SSL" and kw["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (kw["sasl_plain_username"], kw["sasl_plain_password"], kw["ssl_cafile"]) == ("elong", SECRET,
                                                                                        "/etc/ssl/ca.pem")
    plain = client_kwargs(load_config(None, {}))
    assert plain["security_protocol"] == "PLAINTEXT" and "sasl_plain_password" not in plain
    ssl_only = client_kwargs(load_config(None, {"kafka.security_protocol": "SSL", "kafka.ssl_cafile": "/ca"}))
    assert ssl_only["ssl_cafile"] == "/ca" and "sasl_mechanism" not in ssl_only


def test_incomplete_sasl_settings_are_refused_at_start_up():
    with pytest.raises(ConfigError, match="sasl_mechanism"):
        load_config(None, {"kafka.security_protocol": "SASL_PLAINTEXT"})
    with pytest.raises(ConfigError):
        load_config(None, {"kafka.security_protocol": "TLS"})  # not a Kafka protocol name


def test_the_milvus_token_reaches_the_client(monkeypatch, tmp_path):
    from entropylong_streamer.pipeline import Pipeline
    from entropylong_streamer.services import pool

    seen = {}

    class Client:  # records what pymilvus would be given; connecting is not the point here
        def __init__(self, **kw):
            seen.update(kw)
            raise ConnectionError("not connecting in this test")

    monkeypatch.setattr("pymilvus.MilvusClient", Client)
    p = Pipeline(secure_config(**{"data_dir": str(tmp_path)}))
    p.__dict__["embedder"] = type("E", (), {"dim": 4})()
    with pytest.raises(ConnectionError):
        p.pool  # noqa: B018
    assert seen["token"] == f"root:{SECRET}" and pool.MilvusPool


def test_secrets_never_appear_in_reprs_logs_or_cli_output(caplog, tmp_path):
    cfg = secure_config(**{"data_dir": str(tmp_path), "kafka.bootstrap_servers": f"127.0.0.1:{processes.free_port()}",
                           "kafka.security_protocol": "SASL_PLAINTEXT"})
    for text in (repr(cfg), str(cfg), repr(cfg.kafka), repr(cfg.milvus)):
        assert SECRET not in text
    conf = tmp_path / "c.json"
    conf.write_text(cfg.model_dump_json())
    with caplog.at_level(logging.DEBUG):
        res = CliRunner().invoke(app, ["status", "-c", str(conf), "--interval", "0"], env={"COLUMNS": "300"})
    assert res.exit_code == 1 and "no Kafka broker answers" in res.output
    assert SECRET not in res.output and SECRET not in caplog.text


def test_a_build_folder_keeps_its_configuration_with_secrets_masked(tmp_path):
    docs = tmp_path / "docs.jsonl"
    docs.write_text('{"id": 1}\n')  # no usable document: the build stops before any model or pool
    out = tmp_path / "out"
    conf = tmp_path / "c.json"
    conf.write_text(secure_config(**{"data_dir": str(tmp_path), "verify.epsilon": 0.3}).model_dump_json())
    res = CliRunner().invoke(app, ["build", "--docs", str(docs), "--out", str(out), "-c", str(conf)])
    assert res.exit_code == 1 and SECRET not in res.output
    kept = (out / "config.json").read_text()
    assert SECRET not in kept and json.loads(kept)["milvus"]["token"] == "***"
    # read back, a masked secret is no value: it comes from the environment, or stays unset
    assert load_config(out / "config.json", environ={}).milvus.token is None
    again = load_config(out / "config.json", environ={"ELONG_MILVUS__TOKEN": "root:fromenv"})
    assert again.milvus.token == "root:fromenv" and again.verify.epsilon == 0.3


def test_elong_config_says_which_configuration_it_shows_and_masks_secrets(tmp_path):
    conf = tmp_path / "c.json"
    conf.write_text(secure_config(**{"data_dir": str(tmp_path)}).model_dump_json())
    res = CliRunner().invoke(app, ["config", "-c", str(conf)])
    assert res.exit_code == 0 and SECRET not in res.output
    shown = json.loads(res.stdout)  # standard output is the JSON alone; which configuration goes to stderr
    assert shown["config"]["kafka"]["sasl_password"] == "***"
    assert f"configuration: {conf}" in " ".join(res.stderr.split())
    bare = CliRunner().invoke(app, ["config", "--set", f"data_dir='{tmp_path}'"])
    assert "configuration: the defaults (none at" in " ".join(bare.stderr.split()) and json.loads(bare.stdout)
