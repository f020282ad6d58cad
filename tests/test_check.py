"""``--check`` of tools/train.py, eval.py and export.py: what a run would need, before it starts.

The sweep runs the check function in-process over every config in configs/ (from an empty
working directory, with an empty hub cache and a repository root that holds no outputs) and
asserts exactly which configs would download weights, which need an earlier pipeline step
and which name data that is not in the shared data folder.  docs/tools.md lists the same.
"""
import glob
import os
import subprocess
import sys

import numpy as np
import paddle
import pytest

import ppzoo  # noqa: F401  (registers every component)
from ppzoo.core import load_config, paths
from ppzoo.core.errors import PPZooError, WeightsError
from ppzoo.engine.check import check_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(f for f in glob.glob(os.path.join(ROOT, "configs", "**", "*.yml"), recursive=True)
                 if "_base_" not in os.path.relpath(f, ROOT).split(os.sep)[1:-1]
                 and not os.path.basename(f).startswith("_base"))

SEG_R50 = "resnet50_vd_ssld_v2_paddleseg"
SEG_HRNET = "hrnet_w18_ssld_paddleseg"
PPTSM = "paddlevideo_resnet50_vd_ssld_v2_imagenet"
TSM = "paddlevideo_resnet50_imagenet"
#: config -> the zoo names a run of it downloads (nothing cached)
DOWNLOADS = {
    "pssl/deeplabv3_r50_pssl.yml": {SEG_R50}, "pssl/pspnet_r50_pssl.yml": {SEG_R50},
    "pssl/ocrnet_hrnetw18_pssl.yml": {SEG_HRNET},
    "pssl/deeplabv3_r50_pssl_poly.yml": {SEG_R50}, "pssl/pspnet_r50_pssl_poly.yml": {SEG_R50},
    "pssl/ocrnet_hrnetw18_pssl_poly.yml": {SEG_HRNET},
    "segmentation/deeplabv3_r50_camvid.yml": {SEG_R50}, "segmentation/pspnet_r50_camvid.yml": {SEG_R50},
    "segmentation/ocrnet_hrnetw18_camvid.yml": {SEG_HRNET},
    "segmentation/deeplabv3_r50_camvid_flip.yml": {SEG_R50}, "segmentation/pspnet_r50_camvid_flip.yml": {SEG_R50},
    "segmentation/ocrnet_hrnetw18_camvid_flip.yml": {SEG_HRNET},
    "pssl/stdc2_seg_pssl.yml": {"stdc2_imagenet_paddleseg"},
    "pssl/pp_liteseg_stdc2_pssl.yml": {"pp_stdc2_imagenet_paddleseg"},
    "segmentation/stdc2_seg_voc12aug_pssl.yml": {"stdc2_pssl_imagenet"},
    "segmentation/stdc2_seg_camvid_pssl.yml": {"stdc2_pssl_imagenet"},
    "segmentation/pp_liteseg_stdc2_cityscapes_pssl.yml": {"pp_liteseg_stdc2_pssl_imagenet"},
    "segmentation/pp_liteseg_stdc2_camvid_pssl.yml": {"pp_liteseg_stdc2_pssl_imagenet"},
    "video/pptsm_basketball.yml": {PPTSM}, "video/pptsm_football.yml": {PPTSM},
    "video/pptsm_r50.yml": {PPTSM}, "video/pptsm_table_tennis.yml": {PPTSM},
    "video/tsm_r50.yml": {TSM}, "video/tsn_r50.yml": {TSM},
    "video/pptsm_r50_ppzoo.yml": {PPTSM}, "video/tsm_r50_ppzoo.yml": {TSM},
    "video/tsn_r50_ppzoo.yml": {TSM}, "video/tsn_r50_test.yml": {TSM},
    "video/pptsm_r50_dense.yml": {PPTSM}, "video/pptsm_r50_dense_test.yml": {PPTSM},
}
DIGITS_TEACHER = "output/distill_digits_teacher/inference"
#: config -> what it reads from an earlier step of its pipeline
STEPS = {
    "distill/cifar10_edl.yml": {"output/distill_cifar10_teacher/inference"},
    "distill/cifar10_online.yml": {"output/distill_cifar10_teacher/inference"},
    "distill/digits_edl.yml": {DIGITS_TEACHER}, "distill/digits_offline.yml": {DIGITS_TEACHER},
    "distill/digits_online.yml": {DIGITS_TEACHER}, "distill/digits_service.yml": {DIGITS_TEACHER},
    "pssl/camvid_generate.yml": {"output/pssl_camvid_classifier/best/model.pdparams"},
    "pssl/camvid_pretrain.yml": {"output/pssl_camvid_labels"},
    "pssl/camvid_pretrain_ext.yml": {"output/pssl_camvid_labels"},
    "pssl/camvid_finetune.yml": {"output/pssl_camvid_pretrain/latest/model.pdparams"},
    "pssl/deeplabv3_r50_pssl_camvid.yml": {"output/deeplabv3_r50_pssl/latest/model.pdparams"},
    "pssl/ocrnet_hrnetw18_pssl_camvid.yml": {"output/ocrnet_hrnetw18_pssl/latest/model.pdparams"},
    "pssl/pspnet_r50_pssl_camvid.yml": {"output/pspnet_r50_pssl/latest/model.pdparams"},
    "skeleton/agcn2s_fsd10_fusion.yml": {"output/agcn2s_fsd10/best/model.pdparams",
                                         "output/agcn2s_fsd10_bone/best/model.pdparams"},
}
from _config_needs import MISSING_DATA  # noqa: E402  (shared with test_data_paths)
from _config_needs import PAPER_DOWNLOADS, PAPER_STEPS  # noqa: E402
DOWNLOADS = {**DOWNLOADS, **PAPER_DOWNLOADS}
STEPS = {**STEPS, **PAPER_STEPS}


