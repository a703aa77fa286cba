"""Comparing GRADIENDs (`gradiend_hf/comparison.py`), its figures and `examples/compare_features.py`."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from gradiend_hf import GradiendConfig, GradiendModel
from gradiend_hf.comparison import (
    GradiendComparisonError,
    cross_encoding_matrix,
    parameter_location,
    similarity_matrix,
    topk_locations,
    topk_sets,
)
from gradiend_hf.comparison_plots import (
    plot_cross_encoding_heatmap,
    plot_similarity_heatmap,
    plot_topk_locations,
    plot_topk_venn,
    venn_regions,
)
from gradiend_hf.data import load_builtin
from gradiend_hf.evaluation.rows import sample_by_class
from gradiend_hf.gradients import encode_rows_loop
from gradiend_hf.objectives import get_objective
from gradiend_hf.training_data import feature_classes_of

from .tiny_models import tiny_model


ROOT = Path(__file__).resolve().parents[1]
PNG = b"\x89PNG\r\n\x1a\n"
NAMES = ["model.layers.0.mlp.up_proj.weight", "model.layers.1.self_attn.q_proj.weight", "model.norm.weight"]
SHAPES = [[4, 5], [3, 2], [6]]  # 20 + 6 + 6 = 32 entries


def hand_gradiend(encoder, decoder, bias=None, names=NAMES, shapes=SHAPES, base="base/model"):
    """A GRADIEND whose flat encoder row, decoder column and decoder bias are the given vectors."""
    config = GradiendConfig(base_model_name_or_path=base, param_names=names, param_shapes=shapes)
    gradiend = GradiendModel(config)
    encoder, decoder = torch.as_tensor(encoder).float(), torch.as_tensor(decoder).float()
    bias = torch.zeros_like(decoder) if bias is None else torch.as_tensor(bias).float()
    start = 0
    with torch.no_grad():
        for key, shape in zip(gradiend.param_keys, shapes):
            end = start + int(np.prod(shape))
            gradiend.encoder.weight[key].copy_(encoder[start:end][None])
            gradiend.decoder.weight[key].copy_(decoder[start:end][:, None])
            gradiend.decoder.bias[key].copy_(bias[start:end])
            start = end
    return gradiend


def cosine(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(a @ b / np.sqrt((a @ a) * (b @ b)))


def with_top(positions, n=32, seed=0):
    """A decoder column whose largest entries (100, 99, …) sit at `positions`; the rest is small noise."""
    values = np.random.default_rng(seed).uniform(-1, 1, n)
    for rank, position in enumerate(positions):
        values[position] = (100 - rank) * (-1) ** rank
    return values


@pytest.fixture(scope="module")
def vectors():
    rng = np.random.default_rng(0)
    return {name: rng.normal(size=32) for name in ("a", "b", "c")}


# --------------------------------------------------------------------------- similarity matrices


def test_cosine_matches_the_flat_computation(vectors):
    v = vectors
    models = {
        "A": hand_gradiend(v["a"], v["b"]),
        "B": hand_gradiend(2 * v["a"] + v["c"], v["c"]),
        "minusA": hand_gradiend(-v["a"], -v["b"]),
    }
    signed = similarity_matrix(models, "cosine_signed")
    assert list(signed.index) == list(signed.columns) == ["A", "B", "minusA"]
    assert signed.attrs["part"] == "encoder-weight"
    expected = cosine(v["a"], 2 * v["a"] + v["c"])
    assert signed.loc["A", "B"] == pytest.approx(expected) and signed.loc["B", "A"] == pytest.approx(expected)
    assert signed.loc["A", "minusA"] == pytest.approx(-1.0)
    assert np.allclose(np.diag(signed), 1.0)
    absolute = similarity_matrix(models, "cosine")
    assert absolute.loc["A", "minusA"] == pytest.approx(1.0)
    assert absolute.loc["B", "minusA"] == pytest.approx(abs(expected))
    decoder = similarity_matrix(models, "cosine_signed", part="decoder-weight")
    assert decoder.loc["A", "B"] == pytest.approx(cosine(v["b"], v["c"]))
    bias = hand_gradiend(v["a"], v["b"], bias=v["c"])
    summed = similarity_matrix({"A": models["A"], "bias": bias}, "cosine_signed", part="decoder-sum")
    assert summed.loc["A", "bias"] == pytest.approx(cosine(v["b"], v["b"] + v["c"]))


def test_topk_and_mass_overlap_of_known_sets(vectors):
    set_a = [0, 3, 7, 21, 25, 30, 11, 12]
    set_b = [3, 7, 25, 30, 1, 2, 4, 5]  # shares 4 of 8 with A
    set_c = [9, 10, 13, 14, 15, 16, 17, 18]  # shares nothing
    models = {
        "A": hand_gradiend(vectors["a"], with_top(set_a, seed=1)),
        "B": hand_gradiend(vectors["a"], with_top(set_b, seed=2)),
        "C": hand_gradiend(vectors["a"], with_top(set_c, seed=3)),
    }
    overlap = similarity_matrix(models, "topk_overlap", k=8)
    assert overlap.loc["A", "B"] == 0.5 and overlap.loc["A", "C"] == 0 and overlap.loc["B", "B"] == 1
    assert similarity_matrix(models, "topk_overlap", k=8, value="count").loc["B", "A"] == 4
    sets = topk_sets(models, 8)
    assert sets["A"][0].tolist() == sorted(set_a)
    # Mass overlap: importances are |100 - rank| at the planted positions.
    imp_a = {p: 100 - r for r, p in enumerate(set_a)}
    imp_b = {p: 100 - r for r, p in enumerate(set_b)}
    shared = set(set_a) & set(set_b)
    expected = 0.5 * (
        sum(imp_a[p] for p in shared) / sum(imp_a.values()) + sum(imp_b[p] for p in shared) / sum(imp_b.values())
    )
    mass = similarity_matrix(models, "mass_overlap", k=8)
    assert mass.loc["A", "B"] == pytest.approx(expected) and mass.loc["A", "C"] == 0 and mass.loc["C", "C"] == 1


def test_spearman_matches_scipy_with_and_without_topk(vectors):
    v = vectors
    rounded = np.round(v["b"], 0)  # many ties
    models = {"A": hand_gradiend(v["a"], v["b"]), "B": hand_gradiend(v["a"] + v["c"], rounded)}
    rho = similarity_matrix(models, "spearman_signed").loc["A", "B"]
    assert rho == pytest.approx(spearmanr(v["a"], v["a"] + v["c"]).statistic)
    decoder = similarity_matrix(models, "spearman_signed", part="decoder-weight").loc["A", "B"]
    assert decoder == pytest.approx(spearmanr(v["b"], rounded).statistic)
    top = similarity_matrix(models, "spearman_signed", part="decoder-weight", k=10).loc["A", "B"]
    union = sorted(set(np.argsort(-np.abs(v["b"]), kind="stable")[:10]) | set(topk_sets(models, 10)["B"][0].tolist()))
    assert top == pytest.approx(spearmanr(v["b"][union], rounded[union]).statistic)


def test_pruned_gradiend_is_compared_in_base_coordinates(vectors):
    full = hand_gradiend(vectors["a"], vectors["b"])
    pruned = full.prune(9)  # drops whole parameters too
    assert len(pruned.param_names) < 3 or pruned.config.kept_counts != [20, 6, 6]
    mask = np.zeros(32, bool)
    mask[topk_sets({"full": full}, 9)["full"][0].numpy()] = True
    expected = cosine(vectors["b"], vectors["b"] * mask)
    assert similarity_matrix({"full": full, "pruned": pruned}, "cosine", part="decoder-weight").iloc[0, 1] == (
        pytest.approx(expected)
    )
    assert similarity_matrix({"full": full, "pruned": pruned}, "topk_overlap", k=9).iloc[0, 1] == 1.0


def test_different_selections_and_base_models(vectors):
    v = vectors
    full = hand_gradiend(v["a"], v["b"])
    first_only = hand_gradiend(v["c"][:20], v["c"][:20], names=NAMES[:1], shapes=SHAPES[:1])
    with pytest.warns(UserWarning, match="shared parameters only"):
        shared = similarity_matrix({"full": full, "first": first_only}, "cosine_signed")
    assert shared.iloc[0, 1] == pytest.approx(cosine(v["a"][:20], v["c"][:20]))
    with pytest.raises(GradiendComparisonError, match="different parameter selections"):
        similarity_matrix({"full": full, "first": first_only}, params="strict")
    other = hand_gradiend(v["a"][:6], v["a"][:6], names=["other.weight"], shapes=[[6]])
    with pytest.raises(GradiendComparisonError, match="share no base parameter"):
        similarity_matrix([full, other])
    foreign = hand_gradiend(v["a"], v["b"], base="another/model")
    with pytest.raises(GradiendComparisonError, match="different base models"):
        similarity_matrix([full, foreign])
    assert similarity_matrix([full, foreign], check_base=False).iloc[0, 1] == pytest.approx(1.0)
    reshaped = hand_gradiend(v["a"], v["b"], shapes=[[5, 4], [3, 2], [6]])
    with pytest.raises(GradiendComparisonError, match="different shapes"):
        similarity_matrix([full, reshaped])
    with pytest.raises(GradiendComparisonError, match="Unknown measure"):
        similarity_matrix([full], "jaccard")


# --------------------------------------------------------------------------- cross-encoding


def test_cross_encoding_matches_per_example_encodings():
    model, tokenizer = tiny_model("gpt2")
    objective = get_objective(model, tokenizer)
    datasets = {"gender": load_builtin("gender-en"), "number": load_builtin("pronoun-number-en")}
    torch.manual_seed(0)
    gradiends = {
        "alt": GradiendModel.from_base_model(model, params=["transformer.h.1.mlp.*"], feature_classes=["M", "F"]),
        "fac": GradiendModel.from_base_model(model, params=["transformer.h.1.mlp.*"], source="factual"),
    }
    with torch.no_grad():
        for gradiend in gradiends.values():
            for weight in gradiend.encoder.weight.values():
                weight.normal_(0, 0.02)
    matrix = cross_encoding_matrix(gradiends, model, tokenizer, datasets, max_rows=4, batch_size=3)
    assert list(matrix.columns) == ["gender:M", "gender:F", "number:3SG", "number:3PL"]
    for feature, dataset in datasets.items():
        classes = feature_classes_of(dataset["test"])  # the +1 class first: the order rows are sampled in
        rows = sample_by_class(dataset["test"], classes, 4, 0)
        batch = objective.prepare(
            [r["masked"] for r in rows], [r["factual"] for r in rows], [r["alternative"] for r in rows]
        )
        for name, gradiend in gradiends.items():
            encodings = encode_rows_loop(gradiend, model, objective, batch)[:, 0]
            column = "alternative_class" if name == "alt" else "factual_class"
            for cls in classes:
                mask = torch.tensor([r[column] == cls for r in rows])
                expected = float(encodings[mask].mean())
                assert matrix.loc[name, f"{feature}:{cls}"] == pytest.approx(expected, rel=1e-4, abs=1e-6)
                assert matrix.attrs["counts"][f"{feature}:{cls}"][name] == int(mask.sum())


# --------------------------------------------------------------------------- figures


def test_parameter_locations():
    assert parameter_location("model.layers.12.mlp.up_proj.weight") == ("12", "mlp.up_proj")
    assert parameter_location("bert.encoder.layer.3.attention.output.dense.bias") == ("3", "attention.output.dense")
    assert parameter_location("model.embed_tokens.weight") == ("other", "embed_tokens")


def test_topk_locations_counts(vectors):
    models = {"A": hand_gradiend(vectors["a"], with_top([0, 1, 20, 26, 27]))}
    table = topk_locations(models, k=5)
    counts = dict(zip(table["parameter"], table["count"]))
    assert counts == {NAMES[0]: 2, NAMES[1]: 1, NAMES[2]: 2}
    assert table["expected"].sum() == pytest.approx(5)
    assert list(table["layer"]) == ["0", "1", "other"]


def test_venn_regions():
    regions = venn_regions({"a": [1, 2, 3, 4], "b": [3, 4, 5], "c": {4, 5, 6, 7}})
    assert regions == {
        (True, False, False): 2,
        (True, True, False): 1,
        (True, True, True): 1,
        (False, True, True): 1,
        (False, False, True): 2,
    }


def test_figures_render(vectors, tmp_path):
    models = {
        "gender": hand_gradiend(vectors["a"], with_top([0, 1, 2, 3, 20, 26])),
        "number": hand_gradiend(vectors["b"], with_top([2, 3, 4, 5, 21, 27])),
        "verb": hand_gradiend(vectors["c"], with_top([0, 5, 6, 7, 22, 28])),
    }
    paths = []
    for measure in ("cosine_signed", "topk_overlap"):
        path = tmp_path / f"{measure}.png"
        figure = plot_similarity_heatmap(similarity_matrix(models, measure, k=6), save_path=path)
        assert len(figure.axes) == 2  # heatmap and colour bar
        paths.append(path)
    cross = similarity_matrix(models, "cosine_signed")
    cross.columns = ["gender:M", "gender:F", "number:3SG"]
    paths.append(tmp_path / "cross.png")
    plot_cross_encoding_heatmap(cross, save_path=paths[-1])
    sets = topk_sets(models, 6)
    for count in (2, 3):
        paths.append(tmp_path / f"venn{count}.png")
        figure = plot_topk_venn(dict(list(sets.items())[:count]), save_path=paths[-1])
        labels = {t.get_text() for t in figure.axes[0].texts}
        assert {"gender\n(k=6)", "number\n(k=6)"} <= labels
    assert "0" in labels and "1" in labels  # region counts are drawn
    paths.append(tmp_path / "locations.png")
    figure = plot_topk_locations(topk_locations(models, 6), save_path=paths[-1])
    assert len(figure.axes) == 2
    for path in paths:
        assert path.read_bytes()[:8] == PNG
    with pytest.raises(ValueError, match="two or three"):
        plot_topk_venn({**sets, "x": sets["gender"], "y": sets["verb"]})


# --------------------------------------------------------------------------- the example


def test_compare_features_example_fast(tmp_path):
    spec = importlib.util.spec_from_file_location("compare_features", ROOT / "examples" / "compare_features.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    summary = example.main(["--fast", "--output-dir", str(tmp_path)])
    assert set(summary["runs"]) == {"gender", "pronoun-number", "verb-number"}
    for name in ("cosine_encoder", "topk_overlap", "mass_overlap", "cross_encoding", "topk_venn", "topk_locations"):
        assert (tmp_path / "figures" / f"{name}.png").read_bytes()[:8] == PNG, name
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["topk_overlap"]["gender"]["gender"] == 1.0
    assert set(saved["cross_encoding"]) == {
        "gender:M",
        "gender:F",
        "pronoun-number:3SG",
        "pronoun-number:3PL",
        "verb-number:SG",
        "verb-number:PL",
    }
    cross = saved["cross_encoding"]
    for feature, (positive, negative) in {
        "gender": "MF",
        "pronoun-number": ("3SG", "3PL"),
        "verb-number": ("SG", "PL"),
    }.items():
        assert (tmp_path / feature / "seed_report.json").exists()
        # Each GRADIEND separates its own feature's classes in the documented direction.
        assert cross[f"{feature}:{positive}"][feature] > cross[f"{feature}:{negative}"][feature]
