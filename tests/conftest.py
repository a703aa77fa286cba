import os


# Tests never touch the network: nothing downloads weights or datasets.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

from tests.hub_fixtures import local_hub  # noqa: E402, F401  (a local Hub server for the Hub tests)


# Tiny models gain nothing from intra-op threads, and on a busy 2-core machine spinning threads make each tiny matmul
# tens of times slower.
torch.set_num_threads(1)
