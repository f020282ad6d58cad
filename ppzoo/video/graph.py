"""Skeleton graphs and ST-GCN's spatial partitioning of each joint's neighbourhood."""
import numpy as np

from ..core.errors import ConfigError

# OpenPose BODY_25 (figure skating, FSD-10): 0 nose, 1 neck, 8 mid-hip, ...  The spatial
# partition is centred on the mid-hip (joint 8), as PaddleVideo's ST-GCN and SkeletonNorm.
BODY25_EDGES = [(0, 1), (1, 2), (2, 3), (3, 4), (1, 5), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10),
                (10, 11), (8, 12), (12, 13), (13, 14), (0, 15), (0, 16), (15, 17), (16, 18),
                (14, 19), (19, 20), (14, 21), (11, 22), (22, 23), (11, 24)]
# NTU-RGB+D (Kinect v2), 1-based in the dataset's documentation, stored 0-based here.
NTU_EDGES = [(a - 1, b - 1) for a, b in [
    (1, 2), (2, 21), (3, 21), (4, 3), (5, 21), (6, 5), (7, 6), (8, 7), (9, 21), (10, 9),
    (11, 10), (12, 11), (13, 1), (14, 13), (15, 14), (16, 15), (17, 1), (18, 17), (19, 18),
    (20, 19), (22, 23), (23, 8), (24, 25), (25, 12)]]

LAYOUTS = {
    "fsd10": (25, BODY25_EDGES, 8),
    "openpose_body25": (25, BODY25_EDGES, 8),
    "ntu-rgb+d": (25, NTU_EDGES, 20),
}


def hop_distance(num_node, edges, max_hop=1):
    adj = np.eye(num_node)
    for i, j in edges:
        adj[i, j] = adj[j, i] = 1
    dist = np.full((num_node, num_node), np.inf)
    reach = [np.linalg.matrix_power(adj, d) > 0 for d in range(max_hop + 1)]
    for d in range(max_hop, -1, -1):
        dist[reach[d]] = d
    return dist


def normalize_columns(a):
    deg = a.sum(axis=0)
    inv = np.where(deg > 0, 1.0 / np.maximum(deg, 1e-12), 0.0)
    return a * inv[None, :]


class Graph:
    """Adjacency stack ``A`` (K, V, V) of a layout.

    ``spatial`` (ST-GCN): K = 3 subsets: the joint itself, neighbours nearer the centre
    joint, neighbours farther from it; ``uniform``: K = 1; ``distance``: one per hop.
    ``center`` overrides the layout's centre joint (fsd10: 8 mid-hip, ntu-rgb+d: 20).
    """

    def __init__(self, layout="fsd10", strategy="spatial", max_hop=1, center=None):
        if layout not in LAYOUTS:
            raise ConfigError(f"graph layout {layout!r} is unknown (known: {', '.join(LAYOUTS)})")
        self.num_node, self.edges, self.center = LAYOUTS[layout]
        if center is not None:
            if not 0 <= int(center) < self.num_node:
                raise ConfigError(f"graph center: joint {center} is outside 0..{self.num_node - 1}")
            self.center = int(center)
        self.hop = hop_distance(self.num_node, self.edges, max_hop)
        valid = range(0, max_hop + 1)
        adj = np.zeros((self.num_node, self.num_node))
        for h in valid:
            adj[self.hop == h] = 1
        norm = normalize_columns(adj)
        if strategy == "uniform":
            self.A = norm[None]
        elif strategy == "distance":
            self.A = np.stack([norm * (self.hop == h) for h in valid])
        elif strategy == "spatial":
            stack = []
            c = self.hop[:, self.center]
            for h in valid:
                root, close, far = (np.zeros_like(norm) for _ in range(3))
                for i in range(self.num_node):
                    for j in range(self.num_node):
                        if self.hop[j, i] != h:
                            continue
                        if c[j] == c[i]:
                            root[j, i] = norm[j, i]
                        elif c[j] > c[i]:
                            close[j, i] = norm[j, i]
                        else:
                            far[j, i] = norm[j, i]
                stack += [root] if h == 0 else [root + close, far]
            self.A = np.stack(stack)
        else:
            raise ConfigError(f"graph strategy {strategy!r} is unknown (known: spatial, uniform, distance)")
        self.A = self.A.astype("float32")
