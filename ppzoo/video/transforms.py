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


@TRANSFORMS.register()
class Sampler:
    """Picks frames: TSN segment sampling (default) or ``dense`` sampling.

    ``valid_mode: true`` takes the centre of each segment (evaluation), as in PaddleVideo.
    """

    def __init__(self, num_seg=8, seg_len=1, valid_mode=False, dense=False, frame_interval=1):
        if int(num_seg) < 1 or int(seg_len) < 1:
            raise ConfigError(f"Sampler: num_seg and seg_len must be >= 1 (got {num_seg}, {seg_len})")
        self.num_seg, self.seg_len = int(num_seg), int(seg_len)
        self.valid_mode, self.dense = bool(valid_mode), bool(dense)
        self.frame_interval = int(frame_interval)

    def __call__(self, sample, rng):
        n = int(sample["frames_len"])
        if self.dense:
            idx = dense_indices(n, self.num_seg * self.seg_len, self.frame_interval,
                                not self.valid_mode, rng)
        else:
            idx = segment_indices(n, self.num_seg, self.seg_len, not self.valid_mode, rng)
        sample["frame_idx"] = np.asarray(idx, np.int64)
        sample["imgs"] = sample.pop("_read_frames")(idx)
        return sample


def _resize(img, w, h):
    return np.asarray(Image.fromarray(img).resize((int(w), int(h)), Image.BILINEAR))


@TRANSFORMS.register()
class Scale:
    """Resizes every frame so its short side is ``short_size`` (aspect ratio kept)."""

    def __init__(self, short_size):
        self.short_size = int(short_size)

    def __call__(self, sample, rng):
        out = []
        for img in sample["imgs"]:
            h, w = img.shape[:2]
            if h <= w:
                nh, nw = self.short_size, int(round(w * self.short_size / h))
            else:
                nw, nh = self.short_size, int(round(h * self.short_size / w))
            out.append(img if (nh, nw) == (h, w) else _resize(img, nw, nh))
        sample["imgs"] = out
        return sample


@TRANSFORMS.register()
class MultiScaleCrop:
    """TSN's corner/centre crop of a random scale (same box for all frames), resized to
    ``target_size``."""

    def __init__(self, target_size, scales=(1, 0.875, 0.75, 0.66), max_distort=1, fix_crop=True):
        self.target_size = int(target_size)
        self.scales = [float(s) for s in scales]
        self.max_distort, self.fix_crop = int(max_distort), bool(fix_crop)

    def __call__(self, sample, rng):
        h, w = sample["imgs"][0].shape[:2]
        base = min(h, w)
        sizes = [int(base * s) for s in self.scales]
        pairs = [(cw, ch) for i, ch in enumerate(sizes) for j, cw in enumerate(sizes)
                 if abs(i - j) <= self.max_distort]
        cw, ch = pairs[int(rng.integers(len(pairs)))]
        if self.fix_crop:
            sw, sh = (w - cw) // 4, (h - ch) // 4
            offsets = [(0, 0), (4 * sw, 0), (0, 4 * sh), (4 * sw, 4 * sh), (2 * sw, 2 * sh)]
            x, y = offsets[int(rng.integers(len(offsets)))]
        else:
            x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        t = self.target_size
        sample["imgs"] = [_resize(img[y:y + ch, x:x + cw], t, t) for img in sample["imgs"]]
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
    """Crops the centre ``target_size`` square of every frame."""

    def __init__(self, target_size):
        self.target_size = int(target_size)

    def __call__(self, sample, rng):
        h, w = _check_size(sample, self.target_size, "VideoCenterCrop")
        t = self.target_size
        y, x = (h - t) // 2, (w - t) // 2
        sample["imgs"] = [img[y:y + t, x:x + t] for img in sample["imgs"]]
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