@pytest.fixture
def elsewhere(tmp_path, monkeypatch):
    """An empty working directory, hub cache and repository root: nothing cached, no outputs."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("PPZOO_HOME", str(tmp_path / "home"))
    # the data root fixed before the repository is hidden (its default is relative to it)
    monkeypatch.setenv("PPZOO_DATA", paths.data_root())
    monkeypatch.setattr(paths, "REPO_ROOT", str(tmp_path / "repo"))
    return tmp_path


def _name(path):
    return os.path.relpath(path, os.path.join(ROOT, "configs"))


def test_check_names_every_download_earlier_step_and_missing_dataset(elsewhere):
    got = {"download": {}, "step": {}, "missing": set()}
    for path in CONFIGS:
        report = check_config(load_config(path), "train", build=False)
        for need in report.needs:
            if need.kind == "missing":
                got["missing"].add(_name(path))
            else:
                got[need.kind].setdefault(_name(path), set()).add(need.value)
    assert got["download"] == DOWNLOADS
    assert got["step"] == STEPS
    if os.path.isdir(os.path.join(paths.data_root(), "cifar10")):
        assert got["missing"] == MISSING_DATA
    else:  # without the shared data, the configs reading it are missing data too
        assert got["missing"] >= MISSING_DATA
    assert not os.listdir(elsewhere / "work") and not (elsewhere / "home").exists()


def test_a_cached_download_is_not_reported(elsewhere):
    from ppzoo.hub.download import cache_path
    from ppzoo.hub.table import lookup
    entry = lookup(PPTSM)
    cached = cache_path(entry["url"], entry.get("sha256"), entry.get("md5"))
    os.makedirs(os.path.dirname(cached))
    open(cached, "wb").close()
    report = check_config(load_config(os.path.join(ROOT, "configs", "video", "tsm_r50.yml")),
                          "train", build=False)
    assert [n.value for n in report.of_kind("download")] == [TSM]
    report = check_config(load_config(os.path.join(ROOT, "configs", "video", "pptsm_r50.yml")),
                          "train", build=False)
    assert report.of_kind("download") == []


def test_check_builds_the_model_and_data_and_writes_nothing(elsewhere, digits_cfg):
    report = check_config(digits_cfg, "train")
    expected = sum(int(np.prod(p.shape)) for p in ppzoo.core.build_model(digits_cfg["model"]).parameters())
    assert report.params == expected > 0
    assert report.datasets == {"train_dataset": 1438, "val_dataset": 359}
    assert report.writes == os.path.abspath(os.path.join("output", digits_cfg["name"]))
    assert not os.listdir(elsewhere / "work") and not (elsewhere / "home").exists()


def test_check_refuses_a_used_run_folder_as_the_run_would(elsewhere, digits_cfg):
    os.makedirs(os.path.join("output", digits_cfg["name"], "latest"))
    with pytest.raises(PPZooError, match="not empty"):
        check_config(digits_cfg, "train", build=False)
    assert "continues" in check_config(digits_cfg, "train", build=False, resume=True).writes_note


def test_check_with_weights_reads_them_and_checks_every_shape(elsewhere, digits_cfg):
    model = ppzoo.core.build_model(digits_cfg["model"])
    good = str(elsewhere / "good.pdparams")
    paddle.save(model.state_dict(), good)
    report = check_config(digits_cfg, "eval", weights=good)
    assert report.weights == good and report.datasets == {"val_dataset": 359}
    other = ppzoo.core.build_model(dict(digits_cfg["model"], width=4))
    bad = str(elsewhere / "bad.pdparams")
    paddle.save(other.state_dict(), bad)
    with pytest.raises(WeightsError, match="do not fit"):
        check_config(digits_cfg, "export", weights=bad, save_dir="inference")
    with pytest.raises(WeightsError, match="not found"):
        check_config(digits_cfg, "eval", weights=str(elsewhere / "none.pdparams"))


def _tool(args, cwd, home):
    env = dict(os.environ, PPZOO_HOME=str(home))
    return subprocess.run([sys.executable, os.path.join(ROOT, "tools", args[0])] + args[1:],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_train_check_tool_exits_0_and_writes_nothing(tmp_path):
    before = sorted(os.listdir(os.path.join(ROOT, "output"))) if os.path.isdir(os.path.join(ROOT, "output")) else []
    res = _tool(["train.py", "-c", os.path.join(ROOT, "configs", "quickstart", "digits.yml"), "--check"],
                tmp_path, tmp_path / "home")
    assert res.returncode == 0, res.stderr
    assert "SmallCNN" in res.stdout and "parameters" in res.stdout
    assert f"would write: {tmp_path / 'output' / 'quickstart_digits'} (a new run)" in res.stdout
    assert os.listdir(tmp_path) == []
    after = sorted(os.listdir(os.path.join(ROOT, "output"))) if os.path.isdir(os.path.join(ROOT, "output")) else []
    assert after == before


def test_train_check_tool_names_a_missing_earlier_step_in_one_line(tmp_path):
    res = _tool(["train.py", "-c", os.path.join(ROOT, "configs", "pssl", "camvid_finetune.yml"), "--check",
                 "--opts", "model.width=4"], tmp_path, tmp_path / "home")
    assert res.returncode == 2, res.stderr
    err = res.stderr.strip().splitlines()
    assert err == [f"error: {os.path.join(ROOT, 'configs', 'pssl', 'camvid_finetune.yml')}: needs an "
                   f"earlier step: pretrained = output/pssl_camvid_pretrain/latest/model.pdparams"]
    assert os.listdir(tmp_path) == []


# --------------------------------------------------------------------------- errors come early
def _load_tool(name):
    import importlib.util
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    spec = importlib.util.spec_from_file_location(f"ppzoo_tool_{name}", os.path.join(ROOT, "tools", f"{name}.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("tool", ["eval", "export"])
def test_weights_are_checked_before_the_model_and_data_are_built(tool, tmp_path, monkeypatch, capsys):
    import ppzoo.engine.export as export

    def built(*a, **k):
        raise AssertionError("the model and data were built before --weights was checked")
    monkeypatch.setattr(export, "build_for_weights", built)
    main = _load_tool(tool).main
    cfg = os.path.join(ROOT, "configs", "quickstart", "digits.yml")
    extra = ["--save-dir", str(tmp_path / "inference")] if tool == "export" else []
    with pytest.raises(SystemExit) as exit_:
        main(["-c", cfg, "--weights", str(tmp_path / "none.pdparams")] + extra)
    assert exit_.value.code == 2
    assert capsys.readouterr().err.strip() == f"error: weights file not found: {tmp_path / 'none.pdparams'}"
    junk = tmp_path / "junk.pdparams"
    junk.write_bytes(b"not a state dict")
    with pytest.raises(SystemExit) as exit_:
        main(["-c", cfg, "--weights", str(junk)] + extra)
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {junk} is not a Paddle state dict"), err
    assert not (tmp_path / "inference").exists()


SETUP_SCRIPT = """
import sys, time
sys.path.insert(0, {tools!r})
from _common import main_guard

