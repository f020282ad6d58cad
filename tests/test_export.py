"""Export and Paddle Inference: the exported model computes what the dygraph model computes."""
import os

import numpy as np
import paddle
import pytest
import yaml
from PIL import Image

import ppzoo
from ppzoo.core import MODELS, TRAINERS, ConfigError, DataError, WeightsError
from ppzoo.datasets import BaseDataset
from ppzoo.engine.export import build_for_weights, export_from_config, export_model, load_weights
from ppzoo.engine.predictor import INFER_TASKS, Predictor, build_task, load_deploy, run_inference


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A SmallCNN trained for a few iterations on digits, and its best checkpoint."""
    from ppzoo.core import load_config
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
    cfg = load_config(os.path.join(root, "configs", "quickstart", "digits.yml"))
    cfg["model"]["width"] = 8
    cfg["train"].update({"iters": 30, "eval_interval": 30, "log_interval": 30})
    run = tmp_path_factory.mktemp("export") / "run"
    trainer = ppzoo.build_trainer(cfg, work_dir=str(run)).train()
    return cfg, trainer, run


def _val_batch(trainer, n):
    samples = [trainer.val_dataset[i] for i in range(n)]
    return np.stack([s["image"] for s in samples]), np.array([s["label"] for s in samples])


@paddle.no_grad()
def _dygraph(model, x):
    model.eval()
    return model(paddle.to_tensor(x)).numpy()


def test_export_folder_and_deploy(trained, tmp_path):
    cfg, trainer, run = trained
    save = tmp_path / "inference"
    deploy = export_model(trainer.model, cfg, str(save), dataset=trainer.val_dataset)
    assert sorted(os.listdir(save)) == ["deploy.yml", "model.json", "model.pdiparams"]
    on_disk = load_deploy(str(save))
    assert on_disk == yaml.safe_load(yaml.safe_dump(deploy))
    assert on_disk["task"] == "classification"
    assert on_disk["inputs"] == [{"name": "image", "shape": [-1, 1, 8, 8], "dtype": "float32"}]
    assert on_disk["transforms"] == cfg["val_dataset"]["transforms"]
    assert on_disk["label_names"] == [str(i) for i in range(10)]
    assert on_disk["reader"] == {"mode": "L"}
    assert on_disk["postprocess"]["topk"] == 5
    assert not any(p.name.startswith("inference.") for p in tmp_path.iterdir())  # no temp left


def test_predictor_matches_dygraph(trained, tmp_path):
    cfg, trainer, run = trained
    model = trainer.model
    load_weights(model, str(run / "best"))
    save = str(tmp_path / "inference")
    export_model(model, cfg, save, dataset=trainer.val_dataset)
    assert "forward" not in model.__dict__  # export left the model a dygraph model
    pred = Predictor(save, device="cpu")
    assert pred.input_names == ["image"]
    for n in (1, 7, 32):  # the batch dimension is free
        x, _ = _val_batch(trainer, n)
        out = pred.run([x])
        ref = _dygraph(model, x)
        assert out[0].shape == ref.shape == (n, 10)
        np.testing.assert_allclose(out[0], ref, rtol=0, atol=1e-5)
    with pytest.raises(DataError, match=r"shape \[2, 3, 8, 8\].*\[-1, 1, 8, 8\]"):
        pred.run([np.zeros((2, 3, 8, 8), np.float32)])
    with pytest.raises(ConfigError, match="cpu, gpu or gpu:N, got 'tpu'"):
        Predictor(save, device="tpu")
    if not paddle.is_compiled_with_cuda():
        with pytest.raises(ConfigError, match="no CUDA"):
            Predictor(save, device="gpu")
    # without oneDNN the predictor runs dygraph's own kernels: the same numbers
    x, _ = _val_batch(trainer, 16)
    exact = Predictor(save, device="cpu", use_mkldnn=False).run([x])[0]
    np.testing.assert_allclose(exact, _dygraph(model, x), rtol=0, atol=1e-7)


def test_input_spec_override_makes_size_dynamic(trained, tmp_path):
    cfg, trainer, _ = trained
    cfg = dict(cfg, export={"input_spec": [{"name": "image", "shape": [None, 1, None, None],
                                            "dtype": "float32"}]})
    save = str(tmp_path / "dyn")
    deploy = export_model(trainer.model, cfg, save, dataset=trainer.val_dataset)
    assert deploy["inputs"][0]["shape"] == [-1, 1, -1, -1]
    x = np.random.default_rng(0).normal(size=(3, 1, 16, 12)).astype(np.float32)
    np.testing.assert_allclose(Predictor(save, device="cpu").run([x])[0],
                               _dygraph(trainer.model, x), rtol=0, atol=1e-5)


@MODELS.register()
class _SoftmaxAtExport(paddle.nn.Layer):
    """Trains on logits, deploys probabilities: the ``export_forward`` hook."""

    def __init__(self, num_classes=10, in_channels=1):
        super().__init__()
        self.net = ppzoo.models.classification.SmallCNN(num_classes, in_channels, width=4, depth=1)

    def forward(self, x):
        return self.net(x)

    def export_forward(self, x):
        return paddle.nn.functional.softmax(self.net(x), axis=-1)


def test_export_forward_hook(trained, tmp_path):
    cfg, trainer, _ = trained
    model = _SoftmaxAtExport()
    cfg = dict(cfg, model={"type": "_SoftmaxAtExport"}, export={"postprocess": {"softmax": False}})
    save = str(tmp_path / "sm")
    export_model(model, cfg, save, dataset=trainer.val_dataset)
    x, _ = _val_batch(trainer, 5)
    out = Predictor(save, device="cpu").run([x])[0]
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-5)
    assert type(model) is _SoftmaxAtExport  # forward is the training one again: logits
    logits = _dygraph(model, x)
    assert np.abs(logits.sum(axis=1) - 1.0).max() > 1e-3
    probs = paddle.nn.functional.softmax(paddle.to_tensor(logits), axis=-1).numpy()
    np.testing.assert_allclose(out, probs, atol=1e-5)
    task = build_task(load_deploy(save), topk=2)
    res = task.postprocess([out], None)
    assert res[0]["scores"][0] == pytest.approx(float(out[0].max()), abs=1e-6)  # not re-softmaxed


def test_existing_save_dir(trained, tmp_path):
    cfg, trainer, _ = trained
    save = tmp_path / "inference"
    export_model(trainer.model, cfg, str(save), dataset=trainer.val_dataset)
    (save / "stale.txt").write_text("from an older export")
    # a previous export is replaced as a whole
    export_model(trainer.model, cfg, str(save), dataset=trainer.val_dataset)
    assert sorted(os.listdir(save)) == ["deploy.yml", "model.json", "model.pdiparams"]
    # an unrelated folder is refused and left as it was
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not an export"):
        export_model(trainer.model, cfg, str(other), dataset=trainer.val_dataset)
    assert os.listdir(other) == ["keep.txt"]
    # a failed export leaves neither a half folder nor the previous one damaged
    bad = dict(cfg, export={"input_spec": [{"name": "image", "shape": [None, 3, 8, 8]}]})
    with pytest.raises(ConfigError, match=r"\[1, 3, 8, 8\]\] do not fit SmallCNN.*input_channels:3"):
        export_model(trainer.model, bad, str(save), dataset=trainer.val_dataset)
    assert sorted(os.listdir(save)) == ["deploy.yml", "model.json", "model.pdiparams"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inference", "notes"]
    with pytest.raises(ConfigError, match="export.tsk"):
        export_model(trainer.model, dict(cfg, export={"tsk": "x"}), str(save))


def test_load_weights_errors(trained, tmp_path):
    cfg, trainer, run = trained
    with pytest.raises(WeightsError, match="not found: .*nope.pdparams"):
        load_weights(trainer.model, str(tmp_path / "nope.pdparams"))
    with pytest.raises(WeightsError, match="holds no model.pdparams"):
        load_weights(trainer.model, str(tmp_path))
    wide = ppzoo.models.classification.SmallCNN(10, 1, width=16, depth=2)
    paddle.save(wide.state_dict(), str(tmp_path / "wide.pdparams"))
    with pytest.raises(WeightsError, match=r"shape mismatch.*\[16, 1, 3, 3\] vs model \[8, 1, 3, 3\]"):
        load_weights(trainer.model, str(tmp_path / "wide.pdparams"))
    (tmp_path / "junk.pdparams").write_bytes(b"not a pickle")
    with pytest.raises(WeightsError, match="junk.pdparams is not a Paddle state dict"):
        load_weights(trainer.model, str(tmp_path / "junk.pdparams"))
    # a checkpoint folder and its model.pdparams load the same weights
    assert load_weights(trainer.model, str(run / "best")) == str(run / "best" / "model.pdparams")
    # .safetensors files load too (read by the hub)
    from safetensors.numpy import save_file
    save_file({k: v.numpy() for k, v in trainer.model.state_dict().items()},
              str(tmp_path / "w.safetensors"))
    other = ppzoo.models.classification.SmallCNN(10, 1, width=8, depth=2)
    load_weights(other, str(tmp_path / "w.safetensors"))
    x, _ = _val_batch(trainer, 4)
    np.testing.assert_array_equal(_dygraph(other, x), _dygraph(trainer.model, x))
    # eval/export never fetch `pretrained:` weights that --weights replaces anyway
    fresh = build_for_weights(dict(cfg, pretrained=str(tmp_path / "never_read.pdparams")))
    load_weights(fresh.model, str(run / "best"))
    np.testing.assert_array_equal(_dygraph(fresh.model, x), _dygraph(trainer.model, x))


def test_classification_task_and_run_inference(trained, tmp_path):
    cfg, trainer, _ = trained
    save = str(tmp_path / "inference")
    export_model(trainer.model, cfg, save, dataset=trainer.val_dataset)
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    raw = [trainer.val_dataset.load(i) for i in range(5)]
    for i, s in enumerate(raw):
        Image.fromarray(s["image"][:, :, 0], mode="L").save(imgs / f"{i}.png")
    (imgs / "readme.txt").write_text("not an image, not an input")
    results = run_inference(save, str(imgs), batch_size=2, topk=3, echo=None,
                            output=str(tmp_path / "out"))
    assert [os.path.basename(r["file"]) for r in results] == [f"{i}.png" for i in range(5)]
    x, _ = _val_batch(trainer, 5)
    ref = _dygraph(trainer.model, x)
    assert [r["class_ids"][0] for r in results] == ref.argmax(1).tolist()
    assert all(len(r["labels"]) == 3 and r["scores"] == sorted(r["scores"], reverse=True)
               for r in results)
    lines = (tmp_path / "out" / "results.jsonl").read_text().splitlines()
    assert len(lines) == 5 and sorted(os.listdir(tmp_path / "out")) == ["results.jsonl"]
    # an unreadable image: one error naming it, and no partial output
    (imgs / "3.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(DataError, match=r"cannot read image .*3\.png"):
        run_inference(save, str(imgs), batch_size=2, echo=None, output=str(tmp_path / "out2"))
    assert not (tmp_path / "out2").exists()
    # an image of another size: the error names it
    (imgs / "3.png").unlink()
    Image.fromarray(np.zeros((16, 16), np.uint8), mode="L").save(imgs / "big.png")
    with pytest.raises(DataError, match=r"big\.png.*\[1, 1, 16, 16\].*\[-1, 1, 8, 8\]"):
        run_inference(save, str(imgs / "big.png"), echo=None)
    assert "classification" in INFER_TASKS


class _TokensAndFeatures(BaseDataset):
    """Two inputs of different dtypes, as a text model with side features would take."""

    def __len__(self):
        return 4

    def load(self, idx):
        rng = np.random.default_rng(idx)
        return {"ids": rng.integers(0, 50, size=6).astype(np.int64),
                "feats": rng.normal(size=3).astype(np.float32), "label": np.int64(idx % 2)}


@MODELS.register()
class _TwoInputNet(paddle.nn.Layer):
    def __init__(self):
        super().__init__()
        self.emb = paddle.nn.Embedding(50, 8)
        self.fc = paddle.nn.Linear(8 + 3, 2)

    def forward(self, ids, feats):
        return self.fc(paddle.concat([self.emb(ids).mean(axis=1), feats], axis=-1))


def test_two_inputs_keep_their_names_dtypes_and_order(tmp_path):
    model = _TwoInputNet()
    data = _TokensAndFeatures()
    cfg = {"model": {"type": "_TwoInputNet"}, "train": {"input_keys": ["ids", "feats"]}}
    save = str(tmp_path / "two")
    deploy = export_model(model, cfg, save, dataset=data)
    assert deploy["inputs"] == [{"name": "ids", "shape": [-1, 6], "dtype": "int64"},
                                {"name": "feats", "shape": [-1, 3], "dtype": "float32"}]
    pred = Predictor(save, device="cpu")
    assert pred.input_names == ["ids", "feats"]
    samples = [data[i] for i in range(4)]
    ids = np.stack([s["ids"] for s in samples])
    feats = np.stack([s["feats"] for s in samples])
    model.eval()
    ref = model(paddle.to_tensor(ids), paddle.to_tensor(feats)).numpy()
    np.testing.assert_allclose(pred.run({"feats": feats, "ids": ids})[0], ref, atol=1e-5)
    with pytest.raises(DataError, match="dtype float32.*expects int64"):
        pred.run([ids.astype(np.float32), feats])


@TRAINERS.register()
class _FeaturesOnlyTrainer(ppzoo.Trainer):
    """Deploys only the feature extractor of its model: the ``model_for_export`` hook."""

    def model_for_export(self):
        return self.model.features


def test_export_from_config_and_trainer_hook(trained, tmp_path):
    cfg, trainer, run = trained
    deploy = export_from_config(cfg, str(run / "best"), str(tmp_path / "full"))
    assert deploy["weights"] == str(run / "best" / "model.pdparams")
    x, _ = _val_batch(trainer, 3)
    load_weights(trainer.model, str(run / "best"))
    np.testing.assert_allclose(Predictor(str(tmp_path / "full"), device="cpu").run([x])[0],
                               _dygraph(trainer.model, x), atol=1e-5)
    sub = dict(cfg, trainer={"type": "_FeaturesOnlyTrainer"},
               export={"task": "classification", "verify_atol": 1e-5})
    export_from_config(sub, str(run / "best"), str(tmp_path / "features"))
    out = Predictor(str(tmp_path / "features"), device="cpu").run([x])[0]
    trainer.model.features.eval()
    with paddle.no_grad():
        ref = trainer.model.features(paddle.to_tensor(x)).numpy()
    assert out.shape == ref.shape == (3, 16, 4, 4)
    np.testing.assert_allclose(out, ref, atol=1e-5)


@MODELS.register()
class _StatefulForward(paddle.nn.Layer):
    """Its output depends on Python state that tracing freezes: exporting it must fail."""

    def __init__(self):
        super().__init__()
        self.fc = paddle.nn.Linear(3, 2)
        self.calls = 0

    def forward(self, feats):
        self.calls += 1
        return self.fc(feats) * float(self.calls)


def test_export_check_catches_a_forward_tracing_froze(tmp_path):
    cfg = {"model": {"type": "_StatefulForward"}, "train": {"input_keys": ["feats"]}}
    with pytest.raises(ConfigError, match="differs from dygraph"):
        export_model(_StatefulForward(), cfg, str(tmp_path / "bad"), dataset=_TokensAndFeatures())
    assert os.listdir(tmp_path) == []
