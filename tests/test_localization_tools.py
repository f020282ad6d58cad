"""The localization tools end to end on generated match videos: feature extraction
(resumable, atomic), BMN + AttentionLSTM trained on the extracted features of two
videos, then tools/localize.py on a third recovers its planted events."""
import json
import os
import sys

import numpy as np
import paddle
import pytest

from ppzoo.core.errors import ConfigError, DataError
from ppzoo.engine import build_trainer
from ppzoo.engine.export import export_model
from ppzoo.localization.synth import TINY_RECOGNIZER, make_event_videos

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "tools"))
sys.path.insert(0, os.path.dirname(__file__))

import extract_features  # noqa: E402
import localize  # noqa: E402
from test_localization_train import tiny_bmn_cfg, tiny_lstm_cfg  # noqa: E402

FPS = 1
RECOGNIZER = dict(TINY_RECOGNIZER, name="tiny_tsm")


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    root = tmp_path_factory.mktemp("loc_tools")
    kw = dict(duration=128, num_classes=4, events_per_video=8, length=(4.0, 9.0))
    train_lab, train_videos = make_event_videos(str(root / "train"), num_videos=2, seed=0, **kw)
    test_lab, test_videos = make_event_videos(str(root / "test"), num_videos=1, seed=7, **kw)
    # the recognizer's weights (random, seeded): what matters here is the plumbing
    import yaml
    from ppzoo.core.builder import build_model
    paddle.seed(0)
    rec = build_model(RECOGNIZER["model"])
    weights = str(root / "tiny_tsm.pdparams")
    paddle.save(rec.state_dict(), weights)
    cfg_path = root / "tiny_tsm.yml"
    cfg_path.write_text(yaml.safe_dump(RECOGNIZER))
    feat_model = str(root / "features_model")
    feat_dir = str(root / "features")
    done = extract_features.main(["-c", str(cfg_path), "--weights", weights, "--model-dir",
                                  feat_model, "--input", str(root / "train"), "--output-dir",
                                  feat_dir, "--fps", str(FPS)])
    assert len(done) == 2
    # features of the training videos -> BMN and AttentionLSTM
    bmn_cfg = tiny_bmn_cfg((train_lab, feat_dir), (train_lab, feat_dir), epochs=6)
    bmn_cfg["model"]["feat_dim"] = 64
    lstm_cfg = tiny_lstm_cfg((train_lab, feat_dir), (train_lab, feat_dir), epochs=8)
    lstm_cfg["model"]["feature_dim"] = 64
    lstm_cfg["export"]["input_spec"][0]["shape"][-1] = 64
    lstm_cfg["export"]["postprocess"].update(score_thresh=0.3, iou_thresh=0.2)
    exports = {}
    for name, cfg, keys in (("bmn", bmn_cfg, ["feature"]), ("lstm", lstm_cfg, ["feature", "mask"])):
        tr = build_trainer(cfg, work_dir=str(root / name))
        tr.train()
        exports[name] = str(root / f"{name}_export")
        export_model(tr.model, cfg, exports[name], dataset=tr.val_dataset, input_keys=keys)
    return root, feat_model, feat_dir, exports, test_lab, test_videos


def test_extract_features_resumes_and_writes_atomically(pipeline, capsys):
    root, feat_model, feat_dir, _, _, _ = pipeline
    files = sorted(os.listdir(feat_dir))
    assert files == ["game_0_00.npy", "game_0_01.npy"]
    arr = np.load(os.path.join(feat_dir, files[0]))
    assert arr.shape == (128, 64) and arr.dtype == np.float32
    mtime = os.path.getmtime(os.path.join(feat_dir, files[0]))
    extract_features.main(["--model-dir", feat_model, "--input", str(root / "train"),
                           "--output-dir", feat_dir, "--fps", str(FPS)])
    assert "skipped" in capsys.readouterr().out
    assert os.path.getmtime(os.path.join(feat_dir, files[0])) == mtime
    assert not [f for f in os.listdir(feat_dir) if "tmp" in f]