@main_guard
def main():
    import ppzoo  # noqa: F401  (set-up: before train() installs its own handlers)
    print("ready", flush=True)
    time.sleep(300)

main()
"""


def test_sigterm_during_set_up_is_one_line_and_exit_130(tmp_path):
    """Importing paddle installs a SIGTERM handler that prints Paddle's FatalError dump; the
    tools reinstall theirs after that import."""
    script = tmp_path / "setup.py"
    script.write_text(SETUP_SCRIPT.format(tools=os.path.join(ROOT, "tools")))
    proc = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"  # waits for the set-up, however slow
        proc.terminate()
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert err.strip().splitlines() == ["error: interrupted by SIGTERM"], err


def _no_downloads(monkeypatch):
    import importlib
    load = importlib.import_module("ppzoo.hub.load")
    calls = []

    def refuse(url, *a, **k):
        calls.append(url)
        raise AssertionError(f"downloaded {url}")
    monkeypatch.setattr(load, "download", refuse)
    return calls


def test_pptsm_football_with_weights_never_downloads_its_imagenet_backbone(tmp_path, monkeypatch):
    """tools/extract_features.py -c configs/video/pptsm_football.yml --weights W: the weights
    replace every parameter, so the backbone's ImageNet init is not fetched (a small backbone
    of the same config, for time)."""
    from ppzoo.core.builder import build_model
    from ppzoo.engine.trainer import without_pretrained
    from ppzoo.localization.features import export_extractor
    calls = _no_downloads(monkeypatch)
    cfg = load_config(os.path.join(ROOT, "configs", "video", "pptsm_football.yml"),
                      ["model.backbone.depth=18", "model.backbone.base_width=4", "model.head.in_channels=32"])
    assert cfg["model"]["backbone"]["pretrained"] == PPTSM
    weights = str(tmp_path / "w.pdparams")
    paddle.save(build_model(without_pretrained(cfg)["model"]).state_dict(), weights)
    export_extractor(cfg, str(tmp_path / "features"), weights=weights)
    assert calls == []
    with pytest.raises(AssertionError, match="downloaded"):  # without --weights it would fetch it
        build_model(cfg["model"])


def test_resume_never_downloads_the_init_latest_replaces(tmp_path, monkeypatch, digits_cfg):
    from ppzoo.engine.trainer import Trainer
    digits_cfg["train"].update({"epochs": 1})
    Trainer(digits_cfg, work_dir=str(tmp_path / "run")).train()
    calls = _no_downloads(monkeypatch)
    cfg = dict(digits_cfg, pretrained="resnet18_imagenet")  # a change --resume allows
    Trainer(cfg, work_dir=str(tmp_path / "run"), resume=True)
    assert calls == []
    with pytest.raises(AssertionError, match="downloaded"):  # a fresh run fetches its init
        Trainer(cfg, work_dir=str(tmp_path / "fresh"))
    assert calls


def test_a_federated_round_failure_says_what_latest_holds(tmp_path):
    from ppzoo.engine import checkpoint as ckpt
    from ppzoo.federated.trainer import FederatedError, FederatedTrainer

    class Run:
        min_clients, round, work_dir = 2, 4, str(tmp_path)
        _latest_note = FederatedTrainer._latest_note

    with pytest.raises(FederatedError) as err:
        FederatedTrainer._need(Run(), 5, 1, 3, [(7, "OSError: gone")])
    assert str(err.value).endswith("; no latest/ written yet (a rerun starts afresh)")
    ckpt.save_checkpoint(str(tmp_path / "latest"), {"w": np.zeros(2, np.float32)}, None, {"round": 3})
    with pytest.raises(FederatedError) as err:
        FederatedTrainer._need(Run(), 5, 1, 3, [])
    assert str(err.value).endswith("; latest/ holds round 3")


@pytest.mark.parametrize("config,opts", [
    ("skeleton/stgcn_fsd10.yml", []),
    ("localization/lstm_football.yml", ["model.lstm_size=8", "model.audio_lstm_size=8",
                                        "model.fc_dims=[8,8]"]),  # small, for time
])
def test_export_needs_only_the_model_not_the_val_data(config, opts, tmp_path, monkeypatch):
    """The val data and annotations of these configs are absent here: export takes the input
    spec from export.input_spec and the label names from the dataset's config."""
    from ppzoo.core.builder import build_model
    from ppzoo.engine.export import export_from_config
    from ppzoo.engine.trainer import without_pretrained
    monkeypatch.chdir(tmp_path)
    cfg = load_config(os.path.join(ROOT, "configs", config), opts)
    with pytest.raises(PPZooError, match="not found"):  # the data really is absent
        ppzoo.core.builder.DATASETS.build(cfg["val_dataset"])
    weights = str(tmp_path / "w.pdparams")
    paddle.save(build_model(without_pretrained(cfg)["model"]).state_dict(), weights)
    deploy = export_from_config(cfg, weights, str(tmp_path / "inference"))
    spec = cfg["export"].get("input_spec") or cfg["export"]["default_input_spec"]
    assert [i["shape"] for i in deploy["inputs"]] == [[-1] + [-1 if d is None else d for d in s["shape"][1:]]
                                                      for s in spec]
    assert deploy["label_names"] and len(deploy["label_names"]) == cfg["model"].get(
        "num_classes", cfg["model"].get("head", {}).get("num_classes"))
    assert sorted(os.listdir(tmp_path / "inference")) == ["deploy.yml", "model.json", "model.pdiparams"]


