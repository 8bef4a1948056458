"""How ComfyUI and AUTOMATIC1111 map the modules of a kohya LoRA file onto a base model.

Test helpers, not test files: pure Python, needing neither program installed. Each rule
below is our own restatement of what the real loader does, with a comment naming the file
and function of the loader it comes from (ComfyUI: repository comfyanonymous/ComfyUI, also
published as Comfy-Org/ComfyUI; A1111: AUTOMATIC1111/stable-diffusion-webui, the builtin
``extensions-builtin/Lora`` extension). Restated are kohya's key format
(``<module>.lora_down.weight``, ``<module>.lora_up.weight``, ``<module>.alpha``, with DoRA's
``dora_scale``) and LyCORIS' LoHa (``hada_w1_a`` ...) and LoKr (``lokr_w1`` ...) tensors under the
same module names, and how each program turns a module's tensors into a patched weight
(:func:`comfyui_patched_weight`, :func:`a1111_patched_weight`; LyCORIS' own definition:
:func:`lycoris_merged_weight`). The other formats both programs also read (diffusers/peft
names, OFT, GLoRA...) are left out, which can only make these rules stricter than the
programs, never more lenient.

The base model is described by the keys of its original LDM single file:
``model.diffusion_model.*`` (UNet), ``cond_stage_model.transformer.text_model.*`` (SD1's CLIP),
``cond_stage_model.model.*`` (SD2's OpenCLIP), ``conditioner.embedders.0.transformer.text_model.*``
and ``conditioner.embedders.1.model.*`` (SDXL's CLIP-L and OpenCLIP bigG). Both programs name
their modules after their own model objects; for real checkpoints those objects hold exactly
the checkpoint's weights, so the checkpoint's keys stand in for the model here (a tiny test
model would not even be *detected* by ComfyUI, whose model detection wants SD's real widths;
these rules check the names only).

Two limits, on purpose: the rules look at names, not at tensor shapes (a LoRA whose shapes do
not fit its target is still "mapped" here; check shapes against the :class:`Target` the
``*_targets`` functions return), and they do not model loading-time failures of the whole file.
"""
