"""The training settings page: a form generated from the trainer's schema, YAML both ways,
presets, live validation from the trainer's own validator, kohya import."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app_helpers import place_sd3_files, screenshot, write_base_model_header
from trainer.config import validate_mapping
from trainer.config.schema import OPTIONS, defaults
from lora_studio.training.analysis import this_computer_has_cuda
from trainer.demo_workspace import create_demo_workspace

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.fixture
def workspace(tmp_path) -> Path:
    create_demo_workspace(tmp_path / "ws", make_model=False)
    model = tmp_path / "ws" / "models" / "tiny-sd" / "tiny-sd-v1.safetensors"
    write_base_model_header(model)  # the form reads the header's family; nothing loads it here
    return tmp_path / "ws"


@pytest.fixture
def page(qtbot, workspace):
    from lora_studio.training.page import TrainingPage
    from lora_studio.workers.tasks import TaskRunner

    runner = TaskRunner()
    widget = TrainingPage(runner)
    qtbot.addWidget(widget)
    widget.resize(1280, 860)
    widget.show()
    widget.open_config(workspace / "configs" / "demo.yaml", workspace)
    qtbot.waitUntil(lambda: widget.analysis is not None, timeout=10_000)
    yield widget
    assert runner.pool.waitForDone(10_000)


def settle(qtbot, page) -> None:
    """Wait for the debounced check of the latest edit."""
    page.analysis = None
    qtbot.waitUntil(lambda: page.analysis is not None, timeout=10_000)


def test_one_editor_per_option_and_defaults_validate(page, tmp_path):
    assert set(page.form.rows) == {o.name for o in OPTIONS}
    for option in OPTIONS:
        assert page.findChildren(type(page.form.rows[option.name].editor), f"editor_{option.name}")
        assert option.help in page.form.rows[option.name].editor.toolTip()
    required = {"train_data_dir": str(tmp_path), "base_model": str(tmp_path), "output_dir": str(tmp_path / "o")}
    config, problems = validate_mapping({**defaults(), **required}, tmp_path)
    assert config is not None, problems


def test_valid_demo_config_shows_steps_and_enables_start(page, qtbot):
    assert page.start_button.isEnabled()
    assert page.analysis.figures.images == 36 and page.analysis.figures.total_steps == 36
    assert "36</b> steps" in page.figures.text() and "GPU memory" in page.memory.text()
    # SD 1.x at 64 px: the smallest class, its article as spoken, on one line (no breaking spaces).
    assert ": fits an&nbsp;8&nbsp;GB&nbsp;(RTX&nbsp;3070/4060)&nbsp;GPU" in page.memory.text()
    screenshot(page, "training_form_basic")
    page.form.show_advanced.setChecked(True)
    qtbot.wait(200)  # let the groups lay out their new rows
    screenshot(page, "training_form_advanced")


def test_invalid_value_is_shown_on_its_field_and_blocks_start(page, qtbot):
    editor = page.form.rows["learning_rate"].editor
    editor.line.setText("2")
    settle(qtbot, page)
    row = page.form.rows["learning_rate"]
    assert row.error.isVisible() and "must be > 0 and <= 1 (got 2)" in row.error.text()
    assert not page.start_button.isEnabled()
    assert "Start is off until 1 problem is fixed" in page.start_reason.text()
    assert "learning_rate: 2.0" in page.yaml_edit.toPlainText()
    screenshot(page, "training_form_error")
    editor.line.setText("abc")
    settle(qtbot, page)
    assert "must be a number such as 1e-4 (got 'abc')" in row.error.text()
    editor.line.setText("3e-4")
    settle(qtbot, page)
    assert not row.error.isVisible() and page.start_button.isEnabled()


def test_yaml_with_comments_round_trips_unchanged(page, workspace, qtbot):
    original = (workspace / "configs" / "demo.yaml").read_text()
    assert page.yaml_edit.toPlainText() == original and not page.is_modified()
    page.form.rows["lora_rank"].editor.spin.setValue(8)
    page.form.rows["lora_rank"].editor.spin.setValue(4)  # and back
    assert page.yaml_edit.toPlainText() == original
    assert page.save()
    assert (workspace / "configs" / "demo.yaml").read_text() == original


def test_yaml_edits_show_in_the_form_and_back(page, qtbot):
    text = page.yaml_edit.toPlainText().replace("lora_rank: 4", "lora_rank: 12  # more capacity")
    page.yaml_edit.setPlainText(text)
    qtbot.waitUntil(lambda: page.form.rows["lora_rank"].editor.value() == 12, timeout=20_000)
    page.tabs.setCurrentIndex(1)
    screenshot(page, "training_form_yaml")
    page.form.rows["batch_size"].editor.spin.setValue(2)
    assert "lora_rank: 12  # more capacity" in page.yaml_edit.toPlainText()
    assert "batch_size: 2" in page.yaml_edit.toPlainText()
    page.yaml_edit.setPlainText("lora_rank: [1\n")
    qtbot.waitUntil(lambda: "cannot be read at line" in page.problem_list.item(0).text(), timeout=20_000)
    assert not page.start_button.isEnabled()


def test_old_names_are_migrated_and_the_user_is_told(page, workspace, qtbot):
    config = workspace / "configs" / "old.yaml"
    config.write_text("# from an older tool\ntrain_data_dir: ../datasets/shapes\nnetwork_dim: 16\n", encoding="utf-8")
    page.open_config(config, workspace)
    settle(qtbot, page)
    assert page.form.rows["lora_rank"].editor.value() == 16
    assert "lora_rank: 16" in page.yaml_edit.toPlainText() and "network_dim" not in page.yaml_edit.toPlainText()
    assert page.yaml_edit.toPlainText().startswith("# from an older tool\n")
    texts = [page.problem_list.item(i).text() for i in range(page.problem_list.count())]
    assert any("`network_dim` is called `lora_rank` here" in t for t in texts)


def test_presets_apply_and_show_their_differences(page, qtbot):
    names = [page.preset_box.itemData(i) for i in range(page.preset_box.count())]
    assert {"sd15-style", "sd15-character", "low-vram-8gb", "quick-test"} <= set(names)
    page.form.rows["output_name"].editor.set_value("my-style")
    page.preset_box.setCurrentIndex(names.index("low-vram-8gb"))
    page._preset_chosen()
    assert page.form.rows["gradient_checkpointing"].editor.value() is True
    assert page.form.rows["train_data_dir"].editor.value() == "../datasets/shapes"  # paths kept
    assert page.form.rows["output_name"].editor.value() == "my-style"  # and the LoRA's name (it was wiped)
    page.form.rows["lora_rank"].editor.spin.setValue(24)
    assert "lora_rank" in page.form.differences()
    page.form.reset_option("lora_rank")
    assert page.form.rows["lora_rank"].editor.value() == 8 and "lora_rank" not in page.form.differences()
    page.form.rows["lora_rank"].editor.spin.setValue(24)
    page.form.rows["batch_size"].editor.spin.setValue(3)
    page.reset_all_button.click()
    assert not page.form.differences() and page.form.rows["train_data_dir"].editor.value() == "../datasets/shapes"


def test_save_as_preset_keeps_how_it_trains_not_the_runs_names(page, workspace, monkeypatch):
    from lora_studio.training import page as page_module
    from lora_studio.training.presets import USER_PRESETS

    page.form.rows["output_name"].editor.set_value("my-style")
    page.form.rows["lora_rank"].editor.spin.setValue(24)
    monkeypatch.setattr(page_module.QInputDialog, "getText", lambda *args, **kwargs: ("Rank 24 style", True))
    page._save_as_preset()
    saved = yaml.safe_load((workspace / USER_PRESETS / "Rank-24-style.yaml").read_text(encoding="utf-8"))
    assert saved["lora_rank"] == 24
    assert "output_name" not in saved and "train_data_dir" not in saved and "base_model" not in saved
    # the form now compares with the preset just saved: nothing differs from it
    assert page.preset_box.currentText() == "★ Rank 24 style" and page.form.differences() == {}


def test_kohya_import_lists_what_was_left_out(page, qtbot):
    left_out = page.import_kohya(FIXTURES / "kohya_ss_lora.json")
    assert any(line.startswith("lr_warmup:") for line in left_out)
    assert page.form.rows["lora_rank"].editor.value() == 32
    settle(qtbot, page)
    texts = [page.problem_list.item(i).text() for i in range(page.problem_list.count())]
    assert any("bucket_no_upscale was not imported" in t for t in texts)


def _option_values():
    """A strategy for a value of every option within its type and bounds (paths fixed)."""
    def for_option(option):
        if option.type == "path":
            return st.none()
        if option.type == "bool":
            return st.booleans()
        if option.type == "choice":
            return st.sampled_from(option.choice_values())
        if option.type == "int":
            low = int(option.minimum or 0)
            values = st.integers(low, int(min(option.maximum or 10_000, 2**31 - 2)))
            return st.one_of(st.none(), values) if option.nullable else values
        if option.type == "float":
            low = float(option.minimum or 0) + (1e-6 if option.exclusive_minimum else 0)
            high = float(option.maximum or 1e3) - (1e-6 if option.exclusive_maximum else 0)
            values = st.floats(low, high, allow_nan=False)
            return st.one_of(st.none(), values) if option.nullable else values
        if option.type == "str_list":
            return st.lists(st.text(st.characters(categories=["L", "N"]), min_size=1, max_size=20), max_size=3)
        return st.text(st.characters(categories=["L", "N"]), min_size=1, max_size=12)
    return st.fixed_dictionaries({o.name: for_option(o) for o in OPTIONS if o.type != "path" and o.name != "resume"})


@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=_option_values())
def test_form_to_yaml_to_form_is_the_identity(page, values):
    paths = {"train_data_dir": "../datasets/shapes", "base_model": "../models/tiny-sd/tiny-sd-v1.safetensors",
             "output_dir": "../runs/x", "metadata_path": None, "cache_dir": None}
    full = {**defaults(), **values, **paths}
    page.form.set_values(full)
    page._form_edited()
    text = page.yaml_edit.toPlainText()
    page.form.set_values(defaults())
    page.yaml_edit.setPlainText(text)
    page._yaml_to_form()
    _same(page.form.values(), full)
    assert yaml.safe_load(text)  # and it is YAML the trainer reads


def _same(a: dict, b: dict) -> bool:
    from lora_studio.training.presets import same_value
    different = [k for k in b if not same_value(k, a[k], b[k])]
    assert not different, {k: (a[k], b[k]) for k in different}
    return True


@pytest.mark.parametrize("preset", ["sd15-style", "sd15-character", "sdxl-style", "sdxl-character", "flux-dev-style",
                                    "low-vram-8gb", "quick-test"])
def test_every_preset_round_trips_and_validates(page, preset, workspace):
    names = [page.preset_box.itemData(i) for i in range(page.preset_box.count())]
    page.preset_box.setCurrentIndex(names.index(preset))
    page._preset_chosen()
    full = page.form.values()
    page.form.set_values(defaults())
    page._yaml_to_form()
    _same(page.form.values(), full)
    config, problems = validate_mapping(yaml.safe_load(page.yaml_edit.toPlainText()), workspace / "configs")
    assert config is not None, [str(p) for p in problems]


def _visible(page, name: str) -> bool:
    return page.form.rows[name].isVisibleTo(page.form)


def test_the_base_model_shows_its_family_and_the_form_only_that_familys_options(page, qtbot, workspace):
    write_base_model_header(workspace / "models" / "sdxl" / "base-xl.safetensors", "sdxl")
    write_base_model_header(workspace / "models" / "loras" / "style.safetensors", "lora")
    page.open_config(workspace / "configs" / "demo.yaml", workspace)  # the Models menu is read again
    editor = page.form.base_model_editor
    qtbot.waitUntil(lambda: len(editor.models_menu.actions()) == 2, timeout=10_000)
    entries = [action.text() for action in editor.models_menu.actions()]
    # Both base models, with their families; the LoRA is no choice for a base model.
    assert entries == ["SDXL\t../models/sdxl/base-xl.safetensors", "SD 1.x\t../models/tiny-sd/tiny-sd-v1.safetensors"]
    settle(qtbot, page)
    page.form.show_advanced.setChecked(True)
    assert editor.badge.text() == "SD 1.x" and editor.badge.isVisibleTo(page)
    assert _visible(page, "clip_skip") and not _visible(page, "train_text_encoder_2")
    qtbot.wait(200)  # let the groups lay out their new rows
    screenshot(page, "training_form_sd1_model")

    families = []
    page.familyChanged.connect(families.append)
    editor.models_menu.actions()[0].trigger()
    settle(qtbot, page)
    assert "base_model: ../models/sdxl/base-xl.safetensors" in page.yaml_edit.toPlainText()
    assert editor.badge.text() == "SDXL" and families[-1] == "sdxl"
    assert not _visible(page, "clip_skip")
    assert _visible(page, "train_text_encoder_2") and _visible(page, "text_encoder_2_lr")
    assert "SDXL" in page.memory.text()
    qtbot.wait(200)
    screenshot(page, "training_form_sdxl_model")

    flux = workspace / "models" / "flux-dev"
    flux.mkdir()
    (flux / "model_index.json").write_text('{"_class_name": "FluxPipeline"}', encoding="utf-8")
    editor.line.setText("../models/flux-dev")
    settle(qtbot, page)
    assert editor.badge.text() == "Flux.1" and families[-1] == "flux"
    assert _visible(page, "guidance_scale") and _visible(page, "timestep_sampling")
    assert not _visible(page, "prediction_type") and not _visible(page, "min_snr_gamma")
    assert not _visible(page, "clip_skip") and not _visible(page, "train_text_encoder_2")
    assert "Flux.1" in page.memory.text()
    qtbot.wait(200)
    screenshot(page, "training_form_flux_model")

    editor.line.setText("../models/loras/style.safetensors")
    settle(qtbot, page)
    row = page.form.rows["base_model"]
    assert row.error.isVisible() and "looks like a LoRA, not a base model" in row.error.text()
    assert not editor.badge.isVisibleTo(page) and not page.start_button.isEnabled()


def _problem_texts(page) -> list[str]:
    return [page.problem_list.item(i).text() for i in range(page.problem_list.count())]


def test_a_flux_transformer_file_gets_its_other_files_from_comfyuis_folders(page, qtbot, workspace, tiny_model_of):
    import shutil

    split = tiny_model_of("flux").diffusers_dir.parent / "split"
    models = workspace / "models"
    for sub, name in (("unet", "flux1-tiny-dev.safetensors"), ("clip", "clip_l.safetensors"),
                      ("clip", "t5xxl_tiny.safetensors"), ("vae", "ae.safetensors")):
        (models / sub).mkdir(parents=True, exist_ok=True)
        shutil.copy(split / name, models / sub / name)
    shutil.copytree(split / "t5_tokenizer", models / "t5_tokenizer")
    page.analysis = None
    page.form.base_model_editor.line.setText("../models/unet/flux1-tiny-dev.safetensors")
    # The first check finds the files and fills them in; the second checks the filled-in settings.
    qtbot.waitUntil(lambda: page.analysis is not None and page.analysis.family is not None
                    and page.analysis.family.family == "flux", timeout=20_000)
    assert {k: page.raw.get(k) for k in ("clip_l_path", "t5_path", "ae_path", "t5_tokenizer_path")} == {
        "clip_l_path": "../models/clip/clip_l.safetensors", "t5_path": "../models/clip/t5xxl_tiny.safetensors",
        "ae_path": "../models/vae/ae.safetensors", "t5_tokenizer_path": "../models/t5_tokenizer"}
    assert any("Found the model's other files beside it" in text for text in _problem_texts(page))
    assert _visible(page, "t5_path") and page.form.base_model_editor.badge.text() == "Flux.1"
    assert "fits a" in page.memory.text() and page.start_button.isEnabled()
    qtbot.wait(200)
    screenshot(page, "training_form_flux_split_files")


def test_an_sd3_checkpoint_shows_its_family_options_and_gets_its_text_encoders(page, qtbot, workspace, tiny_model_of):
    """An SD3.5 checkpoint without its text encoders: the badge says which SD3, the form shows SD3's options
    (CLIP-G, T5, flow matching) and hides other families', and the three encoders and the T5 tokenizer are
    found in ComfyUI's folders and filled in."""
    place_sd3_files(workspace / "models", tiny_model_of("sd3").diffusers_dir.parent / "split")
    page.analysis = None
    page.form.base_model_editor.line.setText("../models/checkpoints/sd3.5-tiny-medium.safetensors")
    qtbot.waitUntil(lambda: page.analysis is not None and page.analysis.family is not None
                    and page.analysis.family.family == "sd3" and bool(page.raw.get("t5_tokenizer_path")),
                    timeout=20_000)
    assert {k: page.raw.get(k) for k in ("clip_l_path", "clip_g_path", "t5_path", "t5_tokenizer_path")} == {
        "clip_l_path": "../models/clip/clip_l.safetensors", "clip_g_path": "../models/clip/clip_g.safetensors",
        "t5_path": "../models/clip/t5xxl_tiny.safetensors", "t5_tokenizer_path": "../models/t5_tokenizer"}
    assert page.form.base_model_editor.badge.text() == "SD3.5 Medium"
    page.form.show_advanced.setChecked(True)  # the flow-matching options are advanced ones
    qtbot.wait(200)
    for name in ("clip_l_path", "clip_g_path", "t5_path", "t5_tokenizer_path", "timestep_sampling"):
        assert _visible(page, name), name
    for name in ("ae_path", "guidance_scale", "prediction_type", "min_snr_gamma", "clip_skip", "train_text_encoder_2",
                 "lora_type"):
        assert not _visible(page, name), name
    assert "Stable Diffusion 3/3.5" in page.memory.text() and "SD3.5 Medium" in page.memory.text()
    assert page.start_button.isEnabled(), _problem_texts(page)
    qtbot.wait(200)
    screenshot(page, "training_form_sd3_split_files")

    large = workspace / "models" / "sd3.5-large"
    (large / "transformer").mkdir(parents=True)
    (large / "model_index.json").write_text('{"_class_name": "StableDiffusion3Pipeline"}', encoding="utf-8")
    (large / "transformer" / "config.json").write_text('{"qk_norm": "rms_norm", "dual_attention_layers": []}',
                                                       encoding="utf-8")
    page.form.base_model_editor.line.setText("../models/sd3.5-large")
    settle(qtbot, page)
    assert page.form.base_model_editor.badge.text() == "SD3.5 Large" and "SD3.5 Large" in page.memory.text()


