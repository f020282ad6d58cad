"""Class lists of the localization presets, in the order of PaddleVideo's label files.

Football: ``applications/FootballAction/.../index_label_football_8.json`` (8 ids, 0 is
background).  Basketball: ``applications/BasketballAction/.../index_label_basketball_6.json``
(7 ids despite the file name, 0 background, 1 replay).  Names are English translations of
the Chinese labels, in the same order, so PaddleVideo label ids map one to one.
"""

FOOTBALL = ["background", "goal", "corner", "free_kick", "yellow_card", "red_card",
            "substitution", "throw_in"]

BASKETBALL = ["background", "replay", "goal_three_point", "goal_two_point", "goal_dunk",
              "free_throw", "jump_ball"]

PRESETS = {"football": FOOTBALL, "basketball": BASKETBALL}


def class_names(spec):
    """A preset name or a list -> a list of names."""
    from ..core.errors import ConfigError
    if isinstance(spec, str):
        if spec not in PRESETS:
            raise ConfigError(f"class_names: {spec!r} is not a preset ({', '.join(PRESETS)}) "
                              f"and not a list")
        return list(PRESETS[spec])
    return [str(c) for c in spec]
