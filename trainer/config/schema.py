"""The option schema: every training option declared once (torch-free).

This table drives YAML validation (`trainer.config.validate`), `python -m trainer schema`,
the CLI help, the docs and the app's settings form. An option's name, type, default,
bounds, choices (each with a description), help text, group and `advanced` flag live here
and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from trainer.model_family import FAMILIES

SCHEMA_VERSION = 1

# Option types. "path" values are resolved against the config file's folder.
TYPES = ("int", "float", "bool", "str", "path", "choice", "str_list")


@dataclass(frozen=True)
class Choice:
    """One allowed value of a `choice` option, with what it means for the user."""

    value: str
    description: str


@dataclass(frozen=True)
class Option:
    """One training option: everything a validator, a form or a help page needs."""

    name: str
    type: str
    default: Any
    help: str
    group: str
    advanced: bool = False
    required: bool = False
    nullable: bool = False
    minimum: float | None = None
    maximum: float | None = None
    # Whether the bounds themselves are allowed (learning_rate > 0, dropout < 1, ...).
    exclusive_minimum: bool = False
    exclusive_maximum: bool = False
    choices: tuple[Choice, ...] = ()
    path_kind: str | None = None  # "file", "dir" or "file_or_dir" for path options
    must_exist: bool = False
    # Keys older configs or other tools used for this option; read, then rewritten.
    aliases: tuple[str, ...] = field(default_factory=tuple)
    # For a `choice` that other tools spell as a bool (kohya's `cache_latents: true`): the
    # choices that false and true mean.
    bool_means: tuple[str, str] | None = None

    def choice_values(self) -> list[str]:
        """The allowed values of a `choice` option, in declaration order."""
        return [choice.value for choice in self.choices]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready description of this option (for `trainer schema --json` and the app)."""
        data: dict[str, Any] = {
            "name": self.name,
            "type": self.type,
            "default": self.default,
            "help": self.help,
            "group": self.group,
            "advanced": self.advanced,
            "required": self.required,
            "nullable": self.nullable,
        }
        if self.minimum is not None:
            data["minimum"] = self.minimum
            data["exclusive_minimum"] = self.exclusive_minimum
        if self.maximum is not None:
            data["maximum"] = self.maximum
            data["exclusive_maximum"] = self.exclusive_maximum
        if self.choices:
            data["choices"] = [{"value": c.value, "description": c.description} for c in self.choices]
        if self.path_kind:
            data["path_kind"] = self.path_kind
            data["must_exist"] = self.must_exist
        if self.aliases:
            data["aliases"] = list(self.aliases)
        return data


GROUPS = ("Data", "Model", "LoRA", "Training", "Optimizer", "Memory and speed", "Sampling", "Saving")

_DATA, _MODEL, _LORA, _TRAIN, _OPTIM, _MEM, _SAMPLE, _SAVE = GROUPS

