"""Frame features of long videos with a zoo recognizer, one ``<video>.npy`` per video.

    # export the recognizer's backbone once (PP-TSM by default), then extract
    python tools/extract_features.py -c configs/video/pptsm_football.yml --weights W \\
        --model-dir output/pptsm_features --input matches/ --output-dir features/ --fps 5

``--model-dir`` holding a ``frame_features`` export is used as it is (no ``-c`` needed);
otherwise ``-c``/``--weights`` export one there first.  Videos are decoded lazily and run
on the exported predictor; each feature file is written atomically and videos whose
file exists are skipped, so an interrupted run continues where it stopped.  A progress
bar counts frames with an ETA.

Parity with FootballAction's extractor (what its released BMN and LSTM read):
``--resize footballaction`` (the default, stored in the export) stretches frames to
341x256 before the 224 crop as its reader does (``short_side`` keeps the aspect ratio);
``--length footballaction`` drops the rows its reader drops (48 rows for 50 frames);
``--format pkl`` writes its ``<video>.pkl`` (``image_feature``; ``--audio-dir`` copies
``audio_feature``/``pcm_feature`` from its own files, which ppzoo does not compute).

Speed (docs/localization.md, Latency): ``--cpu-threads`` defaults to every core (``1``
spends the fewest CPU seconds on a busy machine); ``--precision bf16`` runs oneDNN
bfloat16 (faster; features within about 0.6% of fp32's).
"""
import argparse
import os

import _common  # noqa: F401
from _common import add_predictor_args, main_guard

from ppzoo.engine.predictor import PRECISIONS  # noqa: E402

VIDEO_EXT = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".flv", ".mpg", ".mpeg")
DEFAULT_CONFIG = os.path.join(os.path.dirname(__file__), "..", "configs", "video",
                              "pptsm_football.yml")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-c", "--config", default=None,
                   help="recognizer config to export (default: PP-TSM football)")
    p.add_argument("--weights", default=None, help="recognizer weights (.pdparams or folder)")
    p.add_argument("-o", "--opts", nargs="+", default=[], metavar="KEY=VALUE")
    p.add_argument("--model-dir", required=True, help="frame_features export (made if absent)")
    p.add_argument("--input", help="a video or a folder of videos")
    p.add_argument("--output-dir", help="folder for the <video>.npy (or .pkl) feature files")
    p.add_argument("--fps", type=float, default=5.0, help="sampled frames per second (5)")
    p.add_argument("--batch-groups", type=int, default=1,
                   help="groups of num_seg frames per call (1: fewest CPU seconds; the features "
                        "do not depend on it)")
    # (--cpu-threads defaults to every core here: the features are the costly stage)
    p.add_argument("--resize", choices=["footballaction", "short_side"], default=None,
                   help="frame resize before the crop, fixed at export (default footballaction: "
                        "4:3 stretch to 341x256; short_side keeps the aspect ratio)")
    p.add_argument("--length", choices=["all", "footballaction"], default="all",
                   help="rows per video: one per frame (all) or FootballAction's reader's count")
    p.add_argument("--format", choices=["npy", "pkl"], default="npy",
                   help="npy: (L, C) array; pkl: FootballAction's dict with image_feature")
    p.add_argument("--audio-dir", default=None,
                   help="FootballAction .pkl files whose audio_feature/pcm_feature are copied "
                        "into the written .pkl (needs --format pkl)")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32",
                   help="inference precision on the CPU (bf16: oneDNN bfloat16, faster, "
                        "features within ~0.6%% of fp32's)")
    add_predictor_args(p)
    return p.parse_args(argv)


@main_guard
def main(argv=None):
    args = parse_args(argv)
    import ppzoo  # noqa: F401
    from ppzoo.core import load_config
    from ppzoo.core.errors import ConfigError, DataError
    from ppzoo.engine.predictor import DEPLOY_FILE, list_inputs
    from ppzoo.localization.features import export_extractor, extract_videos

    if not os.path.isfile(os.path.join(args.model_dir, DEPLOY_FILE)):
        cfg = load_config(args.config or DEFAULT_CONFIG, args.opts)
        if not args.weights and not cfg.get("pretrained"):
            raise ConfigError("no --weights and the config names no pretrained weights: the "
                              "features of an untrained backbone mean nothing")
        export_extractor(cfg, args.model_dir, weights=args.weights,
                         resize=args.resize or "footballaction")
        print(f"exported the feature extractor to {args.model_dir}")
    elif args.resize:
        import yaml
        with open(os.path.join(args.model_dir, DEPLOY_FILE), encoding="utf-8") as f:
            have = ((yaml.safe_load(f) or {}).get("reader") or {}).get("resize", "short_side")
        if have != args.resize:
            raise ConfigError(f"{args.model_dir} was exported with resize {have!r}, not "
                              f"--resize {args.resize!r}: export again into a new --model-dir")
    if not args.input:
        return {}
    if not args.output_dir:
        raise ConfigError("--output-dir is needed with --input")
    if args.fps <= 0:
        raise ConfigError(f"--fps must be positive, got {args.fps}")
    videos = list_inputs(args.input, VIDEO_EXT)
    if not videos:
        raise DataError(f"no videos in {args.input}")
    done = extract_videos(args.model_dir, videos, args.output_dir, args.fps,
                          batch_groups=args.batch_groups, device=args.device,
                          cpu_threads=args.cpu_threads, length=args.length, fmt=args.format,
                          audio_dir=args.audio_dir, precision=args.precision)
    print(f"{len(done)} feature files in {args.output_dir}")
    return done


if __name__ == "__main__":
    main()
