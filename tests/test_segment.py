import json

import numpy as np
import pytest
import torch

from napari_vertebra.core.segment.card import ModelFormatError, load_network, read_card, save_model
from napari_vertebra.core.segment.inference import (
    fuse_for_inference,
    probability_forward,
    select_device,
    tiled_predict,
)
from napari_vertebra.core.segment.nets import aggregate_slices, build_network
from napari_vertebra.core.segment.registry import (
    USER_MODELS_VARIABLE,
    available_models,
    find_model,
    get_network,
)

TINY_SMP = {"encoder_name": "resnet18", "encoder_depth": 3, "decoder_channels": (16, 8, 4)}
TINY = {
    "unet": {**TINY_SMP, "in_channels": 1, "classes": 2},
    "multitask_unet": dict(TINY_SMP),
    "r2unet": {"base_width": 4, "depth": 3, "classes": 2},
    "mdr2unet": {"base_width": 4, "depth": 3, "classes": 2},
    "slice_classifier": {"encoder_name": "resnet18", "encoder_depth": 3},
}


@pytest.mark.parametrize("architecture", sorted(TINY))
def test_every_architecture_trains_a_step_on_cpu(architecture):
    torch.manual_seed(0)
    network = build_network(architecture, **TINY[architecture])
    optimiser = torch.optim.SGD(network.parameters(), lr=0.01)
    batch = torch.randn(2, 1, 64, 64)
    output = network(batch)
    if architecture == "multitask_unet":
        assert output["fracture"].shape == (2, 4, 64, 64)
        assert output["region"].shape == (2, 4, 64, 64)
        loss = sum(o.square().mean() for o in output.values())
    elif architecture == "slice_classifier":
        assert output.shape == (2,)
        loss = output.square().mean()
    else:
        assert output.shape == (2, 2, 64, 64)
        loss = output.square().mean()
    loss.backward()
    # The gradient reaches the input-side convolution (smp keeps unused deeper encoder stages,
    # which get none).
    first = next(network.parameters())
    assert first.grad is not None and first.grad.abs().sum() > 0
    before = [p.detach().clone() for p in network.parameters()]
    optimiser.step()
    assert any(not torch.equal(b, p) for b, p in zip(before, network.parameters(), strict=True))


def test_mdr2unet_first_block_uses_the_four_dilations():
    network = build_network("mdr2unet", base_width=4, depth=3)
    dilations = [branch[0].dilation[0] for branch in network.down[0].branches]
    assert dilations == [2, 4, 8, 16]


def test_slice_aggregation_rules():
    assert aggregate_slices([0.1, 0.2, 0.7]) is True
    assert aggregate_slices([0.1, 0.2, 0.3]) is False
    assert aggregate_slices([0.1, 0.2, 0.7], rule="mean") is False
    with pytest.raises(ValueError):
        aggregate_slices([])


def _card_fields(architecture="r2unet"):
    return dict(
        architecture=architecture,
        arguments=TINY[architecture],
        modality="XR",
        classes=["background", "vertebral_body"],
        preprocessing=[{"op": "zscore"}],
        training_data="random weights (test)",
    )


def test_saved_model_loads_with_identical_outputs(tmp_path):
    torch.manual_seed(1)
    network = build_network("r2unet", **TINY["r2unet"]).eval()
    card = save_model(network, tmp_path, "tiny", **_card_fields())
    assert (tmp_path / "tiny.safetensors").is_file() and card.sha256
    loaded = load_network(read_card(tmp_path / "tiny.json"))
    x = torch.randn(1, 1, 32, 32)
    with torch.inference_mode():
        # Loaded networks run channels-last: equal up to float rounding.
        assert torch.allclose(network(x), loaded(x), atol=1e-5)
    with pytest.raises(FileExistsError):
        save_model(network, tmp_path, "tiny", **_card_fields())


def test_tampered_or_mismatched_weights_are_refused(tmp_path):
    network = build_network("r2unet", **TINY["r2unet"])
    card = save_model(network, tmp_path, "tiny", **_card_fields())
    weights = tmp_path / "tiny.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelFormatError, match="SHA-256"):
        load_network(card)
    # A card whose arguments do not fit the weights.
    other = save_model(network, tmp_path, "other", **_card_fields())
    text = json.loads(other.path.read_text())
    text["arguments"]["base_width"] = 8
    other.path.write_text(json.dumps(text))
    with pytest.raises(ModelFormatError, match="do not fit"):
        load_network(read_card(other.path))