def test_a_language_model_shows_the_text_options_and_hides_the_image_ones(page, qtbot, workspace):
    from trainer.llm.tiny_model import make_tiny_llama

    make_tiny_llama(workspace / "models" / "llm")
    chats = workspace / "datasets" / "chats.jsonl"
    chats.write_text("".join('{"instruction": "q%d", "output": "a"}\n' % i for i in range(10)), encoding="utf-8")
    page.form.base_model_editor.line.setText("../models/llm/llama")
    settle(qtbot, page)
    assert page.form.base_model_editor.badge.text() == "LLM · llama"
    assert _visible(page, "dataset_path") and _visible(page, "cutoff_len")
    assert not _visible(page, "train_data_dir") and not _visible(page, "resolution")
    assert any("dataset_path: is missing: a language model trains on text examples" in t for t in _problem_texts(page))
    page.form.rows["dataset_path"].editor.line.setText("../datasets/chats.jsonl")
    page.form.rows["val_size"].editor.set_value(2)
    page.form.rows["val_size"].editor.changed.emit()
    settle(qtbot, page)
    assert "<b>8</b> examples to train on (2 held out for eval_loss)" in page.figures.text()
    assert "parameters from the model's config.json" in page.memory.text()
    qtbot.wait(200)
    screenshot(page, "training_form_llm_model")


