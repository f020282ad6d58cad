"""What the distillation benchmarks share."""
import os


def export_untrained(tcfg, work, name="teacher_inference"):
    """Export the (seeded, untrained) model of ``tcfg`` with the project's exporter into
    ``work/name``; for measurements where the teacher's cost matters, not its accuracy."""
    import paddle

    from ppzoo.engine.export import build_for_weights, export_from_config
    t = build_for_weights(tcfg)
    weights = os.path.join(work, f"{name}.pdparams")
    paddle.save(t.model.state_dict(), weights)
    tdir = os.path.join(work, name)
    export_from_config(tcfg, weights, tdir)
    return tdir


def run_options(tdir, iters, extra=()):
    """Options every timed throughput run shares: ``iters`` iterations, eval and checkpoint
    past the end, one Paddle Inference thread, 0.5 Ray CPU per teacher worker."""
    return [f"distill.teacher_dir={tdir}", f"train.iters={iters}",
            f"train.eval_interval={10 * iters}", f"train.checkpoint_interval={10 * iters}",
            "distill.cpu_threads=1", "distill.request_size=16", "distill.prefetch=4",
            "distill.worker_cpus=0.5", *extra]


def run_config(edl, online, opts, kind, replicas=0, name="run"):
    """The config of one throughput run: ``alone`` (the student with plain cross-entropy,
    no teacher), ``online`` (config ``online``) or ``edl`` with ``replicas`` workers
    (config ``edl``)."""
    from ppzoo.core.config import load_config
    if kind == "alone":
        cfg = load_config(edl, [*opts, "trainer.type=Trainer", f"name={name}"])
        cfg.pop("distill")
        cfg["loss"] = {"type": "CrossEntropyLoss"}
        return cfg
    if kind == "online":
        return load_config(online, [*opts, f"name={name}"])
    r = int(replicas)
    return load_config(edl, [*opts, f"distill.num_workers={r}", f"distill.min_workers={r}",
                             f"distill.max_in_flight={2 * r + 2}", f"name={name}"])
