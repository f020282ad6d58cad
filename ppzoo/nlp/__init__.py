"""NLP tasks for fine-tuning pre-trained language models: GLUE-format TSV and SQuAD-format
QA datasets, BERT-family encoders with task heads (PaddleNLP; Hugging Face folders are
converted on load), and the GLUE/SQuAD metrics.  PaddleNLP is imported only when used."""
from . import datasets, infer, losses, metrics, models, pretrained  # noqa: F401