def test_extract_features_errors(pipeline, tmp_path):
    _, feat_model, _, exports, _, _ = pipeline
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video")
    from ppzoo.localization.features import extract_videos
    with pytest.raises(DataError, match="broken.mp4"):
        extract_videos(feat_model, [str(bad)], str(tmp_path / "out"), FPS, echo=None, bar=False)
    assert not os.path.exists(tmp_path / "out" / "broken.npy")
    with pytest.raises(ConfigError, match="frame_features"):
        extract_videos(exports["bmn"], [str(bad)], str(tmp_path / "out"), FPS, echo=None, bar=False)


def test_localize_recovers_planted_events(pipeline, tmp_path):
    root, feat_model, _, exports, test_lab, test_videos = pipeline
    out = str(tmp_path / "timelines")
    results, scores = localize.main(["--feature-model", feat_model, "--bmn", exports["bmn"],
                                     "--lstm", exports["lstm"], "--input", test_videos[0],
                                     "--output-dir", out, "--annotations", test_lab])
    js = os.path.join(out, "game_7_00.json")
    with open(js) as f:
        timeline = json.load(f)
    assert os.path.getsize(os.path.join(out, "game_7_00.png")) > 1000
    assert timeline["duration"] == pytest.approx(128) and timeline["events"]
    assert set(timeline["seconds"]) == {"decode", "features", "bmn", "classification"}
    ev = timeline["events"][0]
    assert set(ev) == {"start", "end", "class_id", "label", "score", "iou"}
    # seeded; the unseen video's planted events are recovered at IoA 0.5
    assert scores["recall@0.5"] >= 0.6 and scores["F1@0.5"] >= 0.5, scores


def test_infer_tasks_chain_bmn_then_lstm(pipeline, tmp_path):
    """tools/infer.py: a feature file -> proposals JSON -> events, on the two exports."""
    import infer
    root, _, feat_dir, exports, _, _ = pipeline
    props_out = str(tmp_path / "props")
    res = infer.main(["--model-dir", exports["bmn"], "--input", os.path.join(feat_dir, "game_0_00.npy"),
                      "--output", props_out])
    assert res[0]["proposals"] and res[0]["fps"] == FPS
    with open(os.path.join(props_out, "results.jsonl")) as f:
        rec = json.loads(f.readline())
    prop_file = tmp_path / "game_0_00.json"
    prop_file.write_text(json.dumps(rec))
    ev = infer.main(["--model-dir", exports["lstm"], "--input", str(prop_file)])
    assert ev[0]["events"] and {"start", "end", "label", "score"} <= set(ev[0]["events"][0])


def test_localize_cli_errors(pipeline, tmp_path):
    import subprocess
    _, _, feat_dir, exports, _, _ = pipeline
    cmd = [sys.executable, os.path.join(ROOT, "tools", "localize.py"), "--bmn", exports["lstm"],
           "--lstm", exports["lstm"], "--input", feat_dir, "--output-dir", str(tmp_path / "o")]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "expected bmn_proposals" in r.stderr, r.stderr[-500:]
    assert not os.path.exists(tmp_path / "o")


def test_localize_refuses_an_unknown_label_id(pipeline, tmp_path):
    import subprocess
    _, _, feat_dir, exports, _, _ = pipeline
    lab = tmp_path / "labels.json"
    lab.write_text(json.dumps({"database": {"game_7_00": {"duration": 128, "annotations": [
        {"segment": [3.0, 9.0], "label": "1"}, {"segment": [20.0, 26.0], "label": "42"}]}}}))
    cmd = [sys.executable, os.path.join(ROOT, "tools", "localize.py"), "--bmn", exports["bmn"],
           "--lstm", exports["lstm"], "--input", feat_dir, "--output-dir", str(tmp_path / "o"),
           "--annotations", str(lab)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    err = r.stderr.strip().splitlines()
    assert r.returncode == 2 and "label id 42" in r.stderr and str(lab) in r.stderr, r.stderr[-800:]
    assert len([ln for ln in err if "label id 42" in ln]) == 1 and "Traceback" not in r.stderr
    assert not os.path.exists(tmp_path / "o")