@pytest.mark.parametrize(
    "content,problem",
    [
        ("not json", "not a JSON"),
        ('{"name": "x"}', "lacks"),
        (
            '{"name": "x", "architecture": "vit", "arguments": {}, "modality": "XR",'
            ' "classes": [], "weights": "x.safetensors", "sha256": ""}',
            "unknown architecture",
        ),
        (
            '{"name": "x", "architecture": "unet", "arguments": {}, "modality": "XR",'
            ' "classes": [], "weights": "../x.safetensors", "sha256": ""}',
            "file name next to the card",
        ),
    ],
)
def test_bad_cards_name_the_file_and_problem(tmp_path, content, problem):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ModelFormatError, match=problem) as caught:
        read_card(path)
    assert str(path) in str(caught.value)


def test_registry_finds_user_models_by_name_and_path(tmp_path, monkeypatch):
    folder = tmp_path / "models"
    network = build_network("r2unet", **TINY["r2unet"])
    save_model(network, folder, "tiny-xr", **_card_fields())
    monkeypatch.setenv(USER_MODELS_VARIABLE, str(folder))
    assert "tiny-xr" in available_models()
    assert find_model("tiny-xr").name == "tiny-xr"
    assert find_model(folder / "tiny-xr.safetensors").name == "tiny-xr"
    assert find_model(folder).name == "tiny-xr"
    card = find_model("tiny-xr")
    assert get_network(card) is get_network(card)
    with pytest.raises(ModelFormatError, match="tiny-xr"):
        find_model("no-such-model")


@pytest.mark.parametrize("architecture", ["unet", "multitask_unet", "slice_classifier"])
def test_batch_norms_fold_into_convolutions_without_changing_outputs(architecture):
    torch.manual_seed(0)
    network = build_network(architecture, **TINY[architecture])
    # Running statistics away from their initial values, so that folding has work to do.
    network.train()
    with torch.no_grad():
        for _ in range(3):
            network(torch.randn(2, 1, 64, 64) * 3 + 1)
    network.eval()
    fused = fuse_for_inference(network)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    x = torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        expected, actual = network(x), fused(x)
    if isinstance(expected, dict):
        assert expected.keys() == actual.keys()
        pairs = [(expected[k], actual[k]) for k in expected]
    else:
        pairs = [(expected, actual)]
    for e, a in pairs:
        torch.testing.assert_close(a, e, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="eval mode"):
        fuse_for_inference(network.train())


def test_device_selection():
    assert select_device("cpu") == "cpu"
    assert select_device("auto") in ("cpu", "cuda", "mps")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA"):
            select_device("cuda")
    with pytest.raises(ValueError):
        select_device("tpu")


def test_tiled_inference_matches_untiled_inference():
    torch.manual_seed(0)
    network = build_network("r2unet", base_width=4, depth=3, classes=2).eval()
    forward = probability_forward(network)
    image = np.random.default_rng(0).random((1, 200, 232)).astype(np.float32)
    whole = tiled_predict(forward, image, tile=(256, 256))
    calls = []
    tiled = tiled_predict(
        forward, image, tile=96, overlap=0.5, batch_size=3, progress=lambda *c: calls.append(c)
    )
    assert whole.shape == tiled.shape == (2, 200, 232)
    assert np.allclose(tiled.sum(axis=0), 1, atol=1e-5)
    difference = np.abs(whole - tiled)
    assert difference.mean() < 1e-3 and difference.max() < 0.02
    # Tiles start every 48 pixels, the last one flush with the far edge: 4 × 4 tiles.
    assert calls[-1] == (16, 16) and len(calls) == 6


def test_flip_tta_is_symmetric_and_probabilities_sum_to_one():
    torch.manual_seed(0)
    network = build_network("r2unet", base_width=4, depth=3, classes=3).eval()
    forward = probability_forward(network, flip_axes=(1,))
    image = np.random.default_rng(3).random((1, 64, 64)).astype(np.float32)
    out = tiled_predict(forward, image, tile=64)
    mirrored = tiled_predict(forward, image[:, :, ::-1].copy(), tile=64)
    assert np.allclose(out, mirrored[:, :, ::-1], atol=1e-5)
    assert np.allclose(out.sum(axis=0), 1, atol=1e-5)


def test_pieces_of_the_sacrum_taken_for_bodies_become_sacrum():
    from napari_vertebra.core.pipeline import absorb_into_sacrum

    labels = np.zeros((100, 60), np.uint8)
    labels[10:30, 10:40] = 1  # L4
    labels[34:54, 12:42] = 1  # L5, touching the sacrum's top from above
    labels[54:95, 15:50] = 26  # sacrum
    labels[80:95, 50:55] = 1  # a piece at its lower end taken for a body
    labels[96:99, 20:25] = 1  # a stray piece below it, not touching
    out = absorb_into_sacrum(labels)
    assert (out[10:30, 10:40] == 1).all() and (out[34:54, 12:42] == 1).all()
    assert (out[80:95, 50:55] == 26).all() and (out[96:99, 20:25] == 26).all()
    assert np.array_equal(
        absorb_into_sacrum(np.where(labels == 26, 0, labels)), np.where(labels == 26, 0, labels)
    )
    # A second "sacrum" far from every body (a CT table, say) is not where bodies end.
    labels[0:8, 45:60] = 26
    out = absorb_into_sacrum(labels, spacing=(1.0, 1.0))
    assert (out[10:30, 10:40] == 1).all() and (out[80:95, 50:55] == 26).all()


