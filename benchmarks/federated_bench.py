"""Federated CIFAR-10 benchmark: every strategy, Dirichlet alpha 0.1 and 0.5, heterogeneous
devices, 3 seeds; plus the simulator's cost against centralized training.

    python benchmarks/federated_bench.py                       # the whole benchmark (the page's settings), resumable
    python benchmarks/federated_bench.py --part cost           # only the cost comparison
    python benchmarks/federated_bench.py --report              # tables and plots from finished runs
    python benchmarks/federated_bench.py --part ceiling --rounds 30 --local-epochs 5 \
        --out output/federated_bench_e5 --page federated       # the centralized ceiling section
    python benchmarks/federated_bench.py --part digits --seeds 3   # FedHiSyn on digits: equal time
                                                               # and equal client compute, ceiling
    python benchmarks/federated_bench.py --part accuracy --local-epochs 5 --rounds 30 \
        --fedhisyn-max-steps 2 --out output/federated_bench_e5  # the rerun (docs/benchmarks/federated.md)

Each run is ``configs/federated/cifar10_<strategy>.yml`` (the configs ``tools/train.py``
runs) with the scale overrides below, trained by ``FederatedTrainer`` in this process into
``output/federated_bench/a<alpha>/<strategy>/s<seed>/``.  A run whose ``metrics.jsonl``
holds its last round is read, not rerun; a cut-off run is continued with the trainer's
exact ``--resume``; ``--out`` puts the accuracy runs in another folder, ``--page`` names the
result page.  Results: docs/benchmarks/federated.md (5 local epochs) and
docs/benchmarks/federated_small.md (the defaults: 1 local epoch), with their *_alpha*.png.
"""
import argparse
import copy
import datetime
import json
import math
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import ROOT, write_page  # noqa: E402
from ppzoo.core.paths import data_root  # noqa: E402

STRATEGIES = ["fedavg", "fedprox", "fedavgm", "fedadam", "fedyogi", "fedadagrad", "scaffold",
              "fedat", "fedda", "fedhisyn"]
FEDOPT = ["fedavgm", "fedadam", "fedyogi", "fedadagrad"]
OUT = os.path.join(ROOT, "output", "federated_bench")  # --out replaces it for the accuracy runs
COST_OUT = OUT  # the cost comparison always lives here
DOCS = os.path.join(ROOT, "docs", "benchmarks")
DATA = os.path.join(data_root(), "cifar10")
NORM = {"type": "Normalize", "mean": [0.491, 0.482, 0.447], "std": [0.247, 0.243, 0.262]}


def subset_lists(args):
    """``train_per_class`` training and ``test_per_class`` test images of each class (drawn
    once with seed 0), as ImageList files under output/ (the data folder is never written)."""
    os.makedirs(OUT, exist_ok=True)
    out = {}
    for split, per in (("train", args.train_per_class), ("test", args.test_per_class)):
        path = os.path.join(OUT, f"cifar10_{split}_{per}.txt")
        if not os.path.isfile(path):
            root = os.path.join(DATA, split)
            classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
            rng = np.random.default_rng(0)
            lines = []
            for label, name in enumerate(classes):
                files = sorted(os.listdir(os.path.join(root, name)))
                for f in sorted(rng.choice(files, size=per, replace=False)):
                    lines.append(f"{name}/{f} {label}")
            tmp = f"{path}.tmp-{os.getpid()}"
            with open(tmp, "w") as fh:
                fh.write("\n".join(lines) + "\n")
            os.replace(tmp, path)
        out[split] = path
    return out


def bench_config(strategy, alpha, seed, args, lists):
    """The strategy's CIFAR-10 config at the benchmark's scale (see the page's table)."""
    from ppzoo.core import load_config
    cfg = load_config(os.path.join(ROOT, "configs", "federated", f"cifar10_{strategy}.yml"))
    size = args.image_size
    cfg["name"] = f"fedbench_{strategy}_a{alpha}_s{seed}"
    cfg["seed"] = int(seed)
    cfg["model"]["width"] = args.width
    cfg["train_dataset"] = {"type": "ImageList", "list_file": lists["train"],
                            "root": os.path.join(DATA, "train"), "cache": True,
                            "transforms": [{"type": "Resize", "size": size},
                                           {"type": "RandomHorizontalFlip"}, NORM,
                                           {"type": "ToCHW"}]}
    cfg["val_dataset"] = {"type": "ImageList", "list_file": lists["test"],
                          "root": os.path.join(DATA, "test"), "cache": True,
                          "transforms": [{"type": "Resize", "size": size}, NORM, {"type": "ToCHW"}]}
    fed = cfg["federated"]
    fed.update(num_clients=args.clients, clients_per_round=args.per_round, rounds=args.rounds,
               eval_every=1)
    fed["partition"] = {"type": "dirichlet", "alpha": float(alpha),
                        "min_partition_size": args.min_partition_size}
    fed["local"]["epochs"] = args.local_epochs
    if args.lr is not None and strategy != "fedda":  # FedDA's Adam-form client lr is its own
        fed["local"]["optimizer"]["learning_rate"] = args.lr
    fed["local"]["batch_size"] = 32
    if strategy == "fedda":
        fed["strategy"]["full_batch_rounds"] = args.fedda_full_batch_rounds
    if strategy == "fedhisyn":
        fed["strategy"]["max_steps"] = args.fedhisyn_max_steps
    if strategy == "fedat":
        # one FedAT round is one tier's update: the same number of client updates as the
        # synchronous strategies' rounds needs about num_tiers times as many rounds
        fed["rounds"] = args.rounds * int(fed["strategy"].get("num_tiers", 3))
    return cfg


