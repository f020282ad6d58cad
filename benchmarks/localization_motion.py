"""Sports action localization on the motion set: events that no still frame shows.

Per seed: generated match videos (``ppzoo.localization.synth_motion``: one pitch texture,
identical players, a panning camera, lighting that drifts over the match; three event
classes told apart only by trajectory, speed and the order of sub-motions; 1-15 s
events; short distractor runs) -> a small TSM recognizer trained on generated clips of
the set's world labelled with their motion primitive (idle, horizontal, vertical, fast
horizontal: a few frames show one sub-motion, never an event's order) -> its per-frame
features (64-d, 2 per second) -> BMN (20 s windows,
tscale = dscale = 40) and AttentionLSTM trained through the engine -> exported ->
scored on held-out videos.  Beside it, with the same frames and features:

- colour rule: each frame's class is the training class whose mean colour is nearest
  to the frame's mean pixel (what solves the colour set), runs merged;
- motion rule: frame-difference energy above a threshold is an event of the most
  frequent class, runs merged (threshold tuned on the training videos);
- per-frame classifier: logistic regression on the recognizer's per-frame features,
  a frame is an event when 1 - p(background) > tau, runs of one class merged, runs
  shorter than m steps dropped (tau, m tuned on the training videos);
- BMN + frame vote: BMN's proposals classified by the per-frame classifier's mean
  probabilities inside them (no LSTM; the floor tuned on the training videos).

Ceilings: the annotations themselves, and the annotated segments of each held-out video
handed to the same trained classifiers as their proposals (oracle proposals): the frame
vote with its tuned floor, the AttentionLSTM with the export's event selection
(background dropped, NMS, score and IoU floors: what the pipeline does to BMN's
proposals), and each of the two with every segment given its top event class (no
selection: the F1 is then the classifiers' accuracy on the annotated events).  The
distance from the pipeline to its oracle row is what BMN's proposals cost; the distance
from the oracle row to 1 is what classification and selection cost.

Reports, on the held-out videos, AR@AN (AN = 1, 10, 100) and AUC of whole-video
proposals (each method's segments ranked by score; tIoU 0.5:0.05:0.95) and event
precision/recall/F1 at IoA 0.5.

    PPZOO_CPU_THREADS=1 nice -n 5 python benchmarks/localization_motion.py [--seeds 0 1 2]

``--from-runs FILE`` writes the tables again from a runs file of an earlier run (no
training): the page's reading is written by hand below them.
"""
import argparse
import json
import os
import statistics
import sys
import tempfile
import time

from bench_common import ROOT, write_page_and_runs
import localization_bench as bench_cfgs  # noqa: E402  (the generated sets' BMN/LSTM configs)

import numpy as np  # noqa: E402
import paddle  # noqa: E402
import paddle.nn.functional as Fn  # noqa: E402

import ppzoo  # noqa: E402,F401
from ppzoo.core import load_config  # noqa: E402
from ppzoo.core.builder import build_model  # noqa: E402
from ppzoo.engine import build_trainer  # noqa: E402
from ppzoo.engine.export import export_model  # noqa: E402
from ppzoo.localization.annotations import read_annotations  # noqa: E402
from ppzoo.localization.features import (export_extractor, extract_videos,  # noqa: E402
                                         preprocess_frame, sample_frames)
from ppzoo.localization.infer import (classify_proposals, select_events,  # noqa: E402
                                      video_proposals)
from ppzoo.localization.metrics import EventF1, average_recall  # noqa: E402
from ppzoo.localization.pipeline import Localizer  # noqa: E402
from ppzoo.localization.synth import TINY_RECOGNIZER  # noqa: E402
from ppzoo.localization.synth_motion import make_motion_videos, motion_clips  # noqa: E402

FPS = 2          # frames per second in the videos = feature steps per second
WINDOW = 20      # seconds per BMN window
T = WINDOW * FPS
NUM_CLASSES = 4  # background + 3 run classes
SEG = 4          # frames per recognizer group


def parse_args():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--train-videos", type=int, default=4)
    p.add_argument("--test-videos", type=int, default=2)
    p.add_argument("--minutes", type=float, default=5.0)
    p.add_argument("--rec-clips", type=int, default=3000)
    p.add_argument("--rec-iters", type=int, default=500)
    p.add_argument("--bmn-epochs", type=int, default=10)
    p.add_argument("--lstm-epochs", type=int, default=12)
    p.add_argument("--out", default=os.path.join(ROOT, "docs", "benchmarks",
                                                 "localization_motion.md"))
    p.add_argument("--from-runs", help="print the tables of this runs file (no training)")
    return p.parse_args()


