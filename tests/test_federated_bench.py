"""benchmarks/federated_bench.py's scale options reach the run configs and folders (run in a
child process: importing the benchmark tunes the CPU threads of its process)."""
import json
import os
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))

SNIPPET = r"""
import json, sys, types
sys.path.insert(0, "benchmarks")
import federated_bench as fb
args = types.SimpleNamespace(image_size=16, width=16, clients=50, per_round=10, rounds=15,
                             min_partition_size=3, local_epochs=LE, lr=LR,
                             fedda_full_batch_rounds=2, fedhisyn_max_steps=2)
lists = {"train": "train.txt", "test": "test.txt"}
out = {}
for s in ("fedavg", "fedda", "fedhisyn", "fedat"):
    fed = fb.bench_config(s, 0.5, 1, args, lists)["federated"]
    out[s] = {"epochs": fed["local"]["epochs"], "lr": fed["local"]["optimizer"]["learning_rate"],
              "rounds": fed["rounds"], "max_steps": fed["strategy"].get("max_steps")}
fb.OUT = "/elsewhere"
out["dir"] = fb.run_dir(0.5, "fedavg", 1, 15)
out["cost"] = fb.COST_OUT
print("RESULT " + json.dumps(out))
"""


def _configs(local_epochs, lr):
    code = SNIPPET.replace("LE", str(local_epochs)).replace("LR", repr(lr))
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    line = [x for x in res.stdout.splitlines() if x.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


def test_scale_options_reach_configs_and_folders():
    out = _configs(5, 0.1)
    assert {out[s]["epochs"] for s in ("fedavg", "fedda", "fedhisyn", "fedat")} == {5}
    assert out["fedavg"]["lr"] == 0.1 and out["fedhisyn"]["lr"] == 0.1
    assert out["fedda"]["lr"] == 0.001  # FedDA's Adam-form client rate is not the SGD one
    assert out["fedhisyn"]["max_steps"] == 2
    assert out["fedavg"]["rounds"] == 15 and out["fedat"]["rounds"] == 45
    assert out["dir"] == os.path.join("/elsewhere", "a0.5", "fedavg", "s1")
    assert out["cost"] == os.path.join(ROOT, "output", "federated_bench")  # cost stays put
    default = _configs(1, None)
    assert default["fedavg"]["epochs"] == 1 and default["fedavg"]["lr"] == 0.05


CEILING_SNIPPET = r"""
import json, sys, types
sys.path.insert(0, "benchmarks")
import federated_bench as fb
e5 = types.SimpleNamespace(rounds=30, per_round=10, clients=50, local_epochs=5)
small = types.SimpleNamespace(rounds=25, per_round=10, clients=50, local_epochs=1)
page = sys.argv[1]
open(page, "w").write("# P\n\n## Scale\nx\n\n## Dirichlet alpha = 0.1\ny\n")
fb.put_section(page, fb.CEILING, fb.CEILING + "\nfirst\n", "## Dirichlet")
fb.put_section(page, fb.CEILING, fb.CEILING + "\nsecond\n", "## Dirichlet")
print("RESULT " + json.dumps({"e5": fb.ceiling_epochs(e5), "small": fb.ceiling_epochs(small),
                              "page": open(page).read()}))
"""


def test_ceiling_epochs_and_section_placement(tmp_path):
    """The ceiling trains FedAvg's expected sample-epochs (rounds x selected fraction x local
    epochs: by hand 30 x 10/50 x 5 = 30 and 25 x 10/50 x 1 = 5), and its section is written
    once, before the first alpha section, replaced on a rerun."""
    res = subprocess.run([sys.executable, "-c", CEILING_SNIPPET, str(tmp_path / "p.md")], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    out = json.loads([x for x in res.stdout.splitlines() if x.startswith("RESULT ")][-1][len("RESULT "):])
    assert out["e5"] == 30 and out["small"] == 5
    page = out["page"]
    assert page.count("## Centralized ceiling") == 1 and "second" in page and "first" not in page
    assert page.index("## Scale") < page.index("## Centralized ceiling") < page.index("## Dirichlet")