def run_dir(alpha, strategy, seed, rounds):
    """A run's folder.  Runs are lengthened in place with the trainer's exact resume
    (``federated.rounds`` may grow), except FedDA's, whose full-batch phase sits at the end
    of the run: a FedDA run is kept per length."""
    name = f"fedda_r{rounds}" if strategy == "fedda" else strategy
    return os.path.join(OUT, f"a{alpha}", name, f"s{seed}")


def rounds_of(work_dir):
    path = os.path.join(work_dir, "metrics.jsonl")
    if not os.path.isfile(path):
        return []
    with open(path) as f:
        return [r for r in map(json.loads, f) if r.get("mode") == "round"]


def run_one(cfg, work_dir):
    """Train (or continue) one run; returns its round records and the wall seconds spent."""
    from ppzoo.federated.trainer import FederatedTrainer
    done = rounds_of(work_dir)
    total = int(cfg["federated"]["rounds"])
    if done and done[-1]["round"] >= total:
        return done, 0.0
    resume = os.path.isdir(os.path.join(work_dir, "latest"))
    if os.path.isdir(work_dir) and not resume:
        import shutil
        shutil.rmtree(work_dir)
    t0 = time.time()
    FederatedTrainer(cfg, work_dir=work_dir, resume=resume).train()
    return rounds_of(work_dir), time.time() - t0


def accuracy_runs(args, lists):
    log = open(os.path.join(OUT, "bench.log"), "a")
    for seed in range(args.seeds):
        for alpha in args.alphas:
            for strategy in args.strategies:
                wd = run_dir(alpha, strategy, seed, args.rounds)
                cfg = bench_config(strategy, alpha, seed, args, lists)
                recs, wall = run_one(cfg, wd)
                last = recs[-1]
                msg = (f"{time.strftime('%H:%M:%S')} a={alpha} {strategy} seed={seed}: "
                       f"top1 {last.get('top1', float('nan')):.4f} sim {last['sim_time_s']:.0f}s "
                       f"wall {wall:.0f}s")
                print(msg, flush=True)
                log.write(msg + "\n")
                log.flush()


# ---------------------------------------------------------------------------- cost
def _fill_cache(dataset):
    """Decode every image before the clock starts (both sides keep decoded images)."""
    for i in range(len(dataset)):
        dataset[i]


def cost_comparison(args, lists):
    """FedAvg (IID, every client every round, no evaluation, no clock profile) against the
    engine's Trainer on the union of the clients' data for the same number of sample-steps
    (same batch size and optimizer), alternated ``args.cost_repeats`` times in this process."""
    import paddle
    from ppzoo.engine.trainer import Trainer
    from ppzoo.federated.trainer import FederatedTrainer
    import shutil
    results = {"federated": [], "centralized": []}
    for rep in range(args.cost_repeats):
        fcfg = bench_config("fedavg", 0.5, 0, args, lists)
        fed = fcfg["federated"]
        fed.update(num_clients=args.cost_clients, clients_per_round=args.cost_clients,
                   rounds=args.cost_rounds, eval_every=10 ** 6)
        fed["partition"] = {"type": "iid"}
        fed.pop("profile", None)
        fcfg.pop("val_dataset")
        fwd = os.path.join(COST_OUT, "cost", f"federated_{rep}")
        shutil.rmtree(fwd, ignore_errors=True)
        trainer = FederatedTrainer(fcfg, work_dir=fwd)
        _fill_cache(trainer.train_dataset)
        steps = sum(math.ceil(len(p) / 32) for p in trainer.partitions) * args.cost_rounds
        samples = sum(len(p) for p in trainer.partitions) * args.cost_rounds
        w0, c0 = time.time(), time.process_time()
        trainer.train()
        results["federated"].append((time.time() - w0, time.process_time() - c0, steps, samples))

        ccfg = bench_config("fedavg", 0.5, 0, args, lists)
        for k in ("federated",):
            ccfg.pop(k)
        ccfg.pop("trainer")
        ccfg.pop("val_dataset")
        ccfg["optimizer"] = dict(fcfg["federated"]["local"]["optimizer"])
        ccfg["train"] = {"iters": steps, "batch_size": 32, "log_interval": 10 ** 6,
                         "checkpoint_interval": 10 ** 6}
        cwd = os.path.join(COST_OUT, "cost", f"centralized_{rep}")
        shutil.rmtree(cwd, ignore_errors=True)
        central = Trainer(ccfg, work_dir=cwd)
        _fill_cache(central.train_dataset)
        w0, c0 = time.time(), time.process_time()
        central.train()
        results["centralized"].append((time.time() - w0, time.process_time() - c0, steps,
                                       steps * 32))
        paddle.device.cuda.empty_cache() if paddle.is_compiled_with_cuda() else None
        print(f"cost rep {rep}: federated {results['federated'][-1]}, centralized "
              f"{results['centralized'][-1]}", flush=True)
    with open(os.path.join(COST_OUT, "cost.json"), "w") as f:
        json.dump(results, f)
    return results


# ---------------------------------------------------------------------------- ceiling
def ceiling_epochs(args):
    """FedAvg's expected sample-epochs over the union of the clients' data: rounds x the
    fraction of clients a round x local epochs (every client's data once per local epoch)."""
    return args.rounds * args.per_round / args.clients * args.local_epochs