# ------------------------------------------------------------------ frames and labels
def frame_labels(events, n):
    lab = np.zeros(n, np.int64)
    for s, e, c in events:
        lab[int(np.ceil(s * FPS - 1e-6)):int(np.ceil(e * FPS - 1e-6))] = c
    return lab


def read_video(path, reader):
    """Preprocessed frames (n, 3, S, S), mean pixel (n, 3) and frame-difference energy (n,)."""
    xs, means, energy, prev = [], [], [], None
    for img in sample_frames(path, FPS):
        xs.append(preprocess_frame(img, reader["short_size"], reader["target_size"],
                                   reader["mean"], reader["std"], "short_side"))
        f = img.astype(np.float32)
        means.append(f.reshape(-1, 3).mean(0))
        energy.append(0.0 if prev is None else float(np.abs(f - prev).mean()))
        prev = f
    return np.stack(xs), np.stack(means), np.asarray(energy, np.float32)


def train_recognizer(num_clips, iters, seed, reader):
    """TINY_RECOGNIZER trained on ``num_clips`` clips of the set's world labelled with
    their motion primitive (``synth_motion.motion_clips``: idle, horizontal, vertical,
    fast horizontal run); returns the model.  (Trained on the four training videos'
    own frames instead, it memorised their lighting and positions: train accuracy 0.99,
    held-out clips at chance.)"""
    paddle.seed(seed)
    rng = np.random.default_rng(seed)
    clips, labels = motion_clips(num_clips, seg=SEG, fps=FPS, size=32, seed=seed + 500)
    x = np.stack([np.stack([preprocess_frame(f, reader["short_size"], reader["target_size"],
                                             reader["mean"], reader["std"], "short_side")
                            for f in c]) for c in clips])
    model = build_model(TINY_RECOGNIZER["model"])
    opt = paddle.optimizer.Adam(learning_rate=2e-3, parameters=model.parameters(),
                                weight_decay=1e-4)
    model.train()
    for _ in range(iters):
        idx = rng.integers(len(labels), size=32)
        loss = Fn.cross_entropy(model(paddle.to_tensor(x[idx])), paddle.to_tensor(labels[idx]))
        loss.backward()
        opt.step()
        opt.clear_grad()
    model.eval()
    return model


# ------------------------------------------------------------------ baselines
def runs_to_segments(cls, score, min_len=1):
    """Runs of one non-zero class -> [(start_s, end_s, class, mean score)]."""
    out, i, n = [], 0, len(cls)
    while i < n:
        j = i
        while j < n and cls[j] == cls[i]:
            j += 1
        if cls[i] != 0 and j - i >= min_len:
            out.append((i / FPS, j / FPS, int(cls[i]), float(np.mean(score[i:j]))))
        i = j
    return out


def f1_of(segs_per_video, gts):
    m = EventF1([0.5])
    for segs, g in zip(segs_per_video, gts):
        m.update([s[:3] for s in segs], g)
    return m.accumulate()


def ar_of(segs_per_video, gts):
    props = [np.asarray([(s, e, sc) for s, e, _, sc in segs], np.float64).reshape(-1, 3)
             for segs in segs_per_video]
    ar, auc = average_recall(props, [np.asarray([(s, e) for s, e, _ in g]).reshape(-1, 2)
                                     for g in gts], 100)
    return {"AR@1": float(ar[0]), "AR@10": float(ar[9]), "AR@100": float(ar[99]), "AUC": auc}


def colour_rule(train_means, train_labels, test_means):
    centres = np.stack([np.concatenate([m[l == c] for m, l in zip(train_means, train_labels)]).mean(0)
                        for c in range(NUM_CLASSES)])
    out = []
    for m in test_means:
        d = ((m[:, None] - centres[None]) ** 2).sum(-1)
        out.append(runs_to_segments(d.argmin(1), -d.min(1)))
    return out


def motion_rule(train_energy, train_labels, train_gts, test_energy):
    major = int(np.bincount(np.concatenate(train_labels))[1:].argmax() + 1)
    best = (-1, None)
    for q in np.linspace(0.5, 0.98, 13):
        thr = float(np.quantile(np.concatenate(train_energy), q))
        segs = [runs_to_segments(np.where(e > thr, major, 0), e) for e in train_energy]
        f = f1_of(segs, train_gts)["F1@0.5"]
        if f > best[0]:
            best = (f, thr)
    return [runs_to_segments(np.where(e > best[1], major, 0), e) for e in test_energy], best[1]


