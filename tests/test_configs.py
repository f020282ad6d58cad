"""Every config shipped in configs/ loads, and every component it names is registered and
accepts the arguments the config gives it: a typo in a preset fails here, not in a
user's run an hour in."""
import glob
import os

import pytest

import ppzoo  # noqa: F401  (registers every component)
from ppzoo.core import load_config
from ppzoo.core.registry import all_registries, check_arguments
from ppzoo.federated import clock, partition

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(f for f in glob.glob(os.path.join(ROOT, "configs", "**", "*.yml"), recursive=True)
                 if "_base_" not in os.path.relpath(f, ROOT).split(os.sep)[1:-1]
                 and not os.path.basename(f).startswith("_base"))
# keys the builders consume before the component sees them
BUILDER_KEYS = {"lr_schedulers": {"warmup_iters", "warmup_start_lr"}, "optimizers": {"param_groups"}}
# sections whose `type` selects a function of their own module, with its own table of keys
OWN_TYPE_TABLES = {"federated.partition": partition.PARTITION_KEYS, "federated.profile": clock.PROFILE_KEYS}


def _components(node, path=""):
    if isinstance(node, dict):
        if "type" in node:
            yield path, node
        for k, v in node.items():
            yield from _components(v, f"{path}.{k}" if path else k)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _components(v, f"{path}[{i}]")


def test_the_configs_folder_is_found():
    assert len(CONFIGS) >= 50, CONFIGS


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: os.path.relpath(p, os.path.join(ROOT, "configs")))
def test_config_names_registered_components_with_known_arguments(path):
    cfg = load_config(path)
    registries = all_registries()
    found = 0
    for key, node in _components(cfg):
        if key in OWN_TYPE_TABLES:
            table = OWN_TYPE_TABLES[key]
            assert node["type"] in table, f"{path}: {key}.type {node['type']!r} is not one of {sorted(table)}"
            unknown = set(node) - table[node["type"]]
            assert not unknown, f"{path}: {key} has unknown keys {sorted(unknown)}"
            found += 1
            continue
        hits = [(name, r) for name, r in registries.items() if node["type"] in r]
        assert hits, f"{path}: {key}.type {node['type']!r} is in no registry"
        name, reg = hits[0]
        given = {k: v for k, v in node.items() if k != "type" and k not in BUILDER_KEYS.get(name, ())}
        if name == "lr_schedulers":  # build_lr_scheduler turns 'auto' into the run's iterations
            given = {k: (1 if v == "auto" else v) for k, v in given.items()}
        check_arguments(reg.get(node["type"]), given, f"{path}: {key}", node["type"], require=False)
        found += 1
    assert found, f"{path} names no component"