def centralized_run(cfg, work_dir, epochs, n_train):
    """The engine's Trainer on ``cfg``'s whole training set with the clients' optimizer and
    batch size for ``epochs`` x ``n_train`` samples; returns the test metrics at the end."""
    import shutil
    from ppzoo.engine.trainer import Trainer
    fed = cfg.pop("federated")
    cfg.pop("trainer", None)
    local = fed["local"]
    bs = int(local.get("batch_size", 32))
    cfg["optimizer"] = dict(local["optimizer"])
    iters = int(round(epochs * n_train / bs))
    cfg["train"] = {"iters": iters, "batch_size": bs, "log_interval": 10 ** 6,
                    "checkpoint_interval": 10 ** 6, "eval_interval": 10 ** 6}
    shutil.rmtree(work_dir, ignore_errors=True)
    tr = Trainer(cfg, work_dir=work_dir)
    tr.train()
    res = {k: float(v) for k, v in tr.evaluate().items()}
    res.update(iters=iters, batch_size=bs, epochs=epochs, n_train=n_train,
               lr=float(local["optimizer"]["learning_rate"]))
    return res


def _ceiling_file(epochs, seed):
    return os.path.join(OUT, "ceiling", f"e{epochs:g}_s{seed}.json")


def _read_json(path):
    with open(path) as f:
        return json.load(f)


def ceiling_runs(args, lists):
    """The centralized ceiling: the benchmark's 3000 images, model, client SGD and batch size,
    trained as one data set for FedAvg's expected sample-epochs, one run a seed."""
    epochs = ceiling_epochs(args)
    out = []
    for seed in range(args.seeds):
        path = _ceiling_file(epochs, seed)
        if os.path.isfile(path):
            out.append(_read_json(path))
            continue
        cfg = bench_config("fedavg", 0.5, seed, args, lists)
        c0 = time.process_time()
        res = centralized_run(cfg, os.path.join(OUT, "ceiling", f"e{epochs:g}_s{seed}"), epochs,
                              10 * args.train_per_class)
        res.update(seed=seed, cpu_s=time.process_time() - c0)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            json.dump(res, f)
        print(f"ceiling seed {seed}: {res}", flush=True)
        out.append(res)
    return out


CEILING = "## Centralized ceiling"


def ceiling_section(args):
    """The ceiling's markdown (None before its runs exist)."""
    epochs = ceiling_epochs(args)
    runs = [_read_json(p) for p in (_ceiling_file(epochs, seed) for seed in range(args.seeds))
            if os.path.isfile(p)]
    if not runs:
        return None
    top = [r["top1"] for r in runs]
    r0 = runs[0]
    return "\n".join([
        f"\n{CEILING}\n",
        f"The same {r0['n_train']} training and 500 test images, model, client optimizer (SGD, lr "
        f"{r0['lr']:g}) and batch size ({r0['batch_size']}), trained centrally by the engine's "
        f"`Trainer` for FedAvg's expected sample-epochs: {args.rounds} rounds x {args.per_round}/"
        f"{args.clients} clients x {args.local_epochs} local epoch(s) = {epochs:g} epochs "
        f"({r0['iters']} steps); one run a seed (the seed changes the initial model and the batch "
        f"order). `python benchmarks/federated_bench.py --part ceiling` with this page's scale "
        f"flags, run on {datetime.date.today().isoformat()} (the federated rows above and below were "
        f"run earlier; the ceiling's runs are cheap enough to add alone).\n",
        "| run | seeds | final top1 | per seed | CPU s / run |",
        "|---|---|---|---|---|",
        f"| centralized ceiling | {len(runs)} | {np.mean(top):.3f} ± {_sd(top):.3f} | "
        + ", ".join(f"{x:.3f}" for x in top) + f" | {np.mean([r['cpu_s'] for r in runs]):.0f} |",
        "\nEvery federated row on this page is to be read against this row: it is what the same "
        "model and optimizer reach on the same images with the same number of sample-passes "
        "when the data are not split.\n"])


def put_section(page, title, text, before):
    """Write ``text`` (a section starting with ``title``) into ``page``: in place of the
    section already there, else before the first line starting with ``before``."""
    with open(page, encoding="utf-8") as f:
        old = f.read()
    if title in old:
        i = old.index(title)
        j = old.find("\n## ", i + len(title))
        old = old[:i].rstrip("\n") + "\n" + (old[j:] if j >= 0 else "")
    k = old.index(before) if before in old else len(old)
    new = old[:k].rstrip("\n") + "\n" + text.strip("\n") + "\n\n" + old[k:]
    with open(page, "w", encoding="utf-8") as f:
        f.write(new.rstrip("\n") + "\n")


# ---------------------------------------------------------------------------- digits
DIGITS_OUT = os.path.join(ROOT, "output", "federated_digits")
DIGITS = {  # name: (config, strategy overrides, what it is)
    "fedavg": ("digits_fedavg.yml", {}, "FedAvg as shipped"),
    "fedhisyn": ("digits_fedhisyn.yml", {}, "FedHiSyn as shipped (measure: speed, singleton: merge)"),
    "fedhisyn_pass_time_keep": ("digits_fedhisyn.yml", {"measure": "pass_time", "singleton": "keep"},
                                "FedHiSyn, the earlier defaults (measure: pass_time, singleton: keep)"),
    "fedhisyn_1step": ("digits_fedhisyn.yml", {"max_steps": 1},
                       "FedHiSyn, one ring step a round (no model is handed on: FedAvg's rounds exactly, a check)"),
}


