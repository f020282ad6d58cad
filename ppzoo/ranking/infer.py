"""The ``ranking`` inference task: an SVMlight/LETOR file -> per query, its documents in
ranked order with their scores.

``reader`` in ``deploy.yml`` holds how the file is read (``num_features``,
``normalize``, ``query_file``: ``auto`` reads ``<file>.query`` for files without
``qid:``); all queries of a file go through the predictor together, padded to the longest.
"""
import numpy as np

from ..core.errors import DataError
from ..engine.predictor import INFER_TASKS, InferTask
from .data import normalize_features, pad_queries, read_ltr_file
from .metrics import rank_order


@INFER_TASKS.register(name="ranking")
class RankingTask(InferTask):
    extensions = (".txt", ".svm", ".svmlight", ".letor", ".train", ".test", ".vali")

    @classmethod
    def deploy_fields(cls, cfg, dataset, sample):
        reader = {"num_features": getattr(dataset, "num_features", None),
                  "normalize": getattr(dataset, "normalize", "none"), "query_file": "auto"}
        return {"reader": reader, "postprocess": {"topk": None}}

    def read(self, path):
        queries = read_ltr_file(path, self.reader.get("query_file", "auto"),
                                self.reader.get("num_features"))
        mode = self.reader.get("normalize", "none")
        return {"queries": queries,
                "samples": [{"features": normalize_features(q.features, mode)} for q in queries]}

    def preprocess(self, sample):
        return sample

    def collate(self, samples):
        flat = [q for s in samples for q in s["samples"]]
        batch = pad_queries(flat)
        return [batch[name] for name in self.input_names]

    def postprocess(self, outputs, samples):
        scores = np.asarray(outputs[0])
        if scores.ndim != 2:
            raise DataError(f"ranking expects outputs [queries, documents], got {list(scores.shape)}")
        topk = self.post.get("topk")
        results, row = [], 0
        for s in samples:
            per_query = []
            for q in s["queries"]:
                sc = scores[row, :len(q)].astype(np.float64)
                row += 1
                order = rank_order(sc)[:topk] if topk else rank_order(sc)
                per_query.append({"qid": q.qid,
                                  "ranking": [{"doc": int(i), "line": int(q.lines[i]),
                                               "score": round(float(sc[i]), 6)} for i in order]})
            results.append({"queries": per_query})
        return results

    def format(self, result):
        n = sum(len(q["ranking"]) for q in result["queries"])
        return f"{result['file']}: {len(result['queries'])} queries, {n} documents ranked"
