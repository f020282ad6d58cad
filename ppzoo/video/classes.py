"""Class lists of the sports presets, in the order of PaddleVideo's label files.

- ``football``: ``applications/FootballAction/predict/configs/index_label_football_8.json``
  (8 ids, 0 = background); ``FOOTBALL_ZH`` holds the file's own names.
- ``basketball``: ``applications/BasketballAction/predict/configs_basketball/
  index_label_basketball_6.json`` (7 ids despite the file name, 1 = replay; PaddleVideo's
  ``pptsm_basketball.yaml`` sets ``num_classes: 7``); ``BASKETBALL_ZH`` as in the file.
- ``table_tennis``: PaddleVideo's table-tennis recognizer has 8 classes
  (``videoswin_tabletennis.yaml``) but publishes no names for them (its predict config points
  at a copy of the football label file), so the preset names the ids; pass your own label
  file as ``class_names: <file>``.
- ``fsd10``: the figure-skating competition data publishes its 30 element classes by id.
"""

FOOTBALL = ["background", "goal", "corner", "free_kick", "yellow_card", "red_card",
            "substitution", "throw_in"]
FOOTBALL_ZH = ["背景", "进球", "角球", "任意球", "黄牌", "红牌", "换人", "界外球"]

BASKETBALL = ["background", "replay", "goal_three_point", "goal_two_point", "goal_dunk",
              "free_throw", "jump_ball"]
BASKETBALL_ZH = ["背景", "回放", "进球-三分球", "进球-两分球", "进球-扣篮", "罚球", "跳球"]

TABLE_TENNIS = [f"class_{i}" for i in range(8)]

FSD10 = [f"element_{i:02d}" for i in range(30)]

PRESETS = {"football": FOOTBALL, "basketball": BASKETBALL, "table_tennis": TABLE_TENNIS,
           "fsd10": FSD10, "football_zh": FOOTBALL_ZH, "basketball_zh": BASKETBALL_ZH}