def test_an_s1_body_held_by_the_sacrum_is_absorbed_but_not_l5_reached_by_a_strand():
    from napari_vertebra.core.pipeline import absorb_into_sacrum

    # Canonical 3D axes: head → feet, front → back, right → left.
    labels = np.zeros((60, 22, 40), np.uint8)
    labels[0:8, 4:16, 12:28] = 1  # L4
    labels[10:22, 4:16, 12:28] = 1  # L5
    labels[25:33, 4:16, 12:28] = 1  # S1 body, taken for a body by the model
    labels[33:55, 4:18, 4:36] = 26  # S2 and below
    labels[25:33, 6:16, 4:11] = labels[25:33, 6:16, 29:36] = 26  # the alae beside S1
    # A strand labelled sacrum up the back of L5 (its posterior edge) lifts the sacrum's top
    # above L5's middle.
    labels[12:33, 16, 19:21] = 26
    out = absorb_into_sacrum(labels, spacing=(3.0, 3.0, 3.0))
    assert (out[10:22, 4:16, 12:28] == 1).all() and (out[0:8, 4:16, 12:28] == 1).all()
    assert (out[25:33, 4:16, 12:28] == 26).all()
    # Without the alae and the sacrum under it, S1 is a body like L5.
    alone = labels.copy()
    alone[labels == 26] = 0
    alone[25:33, 6:16, 4:11] = alone[25:33, 6:16, 29:36] = 0
    alone[40:50, 4:18, 4:36] = 26  # the sacrum, across a disc
    out = absorb_into_sacrum(alone, spacing=(3.0, 3.0, 3.0))
    assert (out[25:33, 4:16, 12:28] == 1).all()


def test_l5_fused_to_the_top_of_s1_keeps_l5_and_gives_s1_back_to_the_sacrum():
    from napari_vertebra.core.instances import extract_instances
    from napari_vertebra.core.pipeline import absorb_into_sacrum

    # A held-out tight CT phantom: the model labelled the top of S1 body, joined to L5 across
    # the disc, and the rest of the sacrum sacrum. The piece's centre lies above the sacrum's
    # top, so as a whole it stayed a body, and the measure step, which splits it, named S1's
    # top L5 and every level above it one off. Canonical axes: head → feet, front → back,
    # right → left.
    labels = np.zeros((60, 22, 40), np.uint8)
    labels[0:8, 4:16, 12:28] = 1  # L4
    labels[10:22, 4:16, 12:28] = 1  # L5
    labels[22:25, 8:12, 18:22] = 1  # joined to S1's top across part of the disc
    labels[25:33, 4:16, 12:28] = 1  # the top of S1, taken for a body
    labels[33:55, 4:18, 4:36] = 26  # the rest of the sacrum
    labels[25:33, 4:16, 4:12] = labels[25:33, 4:16, 28:36] = 26  # the alae holding S1
    out = absorb_into_sacrum(labels, spacing=(3.0, 3.0, 3.0))
    assert (out[0:22, 4:16, 12:28] == labels[0:22, 4:16, 12:28]).all()
    assert (out[25:33, 4:16, 12:28] == 26).all()
    bodies = extract_instances(np.where(out == 1, 1, 0), (3.0, 3.0, 3.0))
    assert len(bodies) == 2
    # L5 joined to L4 above the sacrum, whose top a band labelled sacrum behind L5 lifts above
    # L5's centre (another held-out phantom): the band touches L5 but does not hold it, and
    # L5 stays a body.
    lying = np.zeros((60, 22, 40), np.uint8)
    lying[0:10, 4:16, 12:28] = 1  # L4
    lying[10:12, 8:12, 18:22] = 1  # joined to L5 across part of the disc
    lying[12:24, 4:16, 12:28] = 1  # L5
    lying[25:50, 4:18, 4:36] = 26  # the sacrum, across a thin disc
    lying[14:25, 16:18, 14:26] = 26  # a band behind L5, against its posterior wall
    out = absorb_into_sacrum(lying, spacing=(3.0, 3.0, 3.0))
    assert np.array_equal(out, lying)


