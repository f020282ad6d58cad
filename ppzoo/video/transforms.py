"""Video pipeline in PaddleVideo's vocabulary: decode, sample, scale, crop, flip, normalise.

A video sample moves through these keys: ``filename`` -> ``frames_len`` + a frame reader
(decoders) -> ``imgs``, a list of HxWx3 uint8 frames (``Sampler``) -> ``video``, a float32
(T, C, H, W) array (``Image2Array``).  Randomness comes only from the ``rng`` argument.
"""
import os

import numpy as np
from PIL import Image

from ..core.builder import TRANSFORMS
from ..core.errors import ConfigError, DataError
from ..transforms.base import read_image

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp")


def _log():
    import logging
    return logging.getLogger("ppzoo")


class PyAVReader:
    """Lazy PyAV reader: a demux pass (no decoding) gives the frames' presentation
    timestamps and keyframes; ``read(idx)`` decodes only up to the sampled frames, converts
    only those to arrays, and seeks to the keyframe before a frame when a keyframe lies
    between the current position and it (``seek``).  Memory holds the sampled frames only,
    whatever the clip's length."""

    def __init__(self, path, seek=True):
        import av
        self.path, self.seek = path, bool(seek)
        try:
            with av.open(path) as container:
                if not container.streams.video:
                    kinds = ", ".join(sorted({st.type for st in container.streams})) or "none"
                    raise DataError(f"cannot decode video {path}: it has no video stream "
                                    f"(streams: {kinds})")
                stream = container.streams.video[0]
                header = int(stream.frames or 0)
                stamps, keys = [], []
                for packet in container.demux(stream):
                    if packet.size == 0:
                        continue  # the flush packet
                    t = packet.pts if packet.pts is not None else packet.dts
                    stamps.append(t)
                    if packet.is_keyframe:
                        keys.append(t)
        except DataError:
            raise
        except (av.error.FFmpegError, ValueError, IndexError, OSError) as err:
            raise DataError(f"cannot decode video {path}: {err}") from None
        if not stamps:
            raise DataError(f"cannot decode video {path}: no frames")
        self.timed = all(t is not None for t in stamps)
        self.pts = sorted(stamps) if self.timed else None
        self.keyframes = sorted(k for k in keys if k is not None) if self.timed else []
        self.frames_len = len(stamps)
        if header > self.frames_len:
            _log().warning(f"video {path}: the header announces {header} frames, the file holds "
                           f"{self.frames_len} (truncated?); sampling from the {self.frames_len} present")

    def _seek_target(self, current, t):
        """The last keyframe <= t if it lies after ``current`` (else keep decoding)."""
        import bisect
        k = bisect.bisect_right(self.keyframes, t) - 1
        if k >= 0 and (current is None or self.keyframes[k] > current):
            return self.keyframes[k]
        return None

    def read(self, idx):
        import av
        wanted = sorted(set(int(i) for i in idx))
        got = {}
        try:
            with av.open(self.path) as container:
                stream = container.streams.video[0]
                frames = container.decode(stream)
                current, count = None, -1
                for i in wanted:
                    if self.timed:
                        t = self.pts[i]
                        key = self._seek_target(current, t) if self.seek else None
                        if key is not None and key > (self.pts[0] if current is None else current):
                            container.seek(key, stream=stream, backward=True, any_frame=False)
                            frames = container.decode(stream)
                        for frame in frames:
                            current = frame.pts
                            if frame.pts is not None and frame.pts >= t:
                                break
                        else:
                            frame = None
                    else:  # no timestamps: count decoded frames
                        for frame in frames:
                            count += 1
                            if count >= i:
                                break
                        else:
                            frame = None
                    if frame is None:
                        raise DataError(f"cannot decode video {self.path}: frame {i} of "
                                        f"{self.frames_len} could not be decoded (damaged file?)")
                    got[i] = frame.to_ndarray(format="rgb24")
        except DataError:
            raise
        except (av.error.FFmpegError, ValueError, IndexError, OSError) as err:
            raise DataError(f"cannot decode video {self.path}: {err}") from None
        return [got[int(i)] for i in idx]