OPTIONS: tuple[Option, ...] = (
    # --- Data -------------------------------------------------------------------------
    Option("train_data_dir", "path", None, "Folder with the training images (kohya repeat folders such as `10_style/` are allowed).",
           _DATA, path_kind="dir", must_exist=True),
    Option("dataset_path", "path", None, "Language models: the training examples, a `.jsonl`/`.json` file or a folder of "
           "them (alpaca, sharegpt, OpenAI messages or plain `text` rows).", _DATA, nullable=True,
           path_kind="file_or_dir", must_exist=True),
    Option("dataset_format", "choice", "auto", "Language models: the form of the examples.", _DATA, advanced=True,
           choices=(Choice("auto", "Tell it from each file's rows."),
                    Choice("alpaca", "instruction / input / output (+ system, history)."),
                    Choice("sharegpt", "conversations of {from, value} (+ system)."),
                    Choice("openai", "messages of {role, content}."),
                    Choice("text", "plain `text` rows: continued pre-training on every token."))),
    Option("chat_template", "choice", "default", "Language models: the chat template for a tokenizer that has none "
           "(a model's own template always wins).", _DATA, advanced=True,
           choices=(Choice("default", "### User / ### Assistant turns."), Choice("alpaca", "Stanford Alpaca's prompt."),
                    Choice("chatml", "<|im_start|>role ... <|im_end|> (Qwen, many fine-tunes)."),
                    Choice("llama3", "Llama 3's header and <|eot_id|> tokens."))),
    Option("train_on_prompt", "bool", False, "Language models: also train on the prompt's tokens, not only on the "
           "assistant's answers.", _DATA, advanced=True),
    Option("cutoff_len", "int", 1024, "Language models: longest example in tokens; longer ones are cut (their count is "
           "reported before training).", _DATA, minimum=8, maximum=1_048_576),
    Option("packing", "bool", False, "Language models: pack short examples together into rows of cutoff_len tokens "
           "(faster on short chats; each example still sees only itself).", _DATA, advanced=True),
    Option("val_size", "float", 0.0, "Language models: examples held out for eval_loss, a fraction below 1 or a "
           "count; 0 holds out none.", _DATA, advanced=True, minimum=0.0, maximum=1_000_000),
    Option("eval_steps", "int", 0, "Language models: write eval_loss on the held-out examples every this many steps "
           "(0: only at the end when val_size is set).", _DATA, advanced=True, minimum=0, maximum=10_000_000),
    Option("metadata_path", "path", None, "Caption file: `metadata.csv` (filename,prompt) or `metadata.jsonl` (file_name,text). "
           "Leave empty to detect: metadata.csv, then metadata.jsonl in the data folder, else `.txt` files beside the images.",
           _DATA, nullable=True, path_kind="file", must_exist=True),
    Option("caption_extension", "str", ".txt", "Extension of caption files beside the images when no metadata file is used.",
           _DATA, advanced=True),
    Option("resolution", "int", 512, "Training resolution in pixels (the side of a square of the same area as each bucket).",
           _DATA, minimum=64, maximum=4096),
    Option("enable_bucket", "bool", True, "Group images by aspect ratio (buckets) instead of cropping every image to a square.",
           _DATA),
    Option("min_bucket_reso", "int", 256, "Smallest bucket side in pixels (left unset, it goes down to a smaller "
           "resolution).", _DATA, advanced=True, minimum=32, maximum=4096),
    Option("max_bucket_reso", "int", 1024, "Largest bucket side in pixels.", _DATA, advanced=True, minimum=32, maximum=8192),
    Option("bucket_reso_steps", "int", 64, "Bucket sides are multiples of this many pixels (64 suits SD; must be a multiple of 8).",
           _DATA, advanced=True, minimum=8, maximum=512),
    Option("random_flip", "bool", False, "Also train on mirrored images. Off for subjects whose left and right differ (text, logos).",
           _DATA),
    Option("shuffle_caption", "bool", False, "Shuffle comma-separated tags of each caption every step (tag-style captions).",
           _DATA),
    Option("keep_tokens", "int", 0, "Keep this many leading tags in place when shuffling (for a trigger word).", _DATA,
           minimum=0, maximum=100),
    Option("caption_dropout_rate", "float", 0.0, "Fraction of steps that train on an empty caption.", _DATA,
           advanced=True, minimum=0.0, maximum=1.0, exclusive_maximum=True),
    Option("max_image_pixels", "int", 178_956_970, "Images with more pixels than this are refused as possible decompression bombs.",
           _DATA, advanced=True, minimum=1_000_000, maximum=10**12),
    # --- Model ------------------------------------------------------------------------
    Option("base_model", "path", None, "Base model (Stable Diffusion 1.x/2.x, SDXL, Flux.1, SD3/3.5 or a language "
           "model): a single `.safetensors` file or a diffusers folder.", _MODEL, required=True, path_kind="file_or_dir", must_exist=True),
    Option("model_family", "choice", "auto", "The base model's family. `auto` tells it from the model's files; a family "
           "named here must match them.", _MODEL, advanced=True,
           choices=(Choice("auto", "Tell the family from the model's files."),
                    *(Choice(spec.id, spec.label) for spec in FAMILIES))),
    Option("prediction_type", "choice", "auto", "What the model predicts; only v-prediction models (SD 2.x 768-v, "
           "v-pred SDXL models such as NoobAI-XL V-Pred) need `v_prediction`.",
           _MODEL, advanced=True, choices=(
               Choice("auto", "Read it from the model (its metadata or scheduler config), else epsilon."),
               Choice("epsilon", "Noise prediction: SD 1.x, SD 2.x 512 and most SDXL models."),
               Choice("v_prediction", "Velocity prediction: SD 2.x 768-v and v-pred SDXL models."))),
    Option("clip_skip", "int", 1, "Use the text encoder's n-th layer from the end (2 for many anime SD 1.x models; SDXL always "
           "uses the penultimate layers).", _MODEL,
           minimum=1, maximum=12),
    Option("allow_remote_code", "bool", False, "Language models: allow a model whose folder ships its own Python code "
           "(ChatGLM3 and older GLM). Loading runs that code: only for folders you trust.", _MODEL, advanced=True),
    Option("allow_pickle", "bool", False, "Allow `.ckpt/.pt/.bin` base models. A pickle file can run any code when loaded: "
           "only allow it for files you trust, or convert them to .safetensors.", _MODEL, advanced=True),
    Option("clip_l_path", "path", None, "Flux.1 or SD3 as split files: the CLIP-L text encoder (ComfyUI's "
           "models/clip/clip_l.safetensors). Not needed for a diffusers folder or an SD3 checkpoint that bundles it.",
           _MODEL, nullable=True, path_kind="file", must_exist=True),
    Option("clip_g_path", "path", None, "SD3 as split files: the CLIP-G (OpenCLIP bigG) text encoder (ComfyUI's "
           "models/clip/clip_g.safetensors). Not needed for a diffusers folder or a checkpoint that bundles it.",
           _MODEL, nullable=True, path_kind="file", must_exist=True),
    Option("t5_path", "path", None, "Flux.1 or SD3 as split files: the T5-XXL text encoder (such as ComfyUI's "
           "models/clip/t5xxl_fp16.safetensors), a file or a folder of shards.", _MODEL, nullable=True,
           path_kind="file_or_dir", must_exist=True),
    Option("ae_path", "path", None, "Flux.1 as split files: the VAE (ComfyUI's models/vae/ae.safetensors).", _MODEL,
           nullable=True, path_kind="file", must_exist=True),
    Option("t5_tokenizer_path", "path", None, "Flux.1 or SD3 as files: a folder with the T5 tokenizer (tokenizer.json "
           "or spiece.model), such as FLUX.1-dev's tokenizer_2, SD3's tokenizer_3 or ComfyUI's "
           "comfy/text_encoders/t5_tokenizer folder.", _MODEL, nullable=True, path_kind="dir", must_exist=True),
    # --- LoRA -------------------------------------------------------------------------
    Option("lora_rank", "int", 8, "LoRA rank (network dim): capacity of the adapter. 4-32 for styles and characters.", _LORA,
           minimum=1, maximum=1024, aliases=("network_dim",)),
    Option("lora_alpha", "float", None, "LoRA alpha: the adapter is scaled by alpha/rank. Empty means equal to the rank (scale 1).",
           _LORA, nullable=True, minimum=0.0, exclusive_minimum=True, maximum=4096, aliases=("network_alpha",)),
    Option("lora_dropout", "float", 0.0, "Dropout on the LoRA path during training.", _LORA, advanced=True,
           minimum=0.0, maximum=1.0, exclusive_maximum=True),
    Option("lora_target", "choice", "attention_ff", "Which layers get a LoRA adapter.", _LORA, choices=(
        Choice("attention", "Attention projections only: smallest file, weakest effect."),
        Choice("attention_ff", "Attention and feed-forward layers of the transformer blocks (kohya's default)."),
        Choice("all", "All linear and convolution layers (LoCon-style): strongest, largest file."),
        Choice("attention_mlp", "Language models: attention and MLP projections (same as attention_ff)."),
        Choice("all_linear", "Language models: every linear layer but the output head (same as all)."),
        Choice("single_blocks", "Flux.1: every layer of the single-stream blocks only (kohya's train_blocks=single): "
               "a smaller file, often enough for styles."))),
    Option("lora_type", "choice", "lora", "SD and SDXL: the kind of adapter (LyCORIS' LoHa and LoKr are written in the "
           "keys ComfyUI, Forge and AUTOMATIC1111 load; diffusers loads only lora).", _LORA, advanced=True, choices=(
               Choice("lora", "Low-rank matrices (with use_dora: DoRA). Loads everywhere."),
               Choice("loha", "LoHa: the Hadamard product of two low-rank products; more expressive per parameter "
                      "(lora_alpha/lora_rank scales it, lora_dropout drops ranks)."),
               Choice("lokr", "LoKr: a Kronecker product of two small factors; very small files."))),
    Option("use_dora", "bool", False, "DoRA (weight-decomposed LoRA): a learned magnitude per output channel; often "
           "better at low rank, a little slower. SD, SDXL (lora_type lora) and language models.", _LORA, advanced=True),
    Option("use_rslora", "bool", False, "Language models: rank-stabilised LoRA (scale alpha/sqrt(rank) instead of "
           "alpha/rank), steadier at high ranks.", _LORA, advanced=True),
    Option("train_text_encoder", "bool", False, "Also train a LoRA on the text encoder (stronger prompt binding, uses more memory).",
           _LORA),
    Option("text_encoder_lr", "float", None, "Learning rate of the text encoder's LoRA. Empty means the same as learning_rate.",
           _LORA, nullable=True, minimum=0.0, exclusive_minimum=True, maximum=1.0),
    Option("train_text_encoder_2", "choice", "same", "SDXL: whether the second text encoder (OpenCLIP bigG) gets a LoRA.",
           _LORA, advanced=True, bool_means=("false", "true"), choices=(
               Choice("same", "As train_text_encoder (kohya trains both SDXL encoders together)."),
               Choice("true", "Train it, whatever train_text_encoder says about the first one."),
               Choice("false", "Leave it frozen (its outputs can then be cached)."))),
    Option("text_encoder_2_lr", "float", None, "SDXL: learning rate of the second text encoder's LoRA. Empty means the same "
           "as text_encoder_lr.", _LORA, advanced=True, nullable=True, minimum=0.0, exclusive_minimum=True, maximum=1.0),
    # --- Training ---------------------------------------------------------------------
    Option("batch_size", "int", 1, "Images per step. Larger is faster per image but needs more GPU memory.", _TRAIN,
           minimum=1, maximum=1024, aliases=("train_batch_size",)),
    Option("epochs", "int", 10, "Passes over the data set (each image counted with its repeats).", _TRAIN,
           minimum=1, maximum=100_000, aliases=("max_train_epochs",)),
    Option("max_train_steps", "int", None, "Stop after this many optimizer steps; overrides epochs when set.", _TRAIN,
           nullable=True, minimum=1, maximum=10_000_000),
    Option("learning_rate", "float", 1e-4, "Learning rate of the UNet's LoRA (1e-4 to 5e-4 is typical; 1.0 for Prodigy).",
           _TRAIN, minimum=0.0, exclusive_minimum=True, maximum=1.0),
    Option("gradient_accumulation_steps", "int", 1, "Add up gradients of this many batches per optimizer step "
           "(a larger effective batch without more memory).", _TRAIN, minimum=1, maximum=1024),
    Option("max_grad_norm", "float", 1.0, "Clip the gradient norm to this value; 0 turns clipping off.", _TRAIN,
           advanced=True, minimum=0.0, maximum=1000.0),
    Option("noise_offset", "float", 0.0, "Noise offset (0.05-0.1 helps very dark or bright images).", _TRAIN,
           advanced=True, minimum=0.0, maximum=1.0),
    Option("multires_noise_iterations", "int", 0, "Multi-resolution (pyramid) noise: add this many coarser noise layers "
           "(6-10 as in kohya's scripts; helps contrast); 0 turns it off.", _TRAIN, advanced=True, minimum=0,
           maximum=32),
    Option("multires_noise_discount", "float", 0.3, "Multi-resolution noise: each coarser layer's weight is this "
           "power of its level (kohya's default 0.3; 0.8 is common with fewer iterations).", _TRAIN, advanced=True,
           minimum=0.0, maximum=1.0),
    Option("debiased_estimation_loss", "bool", False, "Weigh each image's loss by 1/sqrt(SNR) (1/(SNR+1) for "
           "v-prediction), as kohya's debiased estimation does: less weight on nearly clean images.", _TRAIN,
           advanced=True),
    Option("ema_decay", "float", None, "Keep an exponential moving average of the LoRA weights with this decay "
           "(0.999 is common) and export it instead of the last weights; empty turns it off.", _TRAIN,
           advanced=True, nullable=True, minimum=0.0, maximum=1.0, exclusive_minimum=True, exclusive_maximum=True),
    Option("guidance_scale", "float", 1.0, "Flux.1-dev: the guidance the distilled model is given while training "
           "(1.0 is what diffusers and ai-toolkit use; sampling uses sample_guidance_scale).", _TRAIN, advanced=True,
           minimum=0.0, maximum=50.0),
    Option("timestep_sampling", "choice", "logit_normal", "Flux.1 and SD3: how training picks noise levels (flow "
           "matching), then shifted towards more noise as the model's scheduler says (Flux.1-dev: more for larger "
           "images; SD3: shift 3).", _TRAIN, advanced=True, choices=(
               Choice("uniform", "Every noise level equally often."),
               Choice("logit_normal", "Middle noise levels more often (SD3's and sd-scripts' choice)."),
               Choice("mode", "Mode sampling with mode_scale (heavier tails)."))),
    Option("logit_mean", "float", 0.0, "Flux.1 and SD3: mean of logit_normal timestep sampling.", _TRAIN, advanced=True,
           minimum=-10.0, maximum=10.0),
    Option("logit_std", "float", 1.0, "Flux.1 and SD3: standard deviation of logit_normal timestep sampling.", _TRAIN,
           advanced=True, minimum=0.01, maximum=10.0),
    Option("mode_scale", "float", 1.29, "Flux.1 and SD3: scale of mode timestep sampling.", _TRAIN, advanced=True,
           minimum=0.0, maximum=10.0),
    Option("min_snr_gamma", "float", None, "Min-SNR loss weighting gamma (5 is common); empty turns it off.", _TRAIN,
           advanced=True, nullable=True, minimum=0.0, exclusive_minimum=True, maximum=100.0),
    Option("nan_policy", "choice", "stop", "What to do when the loss becomes NaN or infinite.", _TRAIN, advanced=True,
           choices=(Choice("stop", "Stop the run with a message (the last checkpoint stays valid)."),
                    Choice("skip", "Skip that step's update and go on (logged as a warning)."))),
    Option("seed", "int", 42, "Random seed: the same seed and data give the same LoRA.", _TRAIN, minimum=0, maximum=2**32 - 1),
    # --- Optimizer --------------------------------------------------------------------
    Option("optimizer", "choice", "AdamW", "Optimizer.", _OPTIM, choices=(
        Choice("AdamW", "Adam with decoupled weight decay: the safe default."),
        Choice("AdamW8bit", "AdamW with 8-bit state (needs bitsandbytes and a CUDA GPU): less memory."),
        Choice("Adafactor", "Memory-light adaptive optimizer (transformers' Adafactor)."),
        Choice("SGD", "Plain SGD with momentum 0.9."),
        Choice("Prodigy", "Learning-rate-free Adam variant (needs the prodigyopt package); use learning_rate 1.0."),
        Choice("AdamWScheduleFree", "Schedule-free AdamW (needs the schedulefree package): no decay schedule to "
               "tune; use lr_scheduler constant (it warms up over lr_warmup_steps itself)."))),
    Option("weight_decay", "float", 0.01, "Weight decay of the optimizer.", _OPTIM, advanced=True, minimum=0.0, maximum=1.0),
    Option("lr_scheduler", "choice", "constant", "How the learning rate changes over the run.", _OPTIM, choices=(
        Choice("constant", "The same learning rate throughout."),
        Choice("constant_with_warmup", "Rises linearly over lr_warmup_steps, then stays constant."),
        Choice("linear", "Warm-up, then falls linearly to zero at the last step."),
        Choice("cosine", "Warm-up, then falls along a cosine to zero."),
        Choice("cosine_with_restarts", "Cosine decay restarted lr_scheduler_num_cycles times."),
        Choice("polynomial", "Warm-up, then polynomial decay with power lr_scheduler_power."))),
    Option("lr_warmup_steps", "int", 0, "Optimizer steps of linear warm-up at the start.", _OPTIM, minimum=0, maximum=10_000_000),
    Option("lr_scheduler_num_cycles", "int", 1, "Restarts of cosine_with_restarts.", _OPTIM, advanced=True, minimum=1, maximum=1000),
    Option("lr_scheduler_power", "float", 1.0, "Power of the polynomial scheduler.", _OPTIM, advanced=True, minimum=0.0, maximum=10.0),
    # --- Memory and speed -------------------------------------------------------------
    Option("mixed_precision", "choice", "auto", "Precision of the frozen model and the forward pass "
           "(LoRA weights always train in fp32).", _MEM, choices=(
               Choice("auto", "bf16 on GPUs that support it, else fp16 on CUDA, full precision on the CPU."),
               Choice("no", "Full fp32 precision: most memory, slowest, most exact."),
               Choice("fp16", "Half precision with loss scaling (any CUDA GPU)."),
               Choice("bf16", "bfloat16 (RTX 30xx/A100 and newer): no loss scaling needed."))),
    Option("quantization_bit", "choice", "none", "Keep the frozen base model's weights in fewer bits on a CUDA GPU: "
           "a language model in 4 (QLoRA, needs bitsandbytes: a 7-8B model then trains in about 10 GB), Flux.1's "
           "and SD3's transformer in 8 (needs torchao: Flux.1-dev then trains on a 24 GB GPU). The LoRA trains in full "
           "precision on top.", _MEM, advanced=True,
           choices=(Choice("none", "The base model in mixed_precision's dtype."),
                    Choice("4", "Language models: 4-bit NF4 weights with bf16 compute (QLoRA)."),
                    Choice("8", "Flux.1 and SD3: the transformer blocks' linear layers in 8 bits (int8, a scale per row): "
                           "half of bf16's memory."))),
    Option("gradient_checkpointing", "bool", False, "Recompute activations in the backward pass: much less memory, ~20% slower.",
           _MEM),
    Option("cache_latents", "choice", "disk", "Encode every image with the VAE once and reuse the result every epoch.", _MEM, choices=(
        Choice("off", "Encode images every step: slowest, uses no cache space."),
        Choice("memory", "Keep the encoded images in RAM for this run."),
        Choice("disk", "Also keep them on disk, keyed by image content, so later runs and resumes start fast.")),
        bool_means=("off", "disk")),
    Option("cache_dir", "path", None, "Folder of the latent cache on disk. Empty means `.lora_cache` inside the data folder "
           "(or the run folder when the data folder is read-only).", _MEM, advanced=True, nullable=True, path_kind="dir"),
    Option("cache_text_encoder_outputs", "bool", True, "Encode each caption once when the text encoder is frozen and captions "
           "are not shuffled.", _MEM, advanced=True),
    Option("num_workers", "int", 2, "Background processes that load images when latents are not cached.", _MEM,
           advanced=True, minimum=0, maximum=64),
    Option("allow_tf32", "bool", True, "CUDA: let fp32 matrix products and convolutions use TF32 tensor cores "
           "(Ampere and newer; about 1e-3 relative rounding, what bf16 runs never notice).", _MEM, advanced=True),
    Option("cudnn_benchmark", "bool", True, "CUDA: let cuDNN time its convolution algorithms once per image size "
           "and keep the fastest.", _MEM, advanced=True),
    Option("channels_last", "choice", "auto", "Keep the UNet's convolution weights in the channels-last (NHWC) "
           "layout that tensor cores prefer.", _MEM, advanced=True, bool_means=("false", "true"), choices=(
               Choice("auto", "On for UNets (SD, SDXL) on CUDA GPUs, off elsewhere."),
               Choice("true", "Always (also on the CPU)."),
               Choice("false", "Never."))),
    Option("torch_compile", "bool", False, "Compile the denoiser with torch.compile: faster steps after a "
           "minute or more of compiling; if compiling fails the run trains uncompiled and says so.", _MEM,
           advanced=True),
    Option("device", "choice", "auto", "Where to train.", _MEM, advanced=True, choices=(
        Choice("auto", "The first CUDA GPU when there is one, else the CPU."),
        Choice("cuda", "The CUDA GPU (fails when none is visible)."),
        Choice("cpu", "The CPU (very slow; for tests and tiny models)."))),
    # --- Sampling ---------------------------------------------------------------------
    Option("sample_prompts", "str_list", [], "Prompts for sample images made during training.", _SAMPLE),
    Option("sample_every_n_steps", "int", 0, "Make sample images every this many steps; 0 turns sampling off.", _SAMPLE,
           minimum=0, maximum=10_000_000),
    Option("sample_at_end", "bool", True, "Also make samples with the finished LoRA at the last step, when sampling is "
           "on and the last step is not a multiple of sample_every_n_steps.", _SAMPLE, advanced=True),
    Option("max_new_tokens", "int", 128, "Language models: longest sample answer in tokens (greedy decoding).",
           _SAMPLE, advanced=True, minimum=1, maximum=8192),
    Option("sample_steps", "int", 20, "Denoising steps of each sample image.", _SAMPLE, advanced=True, minimum=1, maximum=200),
    Option("sample_guidance_scale", "float", 7.0, "Classifier-free guidance scale of sample images.", _SAMPLE, advanced=True,
           minimum=0.0, maximum=50.0),
    Option("sample_width", "int", 512, "Width of sample images in pixels (a multiple of 8).", _SAMPLE, advanced=True,
           minimum=64, maximum=4096),
    Option("sample_height", "int", 512, "Height of sample images in pixels (a multiple of 8).", _SAMPLE, advanced=True,
           minimum=64, maximum=4096),
    Option("sample_seed", "int", 1234, "Seed of the first sample prompt (prompt i uses seed + i), so samples compare across steps.",
           _SAMPLE, advanced=True, minimum=0, maximum=2**32 - 1),
    Option("sample_negative_prompt", "str", "", "Negative prompt of sample images.", _SAMPLE, advanced=True),
    # --- Saving -----------------------------------------------------------------------
    Option("output_dir", "path", None, "Run folder: checkpoints, logs, samples and the final LoRA go here.", _SAVE,
           required=True, path_kind="dir"),
    Option("output_name", "str", None, "File name of the final LoRA without extension. Empty means the output folder's name.",
           _SAVE, nullable=True),
    Option("save_steps", "int", 500, "Save a checkpoint every this many steps; 0 saves only at the end.", _SAVE,
           minimum=0, maximum=10_000_000, aliases=("save_every_n_steps",)),
    Option("save_every_n_epochs", "int", 0, "Also save a checkpoint every this many epochs; 0 turns it off.", _SAVE,
           advanced=True, minimum=0, maximum=100_000),
    Option("keep_last_n_checkpoints", "int", 3, "Keep only the newest checkpoints (older ones are deleted after a new one is "
           "complete); 0 keeps all.", _SAVE, minimum=0, maximum=100_000),
    Option("export", "choice", "adapter", "Language models: what the finished run writes besides the adapter.", _SAVE,
           advanced=True, choices=(Choice("adapter", "The peft adapter (adapter/) only: small, loads on the base model."),
                                   Choice("merged", "Also the base model with the adapter merged in (merged/), "
                                          "as sharded safetensors that load on their own."),
                                   Choice("gguf", "Also a llama.cpp LoRA file (adapter/adapter.gguf; Llama, Mistral, "
                                          "Qwen2 and Qwen3 models; needs the gguf package)."),
                                   Choice("merged_gguf", "Both: merged/ and adapter/adapter.gguf."))),
    Option("save_precision", "choice", "fp16", "Precision of the saved LoRA file.", _SAVE, choices=(
        Choice("fp16", "Half precision: half the size, what everyone uses."),
        Choice("bf16", "bfloat16."),
        Choice("fp32", "Full precision."))),
    Option("resume", "str", "auto", "What to do when output_dir already holds this run: `auto` continues from its newest "
           "complete checkpoint, `never` refuses to touch a used folder, or give the path of a checkpoint folder "
           "(checkpoints/step-00000100) to continue from it.", _SAVE, advanced=True),
    Option("log_every_n_steps", "int", 1, "Write a line to metrics.jsonl every this many optimizer steps.", _SAVE,
           advanced=True, minimum=1, maximum=100_000),
    Option("tensorboard", "bool", True, "Also write TensorBoard event files to `tb/` in the run folder.", _SAVE, advanced=True),
)

OPTIONS_BY_NAME: dict[str, Option] = {option.name: option for option in OPTIONS}
ALIASES: dict[str, str] = {alias: option.name for option in OPTIONS for alias in option.aliases}


def defaults() -> dict[str, Any]:
    """Every option's default value (lists copied so callers may change them)."""
    return {option.name: (list(option.default) if isinstance(option.default, list) else option.default) for option in OPTIONS}


def schema_json() -> dict[str, Any]:
    """The whole schema as JSON-ready data: version, groups and options."""
    return {"schema_version": SCHEMA_VERSION, "groups": list(GROUPS), "options": [option.to_json() for option in OPTIONS]}