def digits_runs(args):
    """Every variant of DIGITS and the centralized ceiling on configs/federated/digits_*.yml
    as shipped, seeds 0..args.seeds-1 (the seed redraws partition, devices, model, sampling).
    Seed by seed; FedHiSyn's several-fold compute runs up to --digits-hisyn-rounds rounds first
    (a few pass FedAvg's client compute; a later call lengthens them with the trainer's exact
    resume)."""
    from ppzoo.core import load_config
    jobs = [(seed, name, args.digits_hisyn_rounds if name.startswith("fedhisyn_p") or name == "fedhisyn" else None)
            for seed in range(args.seeds)
            for name in ("fedavg", "fedhisyn", "fedhisyn_pass_time_keep", "ceiling", "fedhisyn_1step")]
    for seed, name, rounds in jobs:
        if args.digits_variants and name not in args.digits_variants:
            continue
        if name == "ceiling":
            digits_ceiling(seed)
            continue
        cfg_name, over, _ = DIGITS[name]
        cfg = load_config(os.path.join(ROOT, "configs", "federated", cfg_name))
        cfg["seed"] = seed
        cfg["federated"]["strategy"].update(over)
        wd = os.path.join(DIGITS_OUT, name, f"s{seed}")
        c0 = time.process_time()
        if rounds:  # 2 rounds at a time (with --digits-stop-at-compute: until its client compute passes FedAvg's)
            need = sum(r.get("client_samples", 0) for r in rounds_of(os.path.join(DIGITS_OUT, "fedavg", f"s{seed}")))
            wall, r = 0.0, 0
            while True:
                r = min(int(rounds), r + 2)
                cfg["federated"]["rounds"] = r
                recs, w = run_one(copy.deepcopy(cfg), wd)
                wall += w
                if r >= int(rounds) or (args.digits_stop_at_compute
                                        and sum(x.get("client_samples", 0) for x in recs) >= need):
                    break
        else:
            recs, wall = run_one(cfg, wd)
        if wall:
            with open(os.path.join(wd, "cpu_s.txt"), "a") as f:  # one line a call (a lengthened run: several)
                f.write(f"{time.process_time() - c0:.1f}\n")
        print(f"{time.strftime('%H:%M:%S')} digits {name} seed {seed}: top1 {recs[-1].get('top1'):.4f} "
              f"sim {recs[-1]['sim_time_s']:.0f}s wall {wall:.0f}s", flush=True)


def digits_ceiling(seed):
    """The same training digits, model, SGD and batch size, centrally, for FedAvg's expected
    sample-epochs (rounds x clients_per_round / num_clients x local epochs)."""
    from ppzoo.core import load_config
    from ppzoo.core.builder import DATASETS
    path = os.path.join(DIGITS_OUT, "ceiling", f"s{seed}.json")
    if os.path.isfile(path):
        return
    cfg = load_config(os.path.join(ROOT, "configs", "federated", "digits_fedavg.yml"))
    cfg["seed"] = seed
    fed = cfg["federated"]
    epochs = fed["rounds"] * fed["clients_per_round"] / fed["num_clients"] * fed["local"]["epochs"]
    n = len(DATASETS.build(dict(cfg["train_dataset"]), key_path="train_dataset"))
    c0 = time.process_time()
    res = centralized_run(cfg, os.path.join(DIGITS_OUT, "ceiling", f"s{seed}"), epochs, n)
    res.update(seed=seed, cpu_s=time.process_time() - c0)
    with open(path, "w") as f:
        json.dump(res, f)
    print(f"digits ceiling seed {seed}: {res}", flush=True)


def _latest(recs, key, limit):
    """The latest evaluated top1 among the rounds whose cumulative ``key`` is <= limit."""
    acc, tot = None, 0.0
    for r in recs:
        tot = r["sim_time_s"] if key == "sim_time_s" else tot + r.get(key, 0)
        if tot > limit + 1e-9:
            break
        if r.get("top1") is not None:
            acc = r["top1"]
    return acc


