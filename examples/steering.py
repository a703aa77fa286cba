"""Steer a language model with a GRADIEND at run time.

Exports steering adapters once, loads them onto the base model, and then changes the feature strength (the feature
factor `ff`) between calls, without reloading or copying weights; `disable()` gives the base model back bit for bit.

The model here is a tiny Llama built from a config and the GRADIEND is untrained with a random decoder, so the example
runs offline in seconds. With a trained GRADIEND use `GradiendModel.from_pretrained(...)` and its base model.

Run: `python examples/steering.py`
"""

from __future__ import annotations

import tempfile

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from gradiend_hf import GradiendModel
from gradiend_hf.export import export_steering, load_steerable


LEARNING_RATE = 1e-2
FEATURE_FACTORS = (-2.0, -1.0, 0.0, 1.0, 2.0)


def main() -> None:
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=128,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=128,
        tie_word_embeddings=True,
    )
    base = LlamaForCausalLM(config).eval()
    gradiend = GradiendModel.from_base_model(base, params=["model.layers.1.*", "model.embed_tokens.weight"])
    with torch.no_grad():  # stand-in for a trained decoder
        for param in gradiend.decoder.parameters():
            param.normal_()

    input_ids = torch.randint(0, config.vocab_size, (1, 16))
    with torch.no_grad():
        base_logits = base(input_ids).logits
        # The dense rewrite for comparison (a copy per ff; steering itself never copies the model).
        dense = {ff: gradiend.rewrite(base, ff, LEARNING_RATE)(input_ids).logits for ff in FEATURE_FACTORS}

    with tempfile.TemporaryDirectory() as folder:
        report = export_steering(gradiend, base, LEARNING_RATE, folder, rank="full")
        print(report)
        steer = load_steerable(base, folder)

        print(f"{'ff':>5} | {'mean |Δlogit| vs base':>22} | {'max |steered − dense rewrite|':>30}")
        with torch.no_grad():
            for ff in FEATURE_FACTORS:
                steer.set_strength(ff)
                logits = steer(input_ids).logits
                shift = (logits - base_logits).abs().mean().item()
                error = (logits - dense[ff]).abs().max().item()
                print(f"{ff:>5} | {shift:>22.4f} | {error:>30.2e}")

            steer.set_strength(1.0)
            with steer.disable():
                assert torch.equal(steer(input_ids).logits, base_logits)
            print("disable(): identical to the base model")

        restored = steer.unload()
        with torch.no_grad():
            assert torch.equal(restored(input_ids).logits, base_logits)
        assert restored.lm_head.weight is restored.model.embed_tokens.weight
        print("unload(): plain base model, weights and embedding tie unchanged")


if __name__ == "__main__":
    main()
