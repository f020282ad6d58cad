"""Class lists of the localization presets: the sports presets of ``ppzoo.video.classes``
(PaddleVideo's FootballAction / BasketballAction label files, in their order, 0 background),
so a recognizer and a localizer of one sport share one list."""
from ..video.classes import PRESETS as _VIDEO_PRESETS

PRESETS = {name: _VIDEO_PRESETS[name] for name in ("football", "basketball")}
FOOTBALL, BASKETBALL = PRESETS["football"], PRESETS["basketball"]


def class_names(spec):
    """A preset name or a list -> a list of names."""
    from ..core.errors import ConfigError
    if isinstance(spec, str):
        if spec not in PRESETS:
            raise ConfigError(f"class_names: {spec!r} is not a preset ({', '.join(PRESETS)}) "
                              f"and not a list")
        return list(PRESETS[spec])
    return [str(c) for c in spec]
