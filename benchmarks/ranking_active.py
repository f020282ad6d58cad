"""Active learning to rank (arXiv 2205.10137) and the supervised rankers, measured.

Parts (``--part``, default all):

* ``supervised``: every loss (MLP ranker) plus the linear and listwise rankers with
  LambdaRank, trained on all 201 train queries of the lambdarank data; NDCG@1/5/10 and
  DCG@4 of the final model on the test split, over ``--sup-seeds`` seeds; a random
  ranking for reference.
* ``real``: the active-selection loop (configs/ranking/active_*.yml) on the lambdarank
  data: 20 random queries, +20 a round up to 120; DCG@4 and NDCG@10 on the test split per
  round, ``--seeds`` seeds (the seed sets the initial queries and the ranker's init, so
  strategies are paired by seed); relative DCG@4 over random at equal budget with a
  paired t-test over seeds.
* ``synthetic``: the same loop on synthetic LETOR data with Zipf query frequencies
  (``ppzoo.ranking.synthetic``), and which queries each criterion picks (frequency
  percentile in the pool, 0 = rarest .. 1 = most frequent, documents per query).

Runs are written under ``--work`` (default ``output/bench_ranking``) and read back from
their own ``summary.json`` / ``active_state.json`` / ``metrics.jsonl``; a finished run is
not run again and an interrupted one resumes, so the script can be stopped and restarted.
Results: ``docs/benchmarks/ranking_*.md``, ``.png`` and ``ranking_runs.jsonl``.
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import ROOT, last_record, write_page  # noqa: E402
from ppzoo.core.paths import data_root  # noqa: E402

import ppzoo  # noqa: E402,F401
from ppzoo.core import load_config  # noqa: E402
from ppzoo.engine.trainer import build_trainer  # noqa: E402

STRATEGIES = {  # name -> config; each RE row names the form it measures
    "random": "active_random.yml",
    "RE": "active_re.yml",                              # rank_disagreement, the default
    "RE-consensus": "active_re_consensus.yml",          # consensus_entropy, the former default
    "RE-consensus-norm": "active_re_norm.yml",          # consensus_entropy / log D
    "RE-vote": "active_re_vote.yml",                    # top_vote
    "PV": "active_pv.yml",
    "RE+PV": "active_repv.yml",                         # rank_disagreement + PV, the default
    "RE-consensus+PV": "active_repv_consensus.yml",     # consensus_entropy + PV, the former default
}
#: what each row measures (the page's legend)
LEGEND = {
    "random": "20 queries drawn at random each round (the floor every strategy is compared with)",
    "RE": "`RankingEntropy(form: rank_disagreement)`, **the default RE**: per document, the entropy "
          "of the rank positions the checkpoints give it, averaged over the query's documents "
          "(0 when the committee ranks alike)",
    "RE-consensus": "`RankingEntropy(form: consensus_entropy)`: entropy of the committee's mean "
                    "top-one softmax (the averaged model's uncertainty, grows like log D; the RE "
                    "default before rank_disagreement, the page's former `RE` row)",
    "RE-consensus-norm": "`consensus_entropy` divided by log D (the page's former `RE-norm` row)",
    "RE-vote": "`RankingEntropy(form: top_vote)`: entropy of the checkpoints' votes for the top document",
    "PV": "`PredictionVariance`: variance of the current model's scores over the query's documents",
    "RE+PV": "`REPV` with the default RE (rank_disagreement) + alpha PV, alpha 1, each term "
             "min-max scaled over the candidates, **the default combination**",
    "RE-consensus+PV": "`REPV` with consensus_entropy as RE (the combination's former default, "
                       "the page's former `RE+PV` row)",
}
SUPERVISED = {
    "MLP, pointwise regression": "mlp_regression.yml",
    "MLP, graded cross entropy": "mlp_gradedce.yml",
    "MLP, RankNet": "mlp_ranknet.yml",
    "MLP, ListNet": "mlp_listnet.yml",
    "MLP, LambdaRank": "mlp_lambdarank.yml",
    "linear, LambdaRank": "linear_lambdarank.yml",
    "listwise, LambdaRank": "listwise_lambdarank.yml",
}
CFG_DIR = os.path.join(ROOT, "configs", "ranking")
#: text of a page from this line on is kept when the page is rewritten
READING_MARKER = "<!-- reading: kept when the tables above are rewritten -->"
DOCS = os.path.join(ROOT, "docs", "benchmarks")


def quiet():
    import logging
    logging.disable(logging.INFO)


def recorded_runs(tag):
    """Runs recorded in ``ranking_<tag>_runs.jsonl`` by an earlier command ({(strategy, seed):
    state}), so a strategy whose config is unchanged is read back instead of trained again."""
    path = os.path.join(DOCS, f"ranking_{tag}_runs.jsonl")
    out = {}
    if os.path.isfile(path):
        for r in map(json.loads, open(path, encoding="utf-8")):
            keys = r["aubc"].keys()
            out[(r["strategy"], r["seed"])] = {
                "history": r["rounds"], "run_date": r.get("run_date"),
                "summary": {"aubc": r["aubc"], "final": {k: r["rounds"][-1][k] for k in keys}}}
    return out


def today():
    import time
    return time.strftime("%Y-%m-%d")


def same_run(a, b, rtol=1e-3):
    """Two runs of one strategy and seed agree: the same queries picked in every round and
    test metrics within ``rtol``; returns (agree, largest relative metric difference)."""
    ha, hb = a["history"], b["history"]
    if len(ha) != len(hb) or any(x["selected"] != y["selected"] for x, y in zip(ha, hb)):
        return False, float("inf")
    worst = max(abs(x[k] - y[k]) / max(abs(y[k]), 1e-12) for x, y in zip(ha, hb) for k in ("DCG@4", "NDCG@10"))
    return worst <= rtol, worst


def run_active(cfg_file, seed, work, opts=(), recorded=None):
    summary = os.path.join(work, "summary.json")
    if recorded is not None and not os.path.isdir(work):
        return recorded  # an earlier command's run of this config and seed
    if not os.path.isfile(summary):
        cfg = load_config(os.path.join(CFG_DIR, cfg_file), [f"seed={seed}", *opts])
        resume = os.path.isdir(work)  # a run cut off, in round 0 or later
        build_trainer(cfg, work_dir=work, resume=resume).train()
    with open(os.path.join(work, "active_state.json"), encoding="utf-8") as f:
        return json.load(f)


def mean_sd(v):
    v = np.asarray(v, np.float64)
    return v.mean(), (v.std(ddof=1) if len(v) > 1 else 0.0)


def paired(a, b):
    """Mean relative gain of a over b (per seed), its sample std, and the paired t-test p."""
    from scipy import stats
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    rel = (a - b) / b
    p = float(stats.ttest_rel(a, b).pvalue) if len(a) > 1 and np.any(a != b) else float("nan")
    return rel.mean(), (rel.std(ddof=1) if len(rel) > 1 else 0.0), p


# --------------------------------------------------------------------------- active
def active_part(tag, seeds, work_root, opts=(), strategies=STRATEGIES, reuse=False):
    """Every strategy at seeds 0..seeds-1.  With ``reuse``, a run recorded by an earlier command
    is read back unless its work folder exists; where both exist they must agree (a check that
    the recorded runs still stand for the code)."""
    runs = {}
    recorded = recorded_runs(tag) if reuse else {}
    for seed in range(seeds):  # seed-major: a cut-off command leaves every strategy at its first seeds
        for name, cfg in strategies.items():
            work = os.path.join(work_root, tag, name.replace("+", "p"), f"seed{seed}")
            rec = recorded.get((name, seed))
            state = run_active(cfg, seed, work, opts, rec)
            if rec is not None and state is not rec and rec.get("run_date") != state.get("run_date", today()):
                agree, worst = same_run(state, rec)
                print(f"[{tag}] {name} seed {seed}: rerun {'agrees with' if agree else 'DIFFERS FROM'} "
                      f"the recorded run of {rec.get('run_date')} (same picks; largest relative "
                      f"difference of DCG@4/NDCG@10 in a round {worst:.2e})", flush=True)
                if not agree:
                    sys.exit(f"{name} seed {seed} no longer reproduces its recorded run; rerun "
                             f"without --reuse-recorded")
            runs[(name, seed)] = state
            h = state["history"]
            print(f"[{tag}] {name} seed {seed}: DCG@4 " +
                  " ".join(f"{r['DCG@4']:.3f}" for r in h), flush=True)
    return runs


def curves_table(runs, seeds, strategies):
    names = list(strategies)
    budgets = [r["labelled"] for r in runs[(names[0], 0)]["history"]]
    lines = ["| labelled queries | " + " | ".join(f"{n} DCG@4" for n in names) + " | " +
             " | ".join(f"{n} NDCG@10" for n in names) + " |",
             "|---" * (1 + 2 * len(names)) + "|"]
    for i, b in enumerate(budgets):
        cells = []
        for metric in ("DCG@4", "NDCG@10"):
            for n in names:
                m, s = mean_sd([runs[(n, sd)]["history"][i][metric] for sd in range(seeds)])
                cells.append(f"{m:.3f} ± {s:.3f}" if metric == "DCG@4" else f"{m:.4f} ± {s:.4f}")
        lines.append(f"| {b} | " + " | ".join(cells) + " |")
    return budgets, "\n".join(lines)


def relative_table(runs, seeds, strategies, budgets):
    names = [n for n in strategies if n != "random"]
    lines = ["| strategy | " + " | ".join(f"{b} queries" for b in budgets[1:]) +
             " | area under the DCG@4 budget curve |", "|---" * (len(budgets) + 1) + "|"]
    for n in names:
        cells = []
        for i in range(1, len(budgets)):
            a = [runs[(n, s)]["history"][i]["DCG@4"] for s in range(seeds)]
            b = [runs[("random", s)]["history"][i]["DCG@4"] for s in range(seeds)]
            m, sd, p = paired(a, b)
            cells.append(f"{100 * m:+.2f}% ± {100 * sd:.2f} (p={p:.2f})")
        a = [runs[(n, s)]["summary"]["aubc"]["DCG@4"] for s in range(seeds)]
        b = [runs[("random", s)]["summary"]["aubc"]["DCG@4"] for s in range(seeds)]
        m, sd, p = paired(a, b)
        cells.append(f"{100 * m:+.2f}% ± {100 * sd:.2f} (p={p:.2f})")
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_curves(runs, seeds, strategies, budgets, path, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, metric in zip(axes, ("DCG@4", "NDCG@10")):
        for k, n in enumerate(strategies):
            vals = np.array([[r[metric] for r in runs[(n, s)]["history"]] for s in range(seeds)])
            m, sd = vals.mean(0), vals.std(0, ddof=1) if seeds > 1 else np.zeros(len(budgets))
            x = np.asarray(budgets) + (k - len(strategies) / 2) * 0.6
            ax.errorbar(x, m, yerr=sd / np.sqrt(seeds), marker="o", capsize=3, label=n)
        ax.set_xlabel("labelled queries")
        ax.set_ylabel(f"test {metric}")
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.suptitle(f"{title} (mean over {seeds} seeds, bars: standard error)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def real_part(args):
    runs = active_part("real", args.seeds, args.work, reuse=args.reuse_recorded)
    budgets, curves = curves_table(runs, args.seeds, STRATEGIES)
    rel = relative_table(runs, args.seeds, STRATEGIES, budgets)
    aubc = ["| strategy | area under DCG@4 curve | area under NDCG@10 curve | final DCG@4 | final NDCG@10 |",
            "|---|---|---|---|---|"]
    for n in STRATEGIES:
        a = [runs[(n, s)]["summary"]["aubc"] for s in range(args.seeds)]
        f = [runs[(n, s)]["summary"]["final"] for s in range(args.seeds)]
        aubc.append(f"| {n} | " + " | ".join(
            "{:.4f} ± {:.4f}".format(*mean_sd([x[k] for x in src]))
            for src, k in ((a, "DCG@4"), (a, "NDCG@10"), (f, "DCG@4"), (f, "NDCG@10"))) + " |")
    aubc.append("\n### Which queries each strategy picked (rounds 1-5, all seeds)\n")
    aubc.append(picked_table(runs, args.seeds, *_real_pool_stats()))
    plot_curves(runs, args.seeds, STRATEGIES, budgets, os.path.join(DOCS, "ranking_active.png"),
                "Active learning to rank, lambdarank data")
    dump_runs("real", runs)
    return budgets, curves, rel, "\n".join(aubc)


def _real_pool_stats():
    from ppzoo.ranking.data import read_ltr_file
    pool = read_ltr_file(os.path.join(data_root(),
                                      "ltr", "lambdarank", "rank.train"), num_features=300)
    return (np.array([len(q) for q in pool]), np.array([q.labels.var() for q in pool]),
            np.array([q.labels.mean() for q in pool]))


def picked_table(runs, seeds, ndocs, label_var, label_mean):
    """Documents, grade variance and mean grade of the queries each strategy chose (the
    oracle's grades, looked at only after the runs)."""
    lines = ["| strategy | documents per picked query | grade variance within the query | mean grade |",
             "|---|---|---|---|",
             f"| (pool) | {ndocs.mean():.1f} | {label_var.mean():.3f} | {label_mean.mean():.3f} |"]
    for n in STRATEGIES:
        sel = [u for s in range(seeds) for r in runs[(n, s)]["history"][1:] for u in r["selected"]]
        lines.append(f"| {n} | {ndocs[sel].mean():.1f} | {label_var[sel].mean():.3f} | "
                     f"{label_mean[sel].mean():.3f} |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- synthetic
def make_synthetic(folder, seed=0):
    from ppzoo.ranking.data import write_ltr_file
    from ppzoo.ranking.synthetic import make_queries
    os.makedirs(folder, exist_ok=True)
    train, freq = make_queries(num_queries=200, seed=seed)
    test, _ = make_queries(num_queries=100, seed=seed + 1000)
    write_ltr_file(os.path.join(folder, "train.txt"), train)
    write_ltr_file(os.path.join(folder, "test.txt"), test)
    return train, freq


def synthetic_part(args):
    folder = os.path.join(args.work, "synthetic_data")
    train, freq = make_synthetic(folder)
    # frequency percentile: 0 = the rarest query of the pool .. 1 = the most frequent
    pos = np.argsort(np.argsort(freq, kind="stable"), kind="stable") / (len(freq) - 1)
    ndocs = np.array([len(q) for q in train])
    opts = ["model.num_features=20", "train_dataset.num_features=20", "val_dataset.num_features=20",
            f"train_dataset.path={folder}/train.txt", f"val_dataset.path={folder}/test.txt",
            "model.dropout=0.0"]
    runs = active_part("synthetic", args.syn_seeds, args.work, opts)
    budgets, curves = curves_table(runs, args.syn_seeds, STRATEGIES)
    rel = relative_table(runs, args.syn_seeds, STRATEGIES, budgets)
    picks = ["| strategy | mean frequency percentile of picked queries | share from the rarest third | "
             "share from the most frequent third | documents per picked query |",
             "|---|---|---|---|---|",
             f"| (pool) | {pos.mean():.3f} | {np.mean(pos < 1 / 3):.3f} | {np.mean(pos > 2 / 3):.3f} "
             f"| {ndocs.mean():.1f} |"]
    for n in STRATEGIES:
        sel = [u for s in range(args.syn_seeds) for r in runs[(n, s)]["history"][1:] for u in r["selected"]]
        p = pos[sel]
        picks.append(f"| {n} | {p.mean():.3f} | {np.mean(p < 1 / 3):.3f} | {np.mean(p > 2 / 3):.3f} "
                     f"| {ndocs[sel].mean():.1f} |")
    plot_curves(runs, args.syn_seeds, STRATEGIES, budgets, os.path.join(DOCS, "ranking_synthetic.png"),
                "Active learning to rank, synthetic data with query frequencies")
    dump_runs("synthetic", runs)
    return budgets, curves, rel, "\n".join(picks)


# --------------------------------------------------------------------------- supervised
def supervised_part(args):
    from ppzoo.ranking.data import read_ltr_file
    from ppzoo.ranking.metrics import RankingMetrics
    rows = ["| ranker, loss | NDCG@1 | NDCG@5 | NDCG@10 | DCG@4 | seconds per run |",
            "|---|---|---|---|---|---|"]
    results = {}
    for name, cfg_file in SUPERVISED.items():
        vals, secs = [], []
        for seed in range(args.sup_seeds):
            work = os.path.join(args.work, "supervised", os.path.splitext(cfg_file)[0], f"seed{seed}")
            cfg = load_config(os.path.join(CFG_DIR, cfg_file), [f"seed={seed}"])
            trainer = build_trainer(cfg, work_dir=work, build_train=False)
            total = int(cfg["train"]["epochs"]) * int(np.ceil(201 / int(cfg["train"]["batch_size"])))
            rec = last_record(work, "val", at_iter=total)
            if rec is None:
                import time
                t0 = time.time()
                trainer = build_trainer(cfg, work_dir=work)
                trainer.train()
                with open(os.path.join(work, "seconds.txt"), "w") as f:
                    f.write(f"{time.time() - t0:.1f}\n")
                rec = last_record(work, "val", at_iter=total)
            vals.append(rec)
            with open(os.path.join(work, "seconds.txt")) as f:
                secs.append(float(f.read()))
        results[name] = vals
        cells = ["{:.4f} ± {:.4f}".format(*mean_sd([v[k] for v in vals]))
                 for k in ("NDCG@1", "NDCG@5", "NDCG@10", "DCG@4")]
        rows.append(f"| {name} | " + " | ".join(cells) + f" | {np.mean(secs):.0f} |")
        print(rows[-1], flush=True)
    test = read_ltr_file(os.path.join(data_root(),
                                      "ltr", "lambdarank", "rank.test"))
    rand = []
    for seed in range(100):
        rng = np.random.default_rng(seed)
        m = RankingMetrics()
        for q in test:
            m.update(rng.random(len(q))[None], q.labels[None].astype(np.float32))
        rand.append(m.accumulate())
    cells = ["{:.4f} ± {:.4f}".format(*mean_sd([v[k] for v in rand]))
             for k in ("NDCG@1", "NDCG@5", "NDCG@10", "DCG@4")]
    rows.append("| random scores (100 draws) | " + " | ".join(cells) + " | - |")
    return "\n".join(rows)


def dump_runs(tag, runs):
    """Write every run to ``ranking_<tag>_runs.jsonl``, keeping the recorded runs this command
    did not use (other strategies or more seeds)."""
    import time
    path = os.path.join(DOCS, f"ranking_{tag}_runs.jsonl")
    rows = {}
    if os.path.isfile(path):
        for r in map(json.loads, open(path, encoding="utf-8")):
            rows[(r["strategy"], r["seed"])] = r
    for (name, seed), st in runs.items():
        rows[(name, seed)] = {"strategy": name, "seed": seed,
                              "rounds": [{k: v for k, v in r.items() if k != "mode"} for r in st["history"]],
                              "aubc": st["summary"]["aubc"],
                              "run_date": st.get("run_date") or time.strftime("%Y-%m-%d")}
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        for key in sorted(rows):
            f.write(json.dumps(rows[key]) + "\n")
    os.replace(path + ".tmp", path)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", choices=["all", "supervised", "real", "synthetic"], default="all")
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--syn-seeds", type=int, default=5)
    p.add_argument("--sup-seeds", type=int, default=3)
    p.add_argument("--work", default=os.path.join(ROOT, "output", "bench_ranking"))
    p.add_argument("--reuse-recorded", action="store_true",
                   help="real part: read runs recorded in docs/benchmarks/ranking_real_runs.jsonl back "
                        "instead of training them (a run whose work folder exists is trained and must "
                        "equal its record)")
    args = p.parse_args()
    quiet()
    cmd = "python benchmarks/ranking_active.py " + " ".join(sys.argv[1:])
    if args.part in ("all", "supervised"):
        table = supervised_part(args)
        write_page(os.path.join(DOCS, "ranking_supervised.md"),
                   "Supervised rankers on the lambdarank data", cmd,
                   f"All 201 train queries, 40 epochs of 8 queries a batch (1040 steps), Adam 1e-3; "
                   f"the final model (not the best evaluation) on the 50 test queries; mean ± sample "
                   f"std over {args.sup_seeds} seeds. Reference: LightGBM LambdaRank reaches "
                   f"NDCG@10 about 0.75 on this split.\n\n{table}\n")
    for part, fn, page in (("real", real_part, "ranking_active.md"),
                           ("synthetic", synthetic_part, "ranking_synthetic.md")):
        if args.part not in ("all", part):
            continue
        budgets, curves, rel, extra = fn(args)
        seeds = args.seeds if part == "real" else args.syn_seeds
        legend = "| row | strategy (`configs/ranking/`) and what it measures |\n|---|---|\n" + "\n".join(
            f"| {n} | `{STRATEGIES[n]}`: {LEGEND[n]} |" for n in STRATEGIES)
        kept = ""  # a written reading below READING_MARKER survives a rewrite of the tables
        if os.path.isfile(os.path.join(DOCS, page)):
            text = open(os.path.join(DOCS, page), encoding="utf-8").read()
            if READING_MARKER in text:
                kept = "\n" + text[text.index(READING_MARKER):]
        write_page(os.path.join(DOCS, page), f"Active learning to rank: {part} data", cmd,
                   f"Mean ± sample std over {seeds} seeds of the final model of each round on the "
                   f"test split.\n\n{legend}\n\n## Budget curves\n\n{curves}\n\n![curves]({os.path.splitext(page)[0]}.png)\n\n"
                   f"## Relative DCG@4 over random at equal budget\n\nMean over seeds of the per-seed "
                   f"relative difference, its sample std, and the paired t-test p-value (the paper "
                   f"reports +1.38% for RE + alpha * PV). p: two-sided paired t-test over the seeds, "
                   f"not corrected for the {(len(STRATEGIES) - 1) * len(budgets)} comparisons of the table.\n\n{rel}\n\n"
                   f"## More\n\n{extra}\n\nEvery run is stored under `--work`; the script reads "
                   f"finished runs back instead of training them again.\n{kept}")


if __name__ == "__main__":
    main()
