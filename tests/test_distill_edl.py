"""EDL-Dist on a local Ray: soft labels equal the teacher's, a killed teacher loses and
duplicates no sample, a teacher added mid-run gets work, online and edl agree."""
import os

import numpy as np
import paddle
import pytest

ray = pytest.importorskip("ray")

from ppzoo.core.config import load_config  # noqa: E402
from ppzoo.core.errors import ConfigError  # noqa: E402
from ppzoo.distill.pool import TeacherPool  # noqa: E402
from ppzoo.distill.reader import EDLReader  # noqa: E402
from ppzoo.distill.trainer import IndexedDataset  # noqa: E402
from ppzoo.engine.export import export_from_config  # noqa: E402
from ppzoo.engine.hooks import Hook  # noqa: E402
from ppzoo.engine.trainer import build_trainer  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


@pytest.fixture(scope="module")
def ray_local():
    from ppzoo.distill.pool import init_ray
    init_ray(None, num_cpus=4)          # the project's own start: survives a loaded machine
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    """A SmallCNN teacher trained briefly on the digits and exported like tools/export.py."""
    work = tmp_path_factory.mktemp("teacher")
    cfg = load_config(os.path.join(ROOT, "configs/distill/digits_teacher.yml"),
                      ["model.width=16", "train.epochs=3", f"output_dir={work}"])
    tr = build_trainer(cfg)
    tr.train()
    export_dir = str(work / "inference")
    export_from_config(cfg, os.path.join(tr.work_dir, "latest", "model.pdparams"), export_dir)
    return {"cfg": cfg, "trainer": tr, "dir": export_dir, "acc": tr.evaluate()["top1"]}


def _student_cfg(tmp_path, teacher, mode, *opts):
    return load_config(os.path.join(ROOT, f"configs/distill/digits_{mode}.yml"),
                       [f"distill.teacher_dir={teacher['dir']}", f"output_dir={tmp_path}",
                        "train.epochs=2", "train.log_interval=100", *opts])


def test_pool_soft_labels_equal_dygraph_teacher(ray_local, teacher):
    ds = teacher["trainer"].val_dataset
    x = np.stack([ds[i]["image"] for i in range(40)]).astype(np.float32)
    model = teacher["trainer"].model
    model.eval()
    expect = model(paddle.to_tensor(x)).numpy()
    pool = TeacherPool(teacher["dir"], num_workers=1, worker_cpus=0.5)
    try:
        _, got = ray.get(pool.workers[0].infer.remote(7, [x]))
        np.testing.assert_allclose(got, expect, atol=1e-4, rtol=0)
        reader = EDLReader(pool, ["image"], request_size=16)
        batches = [{"image": x[i:i + 20]} for i in (0, 20)]
        out = np.concatenate([b["teacher"].numpy() for b in reader.read(batches)])
        np.testing.assert_allclose(out, expect, atol=1e-4, rtol=0)
    finally:
        pool.shutdown()


class _Chaos(Hook):
    """Kills a teacher worker at one iteration and adds one at a later one."""

    def __init__(self, kill_at, add_at):
        self.kill_at, self.add_at, self.killed, self.added = kill_at, add_at, None, None

    def after_iter(self, trainer):
        pool = trainer.soft_source.pool
        if trainer.iter == self.kill_at:
            self.killed = sorted(pool.workers)[0]
            pool.kill(self.killed)
        if trainer.iter == self.add_at:
            # wait until it has loaded: on a loaded machine a start can outlast the epoch,
            # and the point is that a worker that joins gets work, not how fast it loads
            self.added = pool.add(1, wait=True)[0]


def test_killed_teacher_loses_no_sample_and_added_teacher_gets_work(ray_local, teacher, tmp_path):
    cfg = _student_cfg(tmp_path, teacher, "edl", "distill.num_workers=2", "distill.worker_cpus=0.5",
                       "distill.request_size=16", "distill.max_in_flight=4", "distill.prefetch=3",
                       "distill.min_workers=1", "distill.record_ids=true", "train.epochs=1")
    tr = build_trainer(cfg)
    chaos = _Chaos(kill_at=4, add_at=8)
    tr.register_hook(chaos)
    tr.train()
    n = len(tr.train_dataset)
    ids = np.array(tr.trained_ids)
    # every training sample exactly once in the epoch, despite the kill
    assert len(ids) == n and np.array_equal(np.sort(ids), np.arange(n))
    stats = tr.teacher_stats
    assert chaos.killed is not None and stats["resent"] >= 1
    # the worker added mid-run answered requests
    assert stats["per_worker"].get(chaos.added, 0) > 0
    assert sum(stats["per_worker"].values()) == n