def digits_report(args):
    from scipy.stats import ttest_rel
    runs = {}
    for name in DIGITS:
        for seed in range(args.seeds):
            recs = rounds_of(os.path.join(DIGITS_OUT, name, f"s{seed}"))
            if recs and (recs[-1]["round"] >= 30 or name.startswith("fedhisyn")):
                runs[(name, seed)] = recs  # a shorter FedHiSyn run counts at equal compute only
    seeds = [k for k in range(args.seeds) if ("fedavg", k) in runs]
    if not seeds:
        return
    ceil = []
    for k in range(args.seeds):
        path = os.path.join(DIGITS_OUT, "ceiling", f"s{k}.json")
        if os.path.isfile(path):
            with open(path) as f:
                ceil.append(json.load(f))
    ms = lambda v: f"{np.mean(v):.3f} ± {_sd(v):.3f}" if len(v) > 1 else f"{np.mean(v):.3f}"  # noqa: E731
    body = ["configs/federated/digits_*.yml as shipped (20 clients, Dirichlet 0.5, 10 a round, 30 rounds, "
            "one local epoch, batch 16, SGD 0.05; device classes 400/100/25 samples/s), seeds "
            + ", ".join(map(str, seeds)) + " (the seed redraws the partition, the devices, the initial model "
            "and the client sampling). top1 on the 359 validation digits; mean ± sample sd over the seeds.\n",
            "Equal simulated time: the latest evaluation at FedAvg's total simulated time of the same seed. "
            "Equal client compute: the latest evaluation of a FedHiSyn run while its cumulative `client_samples` "
            "(samples the clients' local passes processed, every ring step counted) is at most FedAvg's total "
            "for 30 rounds of the same seed. `x FedAvg compute`: the run's total client samples over FedAvg's. "
            "`max passes`: the most ring steps any category made in one round. `CPU s`: process CPU time of the calls "
            "that trained the run (a run stopped by a signal and resumed counts only the calls that finished; "
            "the machine was shared, so a lower bound of its cost, not a speed).\n",
            "`seeds`: runs with all 30 rounds (runs in all; a shorter FedHiSyn run counts at equal compute only).\n",
            "| run | seeds | final top1 | top1 at equal time | top1 at equal client compute (round) | "
            "x FedAvg compute | max passes | sim s | CPU s |",
            "|---|---|---|---|---|---|---|---|---|"]
    eq_t, eq_c = {}, {}
    cell = lambda v: ms(v) if v else "-"  # noqa: E731
    for name, (_, _, what) in DIGITS.items():
        ks = [k for k in seeds if (name, k) in runs]
        if not ks:
            continue
        full = [k for k in ks if runs[(name, k)][-1]["round"] >= 30]
        eq_t[name], eq_c[name] = {}, {}
        fin, ratio, passes, sim, rnds, cpu = [], [], [], [], [], []
        for k in ks:
            recs, base = runs[(name, k)], runs[("fedavg", k)]
            C = sum(r.get("client_samples", 0) for r in base)
            cum = np.cumsum([r.get("client_samples", 0) for r in recs])
            if cum[-1] >= C:  # the run got as far as FedAvg's compute
                eq_c[name][k] = _latest(recs, "client_samples", C)
                rnds.append(int(np.searchsorted(cum, C, side="right")))
            passes.append(max(max(map(int, r.get("ring_steps", {"0": 1}).values())) for r in recs))
            if k in full:
                fin.append(recs[-1]["top1"])
                eq_t[name][k] = _latest(recs, "sim_time_s", base[-1]["sim_time_s"])
                ratio.append(cum[-1] / C)
                sim.append(recs[-1]["sim_time_s"])
                cp = os.path.join(DIGITS_OUT, name, f"s{k}", "cpu_s.txt")
                if os.path.isfile(cp):
                    cpu.append(sum(float(x) for x in open(cp).read().split()))
        ec = [v for v in eq_c[name].values() if v is not None]
        body.append(f"| {what} | {len(full)} ({len(ks)}) | {cell(fin)} | {cell(list(eq_t[name].values()))} | "
                    + (f"{ms(ec)} ({np.mean(rnds):.1f})" if ec else "-")
                    + f" | {np.mean(ratio):.1f} | {max(passes)} | "
                    + (f"{np.mean(sim):.0f}" if sim else "-") + " | " + (f"{np.mean(cpu):.0f}" if cpu else "-") + " |"
                    if ratio else
                    f"| {what} | 0 ({len(ks)}) | - | - | " + (f"{ms(ec)} ({np.mean(rnds):.1f})" if ec else "-")
                    + f" | - | {max(passes)} | - | - |")
    if ceil:
        top = [c["top1"] for c in ceil]
        body.append(f"| centralized ceiling: the same training digits, model, SGD 0.05 and batch 16 for FedAvg's "
                    f"expected sample-epochs ({ceil[0]['epochs']:g} epochs, {ceil[0]['iters']} steps) | {len(ceil)} | "
                    f"{ms(top)} | - | - | 1.0 | - | - | {np.mean([c['cpu_s'] for c in ceil]):.0f} |")
    body.append("\nPaired over the seeds (difference = FedHiSyn variant minus FedAvg; paired t-test):\n")
    body.append("| comparison | at equal time: mean diff | p | at equal client compute: mean diff | p | n (time / compute) |")
    body.append("|---|---|---|---|---|---|")
    for name in DIGITS:
        if name == "fedavg" or name not in eq_t:
            continue
        ks = [k for k in eq_t[name] if k in eq_t["fedavg"]]
        dt = [eq_t[name][k] - eq_t["fedavg"][k] for k in ks]
        kc = [k for k in eq_c[name] if eq_c[name][k] is not None and k in eq_t["fedavg"]]
        dc = [eq_c[name][k] - runs[("fedavg", k)][-1]["top1"] for k in kc]
        pt = ttest_rel([eq_t[name][k] for k in ks], [eq_t["fedavg"][k] for k in ks]).pvalue if len(ks) > 1 else float("nan")
        pc = ttest_rel([eq_c[name][k] for k in kc], [runs[("fedavg", k)][-1]["top1"] for k in kc]).pvalue \
            if len(kc) > 1 else float("nan")
        body.append(f"| {name} - fedavg | " + (f"{np.mean(dt):+.3f} | {pt:.3g}" if dt else "- | -") + " | "
                    + (f"{np.mean(dc):+.3f} | {pc:.3g}" if dc else "- | -") + f" | {len(ks)} / {len(kc)} |")
    page = os.path.join(DOCS, "federated_digits.md")
    if os.path.isfile(page):
        with open(page, encoding="utf-8") as f:
            old = f.read()
        if READING in old:
            body.append("\n" + old[old.index(READING):].rstrip())
    write_page(page, "Federated digits: FedHiSyn at equal time and at equal client compute",
               f"python benchmarks/federated_bench.py --part digits --seeds {args.seeds}", "\n".join(body))


# ---------------------------------------------------------------------------- report
def load_all(args):
    data = {}
    for alpha in args.alphas:
        for strategy in args.strategies:
            for seed in range(args.seeds):
                recs = rounds_of(run_dir(alpha, strategy, seed, args.rounds))
                total = args.rounds * (3 if strategy == "fedat" else 1)
                if len(recs) >= total:  # a lengthened run read up to this report's length
                    data[(alpha, strategy, seed)] = recs[:total]
    return data


def time_to(recs, target, key="sim_time_s"):
    for r in recs:
        if r.get("top1") is not None and r["top1"] >= target:
            return r[key]
    return math.inf


def client_updates(recs):
    return np.cumsum([r.get("answered", 0) for r in recs])


def mean_acc(recs):
    """Mean test accuracy over the evaluated rounds: the area under the accuracy-rounds
    curve, higher for a run that gets there sooner; less noisy than one evaluation."""
    return float(np.mean([r["top1"] for r in recs if r.get("top1") is not None]))