def test_a_paddlenlp_model_name_is_a_download_and_a_package_folder_is_not(elsewhere):
    path = os.path.join(ROOT, "configs", "lnsr", "rte_plain.yml")
    report = check_config(load_config(path, ["model.pretrained=bert-base-uncased"]), "train", build=False)
    assert [(n.kind, n.key, n.value) for n in report.needs] == [("download", "model.pretrained", "bert-base-uncased")]
    assert check_config(load_config(path), "train", build=False).needs == []  # pkg:// is installed


# ---------------------------------------------------------------- the papers' own settings
PAPER_CONFIGS = [c for c in CONFIGS if os.sep + "paper" + os.sep in c]


def test_every_paper_config_passes_check_offline_and_is_documented(elsewhere):
    """The configs/<family>/paper/ settings check without network (the sweep above asserts
    their downloads, steps and missing data exactly) and docs/paper_settings.md names each
    with what it needs.  The cheap ones are also built in full (model and datasets)."""
    assert len(PAPER_CONFIGS) >= 30
    with open(os.path.join(ROOT, "docs", "paper_settings.md"), encoding="utf-8") as f:
        doc = f.read()
    for path in PAPER_CONFIGS:
        name = _name(path)
        assert f"configs/{name}" in doc, f"docs/paper_settings.md does not list configs/{name}"
        report = check_config(load_config(path), "train", build=False)
        kinds = {n.kind for n in report.needs}
        assert kinds <= {"download", "step", "missing"}, (name, kinds)
    for name in ("active/paper/cifar10_noise_stability.yml", "active/paper/cifar10_ood04_poal.yml"):
        if not os.path.isdir(os.path.join(paths.data_root(), "cifar10")):
            break
        report = check_config(load_config(os.path.join(ROOT, "configs", name)), "train")
        assert not report.problems() and report.params > 10_000_000, name
    assert not os.listdir(elsewhere / "work")