def frame_classifier(train_feats, train_labels, train_gts, test_feats):
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler
    x = np.concatenate(train_feats)
    sc = StandardScaler().fit(x)
    clf = LogisticRegression(max_iter=1000, C=1.0).fit(sc.transform(x),
                                                       np.concatenate(train_labels))

    def probs(f):
        p = np.zeros((len(f), NUM_CLASSES))
        p[:, clf.classes_] = clf.predict_proba(sc.transform(f))
        return p

    def segments(p, tau, m):
        ev = 1 - p[:, 0]
        cls = np.where(ev > tau, p[:, 1:].argmax(1) + 1, 0)
        return runs_to_segments(cls, ev, m)

    train_p = [probs(f) for f in train_feats]
    best = (-1, None)
    for tau in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8):
        for m in (1, 2, 3, 4):
            f = f1_of([segments(p, tau, m) for p in train_p], train_gts)["F1@0.5"]
            if f > best[0]:
                best = (f, (tau, m))
    test_p = [probs(f) for f in test_feats]
    frame_acc = None
    return [segments(p, *best[1]) for p in test_p], best[1], train_p, test_p, frame_acc


def bmn_vote(props_per_video, probs_per_video, gts=None, floor=None):
    """BMN proposals classified by the mean frame probabilities inside them; with
    ``gts`` the event-probability floor is tuned for F1 (a floor below 0 keeps every
    proposal with its top event class)."""
    def segs(floor_):
        out = []
        for props, p in zip(props_per_video, probs_per_video):
            keep = []
            for s, e, score in props:
                a, b = int(s * FPS), max(int(s * FPS) + 1, int(np.ceil(e * FPS)))
                mp = p[a:b].mean(0)
                if 1 - mp[0] > floor_:
                    keep.append((s, e, int(mp[1:].argmax() + 1), float(score * (1 - mp[0]))))
            out.append(keep)
        return out
    if gts is not None:
        best = max(((f1_of(segs(f), gts)["F1@0.5"], f) for f in (0.3, 0.4, 0.5, 0.6, 0.7)))
        floor = best[1]
    return segs(floor), floor


# ------------------------------------------------------------------ oracle proposals
def oracle_proposals(gts_per_video):
    """Each video's annotated segments as proposals ``(K, 3)`` (start, end, score 1): the
    ceiling of what any proposal stage can hand the classifiers."""
    return [np.asarray([(s, e, 1.0) for s, e, _ in g], np.float64).reshape(-1, 3)
            for g in gts_per_video]


def lstm_segments(run, feats_per_video, props_per_video, fps, post, select=True):
    """Proposals classified by the exported AttentionLSTM (``run(feature, mask) ->
    (probs, iou)``), as the pipeline does: with ``select``, the export's event selection
    (``post``: background dropped, NMS, score/IoU floors); without, every proposal with
    its top event class and that class's probability."""
    out = []
    for feats, props in zip(feats_per_video, props_per_video):
        props = np.asarray(props, np.float64).reshape(-1, 3)
        if not len(props):
            out.append([])
            continue
        probs, ious = classify_proposals(run, feats, props, fps, int(post.get("max_len", 300)))
        if select:
            out.append([(e["start"], e["end"], e["class_id"], e["score"])
                        for e in select_events(props, probs, ious, post)])
        else:
            cls = probs[:, 1:].argmax(1) + 1
            out.append([(float(s), float(e), int(c), float(p[c]))
                        for (s, e, _), c, p in zip(props, cls, probs)])
    return out


# ------------------------------------------------------------------ BMN / LSTM configs
def bmn_cfg(lab, feat, epochs):
    return bench_cfgs.bmn_cfg(lab, feat, epochs, tscale=T, fps=FPS, window=WINDOW, steps=(2.5, 5),
                              log_interval=50)


def lstm_cfg(lab, feat, epochs):
    return bench_cfgs.lstm_cfg(lab, feat, epochs, fps=FPS, max_len=T, log_interval=50,
                               num_classes=NUM_CLASSES, class_names=None)