def mean_acc_time(recs, t_max, points=100, chance=0.1):
    """Mean over ``points`` times in (0, t_max] of the latest evaluated accuracy at that
    simulated time (chance before the first evaluation): the area under the
    accuracy-simulated-time curve up to ``t_max``."""
    out = []
    for t in np.linspace(t_max / points, t_max, points):
        seen = [r["top1"] for r in recs if r.get("top1") is not None and r["sim_time_s"] <= t]
        out.append(seen[-1] if seen else chance)
    return float(np.mean(out))


def paired(a, b):
    """Mean difference a - b over seeds, its standard deviation and the paired t-test p."""
    from scipy import stats
    a, b = np.asarray(a, float), np.asarray(b, float)
    d = a - b
    ok = np.isfinite(d)
    if ok.sum() < 2:
        return float(np.nan), float(np.nan), float(np.nan), int(ok.sum())
    d = d[ok]
    p = float(stats.ttest_rel(a[ok], b[ok]).pvalue) if np.std(d) > 0 else float("nan")
    return float(d.mean()), float(d.std(ddof=1)), p, int(ok.sum())


def _sd(x):
    return float(np.std(x, ddof=1)) if len(x) > 1 else float("nan")


def fmt(x, nd=3):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if isinstance(x, float) and math.isinf(x):
        return "not reached"
    return f"{x:.{nd}f}"