class CV2Reader:
    """Lazy OpenCV reader: skipped frames are grabbed (not converted), sampled frames
    retrieved.  The frame count is the container's; a file that ends early is an error."""

    def __init__(self, path):
        import cv2
        self.path = path
        cap = cv2.VideoCapture(path)
        try:
            if not cap.isOpened():
                raise DataError(f"cannot decode video {path}: OpenCV cannot open it")
            self.frames_len = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        finally:
            cap.release()
        if self.frames_len <= 0:
            raise DataError(f"cannot decode video {path}: no frames (or no video stream)")

    def read(self, idx):
        import cv2
        wanted, got = sorted(set(int(i) for i in idx)), {}
        cap = cv2.VideoCapture(self.path)
        try:
            pos = -1
            for i in wanted:
                while pos < i:
                    if not cap.grab():
                        raise DataError(f"cannot decode video {self.path}: frame {i} of "
                                        f"{self.frames_len} could not be read (truncated file?)")
                    pos += 1
                ok, frame = cap.retrieve()
                if not ok:
                    raise DataError(f"cannot decode video {self.path}: frame {i} is damaged")
                got[i] = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        finally:
            cap.release()
        return [got[int(i)] for i in idx]


def open_video(path, backend="pyav", seek=True):
    """A lazy reader (``frames_len``, ``read(indices)``) for a video file."""
    if not os.path.isfile(path):
        raise DataError(f"video file not found: {path}")
    if backend == "pyav":
        return PyAVReader(path, seek=seek)
    if backend == "cv2":
        return CV2Reader(path)
    raise ConfigError(f"VideoDecoder.backend: unknown backend {backend!r} (known: pyav, cv2)")


def decode_video(path, backend="pyav"):
    """Decode every frame of a video file into a list of HxWx3 RGB uint8 arrays (for
    tools and tests; the pipeline's ``VideoDecoder`` reads only the sampled frames)."""
    reader = open_video(path, backend)
    return reader.read(range(reader.frames_len))


@TRANSFORMS.register()
class VideoDecoder:
    """Opens ``filename`` (mp4/avi/...) with PyAV (default) or OpenCV, lazily: the sampler
    then decodes only the frames it picks (``seek: true`` lets PyAV jump to the keyframe
    before a far frame), so memory does not grow with the clip's length."""

    def __init__(self, backend="pyav", seek=True):
        if backend not in ("pyav", "cv2"):
            raise ConfigError(f"VideoDecoder.backend: unknown backend {backend!r} (known: pyav, cv2)")
        self.backend, self.seek = backend, bool(seek)

    def __call__(self, sample, rng):
        sample.pop("list_frames_len", None)
        reader = open_video(sample["filename"], self.backend, self.seek)
        sample["frames_len"] = reader.frames_len
        sample["_read_frames"] = reader.read
        return sample


@TRANSFORMS.register()
class FrameDecoder:
    """Reads a folder of extracted frames (``filename`` is the folder); only sampled frames
    are read from disk.  With PaddleVideo's three-column lists the listed ``frames_len``
    must not exceed the images in the folder (the first ``frames_len`` are used)."""

    def __call__(self, sample, rng):
        folder = sample["filename"]
        if not os.path.isdir(folder):
            raise DataError(f"frame folder not found: {folder}")
        files = sorted(f for f in os.listdir(folder) if f.lower().endswith(IMAGE_EXTS))
        if not files:
            raise DataError(f"frame folder {folder} holds no images ({', '.join(IMAGE_EXTS)})")
        listed = sample.pop("list_frames_len", None)
        if listed is not None:
            if listed > len(files):
                raise DataError(f"frame folder {folder}: the list gives {listed} frames, the "
                                f"folder holds {len(files)} images")
            files = files[:listed]
        sample["frames_len"] = len(files)
        sample["_read_frames"] = lambda idx: [read_image(os.path.join(folder, files[i])) for i in idx]
        return sample