# ------------------------------------------------------------------ one seed
def run_seed(seed, args, work):
    t_all = time.time()
    load_start = os.getloadavg()[0]
    kw = dict(duration=args.minutes * 60, num_classes=NUM_CLASSES,
              events_per_video=int(args.minutes * 3), distractors_per_video=int(args.minutes * 3),
              fps=FPS, size=32)
    train_lab, train_videos = make_motion_videos(os.path.join(work, "train"), args.train_videos,
                                                 seed=seed, **kw)
    test_lab, test_videos = make_motion_videos(os.path.join(work, "test"), args.test_videos,
                                               seed=seed + 100, **kw)
    reader = {t["type"]: t for t in TINY_RECOGNIZER["val_dataset"]["transforms"]}
    reader = {"short_size": reader["Scale"]["short_size"],
              "target_size": reader["VideoCenterCrop"]["target_size"],
              "mean": reader["VideoNormalize"]["mean"], "std": reader["VideoNormalize"]["std"]}
    gt_train, gt_test = read_annotations(train_lab), read_annotations(test_lab)
    name = lambda p: os.path.splitext(os.path.basename(p))[0]  # noqa: E731
    tr = [read_video(v, reader) for v in train_videos]
    te = [read_video(v, reader) for v in test_videos]
    tr_lab = [frame_labels(gt_train[name(v)]["events"], len(x[0])) for v, x in zip(train_videos, tr)]
    te_lab = [frame_labels(gt_test[name(v)]["events"], len(x[0])) for v, x in zip(test_videos, te)]
    tr_gts = [gt_train[name(v)]["events"] for v in train_videos]
    te_gts = [gt_test[name(v)]["events"] for v in test_videos]
    out = {"seed": seed}

    # recognizer trained on the set's own clips -> exported extractor -> features
    t = time.time()
    rec = train_recognizer(args.rec_clips, args.rec_iters, seed, reader)
    wfile = os.path.join(work, "tsm.pdparams")
    paddle.save(rec.state_dict(), wfile)
    fmodel = os.path.join(work, "features_model")
    export_extractor(dict(TINY_RECOGNIZER), fmodel, weights=wfile, resize="short_side")
    feat = os.path.join(work, "features")
    extract_videos(fmodel, train_videos + test_videos, feat, FPS, echo=None, bar=False)
    out["recognizer_seconds"] = time.time() - t
    ftr = [np.load(os.path.join(feat, name(v) + ".npy")) for v in train_videos]
    fte = [np.load(os.path.join(feat, name(v) + ".npy")) for v in test_videos]

    # baselines
    methods = {}
    methods["colour rule"] = colour_rule([x[1] for x in tr], tr_lab, [x[1] for x in te])
    methods["motion rule"], out["motion_thr"] = motion_rule([x[2] for x in tr], tr_lab, tr_gts,
                                                            [x[2] for x in te])
    segs, out["frame_cls_params"], train_p, test_p, _ = frame_classifier(ftr, tr_lab, tr_gts, fte)
    methods["per-frame classifier"] = segs
    out["frame_cls_test_acc"] = float(np.mean(np.concatenate(
        [p.argmax(1) == l for p, l in zip(test_p, te_lab)])))

    # BMN + AttentionLSTM through the engine, exported
    t = time.time()
    for mname, make, epochs, prefix in (("bmn", bmn_cfg, args.bmn_epochs, "window"),
                                        ("lstm", lstm_cfg, args.lstm_epochs, "proposal")):
        cfg = make(train_lab, feat, epochs)
        cfg["seed"] = seed
        cfg["val_dataset"]["annotations"] = test_lab
        trainer = build_trainer(cfg, work_dir=os.path.join(work, mname))
        trainer.train()
        out.update({f"{prefix} {k}": v for k, v in trainer.evaluate().items()})
        export_model(trainer.model, cfg, os.path.join(work, f"{mname}_export"),
                     dataset=trainer.val_dataset, input_keys=cfg["train"]["input_keys"])
    out["bmn_lstm_train_seconds"] = time.time() - t
    loc = Localizer(os.path.join(work, "bmn_export"), os.path.join(work, "lstm_export"))

    def props_of(feats):
        return video_proposals(lambda x: loc.bmn.run([x]), feats, loc.tscale, loc.fps,
                               loc.bmn_post)
    tr_props, te_props = [props_of(f) for f in ftr], [props_of(f) for f in fte]
    methods["BMN + frame vote"], out["vote_floor"] = None, None
    _, floor = bmn_vote(tr_props, train_p, tr_gts)
    methods["BMN + frame vote"], out["vote_floor"] = bmn_vote(te_props, test_p, floor=floor)[0], floor
    pipe = []
    for v in test_videos:
        tl = loc.run(os.path.join(feat, name(v) + ".npy"))
        pipe.append([(e["start"], e["end"], e["class_id"], e["score"]) for e in tl["events"]])
    methods["BMN + AttentionLSTM"] = pipe
    lstm_run = lambda *x: loc.lstm.run(list(x))  # noqa: E731
    # the classification path the oracle rows use gives the pipeline's own events on BMN's
    # proposals (else the oracle rows would measure another classifier)
    out["oracle path = pipeline"] = lstm_segments(lstm_run, fte, te_props, loc.fps,
                                                  loc.event_post) == pipe
    oracle = oracle_proposals(te_gts)
    methods["annotations"] = [[(s, e, c, 1.0) for s, e, c in g] for g in te_gts]
    methods["annotations + frame vote"] = bmn_vote(oracle, test_p, floor=floor)[0]
    methods["annotations + frame vote, top class"] = bmn_vote(oracle, test_p, floor=-1.0)[0]
    methods["annotations + AttentionLSTM"] = lstm_segments(lstm_run, fte, oracle, loc.fps,
                                                           loc.event_post)
    methods["annotations + AttentionLSTM, top class"] = lstm_segments(
        lstm_run, fte, oracle, loc.fps, loc.event_post, select=False)
    bmn_props = [[(s, e, 0, sc) for s, e, sc in p] for p in te_props]
    for m, segs in methods.items():
        out[m] = {**f1_of(segs, te_gts), **ar_of(segs, te_gts)}
    out["BMN proposals"] = ar_of(bmn_props, te_gts)
    out["seconds"] = time.time() - t_all
    out["load1"] = [load_start, os.getloadavg()[0]]   # 1-min load average at start and end
    return out


