"""The motion set of the localization benchmark: no still frame tells an event or its
class (the colour set's one-line rule fails), the classes are the trajectories the
module promises (measured here by finding the sprite in the frames), distractors and
events keep apart, and the videos and labels load through the project's readers."""
import os

import numpy as np
import pytest

from ppzoo.localization.annotations import read_annotations
from ppzoo.localization.features import sample_frames
from ppzoo.localization.synth import make_event_videos, plant_events
from ppzoo.localization.synth_motion import (make_motion_videos, motion_frames,
                                             place_distractors)


def sprite_centre(img):
    """Centre of the sprite's blue squares (blue well above red and green), or None."""
    f = img.astype(np.float32)
    ys, xs = np.nonzero((f[..., 2] - f[..., 0] > 50) & (f[..., 2] - f[..., 1] > 50))
    return None if not len(xs) else np.array([xs.mean(), ys.mean()])


def test_event_classes_are_trajectories_speed_and_order():
    events = [(5.0, 11.0, 1), (20.0, 26.0, 2), (35.0, 39.0, 3)]
    frames = list(motion_frames(45.0, events, [(15.0, 16.0)], fps=2, size=48, players=1,
                                camera_speed=0.0, noise=0.0, idle_speed=0.3, seed=4))
    pos = [sprite_centre(f) for f in frames]
    step = np.array([np.abs(b - a) if a is not None and b is not None else (np.nan, np.nan)
                     for a, b in zip(pos[:-1], pos[1:])])      # step[i]: frame i -> i + 1

    def mean_step(t0, t1):
        return np.nanmean(step[int(t0 * 2):int(t1 * 2) - 1], axis=0)

    idle = mean_step(0, 5)
    assert idle.max() < 1.0
    h1, v1 = mean_step(5.5, 8), mean_step(8.5, 11)             # class 1: across, then up/down
    assert h1[0] > 2.0 > h1[1] and v1[1] > 2.0 > v1[0]
    v2, h2 = mean_step(20.5, 23), mean_step(23.5, 26)          # class 2: the reverse order
    assert v2[1] > 2.0 > v2[0] and h2[0] > 2.0 > h2[1]
    fast = mean_step(35.5, 39)                                 # class 3: twice as fast
    assert fast[0] > 1.6 * h1[0] and fast[1] < 2.0
    distract = mean_step(15, 16)                               # a distractor: one sub-motion
    assert max(distract) > 2.0


def test_a_still_frame_does_not_tell_the_class():
    """The colour set's rule (nearest class colour of a frame's mean pixel) solves the
    colour set and fails here: per-frame accuracy on event frames near chance.  The
    lighting is held constant so that no drift hides a colour difference between
    classes: the rule is fitted on the first half of a match and scored on the second."""
    rng = np.random.default_rng(0)
    ev = plant_events(rng, 480.0, 4, 36, (1.0, 15.0), 3.0)
    d = place_distractors(rng, 480.0, ev, 20)
    means = np.stack([f.reshape(-1, 3).mean(0) for f in
                      motion_frames(480.0, ev, d, fps=2, size=32, light_period=1e9, seed=1)])
    lab = np.zeros(len(means), int)
    for s, e, c in ev:
        lab[int(np.ceil(s * 2)):int(np.ceil(e * 2))] = c
    half = len(means) // 2
    tr_f, tr_l, te_f, te_l = means[:half], lab[:half], means[half:], lab[half:]
    centres = np.stack([tr_f[tr_l == c].mean(0) for c in (1, 2, 3)])
    pred = ((te_f[:, None] - centres[None]) ** 2).sum(-1).argmin(1) + 1
    acc = float((pred[te_l > 0] == te_l[te_l > 0]).mean())
    assert acc < 0.55, acc          # three classes: chance is about 1/3


def test_colour_set_is_solved_by_the_rule(tmp_path):
    """The contrast: on the colour set the same rule is (nearly) perfect."""
    lab, videos = make_event_videos(str(tmp_path), num_videos=1, duration=60.0, num_classes=4,
                                    events_per_video=4, fps=2, size=32, seed=0)
    gt = read_annotations(lab)["game_0_00"]["events"]
    means = np.stack([f.reshape(-1, 3).mean(0) for f in sample_frames(videos[0], 2)])
    labels = np.zeros(len(means), int)
    for s, e, c in gt:
        labels[int(np.ceil(s * 2)):int(np.ceil(e * 2))] = c
    centres = {c: means[labels == c].mean(0) for c in set(labels.tolist())}
    keys = sorted(centres)
    pred = np.array(keys)[((means[:, None] - np.stack([centres[k] for k in keys])[None]) ** 2
                           ).sum(-1).argmin(1)]
    assert (pred == labels).mean() > 0.9


def test_make_motion_videos_writes_loadable_videos_and_labels(tmp_path):
    lab, videos = make_motion_videos(str(tmp_path), num_videos=1, duration=40.0,
                                     events_per_video=3, distractors_per_video=3, seed=3)
    gt = read_annotations(lab)
    name = os.path.splitext(os.path.basename(videos[0]))[0]
    events = gt[name]["events"]
    assert len(events) == 3 and all(1.0 <= e - s <= 15.0 and 1 <= c <= 3 for s, e, c in events)
    frames = list(sample_frames(videos[0], 2))
    assert len(frames) == 80 and frames[0].shape == (32, 32, 3)
    assert not [f for f in os.listdir(tmp_path) if "tmp" in f]


def test_distractors_keep_apart_from_events():
    rng = np.random.default_rng(5)
    ev = plant_events(rng, 300.0, 4, 15, (1.0, 15.0), 3.0)
    d = place_distractors(rng, 300.0, ev, 15, (0.5, 1.0), gap=1.5)
    assert len(d) == 15
    spans = sorted([(s, e) for s, e, _ in ev] + d)
    assert all(b[0] - a[1] >= 1.5 - 1e-6 for a, b in zip(spans, spans[1:]))
    assert all(0.5 - 0.01 <= e - s <= 1.0 + 0.01 for s, e in d)


def test_num_classes_is_checked():
    with pytest.raises(ValueError, match="num_classes"):
        make_motion_videos("unused", num_classes=6)


def test_motion_clips_show_their_primitive():
    """Clips for the recognizer: label 0 idle, 1 horizontal, 2 vertical, 3 fast horizontal,
    measured from the sprite's steps (one player, still camera, no noise)."""
    from ppzoo.localization.synth_motion import motion_clips
    clips, labels = motion_clips(24, seg=4, fps=2, size=48, seed=2, players=1,
                                 camera_speed=0.0, noise=0.0, idle_speed=0.3)
    assert clips.shape == (24, 4, 48, 48, 3) and set(labels.tolist()) == {0, 1, 2, 3}
    for clip, k in zip(clips, labels):
        pos = np.stack([sprite_centre(f) for f in clip])
        dx, dy = np.abs(np.diff(pos, axis=0)).mean(0)
        if k == 0:
            assert max(dx, dy) < 1.0
        elif k == 1:
            assert dx > 2.0 > dy
        elif k == 2:
            assert dy > 2.0 > dx
        else:
            assert dx > 3.5 and dy < 2.0       # 6 px a frame, less on a bounce


def test_both_sets_are_registered():
    from ppzoo.localization.synth import synthetic_sets
    sets = synthetic_sets()
    assert sets["colour"] is make_event_videos and sets["motion"] is make_motion_videos
