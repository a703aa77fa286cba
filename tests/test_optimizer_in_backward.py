"""AdamW stepped inside the backward pass (`optimizer_in_backward`): the same training as the plain step, with each
gradient freed as soon as it is used."""

import pytest
import torch
from transformers import TrainerCallback

from gradiend_hf import GradiendError, GradiendModel, GradiendTrainer, GradiendTrainingArguments
from gradiend_hf.data import load_builtin
from gradiend_hf.gradients import share_no_memory
from gradiend_hf.optimizer_in_backward import AdamWInBackward, in_backward_blockers

from .tiny_models import tiny_model


@pytest.fixture(scope="module")
def gender():
    return load_builtin("gender-en")


def make_trainer(data, output_dir, family="bert", gradiend_kwargs=None, trainer_kwargs=None, **overrides):
    model, tokenizer = tiny_model(family)
    torch.manual_seed(0)
    gradiend = GradiendModel.from_base_model(model, **(gradiend_kwargs or {}))
    defaults = dict(
        max_steps=6,
        learning_rate=1e-3,
        sentences_per_gradient=4,
        eval_strategy="no",
        eval_on_start=False,
        logging_steps=1,
        report_to="none",
        disable_tqdm=True,
        seed=0,
    )
    defaults.update(overrides)
    args = GradiendTrainingArguments(str(output_dir), **defaults)
    return GradiendTrainer(
        model=gradiend,
        base_model=model,
        processing_class=tokenizer,
        args=args,
        train_dataset=data,
        **(trainer_kwargs or {}),
    )


def torch_optimizer(trainer):
    return getattr(trainer.optimizer, "optimizer", trainer.optimizer)


def trained(data, output_dir, in_backward, **kwargs):
    trainer = make_trainer(data, output_dir, optimizer_in_backward=in_backward, **kwargs)
    trainer.train()
    optimizer = torch_optimizer(trainer)
    assert isinstance(optimizer, AdamWInBackward) == in_backward
    return trainer, trainer.model.state_dict(), optimizer.state_dict()


def assert_same_training(plain, stepped):
    """Weights and AdamW state bit for bit: the same kernel on the same numbers."""
    (_, weights_a, state_a), (_, weights_b, state_b) = plain, stepped
    assert weights_a.keys() == weights_b.keys()
    for key in weights_a:
        assert torch.equal(weights_a[key], weights_b[key]), key
    assert state_a["param_groups"] == state_b["param_groups"]
    assert state_a["state"].keys() == state_b["state"].keys() and len(state_a["state"]) > 0
    for index, moments in state_a["state"].items():
        assert moments.keys() == state_b["state"][index].keys()
        for name, value in moments.items():
            assert torch.equal(value, state_b["state"][index][name]), (index, name)


@pytest.mark.parametrize(
    "case",
    [
        dict(),  # the defaults: fused AdamW, constant learning rate
        dict(optim="adamw_torch", lr_scheduler_type="linear", warmup_steps=2),  # foreach AdamW, a schedule
        dict(gradient_accumulation_steps=2, per_device_train_batch_size=2),  # only the last micro-batch steps
        dict(family="gpt2", gradiend_kwargs=dict(latent_dim=2, activation_decoder="tanh")),  # autograd's loss
        dict(weight_decay=0.0, adam_beta1=0.5),  # other hyper-parameters reach the step
    ],
    ids=["defaults", "foreach-linear-schedule", "accumulation", "latent2-tanh-decoder", "hyper-parameters"],
)
def test_stepping_in_backward_equals_the_plain_step(gender, tmp_path, case):
    plain = trained(gender, tmp_path / "plain", False, **case)
    stepped = trained(gender, tmp_path / "stepped", True, **case)
    assert_same_training(plain, stepped)
    # The weights moved (a test that trained nothing would pass trivially; every decoder weight gets a gradient,
    # an encoder weight of a base parameter without one does not) and the logs agree.
    before = make_trainer(gender, tmp_path / "init", **case).model.state_dict()
    decoder = [k for k in before if k.startswith("decoder.weight")]
    assert decoder and all(not torch.equal(before[k], stepped[1][k]) for k in decoder)
    logged = [(e["loss"], e["grad_norm"]) for e in plain[0].state.log_history if "loss" in e]
    logged_stepped = [(e["loss"], e["grad_norm"]) for e in stepped[0].state.log_history if "loss" in e]
    assert len(logged) == 6
    for (loss_a, norm_a), (loss_b, norm_b) in zip(logged, logged_stepped):
        assert loss_a == loss_b and norm_b == pytest.approx(norm_a, rel=1e-5)