METHODS = ["colour rule", "motion rule", "per-frame classifier", "BMN + frame vote",
           "BMN + AttentionLSTM"]
ORACLE = ["annotations + frame vote", "annotations + frame vote, top class",
          "annotations + AttentionLSTM", "annotations + AttentionLSTM, top class", "annotations"]


def fmt(vals):
    vals = [v for v in vals if v is not None]
    if len(vals) > 1:
        return f"{statistics.mean(vals):.3f} ± {statistics.stdev(vals):.3f}"
    return f"{vals[0]:.3f}" if vals else "-"


# (a - b, what the difference isolates): paired per seed
PAIRED = [
    ("annotations + AttentionLSTM", "BMN + AttentionLSTM", "BMN's proposals, pipeline"),
    ("annotations + frame vote", "BMN + frame vote", "BMN's proposals, frame vote"),
    ("annotations + AttentionLSTM, top class", "annotations + AttentionLSTM",
     "the export's event selection"),
    ("annotations + AttentionLSTM, top class", "annotations + frame vote, top class",
     "LSTM vs frame vote, classification alone"),
    ("annotations + AttentionLSTM", "annotations + frame vote", "LSTM vs frame vote on exact segments"),
    ("BMN + AttentionLSTM", "BMN + frame vote", "LSTM vs frame vote in the pipeline"),
    ("BMN + frame vote", "per-frame classifier", "BMN over thresholded frames"),
    ("BMN + AttentionLSTM", "per-frame classifier", "the pipeline over thresholded frames"),
    ("per-frame classifier", "colour rule", "the features' frame labels over a colour rule"),
]


def paired_table(rows):
    """F1@0.5 differences paired by seed (same videos and models within a seed): mean, 95%
    t-interval and the seeds where the difference is positive."""
    from scipy import stats
    out = ["| comparison | what it isolates | mean | 95% interval | positive |",
           "|---|---|---|---|---|"]
    for a, b, what in PAIRED:
        d = [r[a]["F1@0.5"] - r[b]["F1@0.5"] for r in rows]
        m, n = statistics.mean(d), len(d)
        half = stats.t.ppf(0.975, n - 1) * statistics.stdev(d) / n ** 0.5
        sign = lambda v: f"{v:+.3f}".replace("-", "−")  # noqa: E731  (typographic minus)
        out.append(f"| {a} − {b} | {what} | {sign(m)} | {sign(m - half)} to {sign(m + half)} | "
                   f"{sum(x > 0 for x in d)}/{n} |")
    return out


