"""Class lists of the sports presets.

Football and basketball follow the label definitions of PaddleVideo's FootballAction and
BasketballAction applications (English names, same order; id 0 is background).  The
figure-skating competition data (FSD-10 format) publishes 30 element classes by id only,
so its names are the ids.  Table tennis follows the stroke classes of PaddleVideo's table
tennis application; check the order against your label file before fine-tuning.
"""

FOOTBALL = ["background", "goal", "corner", "free_kick", "yellow_card", "red_card",
            "substitution", "throw_in"]

BASKETBALL = ["background", "goal_three_point", "goal_two_point", "goal_dunk", "free_throw",
              "jump_ball"]

TABLE_TENNIS = ["serve", "forehand_drive", "backhand_drive", "forehand_loop", "backhand_loop",
                "forehand_push", "backhand_push", "forehand_flick", "backhand_flick",
                "forehand_chop", "backhand_chop", "block", "smash", "lob", "other"]

FSD10 = [f"element_{i:02d}" for i in range(30)]

PRESETS = {"football": FOOTBALL, "basketball": BASKETBALL, "table_tennis": TABLE_TENNIS,
           "fsd10": FSD10}
