"""The Hub Space widget of the `winobias` module (run inside a Space; not needed to load the module)."""

from pathlib import Path

import evaluate
from evaluate.utils import launch_gradio_widget


module = evaluate.load(str(Path(__file__).parent))
launch_gradio_widget(module)