def test_the_default_steps_in_backward_where_it_is_exact(gender, tmp_path):
    trainer = make_trainer(gender, tmp_path / "a", max_steps=1)
    trainer.train()
    assert isinstance(torch_optimizer(trainer), AdamWInBackward)
    # Gradient clipping needs all gradients at once: the default then takes the plain step.
    trainer = make_trainer(gender, tmp_path / "b", max_steps=1, max_grad_norm=1.0)
    trainer.train()
    assert type(torch_optimizer(trainer)) is torch.optim.AdamW


class LiveGradients(TrainerCallback):
    """Counts, at every gradient accumulation during the backward pass, how many GRADIEND gradients exist."""

    def __init__(self):
        self.most = 0

    def watch(self, model):
        params = list(model.parameters())

        def count(_):
            self.most = max(self.most, sum(p.grad is not None for p in params))

        # Registered before the trainer's own hooks (those exist only during its backward passes), so it runs first.
        for param in params:
            param.register_post_accumulate_grad_hook(count)
        return len(params)


@pytest.mark.parametrize("in_backward", [False, True])
def test_gradients_are_freed_as_soon_as_they_are_used(gender, tmp_path, in_backward):
    trainer = make_trainer(gender, tmp_path, max_steps=2, optimizer_in_backward=in_backward)
    live = LiveGradients()
    total = live.watch(trainer.model)
    trainer.train()
    if in_backward:
        assert live.most == 1  # the one whose hook is running; every earlier one has stepped and been freed
        assert all(p.grad is None for p in trainer.model.parameters())
    else:
        assert live.most == total


def test_sign_normalisation_and_evaluations_are_the_same(gender, tmp_path):
    # normalize_threshold=0 flips at every negative correlation, so the flip (which edits the weights and the AdamW
    # first moments) happens during these runs.
    case = dict(max_steps=8, eval_strategy="steps", eval_steps=2, eval_on_start=True, eval_max_rows=16)
    case.update(normalize_threshold=0.0, seed=1, learning_rate=3e-3)
    plain = trained(gender, tmp_path / "plain", False, **case)
    stepped = trained(gender, tmp_path / "stepped", True, **case)
    flips = [e for e in stepped[0].state.log_history if e.get("eval_sign_flipped")]
    assert flips, "the test needs a sign flip during training"
    assert_same_training(plain, stepped)
    evals = [(e["step"], e["eval_correlation"]) for e in plain[0].state.log_history if "eval_correlation" in e]
    assert evals == [
        (e["step"], e["eval_correlation"]) for e in stepped[0].state.log_history if "eval_correlation" in e
    ]


class Interrupt(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == 3:
            control.should_training_stop = True


@pytest.mark.parametrize(("first", "then"), [(True, True), (False, True), (True, False)])
def test_resume_from_a_checkpoint_of_either_kind(gender, tmp_path, first, then):
    common = dict(max_steps=6, save_strategy="steps", save_steps=3, lr_scheduler_type="linear")
    uninterrupted = trained(gender, tmp_path / "whole", False, **common)

    trainer = make_trainer(gender, tmp_path / "run", optimizer_in_backward=first, **common)
    trainer.add_callback(Interrupt())
    trainer.train()
    assert (tmp_path / "run" / "checkpoint-3" / "optimizer.pt").is_file()

    trainer = make_trainer(gender, tmp_path / "run", optimizer_in_backward=then, **common)
    with torch.no_grad():  # a different start: everything must come from the checkpoint
        for param in trainer.model.parameters():
            param.add_(1.0)
    trainer.train(resume_from_checkpoint=str(tmp_path / "run" / "checkpoint-3"))
    assert trainer.state.global_step == 6
    assert isinstance(torch_optimizer(trainer), AdamWInBackward) == then
    resumed = (trainer, trainer.model.state_dict(), torch_optimizer(trainer).state_dict())
    assert_same_training(uninterrupted, resumed)


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        (dict(max_grad_norm=1.0), "max_grad_norm=1"),
        (dict(optim="sgd"), "optim='sgd'"),
    ],
)
def test_settings_that_need_all_gradients_are_refused(gender, tmp_path, overrides, named):
    trainer = make_trainer(gender, tmp_path, max_steps=1, optimizer_in_backward=True, **overrides)
    with pytest.raises(GradiendError, match=r"optimizer_in_backward=True.*" + named.replace("(", r"\(")):
        trainer.train()


def test_an_optimizer_of_ones_own_is_refused(gender, tmp_path):
    model, tokenizer = tiny_model("bert")
    gradiend = GradiendModel.from_base_model(model)
    optimizer = torch.optim.AdamW(gradiend.parameters(), lr=1e-3)
    args = GradiendTrainingArguments(
        str(tmp_path), max_steps=1, eval_strategy="no", report_to="none", optimizer_in_backward=True
    )
    trainer = GradiendTrainer(
        model=gradiend,
        base_model=model,
        processing_class=tokenizer,
        args=args,
        train_dataset=gender,
        optimizers=(optimizer, None),
    )
    with pytest.raises(GradiendError, match="optimizer was passed"):
        trainer.train()


