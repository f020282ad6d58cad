"""Generated match videos whose events can be found only from motion and temporal order.

The colour set of ``synth.py`` paints each class in its own colour, so one frame's mean
pixel names the class (a rule with no learning solves it).  Here every class looks the
same in a still frame:

- a pitch texture (stripes and noise, one texture for the whole set) seen through a
  camera that pans (a random-walk velocity, up to ``camera_speed`` px per frame), under
  lighting that drifts over the match (gain and colour tint interpolated between random
  anchors every ``light_period`` seconds), plus sensor noise;
- ``players`` identical sprites (one 2-colour checker patch) that drift slowly
  (up to ``idle_speed`` px per frame) and bounce off the frame's edges;
- an event is one player's fast run, and the class is its trajectory, speed and the
  order of its sub-motions: ``1`` horizontal then vertical, ``2`` vertical then
  horizontal (the same two sub-motions, reversed), ``3`` horizontal at twice the speed
  throughout (``run_speed`` px per frame, ``2 x run_speed`` for class 3).  Events last
  ``length`` seconds (1-15 by default);
- distractors: runs of ``distractor_length`` seconds (one sub-motion, horizontal or
  vertical, at ``run_speed``) between events: for a few frames they look like the start
  of an event.

Videos are written at ``fps`` frames per second (every frame is a sample at the same
rate) with FootballAction-format labels, like ``synth.make_event_videos``; class 0 is
background.  The motion is in pixels per frame, so a lower ``fps`` means faster
apparent motion in seconds.
"""
import os

import numpy as np

from .synth import _label_entry, _write_labels, plant_events

#: Class names of the motion set (id 0 background).
MOTION_CLASSES = ["background", "h_then_v", "v_then_h", "fast_h"]

_SPRITE = np.kron(np.array([[1, 0, 1], [0, 1, 0], [1, 0, 1]], bool), np.ones((2, 2), bool))