def segment_indices(num_frames, num_seg, seg_len, train, rng):
    """TSN sampling: split the video into ``num_seg`` equal segments and take ``seg_len``
    consecutive frames from each, at a random offset (train) or the centre (eval)."""
    average = num_frames // num_seg
    idx = []
    for i in range(num_seg):
        if average >= seg_len:
            start = i * average + (int(rng.integers(0, average - seg_len + 1)) if train
                                   else (average - seg_len) // 2)
        elif num_frames >= seg_len:
            # fewer frames than segments: spread segment starts over the whole video
            start = (i * (num_frames - seg_len)) // max(num_seg - 1, 1)
        else:
            start = 0
        idx.extend(min(start + j, num_frames - 1) for j in range(seg_len))
    return idx


def dense_indices(num_frames, num_seg, frame_interval, train, rng):
    """Dense sampling: ``num_seg`` frames ``frame_interval`` apart from one clip window, at a
    random start (train) or centred (eval); indices wrap around short videos."""
    span = num_seg * frame_interval
    room = max(num_frames - span, 0)
    start = int(rng.integers(0, room + 1)) if train else room // 2
    return [(start + i * frame_interval) % num_frames for i in range(num_seg)]


def paddlevideo_indices(num_frames, num_seg, seg_len, train, rng, select_left=False):
    """PaddleVideo's ``Sampler`` (segment mode, video files) as its definition reads.

    Without ``select_left`` (PP-TSM): ``average = int(frames / num_seg)``; evaluation takes
    frame ``(average - 1) // 2`` of each segment (whatever ``seg_len``), training a random
    one; with ``average < seg_len`` the segment's first frame, with ``average == 0``
    frame ``i``; indices wrap around the clip.  With ``select_left`` (TSM, TSN): evaluation
    takes ``int(avg / 2 + avg * i)`` with the float ``avg = frames / num_seg`` (the frame
    right of the middle where a segment has an even length: 4, 12, ..., 60 of 64 frames),
    training ``i * average + randint(average)``, sorted random frames where
    ``average == 0 < frames - num_seg``, else frame 0."""
    n = int(num_frames)
    average = int(n / num_seg)
    if select_left:
        if not train:
            if n > num_seg:
                avg = n / num_seg
                offsets = [int(avg / 2.0 + avg * x) for x in range(num_seg)]
            else:
                offsets = [0] * num_seg
        elif average > 0:
            offsets = [i * average + int(rng.integers(0, average)) for i in range(num_seg)]
        elif n > num_seg:
            offsets = sorted(int(v) for v in rng.integers(0, n, size=num_seg))
        else:
            offsets = [0] * num_seg
        return [int(x % n) for x in offsets]
    idx = []
    for i in range(num_seg):
        if average >= seg_len:
            start = (int(rng.integers(0, average - seg_len + 1)) if train else (average - 1) // 2)
            start += i * average
        elif average >= 1:
            start = i * average
        else:
            start = i
        idx.extend(int(j % n) for j in range(start, start + seg_len))
    return idx


def paddlevideo_dense_indices(num_frames, num_seg, train, rng, window=64, clips=10):
    """PaddleVideo's dense sampling (PP-TSM dense, frame folders): ``num_seg`` frames
    ``window // num_seg`` apart from one ``window``-frame span; training starts it at
    ``randint(0, n - window)`` (NumPy's exclusive bound: never the last start), evaluation
    takes ``clips`` spans at ``linspace(0, n - window, clips)`` (``num_seg * clips``
    frames, clip after clip); indices wrap around short clips."""
    n = int(num_frames)
    sample_pos = max(1, 1 + n - window)
    stride = window // num_seg
    if train:
        starts = [0 if sample_pos == 1 else int(rng.integers(0, sample_pos - 1))]
    else:
        starts = np.linspace(0, sample_pos - 1, num=clips, dtype=int).tolist()
    return [int((i * stride + s) % n) for s in starts for i in range(num_seg)]


SAMPLER_INDEXING = ("ppzoo", "paddlevideo")


@TRANSFORMS.register()
class Sampler:
    """Picks frames: TSN segment sampling (default) or ``dense`` sampling.

    ``valid_mode: true`` takes the centre of each segment (evaluation), as in PaddleVideo.
    ``indexing: paddlevideo`` uses PaddleVideo's own index formulas (``paddlevideo_indices``;
    they differ from ppzoo's for ``seg_len > 1`` and clips shorter than ``num_seg``), and
    with it ``select_left: true`` its TSM/TSN variant and ``dense: true`` its PP-TSM dense
    sampling (``paddlevideo_dense_indices``: 10 clips in evaluation).  ppzoo's default (``indexing: ppzoo``)
    centres a ``seg_len`` window in its segment and spreads the segments of short clips.
    """

    def __init__(self, num_seg=8, seg_len=1, valid_mode=False, dense=False, frame_interval=1,
                 indexing="ppzoo", select_left=False):
        if int(num_seg) < 1 or int(seg_len) < 1:
            raise ConfigError(f"Sampler: num_seg and seg_len must be >= 1 (got {num_seg}, {seg_len})")
        if indexing not in SAMPLER_INDEXING:
            raise ConfigError(f"Sampler.indexing: {indexing!r} is not one of {', '.join(SAMPLER_INDEXING)}")
        if select_left and indexing != "paddlevideo":
            raise ConfigError("Sampler.select_left is PaddleVideo's TSM/TSN sampling: set indexing: paddlevideo")
        self.num_seg, self.seg_len = int(num_seg), int(seg_len)
        self.valid_mode, self.dense = bool(valid_mode), bool(dense)
        self.frame_interval = int(frame_interval)
        self.indexing, self.select_left = indexing, bool(select_left)

    def __call__(self, sample, rng):
        n = int(sample["frames_len"])
        if self.dense and self.indexing == "paddlevideo":
            idx = paddlevideo_dense_indices(n, self.num_seg, not self.valid_mode, rng)
        elif self.dense:
            idx = dense_indices(n, self.num_seg * self.seg_len, self.frame_interval,
                                not self.valid_mode, rng)
        elif self.indexing == "paddlevideo":
            idx = paddlevideo_indices(n, self.num_seg, self.seg_len, not self.valid_mode, rng,
                                      self.select_left)
        else:
            idx = segment_indices(n, self.num_seg, self.seg_len, not self.valid_mode, rng)
        sample["frame_idx"] = np.asarray(idx, np.int64)
        sample["imgs"] = sample.pop("_read_frames")(idx)
        return sample


RESIZE_BACKENDS = ("pillow", "cv2")


def _check_backend(name, backend):
    if backend not in RESIZE_BACKENDS:
        raise ConfigError(f"{name}.backend: {backend!r} is not one of {', '.join(RESIZE_BACKENDS)}")
    return backend


def _resize(img, w, h, backend="pillow"):
    """Bilinear resize to ``w`` x ``h``: PIL's (antialiased when shrinking) or OpenCV's
    ``INTER_LINEAR`` (no antialiasing), the two backends of PaddleVideo's transforms."""
    if backend == "cv2":
        import cv2
        return cv2.resize(np.ascontiguousarray(img), (int(w), int(h)), interpolation=cv2.INTER_LINEAR)
    return np.asarray(Image.fromarray(img).resize((int(w), int(h)), Image.BILINEAR))


def _pil_box(x0, y0, cw, ch):
    """The pixel box PIL's ``crop((x0, y0, x0 + cw, y0 + ch))`` takes for fractional
    corners: each coordinate rounded (Python's round, half to even) on its own."""
    return round(x0), round(y0), round(x0 + cw), round(y0 + ch)


@TRANSFORMS.register()
class Scale:
    """Resizes every frame so its short side is ``short_size``.

    ppzoo's default keeps the aspect ratio and rounds the long side.  PaddleVideo's options:
    ``fixed_ratio: true`` (PaddleVideo's default) squashes every frame to 4:3
    (``short_size`` x ``int(short_size * 4 / 3)``, 256 x 341) whatever its shape;
    ``do_round: false`` truncates the long side (``int(long * short_size / short)``),
    ``do_round: true`` rounds both sides half up; a frame whose short side already is
    ``short_size`` is left as it is in these modes (also with ``fixed_ratio``).
    ``backend``: ``pillow`` (default) or ``cv2`` resizing.
    """

    def __init__(self, short_size, fixed_ratio=False, do_round=None, backend="pillow"):
        self.short_size = int(short_size)
        self.fixed_ratio = bool(fixed_ratio)
        self.do_round = None if do_round is None else bool(do_round)
        self.backend = _check_backend("Scale", backend)

    def size(self, h, w):
        """``(new_h, new_w)`` of an ``h`` x ``w`` frame."""
        s = self.short_size
        if not self.fixed_ratio and self.do_round is None:  # ppzoo
            if h <= w:
                return s, int(round(w * s / h))
            return int(round(h * s / w)), s
        if (w <= h and w == s) or (h <= w and h == s):
            return h, w
        if self.fixed_ratio:
            long = int(s * 4.0 / 3.0)
            return (long, s) if w <= h else (s, long)
        if w <= h:
            factor = s / w
            return (int(h * factor + 0.5), int(w * factor + 0.5)) if self.do_round else (int(h * s / w), s)
        factor = s / h
        return (int(h * factor + 0.5), int(w * factor + 0.5)) if self.do_round else (s, int(w * s / h))

    def __call__(self, sample, rng):
        out = []
        for img in sample["imgs"]:
            h, w = img.shape[:2]
            nh, nw = self.size(h, w)
            out.append(img if (nh, nw) == (h, w) else _resize(img, nw, nh, self.backend))
        sample["imgs"] = out
        return sample


@TRANSFORMS.register()
class MultiScaleCrop:
    """TSN's corner/centre crop of a random scale (same box for all frames), resized to
    ``target_size``.

    ppzoo's default: 5 positions (corners, centre) on an integer grid (``(w - cw) // 4``
    steps).  PaddleVideo's options: ``grid: fractional`` (steps ``(w - cw) / 4``, the box
    rounded as PIL's crop rounds it), ``more_fix_crop: true`` (8 more positions: the edge
    centres and the quarter points, 13 in all; PaddleVideo's default),
    ``allow_duplication: false`` (positions that coincide where a step is 0 are dropped,
    PaddleVideo's default), ``snap: 3`` (a crop side within 3 pixels of ``target_size``
    becomes ``target_size``), ``backend: cv2`` (OpenCV resizing).
    """

    def __init__(self, target_size, scales=(1, 0.875, 0.75, 0.66), max_distort=1, fix_crop=True,
                 more_fix_crop=False, allow_duplication=True, grid="integer", snap=0, backend="pillow"):
        self.target_size = int(target_size)
        self.scales = [float(s) for s in scales]
        self.max_distort, self.fix_crop = int(max_distort), bool(fix_crop)
        self.more_fix_crop, self.allow_duplication = bool(more_fix_crop), bool(allow_duplication)
        if grid not in ("integer", "fractional"):
            raise ConfigError(f"MultiScaleCrop.grid: {grid!r} is not integer or fractional")
        self.grid, self.snap = grid, int(snap)
        self.backend = _check_backend("MultiScaleCrop", backend)

    def offsets(self, w, h, cw, ch):
        """The candidate top-left corners for a ``cw`` x ``ch`` crop of a ``w`` x ``h`` frame."""
        if self.grid == "fractional":
            sw, sh = (w - cw) / 4, (h - ch) / 4
        else:
            sw, sh = (w - cw) // 4, (h - ch) // 4
        dup = self.allow_duplication
        out = [(0, 0)]
        if dup or sw != 0:
            out.append((4 * sw, 0))
        if dup or sh != 0:
            out.append((0, 4 * sh))
        if dup or (sh != 0 and sw != 0):
            out.append((4 * sw, 4 * sh))
        if dup or (sh != 0 or sw != 0):
            out.append((2 * sw, 2 * sh))
        if self.more_fix_crop:
            out += [(0, 2 * sh), (4 * sw, 2 * sh), (2 * sw, 4 * sh), (2 * sw, 0),
                    (sw, sh), (3 * sw, sh), (sw, 3 * sh), (3 * sw, 3 * sh)]
        return out

    def crop_sizes(self, w, h):
        """The (crop w, crop h) pairs to choose from."""
        base = min(h, w)
        sizes = [int(base * s) for s in self.scales]
        t = self.target_size
        sizes = [t if self.snap and abs(x - t) < self.snap else x for x in sizes]
        return [(cw, ch) for i, ch in enumerate(sizes) for j, cw in enumerate(sizes)
                if abs(i - j) <= self.max_distort]

    def __call__(self, sample, rng):
        h, w = sample["imgs"][0].shape[:2]
        pairs = self.crop_sizes(w, h)
        cw, ch = pairs[int(rng.integers(len(pairs)))]
        if self.fix_crop:
            offsets = self.offsets(w, h, cw, ch)
            x, y = offsets[int(rng.integers(len(offsets)))]
        else:
            x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        x0, y0, x1, y1 = _pil_box(x, y, cw, ch)
        t = self.target_size
        sample["imgs"] = [_resize(img[y0:y1, x0:x1], t, t, self.backend) for img in sample["imgs"]]
        return sample


def _check_size(sample, size, name):
    h, w = sample["imgs"][0].shape[:2]
    if h < size or w < size:
        raise DataError(f"{name}: frames of {sample.get('filename')} are {h}x{w}, smaller than "
                        f"the crop {size}; add a Scale before it")
    return h, w


@TRANSFORMS.register()
class VideoRandomCrop:
    """Crops the same random ``target_size`` square from every frame."""

    def __init__(self, target_size):
        self.target_size = int(target_size)

    def __call__(self, sample, rng):
        h, w = _check_size(sample, self.target_size, "VideoRandomCrop")
        t = self.target_size
        y, x = int(rng.integers(0, h - t + 1)), int(rng.integers(0, w - t + 1))
        sample["imgs"] = [img[y:y + t, x:x + t] for img in sample["imgs"]]
        return sample


@TRANSFORMS.register()
class VideoCenterCrop:
    """Crops the centre ``target_size`` square of every frame.  The corner is
    ``(w - t) // 2`` (ppzoo's default); ``do_round: true`` is PaddleVideo's
    ``int(round((w - t) / 2))`` (half to even: 115.5 -> 116, 58.5 -> 58)."""

    def __init__(self, target_size, do_round=False):
        self.target_size = int(target_size)
        self.do_round = bool(do_round)

    def __call__(self, sample, rng):
        h, w = _check_size(sample, self.target_size, "VideoCenterCrop")
        t = self.target_size
        if self.do_round:
            y, x = int(round((h - t) / 2.0)), int(round((w - t) / 2.0))
        else:
            y, x = (h - t) // 2, (w - t) // 2
        sample["imgs"] = [img[y:y + t, x:x + t] for img in sample["imgs"]]
        return sample


@TRANSFORMS.register()
class TenCrop:
    """PaddleVideo's TenCrop: the 4 corner and the centre ``target_size`` crops of every
    frame and their left-right flips, as 10 x T views in PaddleVideo's order (for each
    position: its T crops, then their T flips).  A TSN head averages all views."""

    def __init__(self, target_size):
        self.target_size = int(target_size)

    def __call__(self, sample, rng):
        h, w = _check_size(sample, self.target_size, "TenCrop")
        t = self.target_size
        sw, sh = (w - t) // 4, (h - t) // 4
        views = []
        for x, y in [(0, 0), (4 * sw, 0), (0, 4 * sh), (4 * sw, 4 * sh), (2 * sw, 2 * sh)]:
            crops = [img[y:y + t, x:x + t] for img in sample["imgs"]]
            views += crops + [np.ascontiguousarray(c[:, ::-1]) for c in crops]
        sample["imgs"] = views
        return sample


@TRANSFORMS.register()
class GroupFullResSample:
    """PaddleVideo's GroupFullResSample (PP-TSM dense test): the left, right and centre
    ``crop_size`` crops at mid height, ``(w - t) // 4`` steps, all T frames of one position
    (then their flips with ``flip``) before the next: 3 x T views (6 x T with flips)."""

    def __init__(self, crop_size, flip=False):
        self.crop_size, self.flip = int(crop_size), bool(flip)

    def __call__(self, sample, rng):
        h, w = _check_size(sample, self.crop_size, "GroupFullResSample")
        t = self.crop_size
        sw, sh = (w - t) // 4, (h - t) // 4
        views = []
        for x, y in [(0, 2 * sh), (4 * sw, 2 * sh), (2 * sw, 2 * sh)]:
            crops = [img[y:y + t, x:x + t] for img in sample["imgs"]]
            views += crops
            if self.flip:
                views += [np.ascontiguousarray(c[:, ::-1]) for c in crops]
        sample["imgs"] = views
        return sample


@TRANSFORMS.register()
class RandomFlip:
    """Flips all frames left-right with probability ``p`` (do not use when the label is a
    left/right direction)."""

    def __init__(self, p=0.5):
        self.p = float(p)

    def __call__(self, sample, rng):
        if rng.random() < self.p:
            sample["imgs"] = [np.ascontiguousarray(img[:, ::-1]) for img in sample["imgs"]]
        return sample


@TRANSFORMS.register()
class Image2Array:
    """Stacks ``imgs`` into the float32 (T, C, H, W) ``video`` array in [0, 255]."""

    def __call__(self, sample, rng):
        arr = np.stack(sample.pop("imgs")).astype("float32")  # T, H, W, C
        sample["video"] = arr.transpose(0, 3, 1, 2)
        sample.pop("frames_len", None)
        return sample


@TRANSFORMS.register()
class VideoNormalize:
    """(video / 255 - mean) / std per channel, as PaddleVideo's ``Normalization``."""

    def __init__(self, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)):
        self.mean = np.asarray(mean, "float32").reshape(1, -1, 1, 1)
        self.std = np.asarray(std, "float32").reshape(1, -1, 1, 1)

    def __call__(self, sample, rng):
        sample["video"] = ((sample["video"] / 255.0 - self.mean) / self.std).astype("float32")
        return sample


TRANSFORMS.register(VideoNormalize, name="Normalization")