#: the federated paper settings: (paper, method's CPU-scale config, strategy keys the
#: paper config sets itself) and the scale each paper's settings share
FED_PAPER = {f"fedda_cifar10_{m}.yml": ("fedda", f"cifar10_{m}.yml", {}) for m in
             ("fedavg", "fedavgm", "fedadam", "fedyogi", "fedadagrad", "scaffold", "fedprox")}
FED_PAPER.update({f"fedda_cifar10_{f}.yml": ("fedda", "cifar10_fedda.yml",
                                              {"form": f, "full_batch_rounds": 100})
                  for f in ("sgdm", "adam", "adagrad")})
FED_PAPER.update({f"fedhisyn_cifar10_{m}.yml": ("fedhisyn", f"cifar10_{m}.yml", {}) for m in
                  ("fedhisyn", "fedavg", "scaffold", "fedprox")})
FED_PAPER["fedhisyn_cifar10_fedat.yml"] = ("fedhisyn", "cifar10_fedat.yml", {"tier_fraction": 1.0})
FED_SCALE = {"fedda": {"num_clients": 500, "clients_per_round": 10, "rounds": 4000},
             "fedhisyn": {"num_clients": 100, "clients_per_round": 100, "rounds": 500}}


def test_federated_paper_configs_keep_the_method_and_change_only_the_scale():
    """Each configs/federated/paper/ setting is its CPU-scale config's method at the paper
    settings' scale: the strategy is the CPU config's (plus the keys listed above), the data
    and device profile are the CPU configs', and the scale is the same for every method
    of one paper's comparison (a base that re-inherited the CPU base would reset the
    strategy to FedAvg)."""
    here = sorted(os.path.basename(c) for c in PAPER_CONFIGS
                  if _name(c).startswith("federated" + os.sep))
    assert here == sorted(FED_PAPER)
    for name, (paper, cpu_name, own) in FED_PAPER.items():
        cfg = load_config(os.path.join(ROOT, "configs", "federated", "paper", name))
        cpu = load_config(os.path.join(ROOT, "configs", "federated", cpu_name))
        fed, cpu_fed = cfg["federated"], cpu["federated"]
        assert fed["strategy"] == {**cpu_fed["strategy"], **own}, name
        # the SGDM form's step is gradient-sized: the SGD baselines' rate, not the Adam form's
        lr = {"learning_rate": 0.05} if name == "fedda_cifar10_sgdm.yml" else {}
        assert fed["local"]["optimizer"] == {**cpu_fed["local"]["optimizer"], **lr}, name
        assert fed["profile"] == cpu_fed["profile"] and cfg["train_dataset"] == cpu["train_dataset"], name
        scale = dict(FED_SCALE[paper], rounds=2500) if cpu_name == "cifar10_fedat.yml" else FED_SCALE[paper]
        assert {k: fed[k] for k in scale} == scale, name
        assert cfg["model"] == dict(cpu["model"], width=64, depth=3, norm="none"), name



