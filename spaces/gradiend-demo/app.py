"""Gradio Space of a GRADIEND. Rendered by `gradiend_hf.space.render_space`; run it locally with `python app.py`."""

import os

from gradiend_hf.app import build_demo


GRADIEND_ID = os.environ.get("GRADIEND_ID", "gradiend-hf/smollm2-135m-instruct-gender-en")
EXAMPLES = None  # the example sentences recorded in the GRADIEND's config

demo = build_demo(GRADIEND_ID, examples=EXAMPLES)

if __name__ == "__main__":
    demo.launch()
