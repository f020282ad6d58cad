"""One long video (or its feature file) -> a JSON timeline of events and a picture.

    python tools/localize.py --feature-model output/pptsm_features \\
        --bmn output/bmn_football/inference --lstm output/lstm_football/inference \\
        --input match.mp4 --output-dir timelines/ [--annotations label_cls8_val.json]

Chains the three exported models: frame features at the BMN export's fps -> BMN
proposals over sliding windows -> AttentionLSTM class and IoU per proposal -> events
(class, start, end, score).  Writes ``<video>.json`` and ``<video>.png`` per input
(a folder of videos or ``.npy`` feature files works too).  ``--annotations``
(ActivityNet or FootballAction format) adds the annotated events to the picture and
prints precision, recall and F1 at IoA 0.5.

Speed: ``--cpu-threads`` (default every core, for all three models; ``1`` spends the
fewest CPU seconds on a busy machine), ``--precision bf16`` (frame features in oneDNN
bfloat16: about 0.86x their fp32 CPU time, features within ~0.6% of fp32's; see
docs/benchmarks/localization_latency.md for its effect), ``--batch-groups``.
"""
import argparse
import os

import _common  # noqa: F401
from _common import add_predictor_args, main_guard

from ppzoo.engine.predictor import PRECISIONS  # noqa: E402

INPUT_EXT = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".flv", ".mpg", ".mpeg", ".npy", ".pkl")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--feature-model", default=None, help="frame_features export (for videos)")
    p.add_argument("--bmn", required=True, help="bmn_proposals export")
    p.add_argument("--lstm", required=True, help="event_classification export")
    p.add_argument("--input", required=True, help="video, feature file, or a folder of them")
    p.add_argument("--output-dir", required=True)
    p.add_argument("--annotations", default=None, help="labels to draw and score against")
    p.add_argument("--ioa", type=float, nargs="+", default=[0.5], help="IoA thresholds")
    p.add_argument("--score-thresh", type=float, default=None, help="class score floor")
    p.add_argument("--iou-thresh", type=float, default=None, help="predicted IoU floor")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32",
                   help="frame-feature precision on the CPU (bf16: oneDNN bfloat16)")
    p.add_argument("--batch-groups", type=int, default=1,
                   help="groups of num_seg frames per feature call")
    add_predictor_args(p)   # --cpu-threads: default every core here
    return p.parse_args(argv)


@main_guard
def main(argv=None):
    args = parse_args(argv)
    import ppzoo  # noqa: F401
    from ppzoo.engine.predictor import list_inputs
    from ppzoo.localization.annotations import check_label_ids, read_annotations
    from ppzoo.localization.metrics import EventF1
    from ppzoo.localization.pipeline import Localizer, save_timeline

    post = {k: v for k, v in (("score_thresh", args.score_thresh),
                              ("iou_thresh", args.iou_thresh)) if v is not None}
    loc = Localizer(args.bmn, args.lstm, args.feature_model, device=args.device,
                    cpu_threads=args.cpu_threads, event_post=post, precision=args.precision,
                    batch_groups=args.batch_groups)
    gts = {}
    if args.annotations:      # every label must be one of the classifier's classes
        gts = check_label_ids(read_annotations(args.annotations, class_names=loc.label_names),
                              loc.num_classes, args.annotations)
    metric = EventF1(args.ioa, class_names=loc.label_names)
    results = []
    for path in list_inputs(args.input, INPUT_EXT):
        tl = loc.run(path)
        name = os.path.splitext(os.path.basename(path))[0]
        gt = gts.get(name, {}).get("events") if gts else None
        js, png = save_timeline(tl, args.output_dir, gt, loc.label_names)
        if gt is not None:
            metric.update(tl["events"], gt)
        sec = ", ".join(f"{k} {v:.2f}s" for k, v in tl["seconds"].items())
        print(f"{path}: {len(tl['events'])} events from {tl['num_proposals']} proposals "
              f"({sec}) -> {js}, {png}")
        results.append(tl)
    if gts:
        if not metric.videos:
            print("no input matched a video of the annotations")
        else:
            scores = metric.accumulate()
            print("  ".join(f"{k} {v:.4f}" for k, v in scores.items()))
            return results, scores
    return results, None


if __name__ == "__main__":
    main()