def _provenance_rows():
    """docs/paper_settings.md's table of where each federated value comes from:
    {key: [FedDA value, its source, FedHiSyn value, its source]}."""
    with open(os.path.join(ROOT, "docs", "paper_settings.md"), encoding="utf-8") as f:
        doc = f.read()
    rows = {}
    for line in doc.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0].startswith("`federated."):
            rows[cells[0].strip("`")] = cells[1:]
    return rows


def test_federated_paper_settings_table_states_the_configs_values_and_a_source_for_each():
    """The docs say, value by value, what the federated paper configs hold and where each
    value comes from (the abstract, the introduction, or reconstructed): a config changed
    without its docs, or a value left without a source, fails here."""
    import re
    rows = _provenance_rows()
    assert set(rows) >= {f"federated.{k}" for k in ("num_clients", "clients_per_round", "rounds",
                                                     "partition", "local", "profile", "strategy")}
    for paper, col in (("fedda", 0), ("fedhisyn", 2)):
        # every method of one paper shares the scale (the test above), so one config stands for all
        fed = load_config(os.path.join(ROOT, "configs", "federated", "paper",
                                       f"{paper}_cifar10_fedavg.yml"))["federated"]
        for key in ("num_clients", "clients_per_round", "rounds"):
            said = rows[f"federated.{key}"][col]
            assert int(re.match(r"\d+", said).group()) == fed[key], (paper, key, said)
        local = rows["federated.local"][col]
        assert f"{fed['local']['epochs']} epoch" in local and f"batch {fed['local']['batch_size']}" in local
        assert fed["partition"]["type"] == "dirichlet"
        assert rows["federated.partition"][col] == f"Dirichlet {fed['partition']['alpha']}", paper
    for key, (_, fedda_src, _, hisyn_src) in rows.items():
        for src in (fedda_src, hisyn_src):
            assert re.search(r"abstract|introduction|reconstructed", src), (key, src)

def test_the_resnext_teacher_is_paddle_vision_resnext():
    """EDL-Dist's teacher: ResNet with groups/width is paddle.vision's ResNeXt, name for
    name and shape for shape (so its published weights load)."""
    from paddle.vision.models import resnext101_32x4d
    from ppzoo.core.builder import MODELS
    cfg = load_config(os.path.join(ROOT, "configs", "distill", "paper", "imagenet_teacher_resnext101.yml"))
    ours = MODELS.build(dict(cfg["model"], num_classes=10))
    ref = resnext101_32x4d(num_classes=10)
    assert {k[len("net."):]: tuple(v.shape) for k, v in ours.state_dict().items()} == \
        {k: tuple(v.shape) for k, v in ref.state_dict().items()}
