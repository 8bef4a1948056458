"""The family table: what the app and the checks know about each model family before anything
loads (torch-free).

One :class:`FamilySpec` per family (SD 1.x/2.x, SDXL, Flux.1, SD3/3.5, language models): its
text encoders' token limit, usual resolution, the constants of the memory estimate with their
source, and the options only it uses (the form hides the others). Recognising a model's family
from its files is :mod:`trainer.model_family`'s; the family's code is the module under
``trainer.models`` named by :attr:`FamilySpec.implementation`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class MemoryFigures:
    """The constants of a family's GPU memory estimate, and where they come from.

    Frozen parameters (millions) of each part (the denoiser: UNet or transformer), LoRA
    parameters per unit of rank (millions) for each `lora_target`, and activations (GiB) at
    the family's usual resolution, batch 1, half precision, no gradient checkpointing.
    """

    params_m: Mapping[str, float]
    lora_params_per_rank_m: Mapping[str, float]
    activations_gb: float
    source: str
    # Of the denoiser's parameters, those in the linear layers that 8-bit base weights store in
    # one byte each (``quantization_bit: 8``: the blocks' linear layers); 0 where the family has none.
    quantized_m: float = 0.0


@dataclass(frozen=True)
class FamilySpec:
    """What the app and the checks know about a family without loading a model."""

    id: str  # the `model_family` value
    label: str  # for people: "SDXL"
    implementation: str  # module under trainer.models with the family's model class
    token_limit: int  # caption tokens the text encoder(s) see, start and end tokens not counted
    default_resolution: int
    bucket_range: tuple[int, int]  # the usual min/max bucket sides at the default resolution
    memory: MemoryFigures
    # Options that only this family uses (the form hides them for other families).
    own_options: frozenset[str] = field(default_factory=frozenset)
    tiny_variant: str = ""  # `make-tiny-model --family` value of the family's tiny test model
    token_encoder: str = "CLIP"  # whose tokens `token_limit` counts (the encoder that cuts captions off)
    task: str = "image"  # "image" (a LoRA for a diffusion model) or "text" (a causal language model's)
    # The `quantization_bit` values besides "none" this family takes (the base weights in fewer bits).
    quantization_bits: tuple[str, ...] = ()
    # Text encoders that stay frozen whatever `train_text_encoder` says (Flux.1's and SD3's T5).
    frozen_encoders: tuple[str, ...] = ()
    # Variants whose sizes differ from :attr:`memory` (SD3 Medium beside SD3.5 Large), by Detection.variant.
    variant_memory: Mapping[str, MemoryFigures] = field(default_factory=dict)

    def memory_of(self, variant: str = "") -> MemoryFigures:
        """The memory constants of ``variant`` (a Detection's), the family's own when it has none of its own."""
        return self.variant_memory.get(variant, self.memory)


_SD_MEMORY = MemoryFigures({"denoiser": 860, "text_encoder": 123, "vae": 84},
                           {"attention": 0.20, "attention_ff": 0.40, "all": 0.85}, 3.0,
                           "public reports of kohya's sd-scripts on SD 1.5 (about 6 GB at 512 px, batch 1, fp16)")
_SDXL_MEMORY = MemoryFigures({"denoiser": 2567, "text_encoder": 123, "text_encoder_2": 695, "vae": 84},
                             {"attention": 0.58, "attention_ff": 1.16, "all": 1.95}, 9.0,
                             "public reports of kohya's sd-scripts on SDXL 1.0 (about 12 GB at 1024 px, batch 1, "
                             "bf16, text encoders cached)")
# The 12B transformer, CLIP-L and T5-XXL (frozen, its outputs cached), the 16-channel VAE; the parameter
# and LoRA counts are those of FLUX.1-dev's configs (19 double- and 38 single-stream blocks, width 3072),
# of which 11,834M sit in the blocks' linear layers, what `quantization_bit: 8` stores in 8 bits.
_FLUX_MEMORY = MemoryFigures({"denoiser": 11901, "text_encoder": 123, "text_encoder_2": 4762, "vae": 84},
                             {"attention": 1.63, "attention_ff": 4.09, "all": 5.37, "single_blocks": 2.45}, 12.0,
                             "public reports on Flux.1-dev at 1024 px, batch 1, gradient checkpointing, T5 outputs "
                             "cached (SimpleTuner: a rank-16 LoRA takes a bit more than 30 GB in bf16, 18 GB with "
                             "int8 base weights; ai-toolkit: 24 GB with 8-bit weights)",
                             quantized_m=11834)


def _sd3_memory(denoiser: float, lora: tuple[float, float, float], activations: float, quantized: float,
                what: str) -> MemoryFigures:
    # CLIP-L and CLIP-G with their projections (124M, 695M) and T5-XXL's encoder (4,762M), the 16-channel
    # VAE (84M): the sizes of SD3's text_encoder, text_encoder_2, text_encoder_3 and vae folders.
    return MemoryFigures({"denoiser": denoiser, "text_encoder": 124, "text_encoder_2": 695, "text_encoder_3": 4762,
                          "vae": 84}, dict(zip(("attention", "attention_ff", "all"), lora)), activations,
                         f"{what}: parameters counted in diffusers' SD3Transformer2DModel with the model's config "
                         "(its pos_embed included); activations scaled from Flux.1-dev's by blocks x width x tokens "
                         "at 1024 px (4,096 image and 333 text tokens); public reports: SD3.5 Large trains a LoRA on "
                         "a 24 GB GPU with gradient checkpointing and bf16", quantized_m=quantized)


# SD3.5 Large: 38 joint blocks of width 2432 (8.1B with pos_embed). The LoRA figures per rank are the
# in + out features of the blocks' attention, + feed-forward, + modulation layers.
_SD35_LARGE_MEMORY = _sd3_memory(8147, (1.47, 3.30, 4.58), 6.1, 8014, "SD3.5 Large")
_SD3_VARIANT_MEMORY = {
    # SD3.5 Medium: 24 blocks of width 1536, 13 of them with MMDiT-X's second image attention (2.5B).
    "sd3.5-medium": _sd3_memory(2469, (0.75, 1.47, 2.04), 2.8, 2222, "SD3.5 Medium"),
    "sd3-medium": _sd3_memory(2085, (0.59, 1.31, 1.82), 2.4, 2008, "SD3 Medium"),
}

# The options that name the other files of a model kept as split files, as ComfyUI keeps them.
FLUX_FILE_OPTIONS = ("clip_l_path", "t5_path", "ae_path", "t5_tokenizer_path")
SD3_FILE_OPTIONS = ("clip_l_path", "clip_g_path", "t5_path", "t5_tokenizer_path")
# Every family's options that name a base model's other files (each once, in the schema's order).
COMPANION_OPTIONS = tuple(dict.fromkeys((*FLUX_FILE_OPTIONS, *SD3_FILE_OPTIONS)))
_DDPM_OPTIONS = {"prediction_type", "min_snr_gamma", "debiased_estimation_loss", "multires_noise_iterations",
                 "multires_noise_discount"}  # the noise-prediction families' own
# Flow matching's noise levels (Flux.1 and SD3).
_FLOW_OPTIONS = {"timestep_sampling", "logit_mean", "logit_std", "mode_scale"}
# The adapter kinds beyond plain LoRA: SD's and SDXL's files carry them in LyCORIS' keys.
_VARIANT_OPTIONS = {"lora_type", "use_dora"}
# What every image family uses and a language model does not (images, captions, latents, pictures).
_IMAGE_OPTIONS = {"train_data_dir", "metadata_path", "caption_extension", "resolution", "enable_bucket",
                  "min_bucket_reso", "max_bucket_reso", "bucket_reso_steps", "random_flip", "shuffle_caption",
                  "keep_tokens", "caption_dropout_rate", "max_image_pixels", "train_text_encoder", "text_encoder_lr",
                  "noise_offset", "cache_latents", "cache_dir", "cache_text_encoder_outputs", "num_workers",
                  "sample_steps", "sample_guidance_scale", "sample_width", "sample_height", "sample_negative_prompt",
                  "save_precision", "output_name", "channels_last", "torch_compile"}

SD = FamilySpec("sd", "Stable Diffusion 1.x/2.x", "sd", 75, 512, (256, 1024), _SD_MEMORY,
                frozenset({"clip_skip", *_DDPM_OPTIONS, *_VARIANT_OPTIONS, *_IMAGE_OPTIONS}), tiny_variant="sd1")
SDXL = FamilySpec("sdxl", "SDXL", "sdxl", 75, 1024, (512, 2048), _SDXL_MEMORY,
                  frozenset({"train_text_encoder_2", "text_encoder_2_lr", *_DDPM_OPTIONS, *_VARIANT_OPTIONS, *_IMAGE_OPTIONS}),
                  tiny_variant="sdxl")
FLUX = FamilySpec("flux", "Flux.1", "flux", 512, 1024, (512, 2048), _FLUX_MEMORY,
                  frozenset({"guidance_scale", "quantization_bit", *_FLOW_OPTIONS, *FLUX_FILE_OPTIONS, *_IMAGE_OPTIONS}),
                  tiny_variant="flux", token_encoder="T5", quantization_bits=("8",),
                  frozen_encoders=("text_encoder_2",))
# SD3/3.5: CLIP-L and CLIP-G see the first 75 tokens (77 with start and end); T5 sees 255 (256 with its
# end token, the length diffusers' StableDiffusion3Pipeline uses), so words past T5's limit are lost to all.
SD3 = FamilySpec("sd3", "Stable Diffusion 3/3.5", "sd3", 255, 1024, (512, 2048), _SD35_LARGE_MEMORY,
                 frozenset({"quantization_bit", *_FLOW_OPTIONS, *SD3_FILE_OPTIONS, *_IMAGE_OPTIONS}),
                 tiny_variant="sd3", token_encoder="T5", quantization_bits=("8",), frozen_encoders=("text_encoder_3",),
                 variant_memory=_SD3_VARIANT_MEMORY)
# Causal language models (Llama, Mistral, Qwen, Gemma, GLM-4, Phi): trained on text with peft.
# Their memory is estimated from the model's own config.json (trainer.estimate); these figures
# are Llama-3-8B's, for when it is not at hand.
_LLM_MEMORY = MemoryFigures({"denoiser": 8030}, {"attention": 3.4, "attention_ff": 10.5, "all": 10.5}, 2.0,
                            "Llama-3-8B's parameter counts; activations at 1024 tokens, batch 1, bf16")
LLM = FamilySpec("llm", "Language model (LLM)", "llm", 0, 0, (0, 0), _LLM_MEMORY,
                 frozenset({"dataset_path", "dataset_format", "chat_template", "train_on_prompt", "cutoff_len", "packing",
                            "val_size", "eval_steps", "allow_remote_code", "use_dora", "use_rslora",
                            "quantization_bit", "export", "max_new_tokens"}),
                 tiny_variant="llama", token_encoder="", task="text", quantization_bits=("4",))
IMAGE_FAMILIES: tuple[FamilySpec, ...] = (SD, SDXL, FLUX, SD3)
FAMILIES: tuple[FamilySpec, ...] = (*IMAGE_FAMILIES, LLM)
FAMILIES_BY_ID: dict[str, FamilySpec] = {spec.id: spec for spec in FAMILIES}
# Options that some family uses and others do not (the form's show/hide rule).
FAMILY_OPTIONS: frozenset[str] = frozenset().union(*(spec.own_options for spec in FAMILIES))
