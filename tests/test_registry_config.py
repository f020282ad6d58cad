import os

import paddle
import pytest

import ppzoo  # noqa: F401
from ppzoo.core import (DATASETS, MODELS, OPTIMIZERS, ConfigError, Registry, build_lr_scheduler,
                        build_optimizer, load_config)
from ppzoo.core.config import apply_opts


def write(path, text):
    path.write_text(text)
    return str(path)


def test_registry_register_build_and_nested():
    reg = Registry("test_things")

    @reg.register()
    class Leaf:
        def __init__(self, value=1):
            self.value = value

    @reg.register()
    class Node:
        def __init__(self, child, items=()):
            self.child, self.items = child, items

    node = reg.build({"type": "Node", "child": {"type": "Leaf", "value": 3},
                      "items": [{"type": "Leaf"}, 5]})
    assert isinstance(node.child, Leaf) and node.child.value == 3
    assert isinstance(node.items[0], Leaf) and node.items[1] == 5
    with pytest.raises(KeyError, match="already registered"):
        reg.register(type("Leaf", (), {}))


def test_unknown_type_names_registry_and_close_match():
    with pytest.raises(ConfigError) as err:
        MODELS.build({"type": "SmalCNN"}, key_path="model")
    msg = str(err.value)
    assert "models registry" in msg and "'SmallCNN'" in msg and "model.type" in msg


def test_misspelled_and_missing_arguments():
    with pytest.raises(ConfigError, match=r"model.num_clases.*did you mean 'num_classes'"):
        MODELS.build({"type": "SmallCNN", "num_clases": 3}, key_path="model")
    with pytest.raises(ConfigError, match="needs 'list_file'"):
        DATASETS.build({"type": "ImageList"}, key_path="train_dataset")


def test_base_inheritance_merge_delete_and_opts(tmp_path):
    write(tmp_path / "a.yml", "model: {type: SmallCNN, num_classes: 10, width: 8}\n"
                              "optimizer: {type: SGD, learning_rate: 0.1}\ntrain: {epochs: 1}\n")
    write(tmp_path / "b.yml", "_base_: a.yml\nmodel: {width: 16}\n"
                              "optimizer: {_delete_: true, type: Adam, learning_rate: 0.001}\n")
    os.makedirs(tmp_path / "sub")
    child = write(tmp_path / "sub" / "c.yml", "_base_: [../b.yml]\ntrain: {batch_size: 4}\n")
    cfg = load_config(child, ["model.num_classes=3", "train.epochs=2", "optimizer.learning_rate=1e-4"])
    assert cfg["model"] == {"type": "SmallCNN", "num_classes": 3, "width": 16}
    assert cfg["optimizer"] == {"type": "Adam", "learning_rate": 1e-4}
    assert cfg["train"] == {"epochs": 2, "batch_size": 4}
    assert cfg["_file_"] == child


def test_config_errors_name_file_and_key(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(str(tmp_path / "nope.yml"))
    bad = write(tmp_path / "bad.yml", "model: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yml: not valid YAML"):
        load_config(bad)
    loop = write(tmp_path / "loop.yml", "_base_: loop.yml\n")
    with pytest.raises(ConfigError, match="loops"):
        load_config(loop)
    missing_base = write(tmp_path / "mb.yml", "_base_: other.yml\n")
    with pytest.raises(ConfigError, match="mb.yml.*other.yml"):
        load_config(missing_base)
    cfg = {"model": {"type": "SmallCNN"}, "train": {"epochs": 1}}
    with pytest.raises(ConfigError, match="did you mean 'model'"):
        apply_opts(cfg, ["modle.type=ResNet"])
    with pytest.raises(ConfigError, match="key.path=value"):
        apply_opts(cfg, ["train.epochs"])


def test_trainer_rejects_unknown_top_level_and_train_keys(digits_cfg, tmp_path):
    cfg = dict(digits_cfg, optimiser={"type": "SGD"})
    with pytest.raises(ConfigError, match="unknown key 'optimiser'.*did you mean 'optimizer'"):
        ppzoo.Trainer(cfg, work_dir=str(tmp_path / "run"))
    cfg = dict(digits_cfg, train=dict(digits_cfg["train"], epoch=3))
    with pytest.raises(ConfigError, match="unknown key 'train.epoch'.*did you mean 'epochs'"):
        ppzoo.Trainer(cfg, work_dir=str(tmp_path / "run2"))


def test_any_paddle_optimizer_and_scheduler_by_name():
    assert {"SGD", "Momentum", "Adam", "AdamW", "Lamb"} <= set(OPTIMIZERS.keys())
    layer = paddle.nn.Linear(2, 2)
    lr = build_lr_scheduler({"type": "CosineAnnealingDecay", "T_max": "auto", "warmup_iters": 5,
                             "warmup_start_lr": 0.0}, 0.1, total_iters=25)
    assert isinstance(lr, paddle.optimizer.lr.LinearWarmup)
    opt = build_optimizer({"type": "AdamW", "learning_rate": 0.1, "weight_decay": 0.01},
                          layer.parameters(), lr, grad_clip=1.0)
    assert isinstance(opt, paddle.optimizer.AdamW)
    lrs = []
    for _ in range(25):
        lrs.append(opt.get_lr())
        lr.step()
    assert lrs[0] == 0.0 and abs(lrs[5] - 0.1) < 1e-9 and lrs[-1] < 0.01
    assert lr.learning_rate.T_max == 20  # 'auto' = total iterations after warm-up


def test_opts_can_add_a_leaf_but_the_trainer_rejects_unknown_ones(digits_cfg, tmp_path):
    cfg = apply_opts(dict(digits_cfg), ["pretrained=weights.pdparams"])
    assert cfg["pretrained"] == "weights.pdparams"
    cfg = apply_opts(dict(digits_cfg), ["pretraned=weights.pdparams"])
    import ppzoo
    with pytest.raises(ConfigError, match="did you mean 'pretrained'"):
        ppzoo.Trainer(cfg, work_dir=str(tmp_path / "r"))


def test_argument_kinds_are_checked_against_annotations_and_defaults():
    reg = Registry("kinds_test")

    @reg.register()
    class Thing:
        def __init__(self, n: int = 1, rate: float = 0.5, name: str = "a", flag=False, size=3,
                     anything=None, mode="x"):
            self.args = (n, rate, name, flag, size, anything, mode)

    ok = reg.build({"type": "Thing", "n": 2, "rate": 1, "name": "b", "flag": True, "size": 0.5,
                    "anything": "whatever", "mode": 3})
    assert ok.args == (2, 1, "b", True, 0.5, "whatever", 3)
    assert reg.build({"type": "Thing", "size": "auto", "n": None}).args[4] == "auto"
    for key, value, want in (("n", "two", "an integer"), ("n", 2.5, "an integer"),
                             ("rate", "fast", "a number"), ("name", 3, "a string"),
                             ("flag", "yes", "true or false"), ("size", "big", "a number"),
                             ("n", True, "an integer")):
        with pytest.raises(ConfigError, match=rf"thing\.{key}={value!r}: Thing expects {want}"):
            reg.build({"type": "Thing", key: value}, key_path="thing")
    # paddle's own classes: a default of the wrong kind is caught the same way
    with pytest.raises(ConfigError, match=r"optimizer\.momentum='fast': Momentum expects"):
        build_optimizer({"type": "Momentum", "momentum": "fast"},
                        paddle.nn.Linear(2, 2).parameters(), 0.1)
