import torch

from gradiend_hf import GradiendModel
from gradiend_hf.rewrite import RewriteSession

from .tiny_models import tiny_model


def test_rewrite_copy_adds_the_update_and_leaves_the_base():
    model, _ = tiny_model("llama")
    gradiend = GradiendModel.from_base_model(model, params=["*.layers.1.*", "model.embed_tokens.weight"])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rewritten = gradiend.rewrite(model, feature_factor=1.0, learning_rate=0.5)
    update = gradiend.update(1.0, 0.5)
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name])
    for name, param in rewritten.named_parameters():
        expected = before[name] + update[name] if name in update else before[name]
        torch.testing.assert_close(param.detach(), expected)
    # Tied LM head follows the embedding, as in the gradient the GRADIEND saw.
    assert rewritten.lm_head.weight.data_ptr() == rewritten.model.embed_tokens.weight.data_ptr()


def test_session_restores_bit_identically_after_many_grid_points():
    model, _ = tiny_model("gpt2")
    gradiend = GradiendModel.from_base_model(model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with RewriteSession(model, gradiend) as session:
        for lr in (100.0, 1e-3, 0.37, -5.0):
            session.apply(-1.0, lr)
            name = gradiend.param_names[3]
            expected = before[name] + gradiend.update(-1.0, lr)[name]
            torch.testing.assert_close(model.get_parameter(name).detach(), expected)
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name]), name