def test_sharding_and_processes_block_it(tmp_path):
    args = GradiendTrainingArguments(str(tmp_path), report_to="none")
    assert in_backward_blockers(args, torch.optim.AdamW, sharded=False, optimizer_given=False) == []
    reasons = in_backward_blockers(args, torch.optim.AdamW, sharded=True, optimizer_given=False)
    assert len(reasons) == 1 and "averaged over processes" in reasons[0]


# ---------------------------------------------------------------------- residuals written over the targets


def random_gradients(gradiend, batch, seed):
    generator = torch.Generator().manual_seed(seed)
    lead = () if batch is None else (batch,)
    return {
        name: torch.randn(*lead, *shape, generator=generator)
        for name, shape in zip(gradiend.param_names, gradiend.param_shapes)
    }


@pytest.mark.parametrize("batch", [None, 3])
def test_overwriting_the_targets_gives_the_same_loss_and_gradients(batch):
    model, _ = tiny_model("bert")
    torch.manual_seed(0)
    gradiend = GradiendModel.from_base_model(model)
    sources, targets = random_gradients(gradiend, batch, 1), random_gradients(gradiend, batch, 2)
    results = []
    for overwrite in (False, True):
        gradiend.zero_grad(set_to_none=True)
        given = {name: value.clone() for name, value in targets.items()}
        loss = gradiend(source_gradients=sources, target_gradients=given, overwrite_targets=overwrite).loss
        loss.backward()
        results.append((loss.detach(), {k: p.grad.clone() for k, p in gradiend.named_parameters()}))
        changed = [not torch.equal(given[name], targets[name]) for name in targets]
        # Overwritten: the targets' memory held the residuals (and then the decoder-bias gradients).
        assert all(changed) if overwrite else not any(changed)
    (loss_a, grads_a), (loss_b, grads_b) = results
    assert torch.equal(loss_a, loss_b)
    for key, value in grads_a.items():
        assert torch.equal(value, grads_b[key]), key


def test_share_no_memory_sees_aliases():
    a, b = torch.zeros(4), torch.zeros(4)
    assert share_no_memory([a, b, a[:0]])  # an empty tensor owns no memory
    assert not share_no_memory([a, b, a.unsqueeze(0)])
    assert not share_no_memory([a, b, b[2:]])


def test_a_source_that_is_also_the_target_is_not_overwritten(gender, tmp_path):
    # source = target = "diff": the encoder reads the very tensors the loss would overwrite, so the trainer does not.
    trainer = make_trainer(gender, tmp_path / "t", max_steps=2, source="diff", target="diff")
    seen = []
    forward = trainer.model.forward

    def watching(*args, **kwargs):
        seen.append(kwargs["overwrite_targets"])
        return forward(*args, **kwargs)

    trainer.model.forward = watching
    trainer.train()
    assert seen == [False, False]
    trainer = make_trainer(gender, tmp_path / "a", max_steps=1)
    forward = trainer.model.forward
    trainer.model.forward = watching
    trainer.train()
    assert seen[-1] is True


@pytest.mark.parametrize(
    "settings",
    [dict(fused=True), dict(foreach=True, amsgrad=True), dict(foreach=False, weight_decay=0.1, maximize=True)],
    ids=["fused", "foreach-amsgrad", "for-loop-maximize"],
)
def test_state_created_before_the_first_backward_equals_torchs(settings):
    """The state made up front (moments as views of one buffer each) steps exactly like the state torch creates."""

    def model_and_loss():
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.Tanh(), torch.nn.Linear(4, 3))
        inputs = torch.randn(7, 5)
        return model, lambda: model(inputs).pow(2).sum()

    plain_model, plain_loss = model_and_loss()
    plain = torch.optim.AdamW(plain_model.parameters(), lr=0.01, **settings)
    model, loss = model_and_loss()
    stepped = AdamWInBackward(model.parameters(), lr=0.01, **settings)
    for _ in range(3):
        plain.zero_grad()
        plain_loss().backward()
        plain.step()
        with stepped.stepping_in_backward():
            loss().backward()
        stepped.step()
    for a, b in zip(plain_model.parameters(), model.parameters()):
        assert torch.equal(a, b)
    for a, b in zip(plain_model.parameters(), model.parameters()):
        assert plain.state[a].keys() == stepped.state[b].keys()
        for name, value in plain.state[a].items():
            assert torch.equal(value, stepped.state[b][name]) and value.dtype == stepped.state[b][name].dtype, name
    # Each moment of every parameter lives in one shared buffer.
    for name in ("exp_avg", "exp_avg_sq"):
        storages = {stepped.state[p][name].untyped_storage().data_ptr() for p in model.parameters()}
        assert len(storages) == 1, name