def report(args):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    data = load_all(args)
    lr_note = "" if args.lr is None else f" at learning rate {args.lr:g}"
    body = [SCALE.format(**vars(args), fedat_rounds=args.rounds * 3, lr_note=lr_note)]
    ceiling = ceiling_section(args)
    if ceiling:
        body.append(ceiling)
    names = {s: s for s in STRATEGIES}
    seeds = list(range(args.seeds))
    for alpha in args.alphas:
        # finished runs only; a strategy's table row uses the seeds it finished, a paired
        # comparison the seeds both strategies finished
        done = {s: [k for k in seeds if (alpha, s, k) in data] for s in args.strategies}
        have = [s for s in args.strategies if done[s]]
        if not have:
            continue
        body.append(f"\n## Dirichlet alpha = {alpha}\n")
        body.append(f"Mean ± standard deviation over the seeds (`seeds` column). `mean top1 over "
                    f"rounds`: the mean of every round's evaluation (area under the accuracy-round "
                    f"curve). `mean top1 over time to T`: the mean, over 100 simulated times up to "
                    f"T, of the latest evaluation at that time (area under the accuracy-time "
                    f"curve; chance, 0.1, before the first). Target accuracies: "
                    f"{', '.join(str(t) for t in args.targets)} (top-1 on the 500 test images; one "
                    f"evaluation's standard error is about 0.015). "
                    f"`rounds` / `sim s` to a target: the first evaluated round at or above it "
                    f"(mean over the seeds that reached it; `n` = how many did; FedAT's rounds are tier "
                    f"updates). `T` = "
                    f"{args.budget_frac:g} x FedAvg's mean simulated time for all its rounds.\n")
        fedavg_time = np.mean([data[(alpha, "fedavg", k)][-1]["sim_time_s"] for k in done["fedavg"]]) \
            if "fedavg" in have else None
        budget = args.budget_frac * fedavg_time if fedavg_time else None
        head = ("| strategy | seeds | final top1 | mean top1 over rounds | mean top1 over time to T | best top1 | " +
                " | ".join(f"rounds to {t} | sim s to {t} (n)" for t in args.targets) +
                " | sim s total | client updates | MB moved |")
        body.append(head)
        body.append("|" + "---|" * (head.count("|") - 1))
        for s in have:
            runs = [data[(alpha, s, k)] for k in done[s]]
            fin = [r[-1].get("top1", np.nan) for r in runs]
            best = [max(x.get("top1", 0) for x in r) for r in runs]
            ma = [mean_acc(r) for r in runs]
            mt = [mean_acc_time(r, budget) for r in runs] if budget else [np.nan]
            cells = [str(len(runs)), f"{np.mean(fin):.3f} ± {_sd(fin):.3f}",
                     f"{np.mean(ma):.3f} ± {_sd(ma):.3f}", f"{np.mean(mt):.3f} ± {_sd(mt):.3f}",
                     f"{np.mean(best):.3f}"]
            for t in args.targets:
                rr = [time_to(r, t, "round") for r in runs]
                tt = [time_to(r, t) for r in runs]
                ok = [x for x in tt if np.isfinite(x)]
                okr = [x for x in rr if np.isfinite(x)]
                cells.append(fmt(float(np.mean(okr)), 1) if okr else "not reached")
                cells.append((f"{np.mean(ok):.0f}" if ok else "not reached") + f" ({len(ok)})")
            cells.append(f"{np.mean([r[-1]['sim_time_s'] for r in runs]):.0f}")
            cells.append(f"{np.mean([client_updates(r)[-1] for r in runs]):.0f}")
            cells.append(f"{np.mean([sum(x['bytes_total'] for x in r) for r in runs]) / 1e6:.1f}")
            body.append(f"| {names[s]} | " + " | ".join(cells) + " |")
        # paired comparisons
        body.append("\nPaired over the seeds both finished (difference = first minus second; p: "
                    "paired t-test over n seeds, so only large, consistent differences can show; "
                    "a run that never reached the target is left out of its pair):\n")
        body.append("| claim | comparison | measure | mean diff | sd | p | n |")
        body.append("|---|---|---|---|---|---|---|")
        t0 = args.targets[0]
        if "fedda" in have:
            for o in [x for x in FEDOPT if x in have]:
                ks = [k for k in done["fedda"] if k in done[o]]
                a = [time_to(data[(alpha, "fedda", k)], t0, "round") for k in ks]
                b = [time_to(data[(alpha, o, k)], t0, "round") for k in ks]
                m, sd, p, n = paired(a, b)
                body.append(f"| FedDA converges faster than FedOpt | fedda - {o} | rounds to {t0} "
                            f"| {fmt(m, 1)} | {fmt(sd, 1)} | {fmt(p)} | {n} |")
                a = [mean_acc(data[(alpha, "fedda", k)]) for k in ks]
                b = [mean_acc(data[(alpha, o, k)]) for k in ks]
                m, sd, p, n = paired(a, b)
                body.append(f"| | fedda - {o} | mean top1 over rounds | {fmt(m)} | {fmt(sd)} | {fmt(p)} | {n} |")
                a = [data[(alpha, "fedda", k)][-1]["top1"] for k in ks]
                b = [data[(alpha, o, k)][-1]["top1"] for k in ks]
                m, sd, p, n = paired(a, b)
                body.append(f"| | fedda - {o} | final top1 | {fmt(m)} | {fmt(sd)} | {fmt(p)} | {n} |")
        if "fedhisyn" in have and budget:
            for o in [x for x in ("fedavg", "scaffold", "fedat") if x in have]:
                ks = [k for k in done["fedhisyn"] if k in done[o]]
                a = [time_to(data[(alpha, "fedhisyn", k)], t0) for k in ks]
                b = [time_to(data[(alpha, o, k)], t0) for k in ks]
                m, sd, p, n = paired(a, b)
                body.append(f"| FedHiSyn reaches accuracy sooner under heterogeneity | fedhisyn - {o} "
                            f"| sim s to {t0} | {fmt(m, 0)} | {fmt(sd, 0)} | {fmt(p)} | {n} |")
                a = [mean_acc_time(data[(alpha, "fedhisyn", k)], budget) for k in ks]
                b = [mean_acc_time(data[(alpha, o, k)], budget) for k in ks]
                m, sd, p, n = paired(a, b)
                body.append(f"| | fedhisyn - {o} | mean top1 over time to T | {fmt(m)} | {fmt(sd)} | {fmt(p)} | {n} |")
        # plots
        fig, axes = plt.subplots(1, 2, figsize=(13, 4.8))
        for s in have:
            runs = [data[(alpha, s, k)] for k in done[s]]
            n = min(len(r) for r in runs)
            acc = np.array([[x.get("top1", np.nan) for x in r[:n]] for r in runs])
            upd = np.mean([client_updates(r)[:n] for r in runs], axis=0)
            tim = np.mean([[x["sim_time_s"] for x in r[:n]] for r in runs], axis=0)
            style = "-" if s in ("fedda", "fedhisyn") else "--"
            axes[0].plot(upd, np.nanmean(acc, 0), style, label=s)
            axes[1].plot(tim, np.nanmean(acc, 0), style, label=s)
        axes[0].set_xlabel("client updates (rounds x clients; FedAT: per tier update)")
        axes[1].set_xlabel("simulated seconds (virtual clock)")
        for ax in axes:
            ax.set_ylabel("test top-1 (mean of seeds)")
            ax.grid(alpha=0.3)
        axes[1].legend(fontsize=8, ncol=2)
        fig.suptitle(f"Federated CIFAR-10 ({args.image_size}x{args.image_size}), Dirichlet alpha {alpha}")
        fig.tight_layout()
        png = f"{args.page}_alpha{alpha}.png"
        fig.savefig(os.path.join(DOCS, png), dpi=90)
        plt.close(fig)
        body.append(f"\n![accuracy against client updates and simulated time, alpha {alpha}]({png})\n")
    cost_path = os.path.join(COST_OUT, "cost.json")
    if os.path.isfile(cost_path):
        with open(cost_path) as f:
            cost = json.load(f)
        body.append(COST_HEAD.format(**vars(args)))
        body.append("| run | wall s | CPU s | steps | samples |")
        body.append("|---|---|---|---|---|")
        for kind in ("federated", "centralized"):
            for i, (w, c, st, sa) in enumerate(cost[kind]):
                body.append(f"| {kind} {i} | {w:.1f} | {c:.1f} | {st} | {sa} |")
        fw = [x[0] / x[2] for x in cost["federated"]]
        cw = [x[0] / x[2] for x in cost["centralized"]]
        fc = [x[1] / x[2] for x in cost["federated"]]
        cc = [x[1] / x[2] for x in cost["centralized"]]
        fs = [x[1] / x[3] for x in cost["federated"]]
        cs = [x[1] / x[3] for x in cost["centralized"]]
        body.append(f"\nFederated / centralized, medians over the repeats: CPU seconds per sample "
                    f"{np.median(fs) / np.median(cs):.2f}x, CPU seconds per step "
                    f"{np.median(fc) / np.median(cc):.2f}x, wall seconds per step "
                    f"{np.median(fw) / np.median(cw):.2f}x. (A client's last batch is partial, so "
                    f"the federated side trains fewer samples in as many steps; CPU time is the "
                    f"process's, all threads, and is the measure to read on a machine whose "
                    f"other users change the wall time from minute to minute.)\n")
    page = os.path.join(DOCS, f"{args.page}.md")
    if os.path.isfile(page):  # the hand-written reading of the numbers is kept across reruns
        with open(page, encoding="utf-8") as f:
            old = f.read()
        if READING in old:
            body.append("\n" + old[old.index(READING):].rstrip())
    write_page(page, "Federated CIFAR-10: strategies, heterogeneity, cost",
               " ".join(["python benchmarks/federated_bench.py"] + sys.argv[1:]), "\n".join(body))