def main():
    args = parse_args()
    rows = []
    if args.from_runs:
        with open(args.from_runs, encoding="utf-8") as f:
            rows = [json.loads(line) for line in f if line.strip()]
        print("\n".join(paired_table(rows)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            r = run_seed(seed, args, os.path.join(tmp, f"seed{seed}"))
            rows.append(r)
            print(json.dumps(r), flush=True)
    cols = ["AR@1", "AR@10", "AR@100", "AUC", "precision@0.5", "recall@0.5", "F1@0.5"]
    loads = [x for r in rows for x in r["load1"]]
    body = ["## Motion set: results on held-out videos", "",
            f"Per seed: {args.train_videos} training and {args.test_videos} held-out videos of "
            f"{args.minutes:g} min (32 px, {FPS} fps, {int(args.minutes * 3)} events of 3 classes, "
            f"1-15 s, and {int(args.minutes * 3)} distractor runs of 0.5-1 s each); seeds "
            f"{', '.join(map(str, args.seeds))}; mean ± sd over seeds. Proposal columns: whole-video "
            f"AR@AN and AUC (ActivityNet's: AN 1..100, tIoU 0.5:0.05:0.95, AUC the trapezoid over "
            f"the AN grid) of each method's segments ranked by score; event columns at IoA 0.5. "
            f"1-min load average at the start and end of the seeds: {min(loads):.1f} to "
            f"{max(loads):.1f} (2 cores).", "",
            "| method | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for m in ["BMN proposals"] + METHODS + ORACLE:
        body.append(f"| {m} | " + " | ".join(fmt([r[m].get(c) for r in rows]) for c in cols) + " |")
    body += ["", "Floor, ceilings: the colour and motion rules learn nothing about events (the "
             "floor). The rows \"annotations + ...\" hand each held-out video's annotated "
             "segments to the same trained classifiers as their proposals (score 1 each): the "
             "frame vote with the floor tuned on the training videos, the AttentionLSTM with the "
             "export's event selection (background dropped, NMS with 2 s widening, score and IoU "
             "floors), and each with every segment given its top event class and nothing dropped "
             "(\"top class\": there precision = recall = F1 = the share of annotated events "
             "classified right). \"annotations\" is the annotations themselves: F1 1 and "
             f"AR@100 1 by construction; its AR@1, AR@10 and AUC are below 1 because a video holds "
             f"{int(args.minutes * 3)} events and AR@AN counts AN proposals a video, so even exact "
             f"segments recall at most AN/{int(args.minutes * 3)} of them: those columns are "
             "bounded by that row, not by 1. The oracle rows' AR columns rank the annotated "
             "segments the classifier kept by its score.", "",
             "Per seed (event F1 at IoA 0.5; BMN window AUC on the held-out windows; the "
             "LSTM's proposal top-1 on them; the per-frame classifier's frame accuracy; "
             "seconds; 1-min load average at start/end):", "",
             "| seed | " + " | ".join(METHODS + ORACLE[:-1]) +
             " | window AUC | proposal top1 | frame acc | seconds | load |",
             "|---|" + "---|" * (len(METHODS) + len(ORACLE) - 1 + 5)]
    for r in rows:
        body.append(f"| {r['seed']} | " + " | ".join(f"{r[m]['F1@0.5']:.3f}"
                                                     for m in METHODS + ORACLE[:-1]) +
                    f" | {r['window AUC']:.3f} | {r['proposal top1']:.3f} | "
                    f"{r['frame_cls_test_acc']:.3f} | {r['seconds']:.0f} | "
                    f"{r['load1'][0]:.1f}/{r['load1'][1]:.1f} |")
    if len(rows) > 1:
        body += ["", f"Paired F1@0.5 differences over the {len(rows)} seeds (same videos and "
                 "trained models within a seed; from `localization_motion_runs.jsonl`: mean, "
                 "95% t-interval, seeds where the difference is positive):", ""] + paired_table(rows)
    env = (f"PPZOO_CPU_THREADS={os.environ['PPZOO_CPU_THREADS']} "
           if os.environ.get("PPZOO_CPU_THREADS") else "")
    cmd = env + "nice -n 5 python benchmarks/localization_motion.py " + " ".join(sys.argv[1:])
    write_page_and_runs(args.out, "Sports action localization on the motion set", cmd.strip(),
                        "\n".join(body), rows)


if __name__ == "__main__":
    main()
