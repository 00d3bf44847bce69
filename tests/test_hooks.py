"""Generation-time hooks: the watermark logits processor and the image labeller.

Each is tested with a stand-in that follows the framework's calling convention (always run), and against the
real framework with a tiny model built in the test (skipped where transformers / diffusers are not installed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from aigclabel import DEMO_PROVIDER_CODE, inspect
from aigclabel.audit import AuditStore
from aigclabel.explicit.image import locate_label
from aigclabel.hooks.images import ImageLabeller
from aigclabel.hooks.text import WatermarkLogitsProcessor
from aigclabel.watermark import DEMO_KEY, detect_file
from aigclabel.watermark.text import detect_green_list, green_mask

VOCAB = 256


def _sample(processors: list[Callable[[Any, Any], Any]], steps: int, seed: int) -> list[int]:
    """A generation loop shaped like transformers' sampling: ids (batch, seq), scores (batch, vocab) per step."""
    rng = np.random.default_rng(seed)
    ids = np.array([[1]])
    for _ in range(steps):
        scores = rng.normal(0, 1, (1, VOCAB))  # a model with some preference at every step
        for processor in processors:
            scores = processor(ids, scores)
        probs = np.exp(scores - scores.max())
        probs /= probs.sum()
        ids = np.concatenate([ids, [[rng.choice(VOCAB, p=probs[0])]]], axis=1)
    return [int(t) for t in ids[0]]


def test_logits_processor_adds_delta_on_the_green_list_only() -> None:
    processor = WatermarkLogitsProcessor(delta=2.0)
    ids = np.array([[5, 9], [7, 3]])
    scores = np.zeros((2, VOCAB))
    out = processor(ids, scores)
    for row, prev in enumerate((9, 3)):
        assert np.array_equal(out[row] == 2.0, green_mask(prev, VOCAB, DEMO_KEY))
    assert not scores.any()  # the input is left alone


def test_generation_with_the_processor_is_detected_and_without_it_is_not() -> None:
    marked = detect_green_list(_sample([WatermarkLogitsProcessor()], 300, seed=3))
    plain = detect_green_list(_sample([], 300, seed=3))
    assert marked.present and not plain.present
    wrong_key = detect_green_list(_sample([WatermarkLogitsProcessor()], 300, seed=3), key=b"another key of 16+ bytes")
    assert not wrong_key.present


@dataclass
class _Output:
    """The shape of diffusers' ImagePipelineOutput."""

    images: list[Any]


def _noise(seed: int, size: int = 256) -> Image.Image:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (size // 16, size // 16, 3), dtype=np.uint8)
    return Image.fromarray(small).resize((size, size), Image.Resampling.BICUBIC)


def test_image_labeller_labels_every_image_a_pipeline_returns(tmp_path: Path) -> None:
    store = AuditStore(tmp_path / "audit.sqlite")
    labeller = ImageLabeller(DEMO_PROVIDER_CODE, out_dir=tmp_path, visible=True, watermark_key=DEMO_KEY, audit=store)
    floats = np.asarray(_noise(2), dtype=np.float32) / 255  # output_type="np": floats in 0..1
    pipeline = labeller.wrap(lambda prompt: _Output([_noise(1), floats]))
    output = pipeline("a cat")
    assert len(output.aigc) == 2 and len({item.label.produce_id for item in output.aigc}) == 2
    for item, shown in zip(output.aigc, output.images, strict=True):
        assert item.path is not None and item.path.read_bytes() == item.data
        found = inspect(item.path)
        assert found.ok and found.labels[0].label == item.label
        mark = detect_file(item.path)
        assert mark is not None and mark.present and mark.payload is not None
        assert mark.payload.matches(item.label.produce_id)
        assert locate_label(shown.convert("RGB")) is not None  # the caller sees the labelled pixels
        (event,) = store.trace(produce_id=item.label.produce_id)
        assert event.watermark_payload == mark.payload.hex()
    store.close()


def test_tuple_outputs_keep_their_shape(tmp_path: Path) -> None:
    labeller = ImageLabeller(DEMO_PROVIDER_CODE, out_dir=tmp_path, image_format="JPEG")
    images, flags = labeller(([_noise(4)], [False]))
    assert flags == [False] and images[0].format == "JPEG"
    (written,) = tmp_path.glob("*.jpg")
    assert inspect(written).ok


# ---------------------------------------------------------------------------- the real frameworks


@pytest.mark.interop  # torch and a generation framework (`make test-hooks`)
def test_transformers_generate_with_the_processor() -> None:
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=VOCAB, n_positions=512, n_embd=32, n_layer=2, n_head=2)
    model = transformers.GPT2LMHeadModel(config).eval()
    prompt = torch.tensor([[1, 2, 3]])
    common = {"do_sample": True, "max_new_tokens": 200, "min_new_tokens": 200, "top_k": 0, "pad_token_id": 0}
    processors = transformers.LogitsProcessorList([WatermarkLogitsProcessor()])
    with torch.no_grad():
        marked = model.generate(prompt, logits_processor=processors, **common)[0].tolist()
        plain = model.generate(prompt, **common)[0].tolist()
    assert detect_green_list(marked).present
    assert not detect_green_list(plain).present


@pytest.mark.interop  # torch and a generation framework (`make test-hooks`)
def test_diffusers_pipeline_images_are_labelled(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    diffusers = pytest.importorskip("diffusers")
    torch.manual_seed(0)
    unet = diffusers.UNet2DModel(
        sample_size=64, in_channels=3, out_channels=3, layers_per_block=1, block_out_channels=(8, 16),
        norm_num_groups=4, down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
    )  # fmt: skip
    pipe = diffusers.DDPMPipeline(unet=unet, scheduler=diffusers.DDPMScheduler(num_train_timesteps=10))
    pipe.set_progress_bar_config(disable=True)
    labelled = ImageLabeller(DEMO_PROVIDER_CODE, out_dir=tmp_path, watermark_key=DEMO_KEY).wrap(pipe)
    output = labelled(batch_size=2, num_inference_steps=2, generator=torch.Generator().manual_seed(1))
    assert len(output.images) == len(output.aigc) == 2
    for item in output.aigc:
        assert item.path is not None and inspect(item.path).labels[0].label == item.label