def _texture(size):
    """The pitch: a (2 size, 2 size, 3) float texture shared by every video and class."""
    rng = np.random.default_rng(2024)
    n = 2 * size
    yy, xx = np.mgrid[0:n, 0:n]
    stripes = ((xx // max(2, size // 8)) % 2) * 18.0
    base = np.array([60.0, 120.0, 60.0]) + stripes[..., None]
    blobs = rng.normal(0, 14, (n // 4, n // 4, 3)).repeat(4, 0).repeat(4, 1)
    return base + blobs + rng.normal(0, 6, (n, n, 3))


def place_distractors(rng, duration, events, count, length=(0.5, 1.0), gap=1.5):
    """``count`` runs ``(start, end)`` that keep ``gap`` seconds from every event and each
    other."""
    out, tries = [], 0
    while len(out) < count and tries < 2000:
        tries += 1
        ln = rng.uniform(*length)
        s = rng.uniform(gap, max(gap, duration - ln - gap))
        e = s + ln
        busy = [(a, b) for a, b, _ in events] + out
        if all(e + gap <= a or s >= b + gap for a, b in busy):
            out.append((round(s, 2), round(e, 2)))
    return sorted(out)


def motion_frames(duration, events, distractors, fps=2, size=32, players=2, run_speed=3.0,
                  idle_speed=0.8, camera_speed=1.5, light_period=60.0, noise=6.0, seed=0):
    """Yield the ``(size, size, 3)`` uint8 frames of one video (see the module doc)."""
    rng = np.random.default_rng(seed)
    n = int(round(duration * fps))
    tex = _texture(size)
    lo, hi = 1.0, float(size - _SPRITE.shape[0] - 1)
    pos = rng.uniform(lo, hi, (players, 2))
    vel = rng.uniform(-idle_speed, idle_speed, (players, 2))
    cam, cam_v = np.zeros(2), np.zeros(2)
    anchors = int(np.ceil(duration / light_period)) + 2
    gains = rng.uniform(0.75, 1.25, anchors)
    tints = rng.uniform(0.85, 1.15, (anchors, 3))
    colours = np.array([[235.0, 235.0, 235.0], [30.0, 30.0, 160.0]])
    # who runs each event/distractor, in which direction, along which axes
    plans = []
    for s, e, c in events:
        sign = rng.choice([-1.0, 1.0], 2)
        plans.append((s, e, int(c), int(rng.integers(players)), sign))
    for s, e in distractors:
        plans.append((s, e, -int(rng.integers(1, 3)), int(rng.integers(players)),
                      rng.choice([-1.0, 1.0], 2)))
    for i in range(n):
        t = i / fps
        # idle drift: a slow random walk
        vel += rng.normal(0, 0.25, vel.shape)
        np.clip(vel, -idle_speed, idle_speed, out=vel)
        v = vel.copy()
        for s, e, c, who, sign in plans:
            if not s <= t < e:
                continue
            half = t < (s + e) / 2
            if c == 1:          # horizontal, then vertical
                v[who] = (sign[0] * run_speed, 0.0) if half else (0.0, sign[1] * run_speed)
            elif c == 2:        # vertical, then horizontal
                v[who] = (0.0, sign[1] * run_speed) if half else (sign[0] * run_speed, 0.0)
            elif c == 3:        # twice as fast, horizontal
                v[who] = (sign[0] * 2 * run_speed, 0.0)
            elif c == -1:       # distractor: one horizontal sub-motion
                v[who] = (sign[0] * run_speed, 0.0)
            else:               # distractor: one vertical sub-motion
                v[who] = (0.0, sign[1] * run_speed)
            v[who] += rng.normal(0, 0.2, 2)
        pos += v
        for axis in (0, 1):     # bounce off the edges; a running player keeps its speed
            low, high = pos[:, axis] < lo, pos[:, axis] > hi
            pos[low, axis] = 2 * lo - pos[low, axis]
            pos[high, axis] = 2 * hi - pos[high, axis]
            flip = low | high
            vel[flip, axis] *= -1
            for p in plans:     # a run that bounces goes on the other way
                if p[0] <= t < p[1] and flip[p[3]]:
                    p[4][axis] *= -1
        # camera pan (texture scroll), lighting drift
        cam_v += rng.normal(0, 0.3, 2)
        np.clip(cam_v, -camera_speed, camera_speed, out=cam_v)
        cam = (cam + cam_v) % size
        ox, oy = int(cam[0]), int(cam[1])
        img = tex[oy:oy + size, ox:ox + size].copy()
        for k in range(players):
            x, y = int(round(pos[k, 0])), int(round(pos[k, 1]))
            h, w = _SPRITE.shape
            img[y:y + h, x:x + w] = np.where(_SPRITE[..., None], colours[0], colours[1])
        a = t / light_period
        j, f = int(a), a - int(a)
        gain = gains[j] * (1 - f) + gains[j + 1] * f
        tint = tints[j] * (1 - f) + tints[j + 1] * f
        img = img * gain * tint + rng.normal(0, noise, img.shape)
        yield np.clip(img, 0, 255).astype(np.uint8)


def write_motion_video(path, duration, events, distractors, fps=2, size=32, seed=0, **kw):
    """Encode :func:`motion_frames` as an MP4 (atomically); returns the frame count."""
    import av
    tmp = f"{path}.tmp-{os.getpid()}.mp4"
    count = 0
    with av.open(tmp, "w") as c:
        st = c.add_stream("mpeg4", rate=fps)
        st.width = st.height = size
        st.pix_fmt = "yuv420p"
        st.bit_rate = 2_000_000
        for img in motion_frames(duration, events, distractors, fps, size, seed=seed, **kw):
            for pkt in st.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(pkt)
            count += 1
        for pkt in st.encode():
            c.mux(pkt)
    os.replace(tmp, path)
    return count


def make_motion_videos(out_dir, num_videos=2, duration=300.0, num_classes=4,
                       events_per_video=12, length=(1.0, 15.0), distractors_per_video=12,
                       distractor_length=(0.5, 1.0), fps=2, size=32, seed=0, prefix="motion",
                       **kw):
    """Generated motion-only match videos and their FootballAction-format labels, the
    same interface as ``synth.make_event_videos``; returns ``(label path, [video
    paths])``.  ``num_classes`` counts background (at most 4: the three run classes)."""
    if not 2 <= int(num_classes) <= len(MOTION_CLASSES):
        raise ValueError(f"num_classes must be 2..{len(MOTION_CLASSES)}, got {num_classes}")
    rng = np.random.default_rng(seed)
    os.makedirs(out_dir, exist_ok=True)
    gts, paths = [], []
    for v in range(num_videos):
        name = f"{prefix}_{seed}_{v:02d}"
        events = plant_events(rng, duration, num_classes, events_per_video, length, min_gap=3.0)
        distract = place_distractors(rng, duration, events, distractors_per_video,
                                     distractor_length)
        path = os.path.join(out_dir, name + ".mp4")
        write_motion_video(path, duration, events, distract, fps, size,
                           seed=seed * 1000 + v, **kw)
        paths.append(path)
        gts.append(_label_entry(name, duration, events))
    return _write_labels(out_dir, fps, gts), paths


#: Motion primitives of :func:`motion_clips` (what a clip of a few frames can show).
PRIMITIVES = ["idle", "horizontal", "vertical", "fast_horizontal"]


def motion_clips(num, seg=4, fps=2, size=32, seed=0, warmup=3, **kw):
    """``num`` short clips ``(num, seg, size, size, 3)`` uint8 of the motion set's world
    and their motion primitive (:data:`PRIMITIVES`): what a recognizer is trained on.

    A few frames show one sub-motion, not an event's order: a horizontal run is the first
    half of class 1 or the second half of class 2.  Each clip is the last ``seg`` of
    ``seg + warmup`` frames of its own little video (own lighting, camera, positions)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(PRIMITIVES), num)
    dur = (seg + warmup) / fps
    clips = np.zeros((num, seg, size, size, 3), np.uint8)
    for i, k in enumerate(labels):
        # a class-1 event's first half runs horizontally, a class-2 event's vertically
        events = [] if k == 0 else [(0.0, 2 * dur + 1.0, {1: 1, 2: 2, 3: 3}[int(k)])]
        frames = list(motion_frames(dur, events, [], fps, size,
                                    seed=int(rng.integers(2 ** 31)), **kw))
        clips[i] = np.stack(frames[-seg:])
    return clips, labels.astype(np.int64)