def test_online_and_edl_reach_the_same_accuracy(ray_local, teacher, tmp_path):
    accs = {}
    for mode in ("online", "edl"):
        cfg = _student_cfg(tmp_path / mode, teacher, mode, "distill.worker_cpus=0.5",
                           "train.epochs=6")
        tr = build_trainer(cfg)
        tr.train()
        accs[mode] = tr.evaluate()["top1"]
    assert accs["online"] > 0.6, accs
    assert abs(accs["online"] - accs["edl"]) <= 0.02, accs


def test_offline_soft_labels_are_written_once_and_reused(teacher, tmp_path):
    cfg = _student_cfg(tmp_path, teacher, "offline", "train.iters=3")
    tr = build_trainer(cfg)
    path = os.path.join(tr.work_dir, "soft_labels")
    logits = np.load(os.path.join(path, "logits.npy"))
    assert logits.shape == (len(tr.train_dataset), 10)
    # the stored row of a sample is the teacher's output on that sample (epoch 0)
    model = teacher["trainer"].model
    model.eval()
    x = np.stack([tr.train_dataset[i]["image"] for i in (0, 5)]).astype(np.float32)
    np.testing.assert_allclose(logits[[0, 5]], model(paddle.to_tensor(x)).numpy(), atol=1e-4)
    tr.train()
    mtime = os.path.getmtime(os.path.join(path, "logits.npy"))
    # a second run (its own folder: a used run folder is refused) reads the same labels
    again = _student_cfg(tmp_path / "again", teacher, "offline", "train.iters=3",
                         f"distill.soft_label_dir={path}")
    build_trainer(again).train()
    assert os.path.getmtime(os.path.join(path, "logits.npy")) == mtime


def test_bad_distill_config_is_one_clear_error(tmp_path, teacher):
    cfg = _student_cfg(tmp_path, teacher, "online", "distill.mode=bogus")
    with pytest.raises(ConfigError, match="distill.mode"):
        build_trainer(cfg)
    cfg = _student_cfg(tmp_path, teacher, "online", f"distill.teacher_dir={tmp_path}/nope")
    with pytest.raises(ConfigError, match="teacher_dir"):
        build_trainer(cfg)


class _StopAt(Hook):
    """Stops the run at one iteration, as a killed student would (after its checkpoint)."""
    priority = 90

    def __init__(self, at):
        self.at = at

    def after_iter(self, trainer):
        if trainer.iter == self.at:
            trainer.stop_requested = True


def test_killed_student_resumes_with_a_new_pool_and_ends_like_an_uninterrupted_run(
        ray_local, teacher, tmp_path):
    opts = ["distill.worker_cpus=0.5", "distill.record_ids=true", "train.iters=10",
            "train.checkpoint_interval=5", "train.eval_interval=100"]
    full = build_trainer(_student_cfg(tmp_path / "full", teacher, "edl", *opts))
    full.train()
    first = build_trainer(_student_cfg(tmp_path / "cut", teacher, "edl", *opts))
    first.register_hook(_StopAt(5))
    first.train()
    second = build_trainer(_student_cfg(tmp_path / "cut", teacher, "edl", *opts), resume=True)
    assert second.iter == 5
    second.train()
    assert second.iter == 10
    ids = first.trained_ids + second.trained_ids
    assert ids == full.trained_ids and len(set(ids)) == len(ids)
    for k, v in full.model.state_dict().items():
        np.testing.assert_allclose(second.model.state_dict()[k].numpy(), v.numpy(), atol=1e-5,
                                   err_msg=k)


def test_a_damaged_student_sample_stops_the_run_naming_its_file(teacher, tmp_path):
    """The student's loader is the engine's: a file that cannot be read is one DataError
    naming it, not a reading thread that dies while training waits for ever."""
    from _threads import run_bounded

    from ppzoo.core.errors import DataError
    cfg = _student_cfg(tmp_path, teacher, "offline", "train.iters=6")
    tr = build_trainer(cfg)

    class Damaged:
        def __init__(self, dataset):
            self.dataset = dataset

        def __len__(self):
            return len(self.dataset)

        def __getitem__(self, i):
            if i % 10 == 7:  # one sample in ten: the first batch holds some
                raise DataError(f"cannot read image /data/digits/{i}.png: Truncated File Read")
            return self.dataset[i]

    tr.indexed.dataset = Damaged(tr.indexed.dataset)
    finished, err = run_bounded(tr.train)
    assert finished, "distillation hung on a damaged sample"
    assert isinstance(err, DataError) and "train_dataset" in str(err) and "/data/digits/" in str(err)