READING = "## Reading the results"

SCALE = """## Scale (CPU, shared 2-core machine)
| setting | value |
|---|---|
| data | real CIFAR-10 JPEGs (`$PPZOO_DATA/cifar10`): {train_per_class} training and {test_per_class} test images a class (fixed draw, seed 0), resized to {image_size}x{image_size} |
| model | SmallCNN width {width}, depth 2, no BatchNorm (the configs' model at width {width}) |
| clients | {clients}, Dirichlet(alpha) label split (flwr-datasets semantics, min {min_partition_size} samples: at alpha 0.1 no draw gives all 50 clients 10 of the 3000 images), {per_round} a round |
| local work | {local_epochs} epoch(s), batch 32, the configs' client optimizer{lr_note} |
| rounds | {rounds} (FedAT: {fedat_rounds} tier updates, about the same client updates) ; evaluation every round |
| devices | the configs' three classes: fast 30% (400 samples/s, 20 ms, 50 Mbit/s), mid 40% (100, 50 ms, 20 Mbit/s), slow 30% (25, 200 ms, 5 Mbit/s) |
| strategies | configs/federated/cifar10_<name>.yml as committed; FedDA's full-batch phase: last {fedda_full_batch_rounds} rounds; FedHiSyn at most {fedhisyn_max_steps} ring steps a round (CPU budget; its fast categories would fit more) |
| seeds | {seeds} (seed changes the split, the device assignment, the initial model and the client sampling) |

The CIFAR-10 configs themselves run 100 clients, 32x32 images and 200 rounds; this page is a
CPU-scale cut of them, far from the papers' scale (thousands of rounds on GPUs), so the
accuracies are low and only the relative ordering is read.
"""

COST_HEAD = """
## Simulator cost against centralized training
FedAvg with {cost_clients} IID clients, every client every round, {cost_rounds} rounds, no
evaluation and no device profile, against the engine's `Trainer` on the union of the clients'
data for the same number of SGD steps (batch 32, same model, optimizer and transforms); the two
alternate {cost_repeats} times in one process. A federated step also pays, per client and
round, the weight copy in and out, a fresh optimizer and the per-client batch lists.
"""


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--part", choices=["all", "accuracy", "cost", "ceiling", "digits"], default="all")
    p.add_argument("--report", action="store_true", help="only write the page from finished runs")
    p.add_argument("--strategies", nargs="+", default=STRATEGIES, choices=STRATEGIES)
    p.add_argument("--alphas", nargs="+", type=float, default=[0.1, 0.5])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--per-round", type=int, default=10)
    p.add_argument("--rounds", type=int, default=25)
    p.add_argument("--train-per-class", type=int, default=300)
    p.add_argument("--test-per-class", type=int, default=50)
    p.add_argument("--image-size", type=int, default=16)
    p.add_argument("--min-partition-size", type=int, default=3,
                   help="10 is not reachable for 50 clients at alpha 0.1 on 3000 images")
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--fedda-full-batch-rounds", type=int, default=2)
    p.add_argument("--fedhisyn-max-steps", type=int, default=3)
    p.add_argument("--targets", nargs="+", type=float, default=[0.15, 0.20])
    p.add_argument("--budget-frac", type=float, default=1.0)
    p.add_argument("--digits-hisyn-rounds", type=int, default=30,
                   help="--part digits: the rounds of a FedHiSyn run (a later call with more lengthens it)")
    p.add_argument("--digits-variants", nargs="+", choices=list(DIGITS) + ["ceiling"], default=None,
                   help="--part digits: only these runs (default: all)")
    p.add_argument("--digits-stop-at-compute", action="store_true",
                   help="--part digits: stop a FedHiSyn run at the first even round whose client compute passes "
                        "FedAvg's (the equal-compute comparison only; a later call without it lengthens the runs)")
    p.add_argument("--cost-clients", type=int, default=10)
    p.add_argument("--cost-rounds", type=int, default=2)
    p.add_argument("--cost-repeats", type=int, default=3)
    p.add_argument("--local-epochs", type=int, default=1, help="federated.local.epochs of every client")
    p.add_argument("--lr", type=float, default=None,
                   help="client learning rate (federated.local.optimizer.learning_rate); "
                        "default: each config's (FedDA keeps its Adam-form 0.001 either way)")
    p.add_argument("--out", default=None,
                   help="folder of the accuracy runs (default output/federated_bench); the cost "
                        "comparison stays in output/federated_bench")
    p.add_argument("--page", default="federated",
                   help="docs/benchmarks/<page>.md and <page>_alpha<alpha>.png")
    args = p.parse_args()
    global OUT
    if args.out:
        OUT = os.path.abspath(args.out)
    os.makedirs(OUT, exist_ok=True)
    if args.part == "digits":
        import ppzoo  # noqa: F401  (registries)
        if not args.report:
            digits_runs(args)
        digits_report(args)
        return
    if not args.report:
        import ppzoo  # noqa: F401  (registries)
        lists = subset_lists(args)
        if args.part in ("all", "cost"):
            cost_comparison(args, lists)
        if args.part in ("all", "ceiling"):
            ceiling_runs(args, lists)
        if args.part in ("all", "accuracy"):
            accuracy_runs(args, lists)
    if args.part == "ceiling":  # the other sections' runs may not be here: only the ceiling is written
        put_section(os.path.join(DOCS, f"{args.page}.md"), CEILING, ceiling_section(args), "## Dirichlet")
        return
    report(args)


if __name__ == "__main__":
    main()
