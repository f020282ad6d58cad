"""Replay against Avalanche 0.6's ``ReplayPlugin``, re-derived here: its default storage
policy (``ExperienceBalancedBuffer``, adaptive size) keeps capacity // tasks per task, the
remainder one each to the first tasks, and ``ClassBalancedBuffer`` the same per class; its
loss is the mean over the current and replayed samples in one batch."""
import copy
import os
import types

import numpy as np
import paddle
import pytest

import ppzoo  # noqa: F401
from ppzoo.continual.strategies import Replay
from ppzoo.core import load_config
from ppzoo.core.errors import ConfigError
from ppzoo.engine.trainer import build_trainer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _avalanche_lengths(capacity, n_groups):
    """Avalanche's ``get_group_lengths`` with adaptive size, written out."""
    out = [capacity // n_groups] * n_groups
    for i in range(capacity - sum(out)):
        out[i] += 1
    return out


class _TaskSet:
    def __init__(self, labels):
        self.labels = np.asarray(labels)

    def __len__(self):
        return len(self.labels)


def _stub_ct(sizes, seed=0, classes_per_task=2):
    sets = [_TaskSet(np.arange(n) % classes_per_task + classes_per_task * t) for t, n in enumerate(sizes)]
    return types.SimpleNamespace(seed=seed, task_dataset=lambda tasks, part: sets[tasks[0]]), sets


@pytest.mark.parametrize("sizes", [[500, 500, 500, 500], [300, 900, 150]])
def test_task_balanced_buffer_keeps_capacity_over_tasks_per_task(sizes):
    ct, _ = _stub_ct(sizes)
    r = Replay(capacity=200, buffer="task_balanced")
    held = []
    for t in range(len(sizes)):
        r.after_task(ct, t)
        counts = np.bincount([it[0] for it in r.buffer.items], minlength=t + 1).tolist()
        assert counts == _avalanche_lengths(200, t + 1), (t, counts)
        assert len(set(r.buffer.items)) == len(r.buffer.items)
        held.append({it for it in r.buffer.items if it[0] == 0})
    for a, b in zip(held, held[1:]):  # a group shrinks to a subset of what it held
        assert b <= a


def test_reservoir_share_varies_by_seed_and_balanced_does_not():
    shares_res, shares_bal = set(), set()
    for seed in range(20):
        ct, _ = _stub_ct([500, 500, 500, 500], seed=seed)
        res, bal = Replay(capacity=200, buffer="reservoir"), Replay(capacity=200)
        for t in range(4):
            res.after_task(ct, t)
            bal.after_task(ct, t)
        shares_res.add(sum(it[0] == 0 for it in res.buffer.items))
        shares_bal.add(sum(it[0] == 0 for it in bal.buffer.items))
    assert shares_bal == {50} and len(shares_res) > 3


def test_class_balanced_buffer_keeps_capacity_over_classes_per_class():
    ct, sets = _stub_ct([400, 400, 400], classes_per_task=2)
    r = Replay(capacity=100, buffer="class_balanced")
    for t in range(3):
        r.after_task(ct, t)
        labels = [int(sets[tk].labels[i]) for tk, i in r.buffer.items]
        seen = sorted(set(labels))
        assert seen == list(range(2 * (t + 1)))
        assert [labels.count(c) for c in seen] == _avalanche_lengths(100, len(seen))


def test_buffer_state_round_trips():
    ct, _ = _stub_ct([300, 300])
    for kind in Replay.BUFFERS:
        a = Replay(capacity=50, buffer=kind)
        a.after_task(ct, 0)
        a.after_task(ct, 1)
        b = Replay(capacity=50, buffer=kind)
        b.load_state_dict(copy.deepcopy(a.state_dict()))
        assert b.buffer.items == a.buffer.items
        b.after_task(ct, 1)
        a.after_task(ct, 1)
        assert b.buffer.items == a.buffer.items


def test_replay_option_errors_name_the_key():
    with pytest.raises(ConfigError, match="Replay.buffer"):
        Replay(buffer="fifo")
    with pytest.raises(ConfigError, match="Replay.combine"):
        Replay(combine="mean")
    with pytest.raises(ConfigError, match="Replay.weight"):
        Replay(weight=0.5)
    Replay(weight=0.5, combine="sum")


def _ce_masked(logits, labels, tasks, task_classes):
    """Cross-entropy of each sample over its own task's classes (task-incremental), by hand."""
    z = logits.numpy().astype(np.float64)
    out = []
    for zi, y, t in zip(z, labels, tasks):
        allowed = task_classes[int(t)]
        zz = zi[allowed]
        out.append(np.log(np.exp(zz - zz.max()).sum()) + zz.max() - zi[int(y)])
    return np.array(out)


@pytest.mark.parametrize("combine", ["concat", "sum"])
def test_replay_loss_is_avalanches_combined_mean_or_the_sum(tmp_path, combine):
    cfg = load_config(os.path.join(ROOT, "configs", "continual", "digits_task_il.yml"))
    cfg["model"]["encoder"]["width"] = 4
    cfg["continual"].update({"epochs": 1, "split": {"by": "classes", "tasks": [[0, 1], [2, 3]],
                                                    "train_per_class": 20, "test_per_class": 10},
                             "strategy": {"type": "Replay", "capacity": 12, "batch_size": 12,
                                          "combine": combine}})
    ct = build_trainer(cfg, work_dir=str(tmp_path / "r"))
    s = ct.strategy
    s.after_task(ct, 0)
    ct.current_task = 1
    cur_ds = ct.task_dataset([1], "train", augment=False)
    cur = [cur_ds[i] for i in range(8)]
    batch = {k: paddle.to_tensor(np.stack([x[k] for x in cur])) for k in ("image", "label", "task")}
    ct.model.eval()  # BatchNorm by running statistics: both sides see the same per-sample logits
    loss, _ = s.loss(ct, types.SimpleNamespace(iter=3), batch)
    # by hand: every buffer sample (batch_size = capacity), logits sample by sample
    ds0 = ct.task_dataset([0], "train")
    rep = [ds0[i] for t, i in s.buffer.items]
    assert len(rep) == 12 and all(t == 0 for t, _ in s.buffer.items)
    tc = {k: ct.scenario.tasks[k]["classes"] for k in range(2)}

    def per_sample(samples):
        x = paddle.to_tensor(np.stack([q["image"] for q in samples]))
        return _ce_masked(ct.model(x), [q["label"] for q in samples], [q["task"] for q in samples], tc)

    lc, lr = per_sample(cur), per_sample(rep)
    want = np.concatenate([lc, lr]).mean() if combine == "concat" else lc.mean() + lr.mean()
    assert float(loss) == pytest.approx(want, rel=1e-4)
