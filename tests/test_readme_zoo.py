"""The README's model zoo table is the weights table, regenerated (not a hand-kept copy)."""
import os
import re

from ppzoo import hub
from ppzoo.hub.__main__ import ZOO_BEGIN, ZOO_END, main, markdown_table, zoo_section

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def test_readme_model_zoo_equals_the_weights_table(capsys):
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    section = zoo_section(readme)
    assert section is not None, f"README.md lacks the markers {ZOO_BEGIN} ... {ZOO_END}"
    assert main(["list", "--markdown"]) == 0
    printed = capsys.readouterr().out.strip()
    assert section == printed, ("README.md's model zoo is stale: paste "
                                "`python -m ppzoo.hub list --markdown` between its markers")


def test_every_row_names_architecture_dataset_metric_source_licence_and_real_configs():
    """Each entry fills the columns a reader needs, and every config it names exists and
    uses the entry (its name, or the backbone alias that resolves to it, is in the file)."""
    table = hub.load_table(hub.DEFAULT_TABLE)
    rows = markdown_table(table).splitlines()[2:]
    assert len(rows) == len(table)
    aliases = {"resnet50_vd_ssld_v2_paddleseg": "backbone_pretrained: imagenet",
               "stdc2_imagenet_paddleseg": "backbone_pretrained: imagenet",
               "pp_stdc2_imagenet_paddleseg": "backbone_pretrained: imagenet",
               "hrnet_w18_ssld_paddleseg": "backbone_pretrained: imagenet"}
    for (name, e), row in zip(table.items(), rows):
        cells = [c.strip() for c in row.strip("|").split(" | ")]
        assert len(cells) == 7, row
        assert cells[0] == f"`{name}`"
        for key in ("architecture", "dataset", "metrics", "config", "source", "licence"):
            assert str(e.get(key) or "").strip(), f"{name}: no {key}"
        for path in re.findall(r"configs/[\w/.-]+\.yml", str(e["config"])):
            full = os.path.join(ROOT, path)
            assert os.path.isfile(full), f"{name}: {path} does not exist"
            text = open(full, encoding="utf-8").read()
            assert name in text or aliases.get(name, "\0") in text or \
                os.path.basename(path)[:-4] in str(e["model"].get("config", "")), (name, path)