FLUX_24GB_CONFIG = """\
# Flux.1-dev on a 24 GB card: the transformer in 8 bits, gradient checkpointing, caches on.
train_data_dir: ../datasets/shapes
metadata_path: ../datasets/shapes/metadata.csv
base_model: ../models/flux-dev
output_dir: ../runs/flux-style
resolution: 1024
lora_rank: 16
lora_target: attention_ff
batch_size: 1
max_train_steps: 2000
mixed_precision: bf16
gradient_checkpointing: true
quantization_bit: "8"
"""


def test_a_flux_model_shows_which_settings_fit_which_gpu(page, qtbot, workspace):
    """Flux.1-dev at 1024 px, rank 16: bf16 needs a 40 GB card, gradient checkpointing 32 GB, and 8-bit base
    weights (these settings) fit a 24 GB one; on this computer's CPU the form says the trainer would refuse them."""
    flux = workspace / "models" / "flux-dev"
    flux.mkdir()
    (flux / "model_index.json").write_text('{"_class_name": "FluxPipeline"}', encoding="utf-8")
    config = workspace / "configs" / "flux.yaml"
    config.write_text(FLUX_24GB_CONFIG, encoding="utf-8")
    page.set_targets(["This computer", "gpu-vm-01"])
    page.target_box.setCurrentText("gpu-vm-01")  # a GPU machine: where 8 bits run
    page.open_config(config, workspace)
    settle(qtbot, page)
    assert page.form.base_model_editor.badge.text() == "Flux.1" and page.start_button.isEnabled(), _problem_texts(page)
    text = page.memory.text()
    assert "about <b>16.9 GB</b>: fits a&nbsp;24&nbsp;GB&nbsp;(RTX&nbsp;3090/4090,&nbsp;L4)&nbsp;GPU" in text
    rows = [">bf16<", ">35.7 GB<", ">→ a 40 GB GPU<", ">+ gradient checkpointing<", ">27.9 GB<", ">→ a 32 GB GPU<",
            "<b>+ 8-bit base weights</b>", "<b>16.9 GB</b>", "<b>→ a 24 GB GPU</b>"]
    _headline, table = text.split("Which settings fit which GPU (these settings in bold):")
    assert [table.index(cell) for cell in rows] == sorted(table.index(cell) for cell in rows), table
    page.form.show_advanced.setChecked(True)
    qtbot.wait(200)  # let the groups lay out their new rows
    assert _visible(page, "quantization_bit")
    page.form.focus_option("quantization_bit")
    qtbot.wait(200)
    screenshot(page, "flux-form-estimate")

    page.target_box.setCurrentText("This computer")
    settle(qtbot, page)
    assert any("quantization_bit 8 (8-bit base weights) needs a CUDA GPU, and this run trains on the CPU" in t
               for t in _problem_texts(page)) == (not this_computer_has_cuda())