def test_a_last_body_taken_for_the_sacrum_becomes_a_body_unless_cut_or_large():
    from napari_vertebra.core.pipeline import _postprocess, release_small_sacrum

    # Canonical 3D axes: head → feet, front → back, right → left. Three bodies and a fourth,
    # of the same size, that a model labelled sacrum, all wholly in view.
    labels = np.zeros((70, 22, 40), np.uint8)
    for top in (2, 16, 30):
        labels[top : top + 11, 4:16, 12:28] = 1
    labels[44:55, 4:16, 12:28] = 26
    labels[48:50, 8:10, 18:20] = 0  # a hole, filled once it is a body
    out = _postprocess(labels, (3.0, 3.0, 3.0))
    assert (out[44:55, 4:16, 12:28] == 1).all() and not (out == 26).any()
    # The same piece cut by the field's lower edge may be S1 alone: left as sacrum.
    cut = labels[:52]
    np.testing.assert_array_equal(release_small_sacrum(cut, (3.0, 3.0, 3.0)), cut)
    # The clean-up works in the labels' box; the field's edge is still what decides.
    assert (_postprocess(cut, (3.0, 3.0, 3.0))[44:52, 4:16, 12:28] == 26).any()
    assert (_postprocess(np.pad(cut, ((0, 0), (9, 9), (9, 9))), (3.0,) * 3) == 26).any()
    # A whole sacrum (S1-S5 with the alae) is several bodies large: left as sacrum.
    whole = labels.copy()
    whole[44:68, 4:18, 4:36] = 26
    np.testing.assert_array_equal(release_small_sacrum(whole, (3.0, 3.0, 3.0)), whole)
    # Radiographs are not changed (the rule was measured on CT only).
    section = labels[:, :, 20]
    assert (_postprocess(section, (3.0, 3.0))[44:55, 4:16] == 26).any()


def test_bounding_box_holds_every_voxel_and_its_margin_stays_in_the_array():
    from napari_vertebra.core.instances import bounding_box

    mask = np.zeros((20, 30, 40), bool)
    mask[3:7, 10:12, 30:39] = True
    mask[15, 25, 5] = True
    assert bounding_box(mask) == (slice(3, 16), slice(10, 26), slice(5, 39))
    assert bounding_box(mask, margin=2) == (slice(1, 18), slice(8, 28), slice(3, 40))
    assert bounding_box(np.zeros((4, 5), bool)) is None


def test_the_cleanup_of_a_model_output_does_not_depend_on_the_air_around_it():
    from napari_vertebra.core.pipeline import _postprocess

    # Canonical 3D axes: head → feet, front → back, right → left.
    labels = np.zeros((60, 22, 40), np.uint8)
    labels[0:8, 4:16, 12:28] = 1  # L4
    labels[3:5, 8:12, 18:22] = 0  # a hole in it, filled by the clean-up
    labels[10:22, 4:16, 12:28] = 1  # L5
    labels[25:33, 4:16, 12:28] = 1  # S1 taken for a body, absorbed into the sacrum
    labels[33:55, 4:18, 4:36] = 26
    labels[25:33, 6:16, 4:11] = labels[25:33, 6:16, 29:36] = 26
    alone = _postprocess(labels, (3.0, 3.0, 3.0))
    assert (alone[3:5, 8:12, 18:22] == 1).all() and (alone[25:33, 4:16, 12:28] == 26).all()
    padded = np.pad(labels, ((7, 30), (25, 3), (40, 11)))
    cleaned = _postprocess(padded, (3.0, 3.0, 3.0))
    np.testing.assert_array_equal(cleaned[7:-30, 25:-3, 40:-11], alone)
    assert not cleaned[:7].any() and not cleaned[:, :25].any() and not cleaned[:, :, -11:].any()


def test_the_sacrum_is_the_piece_that_continues_the_column():
    from napari_vertebra.core.instances import sacrum_beside_column

    bodies = np.zeros((140, 80), bool)
    bodies[10:30, 20:50] = bodies[36:56, 22:52] = True  # L4, L5
    bodies[5:8, 70:73] = True  # a speck (not a body to measure gaps from)
    sacrum = np.zeros_like(bodies)
    sacrum[64:100, 25:60] = True  # across the L5/S1 disc, 8 px below L5
    sacrum[120:138, 0:80] = True  # the CT table, larger
    chosen = sacrum_beside_column(sacrum, bodies, (1.0, 1.0))
    assert np.array_equal(chosen, sacrum & (np.arange(140) < 110)[:, None])
    # Only the table: nothing continues the column.
    table = sacrum & (np.arange(140) >= 110)[:, None]
    assert not sacrum_beside_column(table, bodies, (1.0, 1.0)).any()
    # At 0.5 mm pixels the same 8-pixel gap is 4 mm: still chosen; no bodies: the largest piece.
    assert np.array_equal(sacrum_beside_column(sacrum, bodies, (0.5, 0.5)), chosen)
    assert np.array_equal(sacrum_beside_column(sacrum, np.zeros_like(bodies), (1, 1)), table)
